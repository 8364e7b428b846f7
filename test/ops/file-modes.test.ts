// Keys and secrets on disk are the owner's only. Before: under umask 022, ./data/ came out 0755 and lanrage.db
// (the server's X25519 and Ed25519 private keys), its -wal/-shm, $LANRAGE_HOME and settings.db 0644/0755, so any
// local user could read them. Each case runs the real command under umask 022, then looks at the modes; files an
// earlier version left open are tightened, with a warning naming them.
import { describe, expect, test } from 'bun:test'
import { chmodSync, existsSync, mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { writeStatusFile, statusPath } from '../../src/client/agent/state.ts'
import { modeOf, runLanrage, spawnLanrage, tempDir, listeningUrl } from './helpers.ts'
import { freeTcpPort, startControlProcess } from '../client/helpers.ts'

const DB_FILES = ['lanrage.db', 'lanrage.db-wal', 'lanrage.db-shm']

describe('the server database', () => {
  test('lanrage control with the default --db: ./data 0700, lanrage.db and its -wal/-shm 0600', async () => {
    const cwd = tempDir()
    const p = spawnLanrage(['control', '--host', '127.0.0.1', '--port', '0'], { cwd })
    try {
      await listeningUrl(p)
      expect(modeOf(join(cwd, 'data'))).toBe(0o700)
      for (const f of DB_FILES) expect([f, modeOf(join(cwd, 'data', f))]).toEqual([f, 0o600])
      expect(p.err).not.toMatch(/was (open|readable)/)
    } finally {
      expect(await p.stop()).toBe(0)
    }
  }, 30_000)

  test('lanrage serve: an existing 0755 ./data and 0644 database files are tightened, with a warning for each', async () => {
    const cwd = tempDir()
    // What an earlier version left behind: a database made under umask 022.
    const first = spawnLanrage(['serve', '--host', '127.0.0.1', '--port', '0', '--relay-port', '0', '--relay-ports', '41540-41549'], { cwd })
    await first.waitErr('relay listening')
    chmodSync(join(cwd, 'data'), 0o755)
    for (const f of DB_FILES) chmodSync(join(cwd, 'data', f), 0o644)
    first.proc.kill('SIGKILL') // no clean shutdown: the -wal and -shm files stay, as after a crash
    await first.exited
    expect(modeOf(join(cwd, 'data', 'lanrage.db-wal'))).toBe(0o644)

    const p = spawnLanrage(['serve', '--host', '127.0.0.1', '--port', '0', '--relay-port', '0', '--relay-ports', '41540-41549'], { cwd })
    try {
      await p.waitErr('relay listening')
      expect(modeOf(join(cwd, 'data'))).toBe(0o700)
      for (const f of DB_FILES) expect([f, modeOf(join(cwd, 'data', f))]).toEqual([f, 0o600])
      expect(p.err).toContain('directory ./data was open to other users (mode 0755); set to 0700')
      for (const f of ['lanrage.db', 'lanrage.db-wal', 'lanrage.db-shm']) expect(p.err).toContain(`file ./data/${f} was readable by other users (mode 0644); set to 0600`)
    } finally {
      expect(await p.stop()).toBe(0)
    }
  }, 30_000)

  test('a --db outside ./data: the file is 0600, a directory made for it 0700, an existing shared directory left alone', async () => {
    const cwd = tempDir()
    chmodSync(cwd, 0o755)
    const p = spawnLanrage(['control', '--host', '127.0.0.1', '--port', '0', '--db', 'here.db'], { cwd })
    const q = spawnLanrage(['control', '--host', '127.0.0.1', '--port', '0', '--db', 'new/dir/there.db'], { cwd })
    try {
      await listeningUrl(p)
      await listeningUrl(q)
      expect(modeOf(join(cwd, 'here.db'))).toBe(0o600)
      expect(modeOf(cwd)).toBe(0o755)
      expect(modeOf(join(cwd, 'new'))).toBe(0o700)
      expect(modeOf(join(cwd, 'new', 'dir'))).toBe(0o700)
      expect(modeOf(join(cwd, 'new', 'dir', 'there.db'))).toBe(0o600)
    } finally {
      expect(await p.stop()).toBe(0)
      expect(await q.stop()).toBe(0)
    }
  }, 30_000)
})

describe('$LANRAGE_HOME', () => {
  test('lanrage settings set: a new home is 0700, settings.db 0600', async () => {
    const home = join(tempDir(), 'home')
    const r = await runLanrage(['settings', 'set', 'relay.relay_secret', 'hunter2'], { env: { LANRAGE_HOME: home } })
    expect(r.code).toBe(0)
    expect(modeOf(home)).toBe(0o700)
    expect(modeOf(join(home, 'settings.db'))).toBe(0o600)
    for (const side of ['-wal', '-shm']) if (existsSync(join(home, 'settings.db' + side))) expect(modeOf(join(home, 'settings.db' + side))).toBe(0o600)
    expect(r.err).toBe('')
  })

  test('lanrage settings: an existing 0755 home and 0644 settings.db are tightened with a warning', async () => {
    const home = join(tempDir(), 'home')
    expect((await runLanrage(['settings', 'set', 'a', '1', '--force'], { env: { LANRAGE_HOME: home } })).code).toBe(0)
    chmodSync(home, 0o755)
    chmodSync(join(home, 'settings.db'), 0o644)
    const r = await runLanrage(['settings', 'get', 'a'], { env: { LANRAGE_HOME: home } })
    expect(r.code).toBe(0)
    expect(modeOf(home)).toBe(0o700)
    expect(modeOf(join(home, 'settings.db'))).toBe(0o600)
    expect(r.err).toContain(`directory ${home} was open to other users (mode 0755); set to 0700`)
    expect(r.err).toContain(`file ${join(home, 'settings.db')} was readable by other users (mode 0644); set to 0600`)
  })

  test("lanrage up creates the agent's key 0600 in a 0700 home; a 0644 key from before is tightened with a warning", async () => {
    const dir = tempDir()
    const srv = await startControlProcess(join(dir, 'c.db'), await freeTcpPort())
    try {
      const home = join(dir, 'home')
      // Joining a party that does not exist fails after registration: the key exists by then.
      const up = ['up', '--control', srv.url, '--join', '000000000000', '--listen-port', '0']
      const r = await runLanrage(up, { env: { LANRAGE_HOME: home, LANRAGE_LOG_LEVEL: 'warn' } })
      expect(r.code).toBe(1)
      expect(r.err).toContain('PARTY_NOT_FOUND')
      expect(modeOf(home)).toBe(0o700)
      expect(modeOf(join(home, 'private.key'))).toBe(0o600)
      const key = readFileSync(join(home, 'private.key'), 'utf8')

      chmodSync(join(home, 'private.key'), 0o644)
      const again = await runLanrage(up, { env: { LANRAGE_HOME: home, LANRAGE_LOG_LEVEL: 'warn' } })
      expect(again.code).toBe(1)
      expect(modeOf(join(home, 'private.key'))).toBe(0o600)
      expect(again.err).toContain(`file ${join(home, 'private.key')} was readable by other users (mode 0644); set to 0600`)
      expect(readFileSync(join(home, 'private.key'), 'utf8')).toBe(key) // the identity is kept, not replaced
    } finally {
      await srv.stop()
    }
  }, 40_000)

  test("the agent's status file is written 0600 into a 0700 home, also under umask 022", () => {
    const home = join(tempDir(), 'home')
    mkdirSync(home, { mode: 0o755 })
    chmodSync(home, 0o755)
    const env = { LANRAGE_HOME: home }
    const old = process.umask(0o022)
    try {
      writeStatusFile({ pid: process.pid, control: 'http://127.0.0.1:1' } as Parameters<typeof writeStatusFile>[0], env)
    } finally {
      process.umask(old)
    }
    expect(modeOf(home)).toBe(0o700)
    expect(modeOf(statusPath(env))).toBe(0o600)
  })
})
