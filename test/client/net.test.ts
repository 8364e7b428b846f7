// The client library's HTTP and WebSocket adapters (src/client/net/http.ts, websocket.ts), every implementation
// against real Bun.serve servers, plain and with a certificate from a private CA: the token arrives as
// subprotocols, text goes both ways, the close code and reason come back, the CA is trusted where it is given and
// a certificate from another CA is refused. Under Node itself they run in the package consumer test.
import { afterAll, describe, expect, test } from 'bun:test'
import { readFileSync, rmSync } from 'node:fs'
import { controlFetch, fetchImpl, type FetchImpl } from '../../src/client/net/http.ts'
import { openWebSocket, webSocketImpl, WS_CLOSED, WS_OPEN, type WebSocketImpl, type WebSocketLike } from '../../src/client/net/websocket.ts'
import { isCertificateError } from '../../src/shared/tls.ts'
import { issueCert, makeCa, tempDir } from '../ops/helpers.ts'
import { waitFor } from './helpers.ts'

const dir = tempDir('lrc-net-')
const ca = makeCa(dir, 'net-ca')
const other = makeCa(dir, 'other-ca')
const leaf = issueCert(ca, 'net-server')
const CA = readFileSync(ca.cert, 'utf8')
const OTHER = readFileSync(other.cert, 'utf8')

interface Seen {
  protocols: string | null
  messages: string[]
}
const seen: Seen = { protocols: null, messages: [] }
const serve = (tls?: { cert: string; key: string }) =>
  Bun.serve<{ protocols: string | null }>({
    hostname: '127.0.0.1',
    port: 0,
    ...(tls ? { tls: { cert: readFileSync(tls.cert, 'utf8'), key: readFileSync(tls.key, 'utf8') } } : {}),
    async fetch(req, srv) {
      const protocols = req.headers.get('sec-websocket-protocol')
      if (new URL(req.url).pathname === '/ws') {
        const first = protocols?.split(',')[0]?.trim()
        if (srv.upgrade(req, { data: { protocols }, headers: first ? { 'sec-websocket-protocol': first } : {} })) return
      }
      return Response.json({ method: req.method, auth: req.headers.get('authorization'), body: req.method === 'POST' ? await req.json() : null })
    },
    websocket: {
      open(ws) {
        seen.protocols = ws.data.protocols
        ws.send(JSON.stringify({ type: 'hello' }))
      },
      message(ws, m) {
        seen.messages.push(String(m))
        if (String(m) === 'bye') ws.close(4001, 'token revoked')
      },
    },
  })
const plain = serve()
const secure = serve(leaf)
afterAll(() => {
  plain.stop(true)
  secure.stop(true)
})

test("a certificate error wrapped by Node's fetch (on `cause`) counts as one", () => {
  expect(isCertificateError(Object.assign(new TypeError('fetch failed'), { cause: { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' } }))).toBe(true)
  expect(isCertificateError(Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } }))).toBe(false)
})

describe('which implementation runs here', () => {
  test('on Bun: Bun’s fetch and WebSocket, with or without a CA', () => {
    expect(fetchImpl(undefined)).toBe('bun')
    expect(fetchImpl({ ca: CA })).toBe('bun')
    expect(webSocketImpl({})).toBe('bun')
    expect(webSocketImpl({ ca: CA })).toBe('bun')
  })
})

const FETCHES: [FetchImpl, string][] = [
  ['bun', "Bun's fetch"],
  ['node-https', 'node:https, as Node uses with a CA'],
]
for (const [impl, name] of FETCHES) {
  describe(`control fetch: ${name}`, () => {
    test('https with the private CA: method, headers and body arrive, the JSON answer comes back', async () => {
      const f = controlFetch({ ca: CA }, impl)
      const res = await f(`https://127.0.0.1:${secure.port}/x`, { method: 'POST', headers: { authorization: 'Bearer t', 'content-type': 'application/json' }, body: '{"a":1}' })
      expect(res.status).toBe(200)
      expect(await res.json()).toEqual({ method: 'POST', auth: 'Bearer t', body: { a: 1 } })
    })
    test('a certificate from another CA is refused with a certificate error (never accepted, never retried as a network error)', async () => {
      const f = controlFetch({ ca: OTHER }, impl)
      const e = await f(`https://127.0.0.1:${secure.port}/x`).then(
        () => null,
        (err: unknown) => err,
      )
      expect(e).not.toBeNull()
      expect(isCertificateError(e)).toBe(true)
    })
    test('plain http still works with a CA configured', async () => {
      const res = await controlFetch({ ca: CA }, impl)(`http://127.0.0.1:${plain.port}/x`)
      expect(((await res.json()) as { method: string }).method).toBe('GET')
    })
  })
}

const SOCKETS: [WebSocketImpl, string][] = [
  ['bun', "Bun's WebSocket"],
  ['ws', 'the ws package, as on Node 20 or with a CA'],
]
for (const [impl, name] of SOCKETS) {
  describe(`live channel WebSocket: ${name}`, () => {
    for (const secureSide of [false, true]) {
      test(`${secureSide ? 'wss with the private CA' : 'ws'}: subprotocols arrive, text both ways, close code and reason come back`, async () => {
        seen.protocols = null
        seen.messages = []
        const url = secureSide ? `wss://127.0.0.1:${secure.port}/ws` : `ws://127.0.0.1:${plain.port}/ws`
        const ws: WebSocketLike = await openWebSocket(url, { protocols: ['lanrage', 'bearer.t0ken'], ca: secureSide ? CA : undefined }, impl)
        const got: unknown[] = []
        let closed: { code: number; reason: string } | undefined
        ws.onmessage = (m) => got.push(m.data)
        ws.onclose = (ev) => (closed = { code: ev.code, reason: ev.reason })
        ws.onerror = () => {}
        await waitFor('the hello', () => got.length === 1 && ws.readyState === WS_OPEN, 3000)
        expect(got[0]).toBe('{"type":"hello"}')
        expect((seen.protocols as string | null)?.split(',').map((p) => p.trim())).toEqual(['lanrage', 'bearer.t0ken'])
        ws.send('ping')
        ws.send('bye')
        await waitFor('the close', () => closed, 3000)
        expect(seen.messages).toEqual(['ping', 'bye'])
        expect(closed).toEqual({ code: 4001, reason: 'token revoked' })
        expect(ws.readyState).toBe(WS_CLOSED)
      })
    }
    test('wss with a certificate from another CA never opens', async () => {
      const ws = await openWebSocket(`wss://127.0.0.1:${secure.port}/ws`, { protocols: ['lanrage'], ca: OTHER }, impl)
      let opened = false
      let closed = false
      ws.onopen = () => (opened = true)
      ws.onerror = () => {}
      ws.onclose = () => (closed = true)
      await waitFor('the refusal', () => closed, 3000)
      expect(opened).toBe(false)
    })
  })
}

afterAll(() => rmSync(dir, { recursive: true, force: true }))
