// The relay secret can come from a file, so it never appears in /proc/PID/cmdline (readable by every local user).
// Before: only --relay-secret (a flag: visible in the process list) or LANRAGE_RELAY_SECRET, and --help said nothing.
import { describe, expect, test } from 'bun:test'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { listeningUrl, runLanrage, spawnLanrage, tempDir } from './helpers.ts'

const SECRET = 'sEcReT-' + crypto.randomUUID()

describe('--relay-secret-file', () => {
  test.each(['control', 'serve', 'relay'])('lanrage %s --help offers it and warns about --relay-secret in /proc/*/cmdline', async (cmd) => {
    const r = await runLanrage([cmd, '--help'])
    expect(r.code).toBe(0)
    expect(r.out).toContain('--relay-secret-file <string>')
    expect(r.out).toContain('env LANRAGE_RELAY_SECRET_FILE')
    expect(r.out).toContain('visible to every local user in /proc/*/cmdline')
  })

  test('control and relay read the secret from files (flag and env); the relay registers; no command line shows it', async () => {
    const dir = tempDir()
    const file = join(dir, 'relay-secret')
    writeFileSync(file, SECRET + '\n', { mode: 0o600 })
    const control = spawnLanrage(['control', '--host', '127.0.0.1', '--port', '0', '--db', join(dir, 'c.db'), '--relay-secret-file', file])
    try {
      const url = await listeningUrl(control)
      const relay = spawnLanrage(['relay', '--host', '127.0.0.1', '--port', '0', '--ports', '41550-41559', '--control', url], {
        env: { LANRAGE_RELAY_SECRET_FILE: file, LANRAGE_HOME: dir },
      })
      try {
        await relay.waitErr('registered with control server')
        expect(((await (await fetch(url + '/')).json()) as { relays: number }).relays).toBe(1)
        for (const p of [control, relay]) expect(readFileSync(`/proc/${p.proc.pid}/cmdline`, 'utf8')).not.toContain(SECRET)
        expect(control.err + relay.err).not.toContain(SECRET)
      } finally {
        expect(await relay.stop()).toBe(0)
      }
      // A relay with another secret is refused: the file's content is what counts.
      const wrong = join(dir, 'wrong-secret')
      writeFileSync(wrong, 'not-the-secret\n', { mode: 0o600 })
      const intruder = spawnLanrage(['relay', '--host', '127.0.0.1', '--port', '0', '--ports', '41560-41569', '--control', url, '--relay-secret-file', wrong], {
        env: { LANRAGE_HOME: dir },
      })
      try {
        await intruder.waitErr(/registration failed, retrying.*HTTP 401/)
      } finally {
        await intruder.stop()
      }
    } finally {
      expect(await control.stop()).toBe(0)
    }
  }, 30_000)

  test('both --relay-secret and --relay-secret-file, or a missing or empty file: one message, nothing starts', async () => {
    const dir = tempDir()
    const empty = join(dir, 'empty')
    writeFileSync(empty, '\n', { mode: 0o600 })
    const both = await runLanrage(['control', '--port', '0', '--db', join(dir, 'c.db'), '--relay-secret', 'x', '--relay-secret-file', empty])
    expect(both.code).toBe(2)
    expect(both.err).toContain('--relay-secret and --relay-secret-file: give one of them, not both')
    const missing = await runLanrage(['relay', '--port', '0', '--relay-secret-file', join(dir, 'nope')], { env: { LANRAGE_HOME: dir } })
    expect(missing.code).toBe(1)
    expect(missing.err.trim().split('\n')).toEqual([expect.stringMatching(/^lanrage relay: --relay-secret-file \S+\/nope: cannot read it: .*ENOENT.* \(SECRET_FILE\)$/)])
    const blank = await runLanrage(['serve', '--port', '0', '--db', join(dir, 's.db'), '--relay-secret-file', empty], { env: { LANRAGE_LOG_LEVEL: 'warn' } })
    expect(blank.code).toBe(1)
    expect(blank.err.trim().split('\n')).toEqual([`lanrage serve: --relay-secret-file ${empty}: the first line is empty (SECRET_FILE)`])
  }, 30_000)

  test('a secret file every local user can read is used, with a warning', async () => {
    const dir = tempDir()
    const file = join(dir, 'open-secret')
    writeFileSync(file, SECRET + '\n', { mode: 0o644 })
    const control = spawnLanrage(['control', '--host', '127.0.0.1', '--port', '0', '--db', join(dir, 'c.db'), '--relay-secret-file', file])
    try {
      await listeningUrl(control)
      expect(control.err).toContain(`--relay-secret-file ${file} is readable by every local user (mode 0644); chmod 600 it`)
    } finally {
      expect(await control.stop()).toBe(0)
    }
  }, 30_000)
})
