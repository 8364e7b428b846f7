// Hostile input at every place an endpoint or a display string enters the control server: each is refused with
// 422 naming the field, and nothing of it reaches the members (no event, no stored value).
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { registeredPeers, startServer, type TestPeer, type TestServer } from './helpers.ts'

let s: TestServer
let host: TestPeer, guest: TestPeer
beforeAll(async () => {
  s = await startServer({ config: { registerRatePerMin: 10_000 } })
  ;[host, guest] = (await registeredPeers(s.base, 2)) as [TestPeer, TestPeer]
})
afterAll(() => s.stop())

const BAD_ENDPOINTS = [
  '999.999.999.999:99999',
  '1.2.3.4:0',
  '1.2.3.4:65536',
  '256.1.1.1:80',
  '0.0.0.0:51820',
  '224.0.0.1:5000',
  '255.255.255.255:1',
  '1.2.3.4',
  '1.2.3.4:5\n',
  '[::]:51820',
  '[ff02::1]:51820',
  '[1::2::3]:4',
  'localhost:51820',
]
const GOOD_ENDPOINTS = ['203.0.113.9:51820', '10.0.0.2:1', '127.0.0.1:65535', '[2001:db8::1]:51820', '[::ffff:198.51.100.7]:443']

describe('endpoints: one schema wherever an endpoint enters', () => {
  test.each(BAD_ENDPOINTS)('%j is refused at create, join, heartbeat and PATCH with 422 naming the field', async (ep) => {
    const c = await host.call('POST', '/parties', { name: 'lan', host_peer_info: { public_endpoint: ep } })
    expect(c.status).toBe(422)
    expect(c.body.error.message).toStartWith('body.host_peer_info.public_endpoint: must be "ip:port"')
    const c2 = await host.call('POST', '/parties', { name: 'lan', host_peer_info: { local_endpoints: ['10.0.0.1:5', ep] } })
    expect(c2.status).toBe(422)
    expect(c2.body.error.message).toStartWith('body.host_peer_info.local_endpoints.1: must be "ip:port"')

    const id = await host.createParty({ name: 'lan', host_peer_info: { public_endpoint: '203.0.113.1:51820' } })
    const j = await guest.join(id, { peer_info: { public_endpoint: ep } })
    expect(j.status).toBe(422)
    expect(j.body.error.message).toStartWith('body.peer_info.public_endpoint: must be')
    expect((await guest.join(id, { peer_info: { public_endpoint: '203.0.113.2:51820' } })).status).toBe(200)

    const hb = await guest.call('POST', `/parties/${id}/peers/${guest.peerId}/heartbeat`, { public_endpoint: ep })
    expect(hb.status).toBe(422)
    expect(hb.body.error.message).toStartWith('body.public_endpoint: must be')
    const pa = await guest.call('PATCH', `/parties/${id}/peers/${guest.peerId}`, { public_endpoint: ep })
    expect(pa.status).toBe(422)
    const pl = await guest.call('PATCH', `/parties/${id}/peers/${guest.peerId}`, { local_endpoints: [ep] })
    expect(pl.status).toBe(422)
    expect(pl.body.error.message).toStartWith('body.local_endpoints.0: must be')

    // Nothing of it was stored.
    const peers = (await host.call('GET', `/parties/${id}/peers`)).body.peers
    expect(peers[guest.peerId].public_endpoint).toBe('203.0.113.2:51820')
    expect(peers[host.peerId].public_endpoint).toBe('203.0.113.1:51820')
  })

  test('good endpoints (IPv4, IPv6, v4-mapped) are accepted everywhere', async () => {
    const id = await host.createParty({ name: 'lan', host_peer_info: { public_endpoint: GOOD_ENDPOINTS[0], local_endpoints: GOOD_ENDPOINTS } })
    expect((await guest.join(id, { peer_info: { public_endpoint: GOOD_ENDPOINTS[3] } })).status).toBe(200)
    for (const ep of GOOD_ENDPOINTS) {
      expect((await guest.call('POST', `/parties/${id}/peers/${guest.peerId}/heartbeat`, { public_endpoint: ep })).status).toBe(200)
      expect((await guest.call('PATCH', `/parties/${id}/peers/${guest.peerId}`, { public_endpoint: ep, local_endpoints: [ep] })).body.peer.public_endpoint).toBe(ep)
    }
  })
})

describe('display strings: printable text of bounded length', () => {
  const HOSTILE = [
    ['ESC / clear screen', 'lan\x1b[2J\x1b[H'],
    ['BEL', 'ding\x07'],
    ['newline', 'line1\nline2'],
    ['carriage return over the line', 'good\rEVIL'],
    ['DEL', 'a\x7f'],
    ['C1 CSI', 'a\u009b31m'],
    ['right-to-left override', 'txt.\u202eexe'],
    ['blank', '   '],
    ['empty', ''],
    ['too long', 'x'.repeat(65)],
  ] as const
  test.each(HOSTILE)('a party name with %s → 422 naming body.name', async (_what, name) => {
    const r = await host.call('POST', '/parties', { name })
    expect(r.status).toBe(422)
    expect(r.body.error).toEqual({ code: 'VALIDATION', message: 'body.name: must be printable text, 1-64 characters' })
  })

  test('names in any script, with spaces and emoji, up to 64 characters are kept as sent', async () => {
    for (const name of ['Friday LAN', 'Лан-пати', '週末のLAN 🎮', 'x'.repeat(64)]) {
      const r = await host.call('POST', '/parties', { name })
      expect(r.status).toBe(201)
      expect(r.body.party.name).toBe(name)
    }
  })
})

describe('peer names: the same rule, 1-32 printable characters, wherever a member names itself', () => {
  const HOSTILE = ['ana\x1b[2J', 'bell\x07', 'two\nlines', 'over\rwrite', 'a\u009b31m', 'gpj.\u202eexe', '   ', '', 'x'.repeat(33)]
  test.each(HOSTILE)('%j is refused at create, join and PATCH with 422 naming the field; nothing is stored or told', async (name) => {
    const c = await host.call('POST', '/parties', { name: 'lan', host_peer_info: { name } })
    expect(c.status).toBe(422)
    expect(c.body.error).toEqual({ code: 'VALIDATION', message: 'body.host_peer_info.name: must be a display name, 1-32 characters or null' })

    const id = await host.createParty({ name: 'lan', host_peer_info: { name: 'host' } })
    const j = await guest.join(id, { peer_info: { name } })
    expect(j.status).toBe(422)
    expect(j.body.error.message).toBe('body.peer_info.name: must be a display name, 1-32 characters or null')
    expect((await guest.join(id, { peer_info: { name: 'guest' } })).status).toBe(200)
    const hw = await host.ws()
    try {
      expect((await hw.next()).type).toBe('hello')
      const pa = await guest.call('PATCH', `/parties/${id}/peers/${guest.peerId}`, { name })
      expect(pa.status).toBe(422)
      expect(pa.body.error.message).toBe('body.name: must be a display name, 1-32 characters or null')
      expect(await hw.pending()).toEqual([])
    } finally {
      hw.close()
    }
    const peers = (await host.call('GET', `/parties/${id}/peers`)).body.peers
    expect([peers[host.peerId].name, peers[guest.peerId].name]).toEqual(['host', 'guest'])
  })

  test('names in any script and emoji up to 32 characters are kept and shown to the members, live', async () => {
    const id = await host.createParty({ name: 'lan', host_peer_info: { name: 'Ана 🎮' } })
    const hw = await host.ws()
    try {
      expect((await hw.next()).type).toBe('hello')
      const j = await guest.join(id, { peer_info: { name: '週末' } })
      expect(j.body.party.peers[host.peerId].name).toBe('Ана 🎮')
      expect(await hw.next()).toMatchObject({ type: 'peer_joined', peer: { peer_id: guest.peerId, name: '週末' } })
      const long = 'g'.repeat(32)
      expect((await guest.call('PATCH', `/parties/${id}/peers/${guest.peerId}`, { name: long })).body.peer.name).toBe(long)
      expect(await hw.next()).toMatchObject({ type: 'peer_updated', peer: { peer_id: guest.peerId, name: long } })
      // A rejoin naming itself anew is an update the others hear; null clears the name.
      expect((await guest.join(id, { peer_info: { name: null } })).body.party.peers[guest.peerId].name).toBeNull()
      expect(await hw.next()).toMatchObject({ type: 'peer_updated', peer: { peer_id: guest.peerId, name: null } })
    } finally {
      hw.close()
    }
  })

  test('a member that gives no name has name null', async () => {
    const id = await host.createParty({ name: 'lan' })
    expect((await guest.join(id)).body.party.peers).toMatchObject({ [host.peerId]: { name: null }, [guest.peerId]: { name: null } })
  })
})
