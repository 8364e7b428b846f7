// A WebSocket lives no longer than its token, one token holds a bounded number of sockets, and the token can
// travel in Sec-WebSocket-Protocol instead of the URL.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import net from 'node:net'
import { registeredPeers, startServer, TestPeer, TestSocket, unb64, type TestServer } from './helpers.ts'

let s: TestServer
beforeAll(async () => {
  s = await startServer({ config: { registerRatePerMin: 10_000, maxSocketsPerToken: 4 } })
})
afterAll(() => s.stop())

const wsUrl = () => s.base.replace('http', 'ws') + '/ws'
async function closed(sock: TestSocket, ms = 2000) {
  for (let i = 0; i < ms / 10 && !sock.closed; i++) await Bun.sleep(10)
  return sock.closed
}
const clients = async () => ((await fetch(s.base + '/').then((r) => r.json())) as { ws_clients: number }).ws_clients

describe('a socket ends with its token', () => {
  test('POST /auth/refresh closes the old token’s sockets (4001 "token refreshed"); they hear nothing more', async () => {
    const [a, b] = (await registeredPeers(s.base, 2)) as [TestPeer, TestPeer]
    const id = await a.createParty()
    const old = await a.ws()
    await old.next()
    const oldToken = a.token
    const r = await a.call('POST', '/auth/refresh')
    expect(r.status).toBe(200)
    a.token = r.body.token
    expect(await closed(old)).toEqual({ code: 4001, reason: 'token refreshed' })
    const fresh = await a.ws()
    await fresh.next()
    await b.join(id)
    expect((await fresh.next()).type).toBe('peer_joined')
    expect(await old.pending()).toEqual([])
    // The old token opens nothing either.
    await expect(TestSocket.open(`${wsUrl()}?token=${encodeURIComponent(oldToken)}`)).rejects.toThrow('failed to open')
    fresh.close()
  })

  test('an expired token’s socket is closed at its next message, before any cleanup pass', async () => {
    const t = await startServer({ config: { tokenTtlS: 60 } })
    try {
      const [a, b] = (await registeredPeers(t.base, 2)) as [TestPeer, TestPeer]
      const id = await a.createParty({ name: 'lan', host_peer_info: { public_endpoint: '203.0.113.9:51820' } })
      await b.join(id)
      const sock = await a.ws()
      await sock.next()
      t.clock.advance(60_000)
      sock.send({ type: 'signal', party_id: id, to_peer_id: b.peerId, signal_type: 'punch', data: { at: 1 } })
      expect(await closed(sock)).toEqual({ code: 4001, reason: 'token expired or revoked' })
      expect((await b.call('GET', `/parties/${id}/signals`)).status).toBe(401) // b's token expired as well
    } finally {
      await t.stop()
    }
  })

  test('the cleanup pass closes the sockets of a token once it expires', async () => {
    const t = await startServer({ config: { tokenTtlS: 60 } })
    try {
      const [a] = (await registeredPeers(t.base, 1)) as [TestPeer]
      const sock = await a.ws()
      await sock.next()
      t.clock.advance(59_000)
      expect(t.service.cleanup()).toBeDefined()
      expect(sock.closed).toBeUndefined()
      t.clock.advance(1_000)
      t.service.cleanup()
      expect(await closed(sock)).toEqual({ code: 4001, reason: 'token expired' })
    } finally {
      await t.stop()
    }
  })
})

describe('sockets per token', () => {
  test('50 sockets on one token: the oldest are closed with 4008, 4 stay, and an event is sent 4 times', async () => {
    const [a, b] = (await registeredPeers(s.base, 2)) as [TestPeer, TestPeer]
    const id = await a.createParty()
    const before = await clients()
    const socks: TestSocket[] = []
    for (let i = 0; i < 50; i++) {
      socks.push(await a.ws())
      await socks[i]!.next()
    }
    for (const sock of socks.slice(0, 46)) expect(await closed(sock)).toEqual({ code: 4008, reason: 'too many sockets for this token' })
    expect(socks.slice(46).map((x) => x.closed)).toEqual([undefined, undefined, undefined, undefined])
    expect(await clients()).toBe(before + 4)
    await b.join(id)
    let delivered = 0
    for (const sock of socks) delivered += (await sock.pending()).filter((m) => m.type === 'peer_joined').length
    expect(delivered).toBe(4)
    for (const sock of socks) sock.close()
  })

  test('another token of the same peer has its own allowance', async () => {
    const [a] = (await registeredPeers(s.base, 1)) as [TestPeer]
    const twin = await new TestPeer(s.base, { secretKey: new Uint8Array(a.secretKey), publicKey: new Uint8Array(unb64(a.publicKey)) }).register()
    const mine = [await a.ws(), await a.ws()]
    const theirs = [await twin.ws(), await twin.ws(), await twin.ws(), await twin.ws()]
    await Bun.sleep(50)
    expect([...mine, ...theirs].map((x) => x.closed)).toEqual(Array(6).fill(undefined))
    for (const x of [...mine, ...theirs]) x.close()
  })
})

/** Sends a WebSocket upgrade over raw TCP and returns the response head. */
function rawUpgrade(protocols: string): Promise<string> {
  const url = new URL(s.base)
  return new Promise((resolve, reject) => {
    let got = ''
    const sock = net.connect({ host: url.hostname, port: Number(url.port) })
    sock.setTimeout(5000, () => sock.destroy(new Error('no answer')))
    sock.on('error', reject)
    sock.on('data', (d) => {
      got += d
      const end = got.indexOf('\r\n\r\n')
      if (end >= 0) {
        sock.destroy()
        resolve(got.slice(0, end + 2))
      }
    })
    sock.write(
      `GET /ws HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n` +
        `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ${protocols}\r\n\r\n`,
    )
  })
}

describe('token in Sec-WebSocket-Protocol', () => {
  function open(protocols: string[]): Promise<{ ws: WebSocket; first: unknown }> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(wsUrl(), protocols)
      ws.onmessage = (e) => resolve({ ws, first: JSON.parse(String(e.data)) })
      ws.onerror = () => reject(new Error('failed to open'))
    })
  }

  test('["lanrage", "bearer.<token>"] opens the socket; the server answers "lanrage", never the token', async () => {
    const [a] = (await registeredPeers(s.base, 1)) as [TestPeer]
    const { ws, first } = await open(['lanrage', `bearer.${a.token}`])
    expect(ws.protocol).toBe('lanrage')
    expect(first).toEqual({ type: 'hello', peer_id: a.peerId, parties: [] })
    ws.close()
    // The handshake answer itself, read off a raw TCP connection.
    const head = await rawUpgrade(`lanrage, bearer.${a.token}`)
    expect(head).toStartWith('HTTP/1.1 101')
    expect(head.toLowerCase()).toContain('\r\nsec-websocket-protocol: lanrage\r\n')
    expect(head).not.toContain(a.token)
  })

  test('a wrong token, or a token without the "lanrage" protocol, is refused; ?token= still works', async () => {
    const [a] = (await registeredPeers(s.base, 1)) as [TestPeer]
    await expect(open(['lanrage', 'bearer.wrong'])).rejects.toThrow('failed to open')
    await expect(open([`bearer.${a.token}`])).rejects.toThrow('failed to open')
    const q = await a.ws()
    expect((await q.next()).type).toBe('hello')
    q.close()
  })
})
