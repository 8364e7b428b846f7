// A request body that trickles (1 byte a second) is cut off after --body-timeout-s with 408 and the connection
// closed, instead of holding a connection and a pending request for as long as the client likes. Over raw TCP,
// because a fetch client cannot send a body this slowly.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import net from 'node:net'
import { registeredPeers, startServer, type TestPeer, type TestServer } from './helpers.ts'

let s: TestServer
let p: TestPeer
beforeAll(async () => {
  s = await startServer({ config: { bodyTimeoutS: 2 } })
  ;[p] = (await registeredPeers(s.base, 1)) as [TestPeer]
})
afterAll(() => s.stop())

/**
 * Sends `head`, then one byte of `body` a second (at most 20 s); resolves with what the server answered, how many
 * body bytes had been sent by then, and whether the server closed the connection.
 */
function trickle(head: string, body: string): Promise<{ answer: string; sent: number; closedByServer: boolean }> {
  const url = new URL(s.base)
  return new Promise((resolve) => {
    let answer = ''
    let sent = 0
    const sock = net.connect({ host: url.hostname, port: Number(url.port) })
    const finish = (closedByServer: boolean) => {
      clearInterval(drip)
      sock.destroy()
      resolve({ answer, sent, closedByServer })
    }
    sock.on('data', (d) => (answer += d))
    sock.on('end', () => finish(true))
    sock.on('error', () => finish(true))
    sock.write(head)
    const drip = setInterval(() => {
      if (sent >= body.length || sent >= 20) return finish(false)
      sock.write(body[sent++]!)
    }, 1000)
  })
}

describe('slow bodies', () => {
  const json = JSON.stringify({ name: 'a party with a name long enough to take a while' })

  test('a Content-Length body at 1 byte/s: 408 REQUEST_TIMEOUT long before it completes, then the connection closes', async () => {
    const head = `POST /parties HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${p.token}\r\nContent-Type: application/json\r\nContent-Length: ${json.length}\r\n\r\n`
    const r = await trickle(head, json)
    expect(r.answer).toStartWith('HTTP/1.1 408')
    expect(r.answer).toContain('"code":"REQUEST_TIMEOUT"')
    expect(r.closedByServer).toBe(true)
    expect(r.sent).toBeLessThan(json.length)
    expect((await p.call('GET', '/')).body.parties).toBe(0) // nothing was created
  }, 30_000)

  test('a chunked body at 1 byte/s, on a route without auth: 408 as well', async () => {
    const body = `${(json.length).toString(16)}\r\n${json}\r\n0\r\n\r\n`
    const head = 'POST /auth/challenge HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n'
    const r = await trickle(head, body)
    expect(r.answer).toStartWith('HTTP/1.1 408')
    expect(r.closedByServer).toBe(true)
    expect(r.sent).toBeLessThan(body.length)
  }, 30_000)

  test('a body that arrives in time is served as usual', async () => {
    const r = await p.call('POST', '/parties', { name: 'quick' })
    expect(r.status).toBe(201)
  })
})
