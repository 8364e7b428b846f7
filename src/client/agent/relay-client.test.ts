// ALLOCATE from the agent's side, against a real UDP responder on 127.0.0.1 speaking the shared codec.
import { afterEach, describe, expect, test } from 'bun:test'
import { decodeAllocateRequest, encodeAllocateCookie, encodeAllocateResponse, type AllocateStatus } from '../../shared/wire/allocate.ts'
import { TICKET_LEN } from '../../shared/wire/ticket.ts'
import { allocate, RelayError, ticketBytes } from './relay-client.ts'

const sockets: { close(): void }[] = []
afterEach(() => {
  for (const s of sockets.splice(0)) s.close()
})

const TICKET = Buffer.from(Uint8Array.from({ length: TICKET_LEN }, (_, i) => i)).toString('base64url')

/**
 * A loopback relay main port that answers ALLOCATE as `answer` says (null: stay silent this time). With `cookie`,
 * a request that does not echo it gets the cookie reply first, as a real relay answers an unproved source.
 */
async function fakeRelay(answer: (n: number) => { status: AllocateStatus; port: number; txid?: Uint8Array } | null, cookie?: Uint8Array) {
  const seen: Uint8Array[] = []
  const cookies: Uint8Array[] = []
  const s = await Bun.udpSocket({
    hostname: '127.0.0.1',
    binaryType: 'uint8array',
    socket: {
      data(sock, data, port, address) {
        const r = decodeAllocateRequest(data)
        if (!r.ok) return
        cookies.push(r.value.cookie.slice())
        if (cookie && !Buffer.from(r.value.cookie).equals(Buffer.from(cookie)))
          return void sock.send(encodeAllocateCookie({ transactionId: r.value.transactionId, cookie }), port, address)
        seen.push(r.value.ticket)
        const a = answer(seen.length)
        if (!a) return
        const resp = encodeAllocateResponse({
          transactionId: a.txid ?? r.value.transactionId,
          status: a.status,
          side: 'a',
          sessionPort: a.port,
          observed: { address, port, family: 'IPv4' },
          idleTimeoutSec: 300,
          sessionId: new Uint8Array(16),
        })
        sock.send(resp, port, address)
      },
      error() {},
    },
  })
  sockets.push(s)
  return { relay: { host: '127.0.0.1', port: s.port }, seen, cookies }
}

describe('ALLOCATE', () => {
  test('sends the ticket bytes and resolves with the session port', async () => {
    const { relay, seen } = await fakeRelay(() => ({ status: 'ok', port: 52001 }))
    expect(await allocate(relay, TICKET)).toBe(52001)
    expect(Buffer.from(seen[0]!).toString('base64url')).toBe(TICKET)
  })

  test('echoes the relay\'s cookie at once (no wait for the next retransmission), then gets the port', async () => {
    const cookie = new Uint8Array(16).fill(0x5c)
    const { relay, cookies } = await fakeRelay(() => ({ status: 'ok', port: 52004 }), cookie)
    // One try: without the immediate resend on the cookie this would end in RELAY_TIMEOUT.
    expect(await allocate(relay, TICKET, { rtoMs: 3000, attempts: 1 })).toBe(52004)
    expect(cookies.map((c) => Buffer.from(c).toString('hex'))).toEqual(['00'.repeat(16), '5c'.repeat(16)])
  }, 10_000)

  test('a busy relay is asked again on the retransmission schedule; every try carries the cookie', async () => {
    const cookie = new Uint8Array(16).fill(0x77)
    const { relay, cookies } = await fakeRelay((n) => (n < 3 ? { status: 'busy', port: 0 } : { status: 'ok', port: 52005 }), cookie)
    expect(await allocate(relay, TICKET, { rtoMs: 30, attempts: 6 })).toBe(52005)
    expect(cookies.slice(1).every((c) => c.every((b) => b === 0x77))).toBe(true)
    const always = await fakeRelay(() => ({ status: 'busy', port: 0 }))
    const err = await allocate(always.relay, TICKET, { rtoMs: 10, attempts: 3 }).catch((e) => e)
    expect(err.code).toBe('RELAY_TIMEOUT')
    expect(err.message).toContain('answered busy to every try')
  })

  test('retransmits when a request or answer is lost', async () => {
    const { relay, seen } = await fakeRelay((n) => (n < 3 ? null : { status: 'ok', port: 52002 }))
    expect(await allocate(relay, TICKET, { rtoMs: 50, attempts: 5 })).toBe(52002)
    expect(seen.length).toBe(3)
  })

  test('a refusal names the relay and the reason', async () => {
    const { relay } = await fakeRelay(() => ({ status: 'expired_ticket', port: 0 }))
    const err = await allocate(relay, TICKET).catch((e) => e)
    expect(err).toBeInstanceOf(RelayError)
    expect(err.code).toBe('RELAY_REFUSED')
    expect(err.message).toContain(`relay 127.0.0.1:${relay.port} refused the allocation: expired_ticket`)
  })

  test('an answer to another transaction is ignored, and silence times out', async () => {
    const { relay, seen } = await fakeRelay(() => ({ status: 'ok', port: 52003, txid: new Uint8Array(12) }))
    const err = await allocate(relay, TICKET, { rtoMs: 20, attempts: 3 }).catch((e) => e)
    expect(err.code).toBe('RELAY_TIMEOUT')
    expect(err.message).toContain('did not answer ALLOCATE (3 tries)')
    expect(seen.length).toBe(3)
  })

  test.each([
    ['not base64url', 'ab+/'],
    ['too short', Buffer.alloc(TICKET_LEN - 1).toString('base64url')],
    ['empty', ''],
  ])('a ticket that is %s is refused before sending', async (_n, t) => {
    expect(ticketBytes(t)).toBeNull()
    const err = await allocate({ host: '127.0.0.1', port: 9 }, t).catch((e) => e)
    expect(err.code).toBe('BAD_TICKET')
  })
})
