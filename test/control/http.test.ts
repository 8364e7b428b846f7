// The service routes (/, /health, /metrics, /openapi) and every class of bad request, each with its status and
// error code: malformed JSON, wrong types, missing fields, oversized bodies, unknown routes.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { call, registeredPeers, startServer, type TestPeer, type TestServer } from './helpers.ts'

let s: TestServer
let p: TestPeer
beforeAll(async () => {
  s = await startServer({ config: { maxBodyBytes: 4096 } })
  ;[p] = (await registeredPeers(s.base, 1)) as [TestPeer]
})
afterAll(() => s.stop())

describe('service routes', () => {
  test('GET / reports service, version and counts', async () => {
    await p.createParty()
    const r = await call(s.base, 'GET', '/')
    expect(r.status).toBe(200)
    expect(r.body).toEqual({ service: 'lanrage-control', version: expect.stringMatching(/^\d+\.\d+\.\d+/), status: 'ok', parties: 1, peers: 1, relays: 0, ws_clients: 0 })
  })

  test('GET /health', async () => {
    expect(await call(s.base, 'GET', '/health')).toMatchObject({ status: 200, body: { status: 'ok' } })
  })

  test('GET /metrics is Prometheus text with requests by route and status, latency and gauges', async () => {
    await call(s.base, 'GET', '/parties/000000000000', { token: p.token })
    const r = await fetch(s.base + '/metrics')
    expect(r.status).toBe(200)
    expect(r.headers.get('content-type')).toContain('text/plain')
    const text = await r.text()
    expect(text).toContain('# TYPE lanrage_http_requests_total counter')
    expect(text).toMatch(/lanrage_http_requests_total\{method="GET",route="\/parties\/:party_id",status="404"\} 1/)
    expect(text).toMatch(/lanrage_http_requests_total\{method="POST",route="\/auth\/register",status="200"\} \d+/)
    expect(text).toContain('# TYPE lanrage_http_request_duration_seconds histogram')
    expect(text).toMatch(/lanrage_http_request_duration_seconds_bucket\{method="POST",route="\/auth\/register",le="\+Inf"\} \d+/)
    expect(text).toMatch(/^lanrage_parties 1$/m)
    expect(text).toMatch(/^lanrage_peers 1$/m)
    expect(text).toMatch(/^lanrage_ws_clients 0$/m)
  })

  test('OpenAPI document lists the routes; the UI is served', async () => {
    const doc = (await (await fetch(s.base + '/openapi/json')).json()) as { openapi: string; paths: Record<string, unknown> }
    expect(doc.openapi).toMatch(/^3\./)
    for (const path of ['/auth/challenge', '/parties', '/parties/{party_id}/join', '/relays', '/parties/{party_id}/relay']) expect(Object.keys(doc.paths)).toContain(path)
    expect((doc.paths['/parties'] as any).post).toMatchObject({ tags: ['parties'], security: [{ bearer: [] }] })
    expect((doc.paths['/auth/challenge'] as any).post.tags).toEqual(['auth'])
    const ui = await fetch(s.base + '/openapi')
    expect(ui.status).toBe(200)
    expect(ui.headers.get('content-type')).toContain('text/html')
  })
})

describe('bad requests', () => {
  test('malformed JSON → 400 INVALID_JSON', async () => {
    const r = await call(s.base, 'POST', '/parties', { token: p.token, raw: '{"name": ' })
    expect(r.status).toBe(400)
    expect(r.body).toEqual({ error: { code: 'INVALID_JSON', message: 'request body is not valid JSON' } })
  })

  test('wrong type → 422 VALIDATION naming the field and what was expected', async () => {
    const r = await p.call('POST', '/parties', { name: 42 })
    expect(r.status).toBe(422)
    expect(r.body.error).toEqual({ code: 'VALIDATION', message: 'body.name: must be printable text, 1-64 characters' })
  })

  test.each([
    ['/parties', { name: 'x', max_peers: 1 }, 'body.max_peers: must be an integer ≥ 2'],
    ['/parties', { name: 'x', max_peers: 2.5 }, 'body.max_peers: must be an integer ≥ 2'],
    ['/parties', { name: 'x', host_peer_info: { public_endpoint: 'localhost' } }, 'body.host_peer_info.public_endpoint: must be "ip:port" with port 1-65535 ("[ipv6]:port" for IPv6) or null'],
    ['/parties', { name: 'x', host_peer_info: { local_endpoints: ['1.2.3.4'] } }, 'body.host_peer_info.local_endpoints.0: must be "ip:port" with port 1-65535 ("[ipv6]:port" for IPv6)'],
    ['/parties', { name: 'x', host_peer_info: { nat_type: 'weird' } }, 'body.host_peer_info.nat_type: must be one of open, full_cone, restricted_cone, port_restricted_cone, symmetric, unknown'],
    ['/parties/000000000000/signals', { to_peer_id: 'abc', type: 'punch' }, 'body.to_peer_id: must be 16 lowercase hex digits'],
  ])('POST %s %j → 422 saying what the field must be', async (path, body, message) => {
    const r = await p.call('POST', path, body)
    expect(r.status).toBe(422)
    expect(r.body.error).toEqual({ code: 'VALIDATION', message })
  })

  test('a malformed id in the path → 400 saying what it must be', async () => {
    const r = await p.call('GET', '/parties/XYZ')
    expect(r.status).toBe(400)
    expect(r.body.error).toEqual({ code: 'VALIDATION', message: 'params.party_id: must be 12 lowercase hex digits' })
  })

  test('missing field → 422 VALIDATION saying it is required', async () => {
    const r = await p.call('POST', '/parties', {})
    expect(r.status).toBe(422)
    expect(r.body.error).toEqual({ code: 'VALIDATION', message: 'body.name is required' })
  })

  test('a JSON array or a string where an object belongs → 422', async () => {
    const r = await call(s.base, 'POST', '/parties', { token: p.token, raw: '[1,2]' })
    expect(r.status).toBe(422)
    expect(r.body.error.code).toBe('VALIDATION')
  })

  test('oversized body → 413 PAYLOAD_TOO_LARGE', async () => {
    const r = await p.call('POST', '/parties', { name: 'x'.repeat(5000) })
    expect(r.status).toBe(413)
    expect(r.body.error.code).toBe('PAYLOAD_TOO_LARGE')
    expect(r.body.error.message).toContain('4096')
  })

  test('oversized chunked body (no Content-Length) → 413 PAYLOAD_TOO_LARGE too', async () => {
    for (const size of [5000, 200_000]) {
      const bytes = new TextEncoder().encode(JSON.stringify({ name: 'x'.repeat(size) }))
      const stream = new ReadableStream({
        start(c) {
          c.enqueue(bytes)
          c.close()
        },
      })
      const r = await fetch(s.base + '/parties', { method: 'POST', body: stream, headers: { authorization: `Bearer ${p.token}`, 'content-type': 'application/json' } })
      expect(r.headers.get('content-length')).not.toBeNull()
      expect(r.status).toBe(413)
      expect(((await r.json()) as any).error.code).toBe('PAYLOAD_TOO_LARGE')
    }
  })

  test('unknown route → 404 NOT_FOUND', async () => {
    const r = await call(s.base, 'GET', '/nope')
    expect(r.status).toBe(404)
    expect(r.body).toEqual({ error: { code: 'NOT_FOUND', message: 'no such route' } })
    const m = await call(s.base, 'PUT', '/nope')
    expect(m.status).toBe(404)
    expect(m.headers.get('allow')).toBeNull()
  })

  // A wrong method on a path that exists used to be a 404 "no such route", which sent clients looking for a typo
  // in the path. It is 405 with Allow (RFC 9110 §15.5.6), before any token check: the path is public knowledge.
  test.each([
    ['PUT', '/parties', 'POST'],
    ['GET', '/parties', 'POST'],
    ['DELETE', '/parties/000000000000', 'GET'],
    ['PUT', '/parties/000000000000/peers/0000000000000000', 'DELETE, GET, PATCH'],
    ['GET', '/parties/000000000000/relay', 'POST'],
    ['POST', '/relays/eu', 'GET'],
    ['DELETE', '/relays', 'GET, POST'],
    ['POST', '/ws', 'GET'],
  ])('%s %s → 405 METHOD_NOT_ALLOWED with Allow: %s', async (method, path, allow) => {
    const r = await call(s.base, method, path, { token: p.token })
    expect(r.status).toBe(405)
    expect(r.headers.get('allow')).toBe(allow)
    expect(r.body).toEqual({ error: { code: 'METHOD_NOT_ALLOWED', message: `${method} is not allowed on ${path} (allowed: ${allow})` } })
  })

  test('GET /ws without an upgrade → 426 UPGRADE_REQUIRED with Upgrade: websocket', async () => {
    for (const token of [undefined, p.token]) {
      const r = await call(s.base, 'GET', '/ws', { token })
      expect(r.status).toBe(426)
      expect(r.headers.get('upgrade')).toBe('websocket')
      expect(r.body).toEqual({ error: { code: 'UPGRADE_REQUIRED', message: '/ws is a WebSocket endpoint: connect with Upgrade: websocket' } })
    }
  })

  test('unknown ids → 404 with the kind of thing named', async () => {
    const r = await p.call('POST', '/parties/abcdefabcdef/join', {})
    expect(r.status).toBe(404)
    expect(r.body.error).toEqual({ code: 'PARTY_NOT_FOUND', message: 'party abcdefabcdef does not exist' })
  })

  test('error bodies never carry a stack trace', async () => {
    for (const r of [await call(s.base, 'POST', '/auth/register', { raw: '{' }), await p.call('POST', '/parties', { name: [] })]) {
      expect(Object.keys(r.body)).toEqual(['error'])
      expect(Object.keys(r.body.error).sort()).toEqual(['code', 'message'])
      expect(JSON.stringify(r.body)).not.toContain('at ')
    }
  })
})

describe('bodies are JSON whatever the content type says', () => {
  test('a form-encoded or text body that is not JSON → 400 INVALID_JSON (curl -d without a content type)', async () => {
    for (const type of ['application/x-www-form-urlencoded', 'text/plain']) {
      const r = await call(s.base, 'POST', '/parties', { token: p.token, raw: 'name=x', headers: { 'content-type': type } })
      expect(r.status).toBe(400)
      expect(r.body.error.code).toBe('INVALID_JSON')
    }
  })
  test('JSON sent with a form content type is accepted', async () => {
    const r = await call(s.base, 'POST', '/parties', { token: p.token, raw: '{"name":"curl"}', headers: { 'content-type': 'application/x-www-form-urlencoded' } })
    expect(r.status).toBe(201)
    expect(r.body.party.name).toBe('curl')
  })
})
