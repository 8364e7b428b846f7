// Parties: every route with its membership and "only yourself / only the host" rules, virtual IP allocation.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { memberships } from '../../src/db/schema/control.ts'
import { registeredPeers, startServer, TestPeer, type TestServer } from './helpers.ts'

let s: TestServer
let host: TestPeer, guest: TestPeer, stranger: TestPeer
beforeAll(async () => {
  s = await startServer({ config: { registerRatePerMin: 10_000 } })
  ;[host, guest, stranger] = (await registeredPeers(s.base, 3)) as [TestPeer, TestPeer, TestPeer]
})
afterAll(() => s.stop())

async function partyWithGuest(body: Record<string, unknown> = { name: 'lan' }) {
  const id = await host.createParty(body)
  expect((await guest.join(id)).status).toBe(200)
  return id
}

describe('create and join', () => {
  test('create gives the host .0.1 with its key and reported endpoints', async () => {
    const r = await host.call('POST', '/parties', {
      name: 'friday night',
      max_peers: 4,
      host_peer_info: { public_endpoint: '203.0.113.5:51820', local_endpoints: ['192.168.1.10:51820'], nat_type: 'full_cone' },
    })
    expect(r.status).toBe(201)
    expect(r.body.party_id).toMatch(/^[0-9a-f]{12}$/)
    const p = r.body.party
    expect(p).toMatchObject({ party_id: r.body.party_id, name: 'friday night', host_id: host.peerId, subnet: '10.66.0.0/16', max_peers: 4 })
    expect(Object.keys(p.peers)).toEqual([host.peerId])
    expect(p.peers[host.peerId]).toMatchObject({
      peer_id: host.peerId,
      public_key: host.publicKey,
      virtual_ip: '10.66.0.1',
      public_endpoint: '203.0.113.5:51820',
      local_endpoints: ['192.168.1.10:51820'],
      nat_type: 'full_cone',
      last_seen: new Date(s.clock.now()).toISOString(),
      joined_at: new Date(s.clock.now()).toISOString(),
    })
    expect(Date.parse(p.created_at)).toBe(s.clock.now())
  })

  test('join gives the next address; both see each other with distinct IPs', async () => {
    const id = await host.createParty()
    const r = await guest.join(id, { peer_info: { nat_type: 'symmetric', local_endpoints: ['10.0.0.2:51820'] } })
    expect(r.status).toBe(200)
    expect(r.body.party.peers[guest.peerId]).toMatchObject({ virtual_ip: '10.66.0.2', nat_type: 'symmetric', public_key: guest.publicKey })
    const seen = await host.call('GET', `/parties/${id}/peers`)
    expect(seen.status).toBe(200)
    expect(Object.values(seen.body.peers).map((p: any) => p.virtual_ip)).toEqual(['10.66.0.1', '10.66.0.2'])
  })

  test('joining twice is idempotent and keeps the address', async () => {
    const id = await partyWithGuest()
    const again = await guest.join(id)
    expect(again.status).toBe(200)
    expect(again.body.party.peers[guest.peerId].virtual_ip).toBe('10.66.0.2')
    // Fields nobody reported stay unset (not filled with some default).
    expect(again.body.party.peers[guest.peerId]).toMatchObject({ nat_type: 'unknown', public_endpoint: null, local_endpoints: [] })
    expect(Object.keys(again.body.party.peers)).toHaveLength(2)
  })

  test('a rejoin after leaving gets the same address back; a newcomer does not take it', async () => {
    const id = await partyWithGuest()
    expect((await guest.call('DELETE', `/parties/${id}/peers/${guest.peerId}`)).body).toEqual({ status: 'left' })
    const [third] = await registeredPeers(s.base, 1)
    expect((await third!.join(id)).body.party.peers[third!.peerId].virtual_ip).toBe('10.66.0.3')
    const back = await guest.join(id)
    expect(back.status).toBe(200)
    expect(back.body.party.peers[guest.peerId].virtual_ip).toBe('10.66.0.2')
  })

  test('concurrent joins all get distinct addresses, and no more than max_peers get in', async () => {
    const id = await host.createParty({ name: 'rush', max_peers: 20 })
    const joiners = await registeredPeers(s.base, 30)
    const results = await Promise.all(joiners.map((p) => p.join(id)))
    const ok = results.filter((r) => r.status === 200)
    const full = results.filter((r) => r.status === 409)
    expect(ok).toHaveLength(19)
    expect(full).toHaveLength(11)
    for (const r of full) expect(r.body.error.code).toBe('PARTY_FULL')
    const peers = (await host.call('GET', `/parties/${id}/peers`)).body.peers
    const ips = Object.values(peers).map((p: any) => p.virtual_ip)
    expect(ips).toHaveLength(20)
    expect(new Set(ips).size).toBe(20)
    expect(ips.every((ip) => /^10\.66\.0\.([1-9]|1\d|20)$/.test(ip))).toBe(true)
    // The database agrees (the unique index would have refused a duplicate).
    const rows = s.open.db.select().from(memberships).all().filter((m) => m.partyId === id)
    expect(new Set(rows.map((r) => r.virtualIp)).size).toBe(rows.length)
  })

  test('password: missing or wrong → 403 WRONG_PASSWORD, right → 200', async () => {
    const id = await host.createParty({ name: 'secret', password: 'hunter2' })
    const none = await guest.join(id)
    expect(none.status).toBe(403)
    expect(none.body.error).toMatchObject({ code: 'WRONG_PASSWORD' })
    const wrong = await guest.join(id, { password: 'hunter3' })
    expect(wrong.status).toBe(403)
    expect(wrong.body.error.message).toContain('wrong password')
    expect((await guest.join(id, { password: 'hunter2' })).status).toBe(200)
    expect((await host.call('GET', `/parties/${id}`)).body.party).not.toHaveProperty('password_hash')
  })

  test('full → 409 PARTY_FULL; unknown → 404 PARTY_NOT_FOUND', async () => {
    const id = await host.createParty({ name: 'duo', max_peers: 2 })
    expect((await guest.join(id)).status).toBe(200)
    const full = await stranger.join(id)
    expect(full.status).toBe(409)
    expect(full.body.error.code).toBe('PARTY_FULL')
    const unknown = await guest.join('000000000000')
    expect(unknown.status).toBe(404)
    expect(unknown.body.error.code).toBe('PARTY_NOT_FOUND')
  })

  test('one peer hosts at most maxPartiesPerHost parties at once (409 TOO_MANY_PARTIES)', async () => {
    const t = await startServer({ config: { maxPartiesPerHost: 2 } })
    try {
      const [h] = (await registeredPeers(t.base, 1)) as [TestPeer]
      const first = await h.createParty()
      await h.createParty()
      const third = await h.call('POST', '/parties', { name: 'three' })
      expect(third.status).toBe(409)
      expect(third.body.error.code).toBe('TOO_MANY_PARTIES')
      await h.call('DELETE', `/parties/${first}/peers/${h.peerId}`)
      expect((await h.call('POST', '/parties', { name: 'three' })).status).toBe(201)
    } finally {
      await t.stop()
    }
  })

  test.each([
    ['empty name', { name: '' }, 'body.name'],
    ['no name', {}, 'body.name'],
    ['max_peers 1', { name: 'x', max_peers: 1 }, 'body.max_peers'],
    ['max_peers above the limit', { name: 'x', max_peers: 100_000 }, 'body.max_peers'],
    ['max_peers not a number', { name: 'x', max_peers: 'many' }, 'body.max_peers'],
    ['bad endpoint', { name: 'x', host_peer_info: { public_endpoint: 'localhost' } }, 'body.host_peer_info.public_endpoint'],
    ['bad nat type', { name: 'x', host_peer_info: { nat_type: 'weird' } }, 'body.host_peer_info.nat_type'],
  ])('create with %s → 422 naming the field', async (_n, body, field) => {
    const r = await host.call('POST', '/parties', body)
    expect(r.status).toBe(422)
    expect(r.body.error.code).toBe('VALIDATION')
    expect(r.body.error.message).toContain(field)
  })

  test('a malformed party id in the path → 400 naming it', async () => {
    const r = await host.call('GET', '/parties/XYZ')
    expect(r.status).toBe(400)
    expect(r.body.error).toMatchObject({ code: 'VALIDATION' })
    expect(r.body.error.message).toContain('params.party_id')
  })
})

describe('reading a party', () => {
  test('members read the party, peers and one peer; others get 403 NOT_A_MEMBER', async () => {
    const id = await partyWithGuest()
    const party = await guest.call('GET', `/parties/${id}`)
    expect(party.status).toBe(200)
    expect(Object.keys(party.body.party.peers).sort()).toEqual([host.peerId, guest.peerId].sort())
    const one = await guest.call('GET', `/parties/${id}/peers/${host.peerId}`)
    expect(one.status).toBe(200)
    expect(one.body.peer).toMatchObject({ peer_id: host.peerId, virtual_ip: '10.66.0.1' })
    for (const path of [`/parties/${id}`, `/parties/${id}/peers`, `/parties/${id}/peers/${host.peerId}`, `/parties/${id}/signals`]) {
      const r = await stranger.call('GET', path)
      expect(r.status).toBe(403)
      expect(r.body.error.code).toBe('NOT_A_MEMBER')
    }
  })

  test('unknown party → 404; unknown peer in a party → 404 PEER_NOT_FOUND', async () => {
    const id = await partyWithGuest()
    expect((await host.call('GET', '/parties/ffffffffffff')).body.error.code).toBe('PARTY_NOT_FOUND')
    const r = await host.call('GET', `/parties/${id}/peers/${stranger.peerId}`)
    expect(r.status).toBe(404)
    expect(r.body.error.code).toBe('PEER_NOT_FOUND')
  })

  test('no token → 401 on every party route', async () => {
    const id = await partyWithGuest()
    const anon = new TestPeer(s.base)
    for (const [m, p] of [
      ['POST', '/parties'],
      ['POST', `/parties/${id}/join`],
      ['GET', `/parties/${id}`],
      ['GET', `/parties/${id}/peers`],
      ['POST', `/parties/${id}/peers/${host.peerId}/heartbeat`],
      ['PATCH', `/parties/${id}/peers/${host.peerId}`],
      ['DELETE', `/parties/${id}/peers/${host.peerId}`],
      ['POST', `/parties/${id}/signals`],
      ['POST', `/parties/${id}/relay`],
    ] as const) {
      const r = await anon.call(m, p, m === 'GET' || m === 'DELETE' ? undefined : { name: 'x', to_peer_id: host.peerId, type: 'punch', peer_id: host.peerId })
      expect([m, p, r.status]).toEqual([m, p, 401])
      expect(r.body.error.code).toBe('UNAUTHORIZED')
    }
  })
})

describe('heartbeat and update', () => {
  test('heartbeat updates last_seen without a write per call; the flush persists it', async () => {
    const id = await partyWithGuest()
    s.clock.advance(5000)
    const r = await guest.call('POST', `/parties/${id}/peers/${guest.peerId}/heartbeat`)
    expect(r.status).toBe(200)
    expect(r.body).toEqual({ status: 'ok' })
    const row = () => s.open.db.select().from(memberships).all().find((m) => m.partyId === id && m.peerId === guest.peerId)!
    expect(row().lastSeen).toBe(s.clock.now() - 5000) // not yet written
    const peer = await host.call('GET', `/parties/${id}/peers/${guest.peerId}`)
    expect(peer.body.peer.last_seen).toBe(new Date(s.clock.now()).toISOString()) // but visible
    expect(s.service.flush()).toBeGreaterThanOrEqual(1)
    expect(row().lastSeen).toBe(s.clock.now())
  })

  test('heartbeat with public_endpoint null (STUN found nothing yet) and extra fields is accepted', async () => {
    const id = await partyWithGuest()
    const r = await guest.call('POST', `/parties/${id}/peers/${guest.peerId}/heartbeat`, { public_endpoint: null, nat_type: 'unknown', local_endpoints: [] })
    expect(r.status).toBe(200)
    const bad = await guest.call('POST', `/parties/${id}/peers/${guest.peerId}/heartbeat`, { public_endpoint: 'nowhere' })
    expect(bad.status).toBe(422)
    expect(bad.body.error.message).toContain('body.public_endpoint')
  })

  test('heartbeat may carry a new endpoint and NAT type', async () => {
    const id = await partyWithGuest()
    const r = await guest.call('POST', `/parties/${id}/peers/${guest.peerId}/heartbeat`, { public_endpoint: '198.51.100.7:40000', nat_type: 'restricted_cone' })
    expect(r.status).toBe(200)
    const peer = (await host.call('GET', `/parties/${id}/peers/${guest.peerId}`)).body.peer
    expect(peer).toMatchObject({ public_endpoint: '198.51.100.7:40000', nat_type: 'restricted_cone' })
  })

  test('a member cannot heartbeat, update or remove as another (403), a stranger cannot at all', async () => {
    const id = await partyWithGuest()
    const hb = await guest.call('POST', `/parties/${id}/peers/${host.peerId}/heartbeat`)
    expect(hb.status).toBe(403)
    expect(hb.body.error.code).toBe('NOT_YOURSELF')
    const patch = await guest.call('PATCH', `/parties/${id}/peers/${host.peerId}`, { nat_type: 'open' })
    expect(patch.status).toBe(403)
    expect(patch.body.error.code).toBe('NOT_YOURSELF')
    const del = await guest.call('DELETE', `/parties/${id}/peers/${host.peerId}`)
    expect(del.status).toBe(403)
    expect(del.body.error.code).toBe('NOT_HOST')
    // A non-member acting on its own membership: 404, so a client that timed out knows to join again.
    const hb2 = await stranger.call('POST', `/parties/${id}/peers/${stranger.peerId}/heartbeat`)
    expect(hb2.status).toBe(404)
    expect(hb2.body.error.code).toBe('PEER_NOT_FOUND')
    expect(hb2.body.error.message).toContain('join again')
    const patch2 = await stranger.call('PATCH', `/parties/${id}/peers/${stranger.peerId}`, { nat_type: 'open' })
    expect(patch2.status).toBe(404)
    expect(patch2.body.error.code).toBe('PEER_NOT_FOUND')
    // ...and acting on someone else's: 403.
    const hb4 = await stranger.call('POST', `/parties/${id}/peers/${host.peerId}/heartbeat`)
    expect(hb4.status).toBe(403)
    expect(hb4.body.error.code).toBe('NOT_A_MEMBER')
    const del2 = await stranger.call('DELETE', `/parties/${id}/peers/${guest.peerId}`)
    expect(del2.status).toBe(403)
    expect(del2.body.error.code).toBe('NOT_A_MEMBER')
    const hb3 = await stranger.call('POST', `/parties/000000000000/peers/${stranger.peerId}/heartbeat`)
    expect(hb3.status).toBe(404)
    expect(hb3.body.error.code).toBe('PARTY_NOT_FOUND')
  })

  test('PATCH updates one’s own endpoints and NAT type', async () => {
    const id = await partyWithGuest()
    const r = await guest.call('PATCH', `/parties/${id}/peers/${guest.peerId}`, {
      public_endpoint: '[2001:db8::1]:51820',
      local_endpoints: ['192.168.0.9:51820', '10.1.1.1:51820'],
      nat_type: 'port_restricted_cone',
    })
    expect(r.status).toBe(200)
    expect(r.body.peer).toMatchObject({
      peer_id: guest.peerId,
      public_endpoint: '[2001:db8::1]:51820',
      local_endpoints: ['192.168.0.9:51820', '10.1.1.1:51820'],
      nat_type: 'port_restricted_cone',
      virtual_ip: '10.66.0.2',
    })
    const bad = await guest.call('PATCH', `/parties/${id}/peers/${guest.peerId}`, { local_endpoints: 'x' })
    expect(bad.status).toBe(422)
    expect(bad.body.error.message).toContain('body.local_endpoints')
  })
})

describe('leaving', () => {
  test('a member leaves; the host removes another; the host leaving deletes the party', async () => {
    const id = await partyWithGuest()
    expect((await stranger.join(id)).status).toBe(200)
    const removed = await host.call('DELETE', `/parties/${id}/peers/${stranger.peerId}`)
    expect(removed.status).toBe(200)
    expect(removed.body).toEqual({ status: 'left' })
    expect((await stranger.call('GET', `/parties/${id}`)).status).toBe(403)
    const gone = await host.call('DELETE', `/parties/${id}/peers/${stranger.peerId}`)
    expect(gone.status).toBe(404)
    expect(gone.body.error.code).toBe('PEER_NOT_FOUND')
    expect((await guest.call('DELETE', `/parties/${id}/peers/${guest.peerId}`)).body).toEqual({ status: 'left' })
    const again = await guest.call('DELETE', `/parties/${id}/peers/${guest.peerId}`)
    expect(again.status).toBe(404)
    expect(again.body.error.code).toBe('PEER_NOT_FOUND')
    expect((await guest.join(id)).status).toBe(200)
    expect((await host.call('DELETE', `/parties/${id}/peers/${host.peerId}`)).body).toEqual({ status: 'party_deleted' })
    const after = await guest.call('GET', `/parties/${id}`)
    expect(after.status).toBe(404)
    expect(after.body.error.code).toBe('PARTY_NOT_FOUND')
  })
})
