// Garbage in, 4xx out: a seeded loop of malformed requests against every route. None may answer 5xx, and every
// error carries the one error shape. Print the seed on failure to replay it (LANRAGE_FUZZ_SEED).
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { call, registeredPeers, startServer, type TestPeer, type TestServer } from './helpers.ts'

let s: TestServer
let p: TestPeer
let partyId: string
beforeAll(async () => {
  s = await startServer()
  ;[p] = (await registeredPeers(s.base, 1)) as [TestPeer]
  partyId = await p.createParty()
})
afterAll(() => s.stop())

/** mulberry32: a small seeded PRNG, so a failing sequence can be replayed. */
function prng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

test('200 malformed requests: never a 5xx, always {error:{code,message}}', async () => {
  const seed = Number(process.env.LANRAGE_FUZZ_SEED ?? Date.now() % 1_000_000)
  const rnd = prng(seed)
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!
  const values: unknown[] = [null, true, 0, -1, 1.5, 1e308, '', 'x', 'ä☃', '0'.repeat(300), [], [1, 'a'], {}, { a: { b: [] } }, '10.0.0.1:99999', '[::1]:1']
  const keys = ['name', 'password', 'max_peers', 'host_peer_info', 'peer_info', 'public_endpoint', 'local_endpoints', 'nat_type', 'to_peer_id', 'type', 'data', 'peer_id', 'region', 'public_key', 'challenge', 'proof', 'relay_id', 'public_ip', 'port', 'capacity', 'load', 'ports']
  const ids = [partyId, '000000000000', 'ZZZ', '%00', '..', p.peerId, '0000000000000000', 'x'.repeat(100)]
  const routes = [
    ['POST', '/auth/challenge'],
    ['POST', '/auth/register'],
    ['POST', '/auth/refresh'],
    ['POST', '/parties'],
    ['POST', '/parties/:id/join'],
    ['GET', '/parties/:id'],
    ['GET', '/parties/:id/peers/:peer'],
    ['POST', '/parties/:id/peers/:peer/heartbeat'],
    ['PATCH', '/parties/:id/peers/:peer'],
    ['DELETE', '/parties/:id/peers/:peer'],
    ['POST', '/parties/:id/signals'],
    ['POST', '/parties/:id/relay'],
    ['POST', '/relays'],
    ['POST', '/relays/:peer/heartbeat'],
    ['GET', '/relays/:id'],
  ] as const
  for (let i = 0; i < 200; i++) {
    const [method, template] = pick(routes)
    const path = template.replace(':id', encodeURIComponent(pick(ids))).replace(':peer', encodeURIComponent(pick(ids)))
    let raw: string | undefined
    const shape = rnd()
    if (method !== 'GET' && method !== 'DELETE') {
      if (shape < 0.15) raw = pick(['{', '[', 'null', '"x"', '{"a":', '\u0000', 'true', '1e999'])
      else {
        const body: Record<string, unknown> = {}
        for (let k = Math.floor(rnd() * 4); k >= 0; k--) body[pick(keys)] = pick(values)
        raw = JSON.stringify(body)
      }
    }
    const headers: Record<string, string> = { 'x-relay-secret': pick(['test-relay-secret', 'nope']) }
    const r = await call(s.base, method, path, { raw, token: rnd() < 0.8 ? p.token : undefined, headers })
    const where = `seed ${seed} request ${i}: ${method} ${path} ${raw ?? ''} → ${r.status} ${JSON.stringify(r.body)}`
    expect(r.status < 500 ? 'ok' : where).toBe('ok')
    if (r.status >= 400) {
      expect(typeof r.body?.error?.code === 'string' && typeof r.body?.error?.message === 'string' ? 'ok' : where).toBe('ok')
    }
  }
})
