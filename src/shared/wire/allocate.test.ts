import { describe, expect, test } from 'bun:test'
import {
  ALLOCATE_COOKIE_LEN,
  ALLOCATE_REQUEST_LEN,
  ALLOCATE_RESPONSE_LEN,
  AllocateExchange,
  decodeAllocateCookie,
  decodeAllocateRequest,
  encodeAllocateCookie,
  decodeAllocateResponse,
  encodeAllocateRequest,
  encodeAllocateResponse,
  isAllocate,
  type AllocateResponse,
} from './allocate.ts'
import { encodeBindingRequest, isStun } from './stun.ts'
import { TICKET_LEN } from './ticket.ts'
import { wgMessageType } from './wireguard.ts'

const txid = Uint8Array.from({ length: 12 }, (_, i) => i + 1)
const ticket = Uint8Array.from({ length: TICKET_LEN }, (_, i) => (i * 7) & 0xff)

describe('ALLOCATE wire format', () => {
  test('request round trip and documented layout (version 2: 200 bytes, cookie at 20, ticket at 36)', () => {
    const cookie = new Uint8Array(16).fill(0xcc)
    const b = encodeAllocateRequest({ transactionId: txid, ticket, cookie })
    expect(b.length).toBe(ALLOCATE_REQUEST_LEN)
    expect(b.length).toBe(200)
    expect(Buffer.from(b.subarray(0, 8)).toString('hex')).toBe('4c52410201000000')
    expect(b.subarray(8, 20)).toEqual(txid)
    expect(b.subarray(20, 36)).toEqual(cookie)
    expect(b.subarray(36)).toEqual(ticket)
    expect(decodeAllocateRequest(b)).toEqual({ ok: true, value: { transactionId: txid, cookie, ticket } })
    // Without a cookie the field is zero.
    expect(encodeAllocateRequest({ transactionId: txid, ticket }).subarray(20, 36)).toEqual(new Uint8Array(16))
  })

  test('cookie reply round trip and layout: 36 bytes, smaller than the request', () => {
    const cookie = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i)
    const b = encodeAllocateCookie({ transactionId: txid, cookie })
    expect(b.length).toBe(ALLOCATE_COOKIE_LEN)
    expect(b.length).toBe(36)
    expect(b.length).toBeLessThan(ALLOCATE_REQUEST_LEN)
    expect(Buffer.from(b.subarray(0, 8)).toString('hex')).toBe('4c52410203000000')
    expect(b.subarray(8, 20)).toEqual(txid)
    expect(b.subarray(20, 36)).toEqual(cookie)
    expect(decodeAllocateCookie(b)).toEqual({ ok: true, value: { transactionId: txid, cookie } })
    expect(decodeAllocateCookie(b.subarray(0, 35))).toEqual({ ok: false, error: 'bad-length' })
    expect(decodeAllocateResponse(b)).toEqual({ ok: false, error: 'bad-kind' })
  })

  test.each([
    { status: 'ok', side: 'a', observed: { address: '198.51.100.7', port: 40123, family: 'IPv4' } },
    { status: 'ok', side: 'b', observed: { address: '2001:db8::7', port: 1, family: 'IPv6' } },
    { status: 'expired_ticket', side: null, observed: { address: '10.0.0.1', port: 65535, family: 'IPv4' } },
  ] as const)('response round trip: $status side=$side $observed.address', (c) => {
    const r: AllocateResponse = {
      transactionId: txid,
      status: c.status,
      side: c.side,
      sessionPort: c.status === 'ok' ? 52001 : 0,
      observed: { ...c.observed },
      idleTimeoutSec: 300,
      sessionId: new Uint8Array(16).fill(9),
    }
    const b = encodeAllocateResponse(r)
    expect(b.length).toBe(ALLOCATE_RESPONSE_LEN)
    expect(b.length).toBeLessThan(ALLOCATE_REQUEST_LEN) // never an amplifier
    expect(decodeAllocateResponse(b)).toEqual({ ok: true, value: r })
  })

  test('response layout offsets', () => {
    const b = encodeAllocateResponse({
      transactionId: txid,
      status: 'ok',
      side: 'b',
      sessionPort: 0x1234,
      observed: { address: '1.2.3.4', port: 0xabcd, family: 'IPv4' },
      idleTimeoutSec: 300,
      sessionId: new Uint8Array(16).fill(5),
    })
    expect(Buffer.from(b.subarray(0, 8)).toString('hex')).toBe('4c52410202000104')
    expect(Buffer.from(b.subarray(20, 28)).toString('hex')).toBe('1234abcd0000012c')
    expect(Buffer.from(b.subarray(44, 48)).toString('hex')).toBe('01020304')
  })

  test('is told apart from STUN and WireGuard both ways', () => {
    const alloc = encodeAllocateRequest({ transactionId: txid, ticket })
    expect(isStun(alloc)).toBe(false)
    expect(wgMessageType(alloc)).toBeNull()
    expect(isAllocate(encodeBindingRequest())).toBe(false)
    for (const t of [1, 2, 3, 4]) expect(isAllocate(new Uint8Array([t, 0, 0, 0, ...new Array(144).fill(0)]))).toBe(false)
  })

  test('bad input is refused with a reason, never thrown', () => {
    const req = encodeAllocateRequest({ transactionId: txid, ticket })
    expect(decodeAllocateRequest(req.subarray(0, 3))).toEqual({ ok: false, error: 'short' })
    expect(decodeAllocateRequest(req.subarray(0, 100))).toEqual({ ok: false, error: 'bad-length' })
    expect(decodeAllocateRequest(new Uint8Array(200))).toEqual({ ok: false, error: 'not-allocate' })
    const v1 = req.slice()
    v1[3] = 1 // the 184-byte version 1 layout is gone; its magic still reads as ALLOCATE, to be answered malformed
    expect(isAllocate(v1)).toBe(true)
    expect(decodeAllocateRequest(v1)).toEqual({ ok: false, error: 'bad-version' })
    const kind = req.slice()
    kind[4] = 2
    expect(decodeAllocateRequest(kind)).toEqual({ ok: false, error: 'bad-kind' })
    const res = encodeAllocateResponse({
      transactionId: txid,
      status: 'ok',
      side: 'a',
      sessionPort: 1,
      observed: { address: '1.2.3.4', port: 1, family: 'IPv4' },
      idleTimeoutSec: 1,
      sessionId: new Uint8Array(16),
    })
    const st = res.slice()
    st[5] = 99
    expect(decodeAllocateResponse(st)).toEqual({ ok: false, error: 'bad-status' })
    const fam = res.slice()
    fam[7] = 5
    expect(decodeAllocateResponse(fam)).toEqual({ ok: false, error: 'bad-address' })
    expect(decodeAllocateResponse(req)).toEqual({ ok: false, error: 'bad-kind' })
  })

  test('encoders refuse wrong-size fields', () => {
    expect(() => encodeAllocateRequest({ transactionId: new Uint8Array(11), ticket })).toThrow('transaction id is 12 bytes')
    expect(() => encodeAllocateRequest({ transactionId: txid, ticket: ticket.subarray(1) })).toThrow('a ticket is 164 bytes')
    expect(() => encodeAllocateRequest({ transactionId: txid, ticket, cookie: new Uint8Array(15) })).toThrow('a cookie is 16 bytes')
  })

  test('decoding random bytes never throws', () => {
    for (let i = 0; i < 3000; i++) {
      const b = crypto.getRandomValues(new Uint8Array([36, 60, 200][i % 3]! + (i % 7 === 0 ? 1 : 0)))
      if (i % 2) b.set([0x4c, 0x52, 0x41, 0x02, (i % 4) as number], 0)
      expect(() => [decodeAllocateRequest(b), decodeAllocateResponse(b), decodeAllocateCookie(b)]).not.toThrow()
    }
  })
})

describe('AllocateExchange (the client side, no sockets)', () => {
  const response = (status: AllocateResponse['status'], id = txid) =>
    encodeAllocateResponse({
      transactionId: id,
      status,
      side: 'a',
      sessionPort: status === 'ok' ? 52000 : 0,
      observed: { address: '1.2.3.4', port: 9, family: 'IPv4' },
      idleTimeoutSec: 300,
      sessionId: new Uint8Array(16),
    })

  test('first request without a cookie; a cookie reply makes the next request echo it; then the response ends it', () => {
    const x = new AllocateExchange(ticket, txid)
    expect(decodeAllocateRequest(x.request())).toEqual({ ok: true, value: { transactionId: txid, cookie: new Uint8Array(16), ticket } })
    const cookie = new Uint8Array(16).fill(7)
    expect(x.receive(encodeAllocateCookie({ transactionId: txid, cookie }))).toEqual({ kind: 'resend' })
    expect(decodeAllocateRequest(x.request())).toEqual({ ok: true, value: { transactionId: txid, cookie, ticket } })
    expect(x.receive(response('busy'))).toEqual({ kind: 'busy' })
    const done = x.receive(response('ok'))
    expect(done?.kind === 'done' && done.response.sessionPort).toBe(52000)
    expect(x.receive(response('side_taken'))).toMatchObject({ kind: 'done', response: { status: 'side_taken' } })
  })

  test('answers to other transactions, and garbage, are ignored', () => {
    const x = new AllocateExchange(ticket, txid)
    const other = new Uint8Array(12).fill(0xee)
    expect(x.receive(encodeAllocateCookie({ transactionId: other, cookie: new Uint8Array(16).fill(1) }))).toBeNull()
    expect(decodeAllocateRequest(x.request()).ok && x.request().subarray(20, 36).every((b) => b === 0)).toBe(true)
    expect(x.receive(response('ok', other))).toBeNull()
    expect(x.receive(new Uint8Array([0x4c, 0x52, 0x41]))).toBeNull()
    expect(x.receive(encodeBindingRequest())).toBeNull()
  })
})
