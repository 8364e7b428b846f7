// The CLI as a user runs it: a real process through bin/lanrage (the npm bin), checking exit codes and output.
import { describe, expect, test } from 'bun:test'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { COMMANDS } from '../src/cli.ts'

const BIN = join(import.meta.dir, '..', 'bin', 'lanrage')
export function lanrage(args: string[], env: Record<string, string> = {}, stdin?: string) {
  const p = Bun.spawnSync([BIN, ...args], { env: { ...process.env, ...env }, stdin: stdin === undefined ? 'ignore' : Buffer.from(stdin) })
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() }
}

describe('lanrage CLI', () => {
  test('no command prints usage and exits 2; --help exits 0', () => {
    const r = lanrage([])
    expect(r.code).toBe(2)
    expect(r.out).toContain('Usage: lanrage <command>')
    expect(lanrage(['--help']).code).toBe(0)
  })

  test('unknown command is named, with the command probably meant', () => {
    const r = lanrage(['frobnicate'])
    expect(r.code).toBe(2)
    expect(r.err).toContain('unknown command "frobnicate"\n')
    const typo = lanrage(['stauts'])
    expect(typo.code).toBe(2)
    expect(typo.err).toContain('unknown command "stauts" (did you mean status?)')
  })

  test('lanrage version, --version and version --json', () => {
    const version = require('../package.json').version as string
    expect(lanrage(['version'])).toMatchObject({ code: 0, out: `${version}\n` })
    expect(lanrage(['--version'])).toMatchObject({ code: 0, out: `${version}\n` })
    expect(JSON.parse(lanrage(['version', '--json']).out)).toEqual({ version, runtime: 'bun', runtime_version: Bun.version })
    expect(lanrage(['--help']).out).toMatch(/\n {2}version +print the version/)
  }, 30_000)

  test.each(Object.keys(COMMANDS))('lanrage %s --help lists its options and the log options', (cmd) => {
    const r = lanrage([cmd, '--help'])
    expect(r.code).toBe(0)
    expect(r.out).toContain(`Usage: lanrage ${cmd}`)
    expect(r.out).toContain('--log-level <debug|info|warn|error|silent>')
    expect(r.out).toContain('--log-format <text|json>')
    expect(r.out).toContain('env LANRAGE_LOG_LEVEL')
  })

  // Every command, whatever else it needs: the log options are checked first, and a bad one is a usage error.
  test.each(Object.keys(COMMANDS))('lanrage %s: a bad --log-level, --log-format or LANRAGE_LOG_LEVEL is exit 2', (cmd) => {
    const flag = lanrage([cmd, '--log-level', 'loud'])
    expect(flag.code).toBe(2)
    expect(flag.err).toContain('--log-level must be one of debug, info, warn, error, silent (got "loud")')
    const fmt = lanrage([cmd, '--log-format=xml'])
    expect(fmt.code).toBe(2)
    expect(fmt.err).toContain('--log-format must be one of text, json (got "xml")')
    const env = lanrage([cmd], { LANRAGE_LOG_LEVEL: 'verbose' })
    expect(env.code).toBe(2)
    expect(env.err).toContain('LANRAGE_LOG_LEVEL must be one of debug, info, warn, error, silent (got "verbose")')
  }, 30_000)

  test('bad option values are named in words with what is allowed, exit 2', () => {
    const r = lanrage(['settings', 'list', '--type', 'date'])
    expect(r.code).toBe(2)
    expect(r.err).toContain('--type must be one of string, int, float, bool, json, null (got "date")')
    expect(r.err).toContain('See: lanrage settings --help')
    const nat = lanrage(['nat'])
    expect(nat.code).toBe(2)
    expect(nat.err).toContain('--stun is required: STUN servers host[:port]')
    const up = lanrage(['up', '--listen-port', 'abc', '--join', 'XYZ', '--directt-retry', '5'])
    expect(up.code).toBe(2)
    expect(up.err).toContain('--listen-port must be an integer from 0 to 65535 (got "abc")')
    expect(up.err).toContain('--join must be 12 hex digits (got "XYZ")')
    expect(up.err).toContain('unknown option --directt-retry (did you mean --direct-retry?)')
    for (const out of [r.err, nat.err, up.err]) expect(out).not.toMatch(/Expected|union value/)
  }, 30_000)

  test('usage errors are exit 2 in every command', () => {
    expect(lanrage(['up', '--no-api', '--control', 'http://127.0.0.1:9']).code).toBe(2) // neither --create nor --join, and no page to choose on
    expect(lanrage(['up', '--create', 'x', '--join', '0123456789ab']).code).toBe(2)
    expect(lanrage(['up', '--create', 'x', 'extra']).code).toBe(2)
    expect(lanrage(['keygen', 'extra']).code).toBe(2)
    expect(lanrage(['pubkey', 'extra']).code).toBe(2)
    expect(lanrage(['version', 'extra']).code).toBe(2)
    expect(lanrage(['settings', 'frob']).err).toContain('expected get, set, list or delete (got "frob")')
    expect(lanrage(['nat', '--stun', 'a:b:c']).code).toBe(2)
  }, 30_000)
})

describe('lanrage settings', () => {
  const home = mkdtempSync(join(tmpdir(), 'lanrage-cli-'))
  const env = { LANRAGE_HOME: home }
  test('set, get, list, delete with types', () => {
    expect(lanrage(['settings', 'set', 'relay.port', '51821'], env)).toMatchObject({ code: 0, out: 'relay.port = 51821 (int)\n' })
    expect(lanrage(['settings', 'set', 'ui.name', '42', '--type', 'string', '--force'], env).code).toBe(0)
    expect(JSON.parse(lanrage(['settings', 'get', 'ui.name', '--json'], env).out)).toMatchObject({ key: 'ui.name', value: '42', type: 'string' })
    expect(lanrage(['settings', 'get', 'relay.port'], env).out).toBe('51821\n')
    expect(lanrage(['settings', 'list', 'relay.'], env).out).toBe('relay.port = 51821 (int)\n')
    expect(lanrage(['settings', 'delete', 'relay.port'], env).code).toBe(0)
    const gone = lanrage(['settings', 'get', 'relay.port'], env)
    expect(gone.code).toBe(1)
    expect(gone.err).toContain('no setting named "relay.port"')
  }, 30_000)
  test('a value that does not fit its --type is refused (exit 2)', () => {
    const r = lanrage(['settings', 'set', 'x.y', 'abc', '--type', 'int', '--force'], env)
    expect(r.code).toBe(2)
    expect(r.err).toContain('value "abc" is not an integer')
  })
  test('a missing verb argument prints usage (exit 2)', () => {
    const r = lanrage(['settings', 'set', 'x'], env)
    expect(r.code).toBe(2)
    expect(r.err).toContain('usage: lanrage settings set KEY VALUE')
  })
  test('a key a command reads is checked against its option: type and range, stored with its type', () => {
    for (const [value, got] of [['abc', '"abc"'], ['70000', '"70000"'], ['1.5', '"1.5"']]) {
      const r = lanrage(['settings', 'set', 'up.listen_port', value!], env)
      expect(r.code).toBe(2)
      expect(r.err).toContain(`up.listen_port must be an integer from 0 to 65535 (got ${got})`)
    }
    expect(lanrage(['settings', 'get', 'up.listen_port'], env).code).toBe(1) // nothing stored
    expect(lanrage(['settings', 'set', 'relay.log_level', 'loud'], env).err).toContain('relay.log_level must be one of debug, info, warn, error, silent')
    expect(lanrage(['settings', 'set', 'relay.deny', '192.0.2.1,10.0.0.0/8'], env).out).toBe('relay.deny = ["192.0.2.1","10.0.0.0/8"] (json)\n')
    // A string option stays a string even when it looks like a number.
    expect(lanrage(['settings', 'set', 'relay.region', '42'], env).out).toBe('relay.region = "42" (string)\n')
    const typed = lanrage(['settings', 'set', 'up.listen_port', '51820', '--type', 'string'], env)
    expect(typed.code).toBe(2)
    expect(typed.err).toContain('--type string does not fit')
    expect(lanrage(['settings', 'set', 'up.listen_port', '51820'], env).out).toBe('up.listen_port = 51820 (int)\n')
  }, 30_000)
  test('a key no command reads is refused unless --force, with the key probably meant', () => {
    const typo = lanrage(['settings', 'set', 'relay.prot', '1'], env)
    expect(typo.code).toBe(2)
    expect(typo.err).toContain('lanrage relay has no option "prot" (did you mean relay.port?)')
    expect(typo.err).toContain('--force')
    expect(lanrage(['settings', 'set', 'relya.port', '1'], env).err).toContain('(did you mean relay.*?)')
    expect(lanrage(['settings', 'set', 'status.json', 'true'], env).err).toContain('lanrage status reads no settings')
    expect(lanrage(['settings', 'get', 'relay.prot'], env).code).toBe(1)
    expect(lanrage(['settings', 'set', 'relay.prot', '1', '--force'], env).code).toBe(0)
  }, 30_000)
  test('a server key without --db says which file the server reads, and writes nothing', () => {
    const r = lanrage(['settings', 'set', 'serve.port', '9000'], env)
    expect(r.code).toBe(2)
    expect(r.err).toContain('serve.port is read by lanrage serve from its own database (its --db, default ./data/lanrage.db)')
    expect(r.err).toContain('lanrage settings --db ./data/lanrage.db set serve.port 9000')
    expect(lanrage(['settings', 'get', 'serve.port'], env).code).toBe(1)
    const db = join(home, 'server.db')
    expect(lanrage(['settings', '--db', db, 'set', 'serve.port', '9000'], env).code).toBe(0)
    expect(lanrage(['settings', '--db', db, 'set', 'control.relay_secret', 's3cret'], env).code).toBe(0)
    expect(lanrage(['settings', '--db', db, 'set', 'control.port', 'x'], env).code).toBe(2)
  }, 30_000)
  test('--json is snake_case with ISO 8601 times, like the API', () => {
    expect(lanrage(['settings', 'set', 'relay.capacity', '7'], env).code).toBe(0)
    const row = JSON.parse(lanrage(['settings', 'get', 'relay.capacity', '--json'], env).out)
    expect(Object.keys(row).sort()).toEqual(['key', 'type', 'updated_at', 'value'])
    expect(row).toMatchObject({ key: 'relay.capacity', value: 7, type: 'int' })
    expect(row.updated_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
    const set = JSON.parse(lanrage(['settings', 'set', 'relay.capacity', '8', '--json'], env).out)
    expect(set).toMatchObject({ key: 'relay.capacity', value: 8, type: 'int', updated_at: expect.any(String) })
    const list = JSON.parse(lanrage(['settings', 'list', 'relay.cap', '--json'], env).out)
    expect(list).toEqual([{ key: 'relay.capacity', value: 8, type: 'int', updated_at: expect.stringMatching(/Z$/) }])
    expect(lanrage(['settings', 'delete', 'relay.capacity'], env).code).toBe(0)
  }, 30_000)
})

describe('lanrage relay reads relay.* settings from $LANRAGE_HOME/settings.db', () => {
  const home = mkdtempSync(join(tmpdir(), 'lanrage-relay-settings-'))
  const env = { LANRAGE_HOME: home }
  // Runs the relay for a moment and returns its start-up log line ("relay listening ... region=...").
  async function listeningLine(args: string[]) {
    const p = Bun.spawn([BIN, 'relay', '--port', '0', '--ports', '41000-41009', ...args], { env: { ...process.env, ...env }, stderr: 'pipe', stdout: 'ignore' })
    let text = ''
    const reader = p.stderr.getReader()
    const deadline = Date.now() + 8000
    while (!text.includes('relay listening') && Date.now() < deadline) {
      const { value, done } = await reader.read()
      if (done) break
      text += new TextDecoder().decode(value)
    }
    p.kill('SIGTERM')
    await p.exited
    return text.split('\n').find((l) => l.includes('relay listening')) ?? text
  }

  test('a setting changes the default; a flag still wins', async () => {
    expect(lanrage(['settings', 'set', 'relay.region', 'eu-test'], env).code).toBe(0)
    expect(await listeningLine([])).toContain('region=eu-test')
    expect(await listeningLine(['--region', 'us-flag'])).toContain('region=us-flag')
  }, 20_000)

  test('a setting of the wrong type is named with its key', () => {
    // `settings set` refuses it now; one stored before (or by hand, --force) is still caught by the relay.
    expect(lanrage(['settings', 'set', 'relay.capacity', 'lots'], env).code).toBe(2)
    expect(lanrage(['settings', 'set', 'relay.capacity', 'lots', '--force'], env).code).toBe(0)
    const r = lanrage(['relay', '--port', '0'], env)
    expect(r.code).toBe(2)
    expect(r.err).toContain('setting relay.capacity must be an integer of at least 1 (got "lots")')
    expect(lanrage(['settings', 'delete', 'relay.capacity'], env).code).toBe(0)
  })
})
