// Every authenticated route answers 401 before anything else (422, 400, 404, 413, ...): a caller without the
// credential learns nothing about what the route would accept. The routes are read from the app itself, so a
// route added later is covered without touching this test.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { call, startServer, type TestServer } from './helpers.ts'

let s: TestServer
let routes: { method: string; path: string; kind: 'bearer' | 'relaySecret' }[]
beforeAll(async () => {
  s = await startServer()
  routes = s.app.routes
    .map((r) => ({ method: r.method, path: r.path, security: (r.hooks.detail as { security?: Record<string, unknown>[] } | undefined)?.security?.[0] }))
    .filter((r) => r.security && r.method !== 'WS')
    .map((r) => ({ method: r.method, path: r.path, kind: 'relaySecret' in r.security! ? ('relaySecret' as const) : ('bearer' as const) }))
})
afterAll(() => s.stop())

/** Path parameters that fail validation (400 if checked first), and bodies that fail it (422) or do not parse (400). */
const badPath = (path: string) => path.replace(/:[a-z_]+/g, 'NOT-AN-ID')
const BODIES: { json?: unknown; raw?: string }[] = [{ json: {} }, { json: { relay_id: 'x', load: -1, name: 42 } }, { raw: '{"broken": ' }, { raw: 'x'.repeat(100) }]

describe('401 first', () => {
  test('the relay routes and the bearer routes are all found', () => {
    expect(routes.filter((r) => r.kind === 'relaySecret').map((r) => `${r.method} ${r.path}`).sort()).toEqual(['POST /relays', 'POST /relays/:relay_id/heartbeat'])
    expect(routes.filter((r) => r.kind === 'bearer').length).toBeGreaterThanOrEqual(15)
  })

  test('without a credential, with a wrong one, whatever the body and path: 401', async () => {
    for (const r of routes) {
      const creds: Record<string, string>[] =
        r.kind === 'bearer' ? [{}, { authorization: 'Bearer wrong-token' }, { authorization: 'Basic abc' }] : [{}, { 'x-relay-secret': 'wrong' }]
      for (const headers of creds)
        for (const body of r.method === 'GET' || r.method === 'DELETE' ? [{}] : BODIES) {
          const res = await call(s.base, r.method, badPath(r.path), { headers, ...(body.json !== undefined ? { body: body.json } : body.raw !== undefined ? { raw: body.raw } : {}) })
          if (res.status !== 401) throw new Error(`${r.method} ${r.path} with ${JSON.stringify(headers)} and ${JSON.stringify(body)}: ${res.status} ${JSON.stringify(res.body)}`)
          expect(res.body.error.code).toMatch(/UNAUTHORIZED|INVALID_TOKEN|RELAY_SECRET_REQUIRED|INVALID_RELAY_SECRET/)
        }
    }
  })

  test('POST /relays and the relay heartbeat without the secret and with an incomplete body: 401, not 422', async () => {
    for (const headers of [{}, { 'x-relay-secret': 'wrong' }] as Record<string, string>[]) {
      const reg = await call(s.base, 'POST', '/relays', { headers, body: { relay_id: '0000000000000001' } })
      expect([reg.status, reg.body.error.code]).toEqual([401, Object.keys(headers).length ? 'INVALID_RELAY_SECRET' : 'RELAY_SECRET_REQUIRED'])
      const hb = await call(s.base, 'POST', '/relays/nope/heartbeat', { headers, body: { load: 'x' } })
      expect(hb.status).toBe(401)
    }
  })

  test('POST /relays with the right secret and an incomplete body is 422 (the order is credential, then shape)', async () => {
    const r = await call(s.base, 'POST', '/relays', { headers: { 'x-relay-secret': 'test-relay-secret' }, body: { relay_id: '0000000000000001' } })
    expect(r.status).toBe(422)
  })
})
