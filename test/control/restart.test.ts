// A restart on the same database file keeps parties, members (with their addresses), tokens and the server keys;
// `lanrage control` as a real process starts, logs its URL, reads settings from its database and stops on SIGTERM.
import { describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { openDatabase } from '../../src/db/client.ts'
import { SettingsStore } from '../../src/db/settings.ts'
import { ManualClock } from '../../src/shared/clock.ts'
import { call, registeredPeers, startServer, tempDir, TestPeer } from './helpers.ts'

const BIN = join(import.meta.dir, '..', '..', 'bin', 'lanrage')

describe('restart', () => {
  test('parties, peers, addresses, tokens and keys survive a restart', async () => {
    const dbPath = join(tempDir(), 'control.db')
    const clock = new ManualClock()
    const first = await startServer({ dbPath, clock })
    const [host, guest] = (await registeredPeers(first.base, 2)) as [TestPeer, TestPeer]
    const id = await host.createParty({ name: 'persist', password: 'pw' })
    await guest.join(id, { password: 'pw', peer_info: { nat_type: 'symmetric' } })
    clock.advance(2000)
    await guest.call('POST', `/parties/${id}/peers/${guest.peerId}/heartbeat`)
    const before = (await host.call('GET', `/parties/${id}`)).body.party
    const serverKey = (await call(first.base, 'POST', '/auth/challenge', { body: { public_key: host.publicKey } })).body.server_public_key
    await first.stop()

    const second = await startServer({ dbPath, clock })
    try {
      const h = Object.assign(new TestPeer(second.base), { token: host.token, peerId: host.peerId })
      const g = Object.assign(new TestPeer(second.base), { token: guest.token, peerId: guest.peerId })
      const after = await h.call('GET', `/parties/${id}`)
      expect(after.status).toBe(200)
      expect(after.body.party).toEqual(before) // including last_seen written by the shutdown flush
      expect(after.body.party.peers[guest.peerId]).toMatchObject({ virtual_ip: '10.66.0.2', nat_type: 'symmetric' })
      expect((await g.call('POST', `/parties/${id}/peers/${guest.peerId}/heartbeat`)).status).toBe(200)
      expect((await call(second.base, 'POST', '/auth/challenge', { body: { public_key: host.publicKey } })).body.server_public_key).toBe(serverKey)
      expect((await call(second.base, 'GET', '/')).body).toMatchObject({ parties: 1, peers: 2 })
    } finally {
      await second.stop()
    }
  })
})

describe('lanrage control process', () => {
  test('starts with settings from its database, logs the URL, answers, and exits 0 on SIGTERM', async () => {
    const dir = tempDir()
    const dbPath = join(dir, 'server.db')
    const seed = openDatabase(dbPath)
    new SettingsStore(seed.db).set('control.subnet', '10.77.0.0/16')
    seed.close()
    const proc = Bun.spawn([BIN, 'control', '--db', dbPath, '--host', '127.0.0.1', '--port', '0'], {
      stdout: 'pipe',
      stderr: 'pipe',
      env: { ...process.env, LANRAGE_LOG_LEVEL: 'info' },
    })
    try {
      const reader = proc.stderr.getReader()
      let log = ''
      const deadline = Date.now() + 8000
      while (!/url=(http:\S+)/.test(log) && Date.now() < deadline) {
        const { value, done } = await Promise.race([reader.read(), Bun.sleep(8000).then(() => ({ value: undefined, done: true }))])
        if (done) break
        log += new TextDecoder().decode(value)
      }
      const url = /url=(http:\S+)/.exec(log)?.[1]
      expect(url).toBeDefined()
      const [p] = (await registeredPeers(url!, 1)) as [TestPeer]
      const party = (await p.call('POST', '/parties', { name: 'x' })).body.party
      expect(party.subnet).toBe('10.77.0.0/16')
      expect(party.peers[p.peerId].virtual_ip).toBe('10.77.0.1')
      proc.kill('SIGTERM')
      expect(await proc.exited).toBe(0)
      for (let r = await reader.read(); !r.done; r = await reader.read()) log += new TextDecoder().decode(r.value)
      expect(log).toContain('control server stopped')
    } finally {
      if (proc.exitCode === null) proc.kill('SIGKILL')
    }
  }, 15_000)

  test('bad options are reported with exit 2 before anything starts', () => {
    const r = Bun.spawnSync([BIN, 'control', '--port', 'eighty', '--db', join(tempDir(), 'x.db')])
    expect(r.exitCode).toBe(2)
    expect(r.stderr.toString()).toContain('--port')
  })
})
