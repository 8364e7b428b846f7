// RemoteControlPlane with several control URLs, over real HTTP and WebSocket on 127.0.0.1. Small servers that
// answer as told let us count which instance got each request and make one fail on demand (refuse connections,
// answer 5xx, drop the live channel); the same client against real `lanrage control` processes, one of them
// killed, is in control-remote.test.ts.
import { afterEach, describe, expect, test } from 'bun:test'
import { createLogger } from '../../src/shared/log.ts'
import { peerIdOf, RemoteControlPlane } from '../../src/client/control/remote.ts'
import { encodeKey, generateKeyPair, generatePrivateKey, parsePublicKey } from '../../src/client/wireguard/keys.ts'

interface Instance {
  url: string
  /** Requests answered, by path (registrations apart). */
  hits: string[]
  registrations: number
  /** Statuses to answer with next (then 200). */
  script: number[]
  /** Live channels opened. */
  sockets: number
  stop(): void
}

const servers: Instance[] = []
const clients: RemoteControlPlane[] = []
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close()
  for (const s of servers.splice(0)) s.stop()
})

const SERVER_KEY = encodeKey(generateKeyPair().publicKey)

/**
 * One "instance": answers GET / with its own name, /ws with a hello, and registers anyone (no proof checked: the
 * client registers again before reconnecting a live channel that failed before its hello). `stop()` refuses
 * connections from then on.
 */
function instance(name: string): Instance {
  const inst: Instance = { url: '', hits: [], registrations: 0, script: [], sockets: 0, stop: () => {} }
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    async fetch(req, srv) {
      const path = new URL(req.url).pathname
      if (path === '/ws') return srv.upgrade(req) ? undefined : new Response('no', { status: 400 })
      if (path === '/auth/challenge') return Response.json({ challenge: Buffer.alloc(32, 7).toString('base64'), server_public_key: SERVER_KEY })
      if (path === '/auth/register') {
        inst.registrations++
        const { public_key } = (await req.json()) as { public_key: string }
        return Response.json({ token: `t-${name}`, peer_id: peerIdOf(parsePublicKey(public_key)), expires_at: '' })
      }
      inst.hits.push(path)
      const status = inst.script.shift() ?? 200
      return Response.json(status === 200 ? { service: 'lanrage-control', status: 'ok', instance: name } : { error: { code: 'DOWN', message: `${name} is sick` } }, { status })
    },
    websocket: {
      open(ws) {
        inst.sockets++
        ws.send(JSON.stringify({ type: 'hello', peer_id: 'p', parties: [] }))
      },
      message() {},
    },
  })
  inst.url = `http://127.0.0.1:${server.port}`
  inst.stop = () => server.stop(true)
  servers.push(inst)
  return inst
}

/** A URL nothing listens on (a server started and stopped). */
function deadUrl(): string {
  const s = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response('') })
  const url = `http://127.0.0.1:${s.port}`
  s.stop(true)
  return url
}

// The retry policy's backoff is a minute: a test that finishes at all proves the failover did not wait for it.
const SLOW_BACKOFF = { baseMs: 60_000, maxMs: 60_000, attempts: 3 }

// A saved token: requests go out without a registration first.
const TOKEN = { token: 't', peer_id: 'p', expires_at: '' }

function client(url: string | string[], retry: Partial<{ baseMs: number; maxMs: number; attempts: number }> = SLOW_BACKOFF) {
  const c = new RemoteControlPlane({ url, privateKey: encodeKey(generatePrivateKey()), token: TOKEN, retry, reconnect: { baseMs: 10, maxMs: 40 } })
  clients.push(c)
  return c
}

describe('several control URLs', () => {
  test('the first one is used while it answers', async () => {
    const a = instance('a')
    const b = instance('b')
    const c = client([a.url, b.url])
    expect(c.urls).toEqual([a.url, b.url])
    for (let i = 0; i < 3; i++) expect(await c.health()).toMatchObject({ instance: 'a' })
    expect(a.hits).toEqual(['/', '/', '/'])
    expect(b.hits).toEqual([])
    expect(c.url).toBe(a.url)
  })

  test('a dead first instance: the request goes to the next at once, and the client stays there', async () => {
    const b = instance('b')
    const dead = deadUrl()
    const lines: string[] = []
    const log = createLogger('', 'warn', (l) => lines.push(l))
    const c = new RemoteControlPlane({ url: `${dead},${b.url}`, privateKey: encodeKey(generatePrivateKey()), token: TOKEN, retry: SLOW_BACKOFF, log })
    clients.push(c)
    expect(c.url).toBe(dead)
    expect(await c.health()).toMatchObject({ instance: 'b' })
    expect(c.url).toBe(b.url)
    expect(await c.health()).toMatchObject({ instance: 'b' })
    expect(b.hits).toEqual(['/', '/'])
    // one switch, said once: the second request did not try the dead instance first
    expect(lines.length).toBe(1)
    expect(lines[0]).toContain('control server failed, using the next one')
    expect(lines[0]).toContain(dead)
  })

  test('an instance that dies between requests: the next request fails over', async () => {
    const a = instance('a')
    const b = instance('b')
    const c = client([a.url, b.url])
    expect(await c.health()).toMatchObject({ instance: 'a' })
    a.stop()
    expect(await c.health()).toMatchObject({ instance: 'b' })
    expect(c.url).toBe(b.url)
  })

  test('a 5xx from one instance is tried on the next (its database may be the trouble), a 4xx is not', async () => {
    const a = instance('a')
    const b = instance('b')
    const c = client([a.url, b.url])
    a.script = [503]
    expect(await c.health()).toMatchObject({ instance: 'b' })
    expect([a.hits.length, b.hits.length]).toEqual([1, 1])
    b.script = [404]
    expect(await c.health().catch((e) => e)).toMatchObject({ code: 'CONTROL_NOT_FOUND', status: 404 })
    expect([a.hits.length, b.hits.length]).toEqual([1, 2])
  })

  test('every instance failing: each is tried in every round, then CONTROL_UNREACHABLE naming them all', async () => {
    const urls = [deadUrl(), deadUrl()]
    const c = client(urls, { baseMs: 5, maxMs: 10, attempts: 3 })
    const e = await c.health().catch((e) => e)
    expect(e).toMatchObject({ code: 'CONTROL_UNREACHABLE' })
    expect(e.message).toContain(`health: cannot reach any of ${urls.join(', ')} after 3 tries`)
  })

  test('5xx everywhere: rounds of one try per instance, then the last answer as a typed error', async () => {
    const a = instance('a')
    const b = instance('b')
    a.script = [500, 500, 500]
    b.script = [502, 502, 502]
    const c = client([a.url, b.url], { baseMs: 5, maxMs: 10, attempts: 3 })
    const e = await c.health().catch((e) => e)
    expect(e).toMatchObject({ code: 'CONTROL_SERVER_ERROR', serverCode: 'DOWN' })
    expect([a.hits.length, b.hits.length]).toEqual([3, 3])
  })

  test('the live channel: a dead first instance is skipped, and a dropped channel reconnects to the next instance', async () => {
    const a = instance('a')
    const b = instance('b')
    const c = client([deadUrl(), a.url, b.url])
    await c.connect(5000)
    expect([a.sockets, b.sockets]).toEqual([1, 0])
    expect(c.url).toBe(a.url)
    const back = c.next('connected', (e) => e.reconnect, 5000)
    a.stop()
    await back
    expect([a.sockets, b.sockets]).toEqual([1, 1])
    expect(c.url).toBe(b.url)
    // and requests follow the live channel there
    expect(await c.health()).toMatchObject({ instance: 'b' })
    expect(a.hits).toEqual([])
  })
})
