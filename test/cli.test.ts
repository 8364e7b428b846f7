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

  test('unknown command is named', () => {
    const r = lanrage(['frobnicate'])
    expect(r.code).toBe(2)
    expect(r.err).toContain('unknown command "frobnicate"')
  })

  test.each(Object.keys(COMMANDS))('lanrage %s --help', (cmd) => {
    const r = lanrage([cmd, '--help'])
    expect(r.code).toBe(0)
    expect(r.out).toContain(`Usage: lanrage ${cmd}`)
  })

  test('bad option values are reported with exit 2', () => {
    const r = lanrage(['settings', 'list', '--type', 'date'])
    expect(r.code).toBe(2)
    expect(r.err).toContain('--type:')
    expect(r.err).toContain('See: lanrage settings --help')
  })
})

describe('lanrage settings', () => {
  const home = mkdtempSync(join(tmpdir(), 'lanrage-cli-'))
  const env = { LANRAGE_HOME: home }
  test('set, get, list, delete with types', () => {
    expect(lanrage(['settings', 'set', 'relay.port', '51821'], env)).toMatchObject({ code: 0, out: 'relay.port = 51821 (int)\n' })
    expect(lanrage(['settings', 'set', 'ui.name', '42', '--type', 'string'], env).code).toBe(0)
    expect(JSON.parse(lanrage(['settings', 'get', 'ui.name', '--json'], env).out)).toMatchObject({ key: 'ui.name', value: '42', type: 'string' })
    expect(lanrage(['settings', 'get', 'relay.port'], env).out).toBe('51821\n')
    expect(lanrage(['settings', 'list', 'relay.'], env).out).toBe('relay.port = 51821 (int)\n')
    expect(lanrage(['settings', 'delete', 'relay.port'], env).code).toBe(0)
    const gone = lanrage(['settings', 'get', 'relay.port'], env)
    expect(gone.code).toBe(1)
    expect(gone.err).toContain('no setting named "relay.port"')
  })
  test('a value that does not fit its type is refused', () => {
    const r = lanrage(['settings', 'set', 'x', 'abc', '--type', 'int'], env)
    expect(r.code).toBe(1)
    expect(r.err).toContain('value "abc" is not an integer')
  })
  test('a missing verb argument prints usage', () => {
    const r = lanrage(['settings', 'set', 'x'], env)
    expect(r.code).toBe(1)
    expect(r.err).toContain('usage: lanrage settings set KEY VALUE')
  })
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
    expect(lanrage(['settings', 'set', 'relay.capacity', 'lots'], env).code).toBe(0)
    const r = lanrage(['relay', '--port', '0'], env)
    expect(r.code).toBe(2)
    expect(r.err).toContain('setting relay.capacity: Expected integer')
    expect(lanrage(['settings', 'delete', 'relay.capacity'], env).code).toBe(0)
  })
})
