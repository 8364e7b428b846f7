// RemoteControlPlane's retry policy over real HTTP on 127.0.0.1: a small server that fails on purpose lets
// us count requests (the real control server cannot be made to answer 503 on demand). The behaviour against
// the real control server is in control-remote.test.ts.
import { afterAll, describe, expect, test } from 'bun:test'
import { backoffDelay, DEFAULT_RETRY, isRetryable } from '../../src/client/control/backoff.ts'
import { ControlPlaneError } from '../../src/client/control/errors.ts'
import { RemoteControlPlane } from '../../src/client/control/remote.ts'
import { encodeKey, generatePrivateKey } from '../../src/client/wireguard/keys.ts'

describe('backoff (pure)', () => {
  test('delays grow exponentially within [cap/2, cap] and stop at maxMs', () => {
    const p = { baseMs: 100, maxMs: 1000, attempts: 10 }
    expect([0, 1, 2, 3, 4, 5].map((a) => backoffDelay(a, p, () => 0))).toEqual([50, 100, 200, 400, 500, 500])
    expect([0, 1, 2, 3, 4, 5].map((a) => backoffDelay(a, p, () => 1))).toEqual([100, 200, 400, 800, 1000, 1000])
    expect(backoffDelay(1000, p, () => 0.5)).toBe(750)
  })
  test('jitter spreads clients out', () => {
    const seen = new Set(Array.from({ length: 50 }, () => backoffDelay(3, DEFAULT_RETRY)))
    expect(seen.size).toBeGreaterThan(10)
  })
  test('only network errors and 5xx are retryable', () => {
    expect([undefined, 500, 502, 503].map(isRetryable)).toEqual([true, true, true, true])
    expect([400, 401, 403, 404, 409, 422, 429].map(isRetryable)).toEqual([false, false, false, false, false, false, false])
  })
})

describe('retry against a failing HTTP server', () => {
  let script: { status: number; body: unknown }[] = []
  let hits = 0
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    fetch() {
      hits++
      const s = script.shift() ?? { status: 200, body: { service: 'lanrage-control', status: 'ok' } }
      return s.body === undefined ? new Response('<html>proxy page</html>', { status: s.status }) : Response.json(s.body, { status: s.status })
    },
  })
  afterAll(() => server.stop(true))
  const client = (url = `http://127.0.0.1:${server.port}`) =>
    new RemoteControlPlane({ url, privateKey: encodeKey(generatePrivateKey()), retry: { baseMs: 5, maxMs: 20, attempts: 4 } })

  test('5xx is retried until it succeeds', async () => {
    hits = 0
    script = [
      { status: 503, body: { error: { code: 'UNAVAILABLE', message: 'restarting' } } },
      { status: 500, body: { error: { code: 'INTERNAL', message: 'oops' } } },
    ]
    expect(await client().health()).toMatchObject({ status: 'ok' })
    expect(hits).toBe(3)
  })

  test('5xx on every try gives CONTROL_SERVER_ERROR after the last attempt', async () => {
    hits = 0
    script = Array.from({ length: 4 }, () => ({ status: 502, body: { error: { code: 'BAD_GATEWAY', message: 'upstream down' } } }))
    const e = await client().health().catch((e) => e)
    expect(hits).toBe(4)
    expect(e).toBeInstanceOf(ControlPlaneError)
    expect(e).toMatchObject({ code: 'CONTROL_SERVER_ERROR', status: 502, serverCode: 'BAD_GATEWAY' })
    expect(e.message).toContain('upstream down')
  })

  test.each([
    [400, 'CONTROL_BAD_REQUEST'],
    [403, 'CONTROL_FORBIDDEN'],
    [404, 'CONTROL_NOT_FOUND'],
    [409, 'CONTROL_CONFLICT'],
    [422, 'CONTROL_BAD_REQUEST'],
  ])('%i is never retried and maps to %s', async (status, code) => {
    hits = 0
    script = [{ status, body: { error: { code: 'SOME_CODE', message: 'you did it wrong' } } }]
    const e = await client().health().catch((e) => e)
    expect(hits).toBe(1)
    expect(e).toMatchObject({ code, status, serverCode: 'SOME_CODE' })
    expect(e.message).toBe('health: you did it wrong (SOME_CODE)')
  })

  test('a closed port is retried, then CONTROL_UNREACHABLE', async () => {
    const dead = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response('') })
    const url = `http://127.0.0.1:${dead.port}`
    dead.stop(true)
    const e = await client(url).health().catch((e) => e)
    expect(e).toMatchObject({ code: 'CONTROL_UNREACHABLE' })
    expect(e.message).toContain('after 4 tries')
  })

  test('connect() to a dead server rejects with CONTROL_UNREACHABLE and keeps trying', async () => {
    const dead = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response('') })
    const url = `http://127.0.0.1:${dead.port}`
    dead.stop(true)
    const c = client(url)
    const downs: string[] = []
    c.on('disconnected', (e) => downs.push(e.reason))
    try {
      const e = await c.connect(300).catch((e) => e)
      expect(e).toMatchObject({ code: 'CONTROL_UNREACHABLE' })
      expect(e.message).toBe(`live channel: no hello from ${url} within 300ms (still retrying)`)
      expect(downs.length).toBeGreaterThanOrEqual(1)
      expect(downs[0]).toContain('registration failed')
    } finally {
      await c.close()
    }
  })

  test('a 2xx without JSON is a protocol error', async () => {
    script = [{ status: 200, body: undefined }]
    hits = 0
    const e = await client().health().catch((e) => e)
    expect(e).toMatchObject({ code: 'CONTROL_PROTOCOL' })
    expect(e.message).toBe('health: the server answered 200 without a JSON body')
  })
})

describe('live channel keepalive against a WebSocket server that stops answering', () => {
  test('no pong for two ping periods: the client drops the connection and reconnects', async () => {
    let connections = 0
    const pings: number[] = []
    const server = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      fetch(req, srv) {
        const url = new URL(req.url)
        if (url.pathname === '/ws') return srv.upgrade(req) ? undefined : new Response('no', { status: 400 })
        if (url.pathname === '/auth/challenge') return new Response('{}', { status: 500 })
        return new Response('{}', { status: 404 })
      },
      websocket: {
        open(ws) {
          connections++
          ws.send(JSON.stringify({ type: 'hello', peer_id: 'p', parties: [] }))
        },
        // a half-dead server: receives pings, never answers
        message(_ws, m) {
          if (JSON.parse(String(m)).type === 'ping') pings.push(connections)
        },
      },
    })
    // this server has no auth: the client starts with a saved token
    const token = { token: 't', peer_id: 'p', expires_at: '' }
    const c = new RemoteControlPlane({ url: `http://127.0.0.1:${server.port}`, privateKey: encodeKey(generatePrivateKey()), token, pingIntervalMs: 40, reconnect: { baseMs: 10, maxMs: 20 } })
    try {
      await c.connect()
      const dropped = await c.next('disconnected', undefined, 3000)
      expect(dropped.reason).toContain('4000')
      expect(dropped.reason).toContain('no pong')
      expect(pings.length).toBeGreaterThanOrEqual(1)
      await c.next('connected', (e) => e.reconnect, 3000)
      expect(connections).toBeGreaterThanOrEqual(2)
    } finally {
      await c.close()
      server.stop(true)
    }
  })
})
