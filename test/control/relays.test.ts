// Relay registry (relay secret) and relay tickets signed with the server's Ed25519 key.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { decodeTicket, fromBase64Url, verifyTicket } from '../../src/shared/wire/ticket.ts'
import { call, registeredPeers, startServer, unb64, type TestPeer, type TestServer } from './helpers.ts'

let s: TestServer
let a: TestPeer, b: TestPeer, c: TestPeer
const secret = { 'x-relay-secret': 'test-relay-secret' }
const relay = (over: Record<string, unknown> = {}) => ({
  relay_id: '0000000000000001',
  public_ip: '198.51.100.20',
  port: 51820,
  region: 'eu',
  capacity: 100,
  load: 0,
  ports: '52000-52999',
  ...over,
})
const register = (body: unknown, headers: Record<string, string> = secret) => call(s.base, 'POST', '/relays', { body, headers })

beforeAll(async () => {
  s = await startServer()
  ;[a, b, c] = (await registeredPeers(s.base, 3)) as [TestPeer, TestPeer, TestPeer]
})
afterAll(() => s.stop())

describe('relay registry', () => {
  test('register returns the relay, the ticket public key and the heartbeat interval; re-register upserts', async () => {
    const r = await register(relay())
    expect(r.status).toBe(200)
    expect(r.body).toEqual({
      relay: { relay_id: '0000000000000001', public_ip: '198.51.100.20', port: 51820, stun_alt_port: null, region: 'eu', capacity: 100, load: 0, last_seen: new Date(s.clock.now()).toISOString() },
      ticket_public_key: expect.any(String),
      heartbeat_interval_s: 30,
    })
    expect(r.body.ticket_public_key).toBe(Buffer.from(s.service.keys.ed25519Public).toString('base64'))
    expect((await register(relay({ load: 7, port: 51821 }))).body.relay).toMatchObject({ port: 51821, load: 7 })
    const list = await a.call('GET', '/relays')
    expect(list.body.relays).toHaveLength(1)
  })

  test('stun_alt_port round-trips through POST /relays → GET /relays and GET /relays/{region}; null or absent = none', async () => {
    const r = await register(relay({ stun_alt_port: 3479 }))
    expect(r.status).toBe(200)
    expect(r.body.relay).toMatchObject({ relay_id: '0000000000000001', port: 51820, stun_alt_port: 3479 })
    const find = async (path: string) => (await a.call('GET', path)).body.relays.find((x: { relay_id: string }) => x.relay_id === '0000000000000001')
    expect(await find('/relays')).toMatchObject({ port: 51820, stun_alt_port: 3479 })
    expect(await find('/relays/eu')).toMatchObject({ stun_alt_port: 3479 })
    // Re-registering without it (an older relay, or --stun-alt-port -1) clears it.
    expect((await register(relay({ stun_alt_port: null }))).body.relay.stun_alt_port).toBeNull()
    await register(relay({ stun_alt_port: 3480 }))
    await register(relay())
    expect(await find('/relays/eu')).toMatchObject({ stun_alt_port: null })
  })

  test('missing or wrong secret → 401; a peer token is not a relay secret', async () => {
    const none = await register(relay(), {})
    expect(none.status).toBe(401)
    expect(none.body.error.code).toBe('RELAY_SECRET_REQUIRED')
    const wrong = await register(relay(), { 'x-relay-secret': 'guess' })
    expect(wrong.status).toBe(401)
    expect(wrong.body.error.code).toBe('INVALID_RELAY_SECRET')
    const token = await call(s.base, 'POST', '/relays', { body: relay(), token: a.token })
    expect(token.status).toBe(401)
    const hb = await call(s.base, 'POST', '/relays/0000000000000001/heartbeat', { body: { load: 1 }, headers: { 'x-relay-secret': 'guess' } })
    expect(hb.status).toBe(401)
  })

  test('bad registration fields → 422 naming the field', async () => {
    for (const [over, field] of [
      [{ relay_id: 'xyz' }, 'body.relay_id'],
      [{ port: 70000 }, 'body.port'],
      [{ ports: '52000' }, 'body.ports'],
      [{ region: '' }, 'body.region'],
      [{ load: -1 }, 'body.load'],
      [{ stun_alt_port: 70000 }, 'body.stun_alt_port'],
      [{ stun_alt_port: 'x' }, 'body.stun_alt_port'],
      [{ stun_alt_port: 0 }, 'body.stun_alt_port'],
    ] as const) {
      const r = await register(relay(over))
      expect(r.status).toBe(422)
      expect(r.body.error.code).toBe('VALIDATION')
      expect(r.body.error.message).toContain(field)
    }
  })

  test('heartbeat updates load; unknown relay → 404 so it re-registers', async () => {
    await register(relay())
    s.clock.advance(1000)
    const hb = await call(s.base, 'POST', '/relays/0000000000000001/heartbeat', { body: { load: 12, sessions: 6 }, headers: secret })
    expect(hb.status).toBe(200)
    expect(hb.body).toEqual({ status: 'ok' })
    expect((await a.call('GET', '/relays')).body.relays[0]).toMatchObject({ load: 12, last_seen: new Date(s.clock.now()).toISOString() })
    const unknown = await call(s.base, 'POST', '/relays/00000000000000ff/heartbeat', { body: { load: 0 }, headers: secret })
    expect(unknown.status).toBe(404)
    expect(unknown.body.error.code).toBe('RELAY_NOT_FOUND')
  })

  test('GET /relays/{region} filters; peers need a token', async () => {
    await register(relay({ relay_id: '0000000000000002', region: 'us' }))
    expect((await a.call('GET', '/relays/us')).body.relays.map((r: any) => r.relay_id)).toEqual(['0000000000000002'])
    expect((await a.call('GET', '/relays/mars')).body.relays).toEqual([])
    expect((await call(s.base, 'GET', '/relays/us')).status).toBe(401)
  })

  test('a relay cannot register an address clients cannot use (0.0.0.0, ::, multicast, a name): 422', async () => {
    for (const public_ip of ['0.0.0.0', '::', '224.0.0.1', 'relay.example', '999.1.1.1']) {
      const r = await call(s.base, 'POST', '/relays', { body: relay({ relay_id: '0000000000000003', public_ip }), headers: { 'x-relay-secret': 'test-relay-secret' } })
      expect(r.status).toBe(422)
      expect(r.body.error.message).toBe('body.public_ip: must be an IPv4 or IPv6 unicast address')
    }
    expect((await a.call('GET', '/relays')).body.relays.map((r: any) => r.relay_id)).not.toContain('0000000000000003')
  })

  test('GET /relays shows the registered address whatever Host the client sends', async () => {
    await register(relay({ relay_id: '0000000000000004', public_ip: '198.51.100.4', region: 'local' }))
    const r = await call(s.base, 'GET', '/relays/local', { token: a.token, headers: { host: '203.0.113.66:8667' } })
    expect(r.body.relays.map((x: any) => x.public_ip)).toEqual(['198.51.100.4'])
  })
})

describe('relay tickets', () => {
  test('the requester gets side a, the other member a relay_offer signal with side b; both verify', async () => {
    const t = await startServer()
    try {
      const [p, q] = (await registeredPeers(t.base, 2)) as [TestPeer, TestPeer]
      const id = await p.createParty()
      await q.join(id)
      const h = { 'x-relay-secret': 'test-relay-secret' }
      await call(t.base, 'POST', '/relays', { body: relay({ relay_id: '00000000000000e1', region: 'eu', load: 50 }), headers: h })
      await call(t.base, 'POST', '/relays', { body: relay({ relay_id: '00000000000000e2', region: 'eu', load: 10 }), headers: h })
      await call(t.base, 'POST', '/relays', { body: relay({ relay_id: '00000000000000f1', region: 'us', load: 0 }), headers: h })
      await call(t.base, 'POST', '/relays', { body: relay({ relay_id: '00000000000000f2', region: 'eu', load: 100, capacity: 100 }), headers: h })
      const qw = await q.ws()
      await qw.next()
      const r = await p.call('POST', `/parties/${id}/relay`, { peer_id: q.peerId, region: 'eu' })
      expect(r.status).toBe(200)
      // Region first, then the lowest load/capacity; the full relay is never chosen.
      expect(r.body).toEqual({
        session_id: expect.stringMatching(/^[0-9a-f]{32}$/),
        side: 'a',
        ticket: expect.any(String),
        expires_at: new Date((Math.floor(t.clock.now() / 1000) + 600) * 1000).toISOString(),
        relay: { relay_id: '00000000000000e2', public_ip: '198.51.100.20', port: 51820, region: 'eu' },
        peer_id: q.peerId,
      })
      const offer = await qw.next()
      expect(offer).toMatchObject({ type: 'signal', party_id: id, signal: { type: 'relay_offer', from_peer_id: p.peerId, to_peer_id: q.peerId } })
      const d = offer.signal.data
      expect(d).toEqual({ ...r.body, side: 'b', ticket: expect.any(String), peer_id: p.peerId })
      const pub = t.service.keys.ed25519Public
      const nowSec = Math.floor(t.clock.now() / 1000)
      const ta = verifyTicket(fromBase64Url(r.body.ticket)!, pub, { relayId: '00000000000000e2', nowSec })
      const tb = verifyTicket(fromBase64Url(d.ticket)!, pub, { relayId: '00000000000000e2', nowSec })
      if (!ta.ok || !tb.ok) throw new Error(`ticket did not verify: ${JSON.stringify([ta, tb])}`)
      expect(ta.ticket).toMatchObject({ side: 'a', partyId: id, relayId: '00000000000000e2' })
      expect(ta.ticket.holderKey).toEqual(unb64(p.publicKey))
      expect(ta.ticket.otherKey).toEqual(unb64(q.publicKey))
      expect(tb.ticket.holderKey).toEqual(unb64(q.publicKey))
      expect(Buffer.from(ta.ticket.sessionId).toString('hex')).toBe(r.body.session_id)
      expect(tb.ticket.sessionId).toEqual(ta.ticket.sessionId)
      expect(verifyTicket(fromBase64Url(r.body.ticket)!, pub, { relayId: '00000000000000e1', nowSec })).toEqual({ ok: false, error: 'wrong-relay' })
      expect(decodeTicket(fromBase64Url(r.body.ticket)!).ok).toBe(true)
      qw.close()
    } finally {
      await t.stop()
    }
  })

  test('an offline member finds the offer in its signal queue', async () => {
    const id = await a.createParty()
    await b.join(id)
    await register(relay())
    const r = await a.call('POST', `/parties/${id}/relay`, { peer_id: b.peerId })
    expect(r.status).toBe(200)
    const q = await b.call('GET', `/parties/${id}/signals`)
    expect(q.body.signals).toHaveLength(1)
    expect(q.body.signals[0]).toMatchObject({ type: 'relay_offer', data: { session_id: r.body.session_id, side: 'b', peer_id: a.peerId } })
  })

  test('rules: members only, the other peer must be a member and not yourself, and a relay must exist', async () => {
    const id = await a.createParty()
    await b.join(id)
    const stranger = await c.call('POST', `/parties/${id}/relay`, { peer_id: a.peerId })
    expect(stranger.status).toBe(403)
    expect(stranger.body.error.code).toBe('NOT_A_MEMBER')
    const notMember = await a.call('POST', `/parties/${id}/relay`, { peer_id: c.peerId })
    expect(notMember.status).toBe(404)
    expect(notMember.body.error.code).toBe('PEER_NOT_FOUND')
    const self = await a.call('POST', `/parties/${id}/relay`, { peer_id: a.peerId })
    expect(self.status).toBe(422)
    expect(self.body.error.message).toContain('body.peer_id')
    const t = await startServer()
    try {
      const [p, q] = (await registeredPeers(t.base, 2)) as [TestPeer, TestPeer]
      const pid = await p.createParty()
      await q.join(pid)
      const none = await p.call('POST', `/parties/${pid}/relay`, { peer_id: q.peerId })
      expect(none.status).toBe(503)
      expect(none.body.error.code).toBe('NO_RELAY')
    } finally {
      await t.stop()
    }
  })

  test('offers carry the relay’s registered address, never the Host a client sent', async () => {
    const t = await startServer()
    try {
      const [p, q] = (await registeredPeers(t.base, 2)) as [TestPeer, TestPeer]
      const pid = await p.createParty()
      await q.join(pid)
      await call(t.base, 'POST', '/relays', { body: relay({ public_ip: '198.51.100.20' }), headers: { 'x-relay-secret': 'test-relay-secret' } })
      const r = await call(t.base, 'POST', `/parties/${pid}/relay`, { token: p.token, body: { peer_id: q.peerId }, headers: { host: '203.0.113.66' } })
      expect(r.status).toBe(200)
      expect(r.body.relay.public_ip).toBe('198.51.100.20')
      const offer = (await q.call('GET', `/parties/${pid}/signals`)).body.signals[0]
      expect(offer.data.relay.public_ip).toBe('198.51.100.20')
    } finally {
      await t.stop()
    }
  })
})

describe('relay choice', () => {
  test('a relay that missed three heartbeats gets no new sessions', async () => {
    const t = await startServer()
    try {
      const [p, q] = (await registeredPeers(t.base, 2)) as [TestPeer, TestPeer]
      const pid = await p.createParty()
      await q.join(pid)
      await call(t.base, 'POST', '/relays', { body: relay({ relay_id: '00000000000000b1', load: 0 }), headers: { 'x-relay-secret': 'test-relay-secret' } })
      t.clock.advance(90_000)
      expect((await p.call('POST', `/parties/${pid}/relay`, { peer_id: q.peerId })).body.relay.relay_id).toBe('00000000000000b1')
      t.clock.advance(1)
      const r = await p.call('POST', `/parties/${pid}/relay`, { peer_id: q.peerId })
      expect(r.status).toBe(503)
      expect(r.body.error.code).toBe('NO_RELAY')
    } finally {
      await t.stop()
    }
  })

  test('each ticket counts as load until the relay reports, so back-to-back sessions spread', async () => {
    const t = await startServer()
    try {
      const [p, q] = (await registeredPeers(t.base, 2)) as [TestPeer, TestPeer]
      const pid = await p.createParty()
      await q.join(pid)
      for (const id of ['00000000000000c1', '00000000000000c2'])
        await call(t.base, 'POST', '/relays', { body: relay({ relay_id: id, load: 0, capacity: 10 }), headers: { 'x-relay-secret': 'test-relay-secret' } })
      const picks: string[] = []
      for (let i = 0; i < 4; i++) picks.push((await p.call('POST', `/parties/${pid}/relay`, { peer_id: q.peerId })).body.relay.relay_id)
      expect(picks).toEqual(['00000000000000c1', '00000000000000c2', '00000000000000c1', '00000000000000c2'])
    } finally {
      await t.stop()
    }
  })
})
