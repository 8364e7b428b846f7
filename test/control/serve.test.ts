// `lanrage serve` as users run it (a real process): its in-process relay registers a real address, so a client's
// Host header cannot choose where other members send their relay traffic.
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { join } from 'node:path'
import { unwatchControl, watchControl } from '../contract.ts'
import { call, registeredPeers, tempDir, type TestPeer } from './helpers.ts'

const BIN = join(import.meta.dir, '..', '..', 'bin', 'lanrage')
let proc: ReturnType<typeof Bun.spawn>
let base: string

beforeAll(async () => {
  const dir = tempDir()
  const s = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
  const port = s.port
  s.stop(true)
  const first = 40000 + Math.floor(Math.random() * 20000)
  proc = Bun.spawn(
    [BIN, 'serve', '--host', '127.0.0.1', '--port', String(port), '--db', join(dir, 'serve.db'), '--relay-port', '0', '--relay-stun-alt-port', '-1',
      '--relay-ports', `${first}-${first + 9}`, '--relay-metrics-port', '-1', '--register-rate-per-min', '1000'],
    { stdout: 'ignore', stderr: 'pipe', env: { ...process.env, LANRAGE_HOME: join(dir, 'home') } },
  )
  base = `http://127.0.0.1:${port}`
  watchControl(base)
  const deadline = Date.now() + 15_000
  while (Date.now() < deadline) {
    const health = await fetch(base + '/').then((r) => r.json() as Promise<{ relays?: number }>).catch(() => undefined)
    if ((health?.relays ?? 0) >= 1) return
    await Bun.sleep(50)
  }
  throw new Error(`lanrage serve did not register its relay: ${await new Response(proc.stderr as ReadableStream).text()}`)
})
afterAll(async () => {
  proc.kill('SIGTERM')
  await proc.exited
  unwatchControl(base)
})

test('the relay in offers and GET /relays is the relay’s own address, whatever Host the client sends', async () => {
  const [p, q] = (await registeredPeers(base, 2)) as [TestPeer, TestPeer]
  const pid = await p.createParty()
  expect((await q.join(pid)).status).toBe(200)
  const evil = { host: '203.0.113.66:8667' }
  const mine = await call(base, 'POST', `/parties/${pid}/relay`, { token: p.token, body: { peer_id: q.peerId }, headers: evil })
  expect(mine.status).toBe(200)
  expect(mine.body.relay.public_ip).toBe('127.0.0.1')
  const theirs = (await q.call('GET', `/parties/${pid}/signals`)).body.signals[0]
  expect(theirs.type).toBe('relay_offer')
  expect(theirs.data.relay.public_ip).toBe('127.0.0.1')
  const listed = await call(base, 'GET', '/relays', { token: q.token, headers: evil })
  expect(listed.body.relays.map((r: { public_ip: string }) => r.public_ip)).toEqual(['127.0.0.1'])
})
