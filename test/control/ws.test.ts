// WebSocket live updates: order and content of events for join, update, leave, removal, party deletion; signals.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { registeredPeers, startServer, TestPeer, TestSocket, unb64, type TestServer } from './helpers.ts'

let s: TestServer
let host: TestPeer, guest: TestPeer, third: TestPeer
beforeAll(async () => {
  s = await startServer({ config: { registerRatePerMin: 10_000 } })
  ;[host, guest, third] = (await registeredPeers(s.base, 3)) as [TestPeer, TestPeer, TestPeer]
})
afterAll(() => s.stop())

const wsUrl = () => s.base.replace('http', 'ws') + '/ws'

describe('connecting', () => {
  test('hello lists the peer’s parties; the token may come as ?token= or as a bearer header', async () => {
    const id = await host.createParty()
    const a = await host.ws()
    expect(await a.next()).toEqual({ type: 'hello', peer_id: host.peerId, parties: expect.arrayContaining([id]) })
    const b = await TestSocket.open(wsUrl(), { authorization: `Bearer ${guest.token}` })
    expect(await b.next()).toEqual({ type: 'hello', peer_id: guest.peerId, parties: [] })
    a.close()
    b.close()
  })

  test('no token or a bad token: the upgrade is refused with 401', async () => {
    await expect(TestSocket.open(wsUrl())).rejects.toThrow('failed to open')
    await expect(TestSocket.open(wsUrl() + '?token=bogus')).rejects.toThrow('failed to open')
    const plain = await fetch(s.base + '/ws', { headers: { upgrade: 'websocket', connection: 'upgrade', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13' } })
    expect(plain.status).toBe(401)
    expect(((await plain.json()) as any).error.code).toBe('UNAUTHORIZED')
  })

  test('ping → pong; unknown and malformed messages get an error message, the socket stays open', async () => {
    const a = await host.ws()
    await a.next()
    a.send({ type: 'ping' })
    expect(await a.next()).toEqual({ type: 'pong' })
    a.send({ type: 'dance' })
    expect(await a.next()).toMatchObject({ type: 'error', error: { code: 'UNKNOWN_MESSAGE' } })
    a.ws.send('{not json')
    expect(await a.next()).toMatchObject({ type: 'error', error: { code: 'INVALID_JSON' } })
    a.send({ type: 'ping' })
    expect(await a.next()).toEqual({ type: 'pong' })
    a.close()
  })
})

describe('party events', () => {
  test('join, update, leave, removal, host leaving: every member hears them in order with full content', async () => {
    const id = await host.createParty({ name: 'events' })
    const hw = await host.ws()
    await hw.next()
    const gw = await guest.ws()
    await gw.next()

    expect((await guest.join(id, { peer_info: { nat_type: 'full_cone' } })).status).toBe(200)
    const joined = await hw.next()
    expect(joined).toEqual({
      type: 'peer_joined',
      party_id: id,
      peer: expect.objectContaining({ peer_id: guest.peerId, public_key: guest.publicKey, virtual_ip: '10.66.0.2', nat_type: 'full_cone' }),
    })
    expect(await gw.next()).toEqual(joined) // the joiner hears its own join too

    await guest.call('PATCH', `/parties/${id}/peers/${guest.peerId}`, { public_endpoint: '198.51.100.1:5000' })
    const upd = await hw.next()
    expect(upd).toMatchObject({ type: 'peer_updated', party_id: id, peer: { peer_id: guest.peerId, public_endpoint: '198.51.100.1:5000', nat_type: 'full_cone' } })
    expect(await gw.next()).toEqual(upd)

    // A heartbeat that changes the endpoint is an update too; one that changes nothing is silent.
    await guest.call('POST', `/parties/${id}/peers/${guest.peerId}/heartbeat`, { public_endpoint: '198.51.100.1:5001' })
    expect(await hw.next()).toMatchObject({ type: 'peer_updated', peer: { public_endpoint: '198.51.100.1:5001' } })
    await gw.next()
    await guest.call('POST', `/parties/${id}/peers/${guest.peerId}/heartbeat`, { public_endpoint: '198.51.100.1:5001' })

    expect((await third.join(id)).status).toBe(200)
    expect(await hw.next()).toMatchObject({ type: 'peer_joined', peer: { peer_id: third.peerId, virtual_ip: '10.66.0.3' } })
    expect(await gw.next()).toMatchObject({ type: 'peer_joined', peer: { peer_id: third.peerId } })

    await third.call('DELETE', `/parties/${id}/peers/${third.peerId}`)
    expect(await hw.next()).toEqual({ type: 'peer_left', party_id: id, peer_id: third.peerId, reason: 'left' })
    expect(await gw.next()).toEqual({ type: 'peer_left', party_id: id, peer_id: third.peerId, reason: 'left' })

    await third.join(id)
    await hw.next()
    await gw.next()
    await host.call('DELETE', `/parties/${id}/peers/${third.peerId}`)
    expect(await hw.next()).toEqual({ type: 'peer_left', party_id: id, peer_id: third.peerId, reason: 'removed' })
    expect(await gw.next()).toEqual({ type: 'peer_left', party_id: id, peer_id: third.peerId, reason: 'removed' })

    await host.call('DELETE', `/parties/${id}/peers/${host.peerId}`)
    expect(await hw.next()).toEqual({ type: 'party_deleted', party_id: id, reason: 'host_left' })
    expect(await gw.next()).toEqual({ type: 'party_deleted', party_id: id, reason: 'host_left' })
    expect(await hw.pending()).toEqual([])
    expect(await gw.pending()).toEqual([])
    hw.close()
    gw.close()
  })

  test('a removed peer is told on its own socket; non-members hear nothing', async () => {
    const id = await host.createParty()
    await guest.join(id)
    const tw = await third.ws()
    await tw.next()
    await third.join(id)
    expect(await tw.next()).toMatchObject({ type: 'peer_joined', peer: { peer_id: third.peerId } })
    await host.call('DELETE', `/parties/${id}/peers/${third.peerId}`)
    expect(await tw.next()).toEqual({ type: 'peer_left', party_id: id, peer_id: third.peerId, reason: 'removed' })
    await guest.call('PATCH', `/parties/${id}/peers/${guest.peerId}`, { nat_type: 'open' })
    await host.call('DELETE', `/parties/${id}/peers/${host.peerId}`)
    expect(await tw.pending()).toEqual([])
    tw.close()
  })

  test('the ws_clients gauge follows connections', async () => {
    const before = (await fetch(s.base + '/').then((r) => r.json() as Promise<any>)).ws_clients
    const a = await host.ws()
    await a.next()
    expect((await fetch(s.base + '/').then((r) => r.json() as Promise<any>)).ws_clients).toBe(before + 1)
    a.close()
    for (let i = 0; i < 50 && (await fetch(s.base + '/').then((r) => r.json() as Promise<any>)).ws_clients !== before; i++) await Bun.sleep(10)
    expect((await fetch(s.base + '/').then((r) => r.json() as Promise<any>)).ws_clients).toBe(before)
  })
})

describe('signals', () => {
  test('REST signal to a connected member arrives live, with the contract’s shape', async () => {
    const id = await host.createParty({ name: 'lan', host_peer_info: { public_endpoint: '203.0.113.9:51820' } })
    await guest.join(id)
    const gw = await guest.ws()
    await gw.next()
    const r = await host.call('POST', `/parties/${id}/signals`, { to_peer_id: guest.peerId, type: 'punch', data: { at: 1700000000500, endpoint: '203.0.113.9:51820' } })
    expect(r.status).toBe(201)
    expect(r.body.signal).toEqual({
      id: expect.stringMatching(/^[0-9a-f]{16}$/),
      party_id: id,
      from_peer_id: host.peerId,
      to_peer_id: guest.peerId,
      type: 'punch',
      data: { at: 1700000000500, endpoint: '203.0.113.9:51820' },
      created_at: new Date(s.clock.now()).toISOString(),
    })
    expect(await gw.next()).toEqual({ type: 'signal', party_id: id, signal: r.body.signal })
    // Delivered live, so nothing waits in the polling queue.
    expect((await guest.call('GET', `/parties/${id}/signals`)).body).toEqual({ signals: [] })
    gw.close()
  })

  test('WS signal from one member to another; the sender gets signal_sent', async () => {
    const id = await host.createParty()
    await guest.join(id, { peer_info: { public_endpoint: '1.2.3.4:5' } })
    const hw = await host.ws()
    await hw.next()
    const gw = await guest.ws()
    await gw.next()
    gw.send({ type: 'signal', party_id: id, to_peer_id: host.peerId, signal_type: 'punch', data: { at: 1, endpoint: '1.2.3.4:5' } })
    const got = await hw.next()
    expect(got).toMatchObject({ type: 'signal', party_id: id, signal: { from_peer_id: guest.peerId, to_peer_id: host.peerId, type: 'punch', data: { at: 1, endpoint: '1.2.3.4:5' } } })
    expect(await gw.next()).toEqual({ type: 'signal_sent', signal: got.signal })
    gw.send({ type: 'signal', party_id: id, to_peer_id: third.peerId, signal_type: 'punch', data: { at: 1 } })
    expect(await gw.next()).toMatchObject({ type: 'error', error: { code: 'PEER_NOT_FOUND' } })
    gw.send({ type: 'signal', party_id: 'nope', to_peer_id: host.peerId, signal_type: 'punch' })
    expect(await gw.next()).toMatchObject({ type: 'error', error: { code: 'VALIDATION', message: expect.stringContaining('party_id') } })
    hw.close()
    gw.close()
  })

  test('offline recipients get a bounded queue, drained once by GET, expiring after the TTL', async () => {
    const t = await startServer({ config: { signalQueueMax: 3, signalTtlS: 30 } })
    try {
      const [a, b] = (await registeredPeers(t.base, 2)) as [TestPeer, TestPeer]
      const id = await a.createParty({ name: 'lan', host_peer_info: { public_endpoint: '203.0.113.9:51820' } })
      await b.join(id)
      for (let i = 0; i < 5; i++) expect((await a.call('POST', `/parties/${id}/signals`, { to_peer_id: b.peerId, type: 'punch', data: { at: i } })).status).toBe(201)
      const got = await b.call('GET', `/parties/${id}/signals`)
      expect(got.status).toBe(200)
      expect(got.body.signals.map((x: any) => x.data.at)).toEqual([2, 3, 4]) // the oldest were dropped
      expect((await b.call('GET', `/parties/${id}/signals`)).body.signals).toEqual([])
      await a.call('POST', `/parties/${id}/signals`, { to_peer_id: b.peerId, type: 'punch', data: { at: 9 } })
      t.clock.advance(30_001)
      expect((await b.call('GET', `/parties/${id}/signals`)).body.signals).toEqual([])
    } finally {
      await t.stop()
    }
  })

  test('signals only between members: 403 for a stranger, 404 for a non-member recipient, 422 for bad fields', async () => {
    const id = await host.createParty({ name: 'lan', host_peer_info: { public_endpoint: '203.0.113.9:51820' } })
    await guest.join(id)
    const r1 = await third.call('POST', `/parties/${id}/signals`, { to_peer_id: host.peerId, type: 'punch', data: { at: 1 } })
    expect(r1.status).toBe(403)
    expect(r1.body.error.code).toBe('NOT_A_MEMBER')
    const r2 = await host.call('POST', `/parties/${id}/signals`, { to_peer_id: third.peerId, type: 'punch', data: { at: 1 } })
    expect(r2.status).toBe(404)
    expect(r2.body.error.code).toBe('PEER_NOT_FOUND')
    const r3 = await host.call('POST', `/parties/${id}/signals`, { to_peer_id: guest.peerId, type: 'Bad Type!', data: {} })
    expect(r3.status).toBe(422)
    expect(r3.body.error.message).toContain('body.type')
    const r4 = await host.call('POST', `/parties/${id}/signals`, { type: 'punch' })
    expect(r4.status).toBe(422)
    expect(r4.body.error.message).toContain('body.to_peer_id')
  })
})

describe('token end', () => {
  test('revoking a token closes the sockets opened with it (4001), not those of another token', async () => {
    const t = await startServer()
    try {
      const [p] = (await registeredPeers(t.base, 1)) as [TestPeer]
      // The same key registered twice: one peer, two tokens.
      const other = await new TestPeer(t.base, { secretKey: new Uint8Array(p.secretKey), publicKey: new Uint8Array(unb64(p.publicKey)) }).register()
      expect(other.peerId).toBe(p.peerId)
      const a = await p.ws()
      await a.next()
      const b = await other.ws()
      await b.next()
      expect((await p.call('POST', '/auth/revoke')).status).toBe(200)
      for (let i = 0; i < 100 && !a.closed; i++) await Bun.sleep(10)
      expect(a.closed).toEqual({ code: 4001, reason: 'token revoked' })
      b.send({ type: 'ping' })
      expect(await b.next()).toEqual({ type: 'pong' })
      b.close()
    } finally {
      await t.stop()
    }
  })

  test('the cleanup pass closes sockets whose token expired', async () => {
    const t = await startServer()
    try {
      const [p] = (await registeredPeers(t.base, 1)) as [TestPeer]
      const a = await p.ws()
      await a.next()
      t.clock.advance(86_400_000)
      t.service.cleanup()
      for (let i = 0; i < 100 && !a.closed; i++) await Bun.sleep(10)
      expect(a.closed).toEqual({ code: 4001, reason: 'token expired' })
    } finally {
      await t.stop()
    }
  })
})
