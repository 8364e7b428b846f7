// The cleanup pass driven by a ManualClock: silent peers removed (members told), parties ended, relays dropped,
// expired tokens, challenges and signals purged.
import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { challenges, signals, tokens } from '../../src/db/schema/control.ts'
import { call, registeredPeers, startServer, type TestPeer, type TestServer } from './helpers.ts'

let s: TestServer
beforeEach(async () => {
  s = await startServer()
})
afterEach(() => s.stop())

const MIN = 60_000
const relay = (relay_id: string) => ({ relay_id, public_ip: '198.51.100.20', port: 51820, region: 'eu', capacity: 100, load: 0, ports: '52000-52999' })

describe('cleanup', () => {
  test('a silent member is removed after 5 minutes with reason timeout; active members stay', async () => {
    const [host, guest, third] = (await registeredPeers(s.base, 3)) as [TestPeer, TestPeer, TestPeer]
    const id = await host.createParty()
    await guest.join(id)
    await third.join(id)
    const hw = await host.ws()
    await hw.next()
    s.clock.advance(4 * MIN)
    for (const p of [host, third]) expect((await p.call('POST', `/parties/${id}/peers/${p.peerId}/heartbeat`)).status).toBe(200)
    s.clock.advance(MIN) // guest silent exactly 5 min: not yet
    expect(s.service.cleanup().peers_removed).toBe(0)
    s.clock.advance(1)
    expect(s.service.cleanup()).toMatchObject({ peers_removed: 1, parties_deleted: 0 })
    expect(await hw.next()).toEqual({ type: 'peer_left', party_id: id, peer_id: guest.peerId, reason: 'timeout' })
    expect(Object.keys((await host.call('GET', `/parties/${id}/peers`)).body.peers).sort()).toEqual([host.peerId, third.peerId].sort())
    const g = await guest.call('GET', `/parties/${id}`)
    expect(g.status).toBe(403)
    expect(g.body.error.code).toBe('NOT_A_MEMBER')
    const hb = await guest.call('POST', `/parties/${id}/peers/${guest.peerId}/heartbeat`)
    expect(hb.status).toBe(404) // the client's cue to join again
    expect(hb.body.error.code).toBe('PEER_NOT_FOUND')
    expect((await guest.join(id)).body.party.peers[guest.peerId].virtual_ip).toBe('10.66.0.2')
    hw.close()
  })

  test('a silent host ends the party: members hear party_deleted with reason timeout', async () => {
    const [host, guest] = (await registeredPeers(s.base, 2)) as [TestPeer, TestPeer]
    const id = await host.createParty()
    await guest.join(id)
    const gw = await guest.ws()
    await gw.next()
    s.clock.advance(3 * MIN)
    await guest.call('POST', `/parties/${id}/peers/${guest.peerId}/heartbeat`)
    s.clock.advance(2 * MIN + 1)
    expect(s.service.cleanup()).toMatchObject({ peers_removed: 1, parties_deleted: 1 })
    expect(await gw.next()).toEqual({ type: 'party_deleted', party_id: id, reason: 'timeout' })
    expect((await guest.call('GET', `/parties/${id}`)).status).toBe(404)
    expect((await call(s.base, 'GET', '/')).body).toMatchObject({ parties: 0, peers: 0 })
    gw.close()
  })

  test('when everyone is silent, members hear peer_left before party_deleted', async () => {
    const [host, guest, third] = (await registeredPeers(s.base, 3)) as [TestPeer, TestPeer, TestPeer]
    const id = await host.createParty()
    await guest.join(id)
    await third.join(id)
    const hw = await host.ws() // a socket alone does not count as liveness: only heartbeats do
    await hw.next()
    s.clock.advance(5 * MIN + 1)
    expect(s.service.cleanup()).toMatchObject({ peers_removed: 3, parties_deleted: 1 })
    const msgs = [await hw.next(), await hw.next(), await hw.next()]
    expect(msgs).toEqual([
      { type: 'peer_left', party_id: id, peer_id: guest.peerId, reason: 'timeout' },
      { type: 'peer_left', party_id: id, peer_id: third.peerId, reason: 'timeout' },
      { type: 'party_deleted', party_id: id, reason: 'timeout' },
    ])
    hw.close()
  })

  test('relays silent for 10 minutes are dropped; heartbeating ones stay', async () => {
    const h = { 'x-relay-secret': 'test-relay-secret' }
    for (const id of ['00000000000000a1', '00000000000000a2']) expect((await call(s.base, 'POST', '/relays', { body: relay(id), headers: h })).status).toBe(200)
    s.clock.advance(9 * MIN)
    expect((await call(s.base, 'POST', '/relays/00000000000000a1/heartbeat', { body: { load: 3 }, headers: h })).status).toBe(200)
    s.clock.advance(MIN + 1)
    expect(s.service.cleanup().relays).toBe(1)
    const [p] = (await registeredPeers(s.base, 1)) as [TestPeer]
    expect((await p.call('GET', '/relays')).body.relays.map((r: any) => r.relay_id)).toEqual(['00000000000000a1'])
    const hb = await call(s.base, 'POST', '/relays/00000000000000a2/heartbeat', { body: { load: 0 }, headers: h })
    expect(hb.status).toBe(404)
    expect(hb.body.error.code).toBe('RELAY_NOT_FOUND')
  })

  test('expired tokens, challenges and queued signals are purged from the database', async () => {
    const [a, b] = (await registeredPeers(s.base, 2)) as [TestPeer, TestPeer]
    const id = await a.createParty({ name: 'lan', host_peer_info: { public_endpoint: '203.0.113.9:51820' } })
    await b.join(id)
    expect((await a.call('POST', `/parties/${id}/signals`, { to_peer_id: b.peerId, type: 'punch', data: { at: 1 } })).status).toBe(201)
    await call(s.base, 'POST', '/auth/challenge', { body: { public_key: a.publicKey } })
    const count = () => ({
      tokens: s.open.db.select().from(tokens).all().length,
      challenges: s.open.db.select().from(challenges).all().length,
      signals: s.open.db.select().from(signals).all().length,
    })
    expect(count()).toEqual({ tokens: 2, challenges: 1, signals: 1 })
    s.clock.advance(2 * MIN) // challenge (60 s) and signal (60 s) expired, tokens not
    for (const p of [a, b]) await p.call('POST', `/parties/${id}/peers/${p.peerId}/heartbeat`)
    expect(s.service.cleanup()).toMatchObject({ challenges: 1, signals: 1, tokens: 0 })
    expect(count()).toEqual({ tokens: 2, challenges: 0, signals: 0 })
    s.clock.advance(24 * 60 * MIN)
    expect(s.service.cleanup().tokens).toBe(2)
    expect(count().tokens).toBe(0)
    expect((await a.call('GET', '/relays')).status).toBe(401)
  })
})
