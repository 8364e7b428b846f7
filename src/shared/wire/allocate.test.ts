import { describe, expect, test } from 'bun:test'
import {
  ALLOCATE_REQUEST_LEN,
  ALLOCATE_RESPONSE_LEN,
  decodeAllocateRequest,
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
  test('request round trip and documented layout', () => {
    const b = encodeAllocateRequest({ transactionId: txid, ticket })
    expect(b.length).toBe(ALLOCATE_REQUEST_LEN)
    expect(Buffer.from(b.subarray(0, 8)).toString('hex')).toBe('4c52410101000000')
    expect(b.subarray(8, 20)).toEqual(txid)
    expect(b.subarray(20)).toEqual(ticket)
    expect(decodeAllocateRequest(b)).toEqual({ ok: true, value: { transactionId: txid, ticket } })
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
    expect(Buffer.from(b.subarray(0, 8)).toString('hex')).toBe('4c52410102000104')
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
    expect(decodeAllocateRequest(new Uint8Array(184))).toEqual({ ok: false, error: 'not-allocate' })
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
  })
})
