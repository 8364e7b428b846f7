// The registration rate limit behind a reverse proxy that appends to X-Forwarded-For (as nginx's
// $proxy_add_x_forwarded_for does): a client that writes its own X-Forwarded-For entries must not get a fresh
// allowance per request (the attack: 200 challenges with `X-Forwarded-For: spoof-$i, 127.0.0.1` all passed).
// Clients connect from their own loopback addresses (127.0.0.7, ...), the proxy from 127.0.0.1.
import { afterAll, describe, expect, test } from 'bun:test'
import { x25519 } from '@noble/curves/ed25519.js'
import net from 'node:net'
import { b64, startServer, type TestServer } from './helpers.ts'

const servers: TestServer[] = []
const proxies: ReturnType<typeof Bun.serve>[] = []
afterAll(async () => {
  for (const p of proxies) p.stop(true)
  for (const s of servers) await s.stop()
})

/** A reverse proxy on 127.0.0.1 that forwards to `upstream`, appending the address it received the request from. */
function appendingProxy(upstream: string): string {
  const proxy = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    async fetch(req, server) {
      const url = new URL(req.url)
      const headers = new Headers(req.headers)
      const prior = headers.get('x-forwarded-for')
      const peer = server.requestIP(req)!.address
      headers.set('x-forwarded-for', prior ? `${prior}, ${peer}` : peer)
      headers.delete('host')
      return fetch(upstream + url.pathname, { method: req.method, headers, body: await req.text() })
    },
  })
  proxies.push(proxy)
  return `http://127.0.0.1:${proxy.port}`
}

/** POST over a raw TCP connection from `from` (a loopback address of the client's choosing); resolves the status. */
function postFrom(from: string, base: string, path: string, body: unknown, headers: Record<string, string>): Promise<number> {
  const url = new URL(base)
  const text = JSON.stringify(body)
  return new Promise((resolve, reject) => {
    let got = ''
    const sock = net.connect({ host: url.hostname, port: Number(url.port), localAddress: from })
    sock.setTimeout(5000, () => sock.destroy(new Error('no answer within 5 s')))
    sock.on('data', (d) => (got += d))
    sock.on('error', reject)
    sock.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(got)?.[1] ?? 0)))
    const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')
    sock.write(`POST ${path} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\n${extra}Connection: close\r\n\r\n${text}`)
  })
}

/** `n` challenges from one client address, each with a different forged X-Forwarded-For; the statuses. */
async function forgedChallenges(base: string, n: number, from = '127.0.0.7'): Promise<number[]> {
  const public_key = b64(x25519.keygen().publicKey)
  const out: number[] = []
  for (let i = 0; i < n; i++) out.push(await postFrom(from, base, '/auth/challenge', { public_key }, { 'x-forwarded-for': `spoof-${i}, 198.51.100.${i % 250}` }))
  return out
}

describe('X-Forwarded-For', () => {
  test.each([
    ['--trust-proxy', { trustProxy: true }],
    ['--trusted-proxies 127.0.0.1', { trustedProxies: '127.0.0.1' }],
  ])('%s: through an appending proxy, forged entries share the client’s one limit (30/min, then 429)', async (_name, config) => {
    const s = await startServer({ config: { registerRatePerMin: 30, ...config } })
    servers.push(s)
    const statuses = await forgedChallenges(appendingProxy(s.base), 40)
    expect(statuses.slice(0, 30)).toEqual(Array(30).fill(200))
    expect(statuses.slice(30)).toEqual(Array(10).fill(429))
  })

  test('--trusted-proxies: a client that reaches the server directly is limited by its socket address', async () => {
    const s = await startServer({ config: { registerRatePerMin: 30, trustedProxies: '10.0.0.0/8' } })
    servers.push(s)
    const statuses = await forgedChallenges(s.base, 35)
    expect(statuses.filter((x) => x === 429).length).toBe(5)
  })

  test('two clients behind the proxy have their own allowances', async () => {
    const s = await startServer({ config: { registerRatePerMin: 3, trustedProxies: '127.0.0.1' } })
    servers.push(s)
    const proxy = appendingProxy(s.base)
    expect(await forgedChallenges(proxy, 4, '127.0.0.7')).toEqual([200, 200, 200, 429])
    expect(await forgedChallenges(proxy, 4, '127.0.0.8')).toEqual([200, 200, 200, 429])
  })
})
