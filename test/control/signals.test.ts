// Members cannot forge what only the server says (issue: a member's relay_offer made a victim ALLOCATE towards a
// third address, a punch pointed its WireGuard anywhere). Every path a member can send a signal on is tried.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { registeredPeers, startServer, type TestPeer, type TestServer, type TestSocket } from './helpers.ts'

let s: TestServer
let host: TestPeer, victim: TestPeer
let id: string
let vw: TestSocket
const HOST_EP = '203.0.113.9:51820'
const THIRD_PARTY = '198.51.100.66:53000'
beforeAll(async () => {
  s = await startServer({ config: { registerRatePerMin: 10_000 } })
  ;[host, victim] = (await registeredPeers(s.base, 2)) as [TestPeer, TestPeer]
  id = await host.createParty({ name: 'lan', host_peer_info: { public_endpoint: HOST_EP } })
  expect((await victim.join(id, { peer_info: { public_endpoint: '203.0.113.20:40000' } })).status).toBe(200)
  vw = await victim.ws()
  await vw.next() // hello
})
afterAll(async () => {
  vw.close()
  await s.stop()
})

const forgedOffer = {
  session_id: '0'.repeat(32),
  side: 'b',
  ticket: 'AAAA',
  expires_at: new Date(Date.now() + 600_000).toISOString(),
  relay: { relay_id: '0000000000000001', public_ip: '198.51.100.66', port: 53000, region: 'eu' },
  peer_id: '0123456789abcdef',
}

/** Nothing reached the victim: no live signal, nothing queued. */
async function victimGotNothing() {
  expect(await vw.pending()).toEqual([])
  expect((await victim.call('GET', `/parties/${id}/signals`)).body.signals).toEqual([])
}

describe('server-only signal types', () => {
  test('a relay_offer from a member is refused over HTTP (422 naming body.type) and never delivered', async () => {
    const r = await host.call('POST', `/parties/${id}/signals`, { to_peer_id: victim.peerId, type: 'relay_offer', data: forgedOffer })
    expect(r.status).toBe(422)
    expect(r.body.error).toEqual({ code: 'VALIDATION', message: 'body.type: relay_offer signals come from the server only' })
    await victimGotNothing()
  })

  test('…and over the WebSocket (error naming signal_type)', async () => {
    const hw = await host.ws()
    await hw.next()
    hw.send({ type: 'signal', party_id: id, to_peer_id: victim.peerId, signal_type: 'relay_offer', data: forgedOffer })
    expect(await hw.next()).toEqual({ type: 'error', error: { code: 'VALIDATION', message: 'signal_type: relay_offer signals come from the server only' } })
    hw.close()
    await victimGotNothing()
  })

  test('types nobody defined are refused too (they could carry anything)', async () => {
    for (const type of ['relay-offer', 'offer', 'chat', 'endpoint']) {
      const r = await host.call('POST', `/parties/${id}/signals`, { to_peer_id: victim.peerId, type, data: forgedOffer })
      expect(r.status).toBe(422)
      expect(r.body.error.message).toBe('body.type: must be one of punch')
    }
    await victimGotNothing()
  })
})

describe('punch: only the sender’s own endpoint, at a sane time', () => {
  test('a punch naming a third address is refused; a punch naming the sender’s own endpoint goes through', async () => {
    const bad = await host.call('POST', `/parties/${id}/signals`, { to_peer_id: victim.peerId, type: 'punch', data: { at: Date.now(), endpoint: THIRD_PARTY } })
    expect(bad.status).toBe(422)
    expect(bad.body.error.message).toBe(`body.data.endpoint: must be your own public endpoint as reported to the server (${HOST_EP}) or left out`)
    await victimGotNothing()
    const ok = await host.call('POST', `/parties/${id}/signals`, { to_peer_id: victim.peerId, type: 'punch', data: { at: 1_700_000_000_500, endpoint: HOST_EP } })
    expect(ok.status).toBe(201)
    expect((await vw.next()).signal).toMatchObject({ type: 'punch', from_peer_id: host.peerId, data: { at: 1_700_000_000_500, endpoint: HOST_EP } })
  })

  test('the server fills in the endpoint when it is left out, and drops any other field', async () => {
    const r = await host.call('POST', `/parties/${id}/signals`, { to_peer_id: victim.peerId, type: 'punch', data: { at: 5, relay: forgedOffer.relay } })
    expect(r.status).toBe(201)
    expect(r.body.signal.data).toEqual({ at: 5, endpoint: HOST_EP })
    expect((await vw.next()).signal.data).toEqual({ at: 5, endpoint: HOST_EP })
  })

  test('after a PATCH the new endpoint is the one that counts', async () => {
    const moved = '203.0.113.9:40001'
    expect((await host.call('PATCH', `/parties/${id}/peers/${host.peerId}`, { public_endpoint: moved })).status).toBe(200)
    await vw.next() // peer_updated
    const old = await host.call('POST', `/parties/${id}/signals`, { to_peer_id: victim.peerId, type: 'punch', data: { at: 1, endpoint: HOST_EP } })
    expect(old.status).toBe(422)
    const r = await host.call('POST', `/parties/${id}/signals`, { to_peer_id: victim.peerId, type: 'punch', data: { at: 1 } })
    expect(r.body.signal.data.endpoint).toBe(moved)
    await vw.next()
    await host.call('PATCH', `/parties/${id}/peers/${host.peerId}`, { public_endpoint: HOST_EP })
    await vw.next()
  })

  test.each([
    [{ endpoint: HOST_EP }, 'body.data.at is required'],
    [{ at: -1 }, 'body.data.at: must be an integer from 0 to 8640000000000000'],
    [{ at: 1e300 }, 'body.data.at: must be an integer from 0 to 8640000000000000'],
    [{ at: 1.5 }, 'body.data.at: must be an integer from 0 to 8640000000000000'],
    [{ at: '1' }, 'body.data.at: must be an integer from 0 to 8640000000000000'],
    [{ at: 1, endpoint: '999.999.999.999:99999' }, 'body.data.endpoint: must be "ip:port" with port 1-65535 ("[ipv6]:port" for IPv6)'],
    [{ at: 1, endpoint: '203.0.113.9:0' }, 'body.data.endpoint: must be "ip:port" with port 1-65535 ("[ipv6]:port" for IPv6)'],
  ])('punch data %j → 422 %s', async (data, message) => {
    const r = await host.call('POST', `/parties/${id}/signals`, { to_peer_id: victim.peerId, type: 'punch', data })
    expect(r.status).toBe(422)
    expect(r.body.error).toEqual({ code: 'VALIDATION', message })
    await victimGotNothing()
  })

  test('a member without a known public endpoint cannot punch', async () => {
    const [loner] = (await registeredPeers(s.base, 1)) as [TestPeer]
    expect((await loner.join(id)).status).toBe(200)
    await vw.next() // peer_joined
    const r = await loner.call('POST', `/parties/${id}/signals`, { to_peer_id: victim.peerId, type: 'punch', data: { at: 1, endpoint: THIRD_PARTY } })
    expect(r.status).toBe(422)
    expect(r.body.error.message).toStartWith('body.data.endpoint: the server knows no public endpoint of yours')
    await victimGotNothing()
  })
})
