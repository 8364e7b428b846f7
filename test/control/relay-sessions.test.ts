// Relay sessions issued per pair and per peer are bounded (the attack: two identities asked for tickets until a
// relay was full, and every other party got NO_RELAY).
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { call, registeredPeers, startServer, type TestPeer, type TestServer } from './helpers.ts'

const secret = { 'x-relay-secret': 'test-relay-secret' }
const relay = (over: Record<string, unknown> = {}) => ({
  relay_id: '0000000000000001', public_ip: '198.51.100.20', port: 51820, region: 'eu', capacity: 50, load: 0, ports: '52000-52999', ...over,
})

let s: TestServer
beforeAll(async () => {
  s = await startServer({ config: { registerRatePerMin: 10_000, maxRelaySessionsPerPeer: 2, ticketTtlS: 600 } })
  expect((await call(s.base, 'POST', '/relays', { body: relay(), headers: secret })).status).toBe(200)
})
afterAll(() => s.stop())

async function party(n: number) {
  const peers = (await registeredPeers(s.base, n)) as TestPeer[]
  const id = await peers[0]!.createParty()
  for (const p of peers.slice(1)) expect((await p.join(id)).status).toBe(200)
  return { id, peers }
}
const ask = (p: TestPeer, id: string, other: TestPeer) => p.call('POST', `/parties/${id}/relay`, { peer_id: other.peerId })
/** Moves the clock on with the relay heartbeating, so it stays live and empty. */
async function advance(ms: number) {
  for (let left = ms; left > 0; left -= 30_000) {
    s.clock.advance(Math.min(left, 30_000))
    expect((await call(s.base, 'POST', '/relays/0000000000000001/heartbeat', { body: { load: 0 }, headers: secret })).status).toBe(200)
  }
}

describe('one session per pair', () => {
  test('two identities asking 200 times hold one session: another party still gets the relay', async () => {
    const { id, peers: [a, b] } = await party(2)
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => (i % 2 ? ask(a!, id, b!) : ask(b!, id, a!))))
    expect(results.every((r) => r.status === 200)).toBe(true)
    expect(new Set(results.map((r) => r.body.session_id)).size).toBe(200) // each answer is a fresh session...
    // ...replacing the pair's previous one: the relay was counted once, and others are not refused.
    const relays = (await a!.call('GET', '/relays')).body.relays
    expect(relays[0].load).toBe(1)
    const other = await party(2)
    const r = await ask(other.peers[0]!, other.id, other.peers[1]!)
    expect(r.status).toBe(200)
    expect(r.body.relay.relay_id).toBe('0000000000000001')
  })
})

describe('live sessions per peer', () => {
  test('a peer part of maxRelaySessionsPerPeer sessions gets 429 TOO_MANY_RELAY_SESSIONS with Retry-After; the pair it holds can be renewed', async () => {
    const { id, peers } = await party(4)
    const [a, b, c, d] = peers as [TestPeer, TestPeer, TestPeer, TestPeer]
    expect((await ask(a, id, b)).status).toBe(200)
    await advance(10_000)
    expect((await ask(a, id, c)).status).toBe(200)
    const third = await ask(a, id, d)
    expect(third.status).toBe(429)
    expect(third.body.error.code).toBe('TOO_MANY_RELAY_SESSIONS')
    expect(third.body.error.message).toBe('you are already part of 2 relay sessions, the most allowed; the oldest ticket expires in 590 s')
    expect(third.headers.get('retry-after')).toBe('590')
    // The other side's sessions count too: d asking for a is refused because of a.
    const viaOther = await ask(d, id, a)
    expect(viaOther.status).toBe(429)
    expect(viaOther.body.error.message).toStartWith(`peer ${a.peerId} is already part of 2 relay sessions`)
    // Renewing a pair a already holds replaces it: allowed.
    expect((await ask(b, id, a)).status).toBe(200)
    // Once the tickets expire (the renewed one too: 600 s after its renewal), there is room again.
    await advance(599_000)
    expect((await ask(a, id, d)).status).toBe(429)
    await advance(1_000)
    expect((await ask(a, id, d)).status).toBe(200)
  })

  test('sessions of a member who left stop counting', async () => {
    const { id, peers } = await party(4)
    const [a, b, c, d] = peers as [TestPeer, TestPeer, TestPeer, TestPeer]
    expect((await ask(b, id, a)).status).toBe(200)
    expect((await ask(b, id, c)).status).toBe(200)
    expect((await ask(b, id, d)).status).toBe(429)
    expect((await c.call('DELETE', `/parties/${id}/peers/${c.peerId}`)).status).toBe(200)
    expect((await ask(b, id, d)).status).toBe(200)
  })
})
