// A removed member stays out until the host lifts it (403 BANNED); addresses of members who left go back to the
// pool once it runs dry, so join-and-leave cycles cannot fill a party.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { ManualClock } from '../../src/shared/clock.ts'
import { registeredPeers, startServer, tempDir, TestPeer, type TestServer } from './helpers.ts'

let s: TestServer
let host: TestPeer, guest: TestPeer, other: TestPeer
beforeAll(async () => {
  s = await startServer({ config: { registerRatePerMin: 10_000 } })
  ;[host, guest, other] = (await registeredPeers(s.base, 3)) as [TestPeer, TestPeer, TestPeer]
})
afterAll(() => s.stop())

describe('removed members are banned', () => {
  test('after the host removes a member, its rejoin is 403 BANNED (with or without the password) until the host lifts it', async () => {
    const id = await host.createParty({ name: 'lan', password: 'pw' })
    expect((await guest.join(id, { password: 'pw' })).status).toBe(200)
    expect((await host.call('DELETE', `/parties/${id}/peers/${guest.peerId}`)).body).toEqual({ status: 'left' })

    for (const body of [{ password: 'pw' }, { password: 'wrong' }, {}]) {
      const r = await guest.join(id, body)
      expect(r.status).toBe(403)
      expect(r.body.error.code).toBe('BANNED')
      expect(r.body.error.message).toContain(`DELETE /parties/${id}/bans/${guest.peerId}`)
    }
    const bans = await host.call('GET', `/parties/${id}/bans`)
    expect(bans.status).toBe(200)
    expect(bans.body).toEqual({ bans: [{ peer_id: guest.peerId, banned_at: new Date(s.clock.now()).toISOString() }] })

    // Only the host reads or lifts bans.
    expect((await other.join(id, { password: 'pw' })).status).toBe(200)
    const notHost = await other.call('DELETE', `/parties/${id}/bans/${guest.peerId}`)
    expect(notHost.status).toBe(403)
    expect(notHost.body.error.code).toBe('NOT_HOST')
    expect((await other.call('GET', `/parties/${id}/bans`)).status).toBe(403)
    expect((await guest.call('DELETE', `/parties/${id}/bans/${guest.peerId}`)).body.error.code).toBe('NOT_A_MEMBER')

    expect((await host.call('DELETE', `/parties/${id}/bans/${guest.peerId}`)).body).toEqual({ status: 'lifted' })
    const again = await host.call('DELETE', `/parties/${id}/bans/${guest.peerId}`)
    expect(again.status).toBe(404)
    expect(again.body.error.code).toBe('BAN_NOT_FOUND')
    expect((await guest.join(id, { password: 'pw' })).status).toBe(200)
    expect((await host.call('GET', `/parties/${id}/bans`)).body.bans).toEqual([])
  })

  test('a member who leaves by itself is not banned; a ban is per party', async () => {
    const id = await host.createParty()
    const id2 = await host.createParty()
    await guest.join(id)
    await guest.join(id2)
    expect((await guest.call('DELETE', `/parties/${id}/peers/${guest.peerId}`)).body).toEqual({ status: 'left' })
    expect((await guest.join(id)).status).toBe(200)
    await host.call('DELETE', `/parties/${id}/peers/${guest.peerId}`)
    expect((await guest.join(id)).body.error.code).toBe('BANNED')
    expect((await guest.call('GET', `/parties/${id2}`)).status).toBe(200)
  })

  test('many concurrent rejoins of a removed member: none gets in', async () => {
    const id = await host.createParty()
    await guest.join(id)
    await host.call('DELETE', `/parties/${id}/peers/${guest.peerId}`)
    const rs = await Promise.all(Array.from({ length: 20 }, () => guest.join(id)))
    expect(rs.map((r) => r.status)).toEqual(Array(20).fill(403))
    expect(Object.keys((await host.call('GET', `/parties/${id}/peers`)).body.peers)).toEqual([host.peerId])
  })

  test('a ban survives a restart', async () => {
    const dbPath = join(tempDir(), 'bans.db')
    const clock = new ManualClock()
    const first = await startServer({ dbPath, clock })
    const [h, g] = (await registeredPeers(first.base, 2)) as [TestPeer, TestPeer]
    const id = await h.createParty()
    await g.join(id)
    await h.call('DELETE', `/parties/${id}/peers/${g.peerId}`)
    await first.stop()
    const second = await startServer({ dbPath, clock })
    try {
      const g2 = Object.assign(new TestPeer(second.base), { token: g.token, peerId: g.peerId })
      expect((await g2.join(id)).body.error.code).toBe('BANNED')
    } finally {
      await second.stop()
    }
  })
})

describe('addresses of departed members are reused', () => {
  test('on a /28, 40 join-and-leave cycles by new identities leave the party usable; active addresses stay unique', async () => {
    const t = await startServer({ config: { subnet: '10.77.0.0/28', registerRatePerMin: 10_000 } })
    try {
      const [h, early] = (await registeredPeers(t.base, 2)) as [TestPeer, TestPeer]
      const id = await h.createParty({ name: 'small', max_peers: 4 })
      expect((await early.join(id)).body.party.peers[early.peerId].virtual_ip).toBe('10.77.0.2')
      await early.call('DELETE', `/parties/${id}/peers/${early.peerId}`)
      for (let i = 0; i < 40; i++) {
        const [p] = (await registeredPeers(t.base, 1)) as [TestPeer]
        const j = await p.join(id)
        expect(j.status).toBe(200)
        expect(j.body.party.peers[p.peerId].virtual_ip).toMatch(/^10\.77\.0\.([2-9]|1[0-4])$/)
        expect((await p.call('DELETE', `/parties/${id}/peers/${p.peerId}`)).status).toBe(200)
      }
      // Still room for a full party, every member with its own address; the early leaver comes back too.
      const more = (await registeredPeers(t.base, 2)) as TestPeer[]
      for (const p of [...more, early]) expect((await p.join(id)).status).toBe(200)
      const peers = (await h.call('GET', `/parties/${id}/peers`)).body.peers as Record<string, { virtual_ip: string }>
      const ips = Object.values(peers).map((p) => p.virtual_ip)
      expect(ips.length).toBe(4)
      expect(new Set(ips).size).toBe(4)
      expect(peers[h.peerId]!.virtual_ip).toBe('10.77.0.1')
    } finally {
      await t.stop()
    }
  })

  test('a departed member keeps its address while the pool has others free', async () => {
    const id = await host.createParty()
    await guest.join(id)
    const ip = (await host.call('GET', `/parties/${id}/peers`)).body.peers[guest.peerId].virtual_ip
    await guest.call('DELETE', `/parties/${id}/peers/${guest.peerId}`)
    const [newcomer] = (await registeredPeers(s.base, 1)) as [TestPeer]
    expect((await newcomer.join(id)).body.party.peers[newcomer.peerId].virtual_ip).not.toBe(ip)
    expect((await guest.join(id)).body.party.peers[guest.peerId].virtual_ip).toBe(ip)
  })
})
