/**
 * ALLOCATE: how a peer claims its side of a relay session on the relay's main UDP port (DESIGN.md "Relay").
 * The peer sends the 164-byte ticket the control server signed for it (ticket.ts); the relay answers with the
 * UDP port of that side. The peer then points its WireGuard endpoint for the other peer at relay_ip:port.
 *
 * The main port also carries STUN, and WireGuard never talks to it, so a message must be told apart from both
 * by its first bytes: STUN starts with two zero bits and has the magic cookie 0x2112A442 at offset 4
 * (RFC 8489 §5); WireGuard messages start with a little-endian u32 type 1..4 (bytes `0x01..0x04 00 00 00`,
 * WireGuard whitepaper §5.4). ALLOCATE starts with the ASCII bytes "LRA" (0x4C: top bits 01, so never STUN)
 * followed by a version byte, so it is neither.
 *
 * Request, 184 bytes (integers big endian):
 *
 *   offset  size  field
 *   0       4     magic              "LRA" 0x01  (4C 52 41 01: ALLOCATE version 1)
 *   4       1     kind               0x01 = request
 *   5       3     reserved           zero
 *   8       12    transaction id     random; echoed in the response so retries can be matched
 *   20      164   ticket             exactly as signed by the control server (ticket.ts)
 *
 * Response, 60 bytes:
 *
 *   offset  size  field
 *   0       4     magic              "LRA" 0x01
 *   4       1     kind               0x02 = response
 *   5       1     status             0 ok; otherwise an AllocateStatus code (below)
 *   6       1     side               0 = a, 1 = b, 0xFF = unknown (ticket unreadable)
 *   7       1     address family     4 or 6: the family of the observed source address
 *   8       12    transaction id     copied from the request
 *   20      2     session port       the relay UDP port for this side (0 unless status is ok)
 *   22      2     observed port      the source port the relay saw the request come from
 *   24      4     idle timeout       seconds without traffic after which the relay frees the session
 *   28      16    session id         from the ticket (zeros when the ticket was unreadable)
 *   44      16    observed address   IPv4 in the first 4 bytes (rest zero) or IPv6 in all 16
 *
 * The response is smaller than the request (no amplification). ALLOCATE is idempotent: a retry with the same
 * ticket from the same source IP gets the same port. Decoding never throws.
 */
import { formatIp, parseIp, unmapIp, type AddrPort } from './stun.ts'
import { TICKET_LEN, type Side } from './ticket.ts'

export const ALLOCATE_MAGIC = Uint8Array.of(0x4c, 0x52, 0x41, 0x01)
export const ALLOCATE_REQUEST = 0x01
export const ALLOCATE_RESPONSE = 0x02
export const ALLOCATE_REQUEST_LEN = 20 + TICKET_LEN
export const ALLOCATE_RESPONSE_LEN = 60

/** Status codes in a response; the names are the relay's drop reasons where one applies. */
export const ALLOCATE_STATUS = {
  ok: 0,
  bad_ticket: 1, // unreadable or badly signed
  expired_ticket: 2,
  wrong_relay: 3, // signed for another relay
  no_control_key: 4, // the relay does not know a control server's ticket key yet
  no_ports: 5, // the session port range is exhausted (or capacity reached)
  side_taken: 6, // this side is already held from another source IP
  malformed: 7,
} as const
export type AllocateStatus = keyof typeof ALLOCATE_STATUS
const STATUS_BY_CODE = new Map<number, AllocateStatus>(Object.entries(ALLOCATE_STATUS).map(([k, v]) => [v, k as AllocateStatus] as const))

export interface AllocateRequest {
  transactionId: Uint8Array // 12
  ticket: Uint8Array // 164
}
export interface AllocateResponse {
  transactionId: Uint8Array // 12
  status: AllocateStatus
  side: Side | null
  sessionPort: number
  observed: AddrPort
  idleTimeoutSec: number
  sessionId: Uint8Array // 16
}

export type AllocateDecodeError = 'short' | 'not-allocate' | 'bad-kind' | 'bad-length' | 'bad-status' | 'bad-address'
export type Decoded<T> = { ok: true; value: T } | { ok: false; error: AllocateDecodeError }

/** Cheap prefilter for the relay's main port. */
export function isAllocate(b: Uint8Array): boolean {
  return b.length >= 5 && b[0] === 0x4c && b[1] === 0x52 && b[2] === 0x41 && b[3] === 0x01
}

export function encodeAllocateRequest(r: AllocateRequest): Uint8Array {
  if (r.transactionId.length !== 12) throw new TypeError('an ALLOCATE transaction id is 12 bytes')
  if (r.ticket.length !== TICKET_LEN) throw new TypeError(`a ticket is ${TICKET_LEN} bytes`)
  const out = new Uint8Array(ALLOCATE_REQUEST_LEN)
  out.set(ALLOCATE_MAGIC, 0)
  out[4] = ALLOCATE_REQUEST
  out.set(r.transactionId, 8)
  out.set(r.ticket, 20)
  return out
}

export function decodeAllocateRequest(b: Uint8Array): Decoded<AllocateRequest> {
  if (b.length < 5) return { ok: false, error: 'short' }
  if (!isAllocate(b)) return { ok: false, error: 'not-allocate' }
  if (b[4] !== ALLOCATE_REQUEST) return { ok: false, error: 'bad-kind' }
  if (b.length !== ALLOCATE_REQUEST_LEN) return { ok: false, error: 'bad-length' }
  return { ok: true, value: { transactionId: b.slice(8, 20), ticket: b.slice(20, 20 + TICKET_LEN) } }
}

export function encodeAllocateResponse(r: AllocateResponse): Uint8Array {
  if (r.transactionId.length !== 12 || r.sessionId.length !== 16) throw new TypeError('bad transaction or session id length')
  const ip = parseIp(unmapIp(r.observed.address))
  if (!ip) throw new TypeError(`not an IP address: ${JSON.stringify(r.observed.address)}`)
  const out = new Uint8Array(ALLOCATE_RESPONSE_LEN)
  const dv = new DataView(out.buffer)
  out.set(ALLOCATE_MAGIC, 0)
  out[4] = ALLOCATE_RESPONSE
  out[5] = ALLOCATE_STATUS[r.status]
  out[6] = r.side === 'a' ? 0 : r.side === 'b' ? 1 : 0xff
  out[7] = ip.length === 4 ? 4 : 6
  out.set(r.transactionId, 8)
  dv.setUint16(20, r.sessionPort)
  dv.setUint16(22, r.observed.port)
  dv.setUint32(24, r.idleTimeoutSec >>> 0)
  out.set(r.sessionId, 28)
  out.set(ip, 44)
  return out
}

export function decodeAllocateResponse(b: Uint8Array): Decoded<AllocateResponse> {
  if (b.length < 5) return { ok: false, error: 'short' }
  if (!isAllocate(b)) return { ok: false, error: 'not-allocate' }
  if (b[4] !== ALLOCATE_RESPONSE) return { ok: false, error: 'bad-kind' }
  if (b.length !== ALLOCATE_RESPONSE_LEN) return { ok: false, error: 'bad-length' }
  const status = STATUS_BY_CODE.get(b[5]!)
  if (!status) return { ok: false, error: 'bad-status' }
  const fam = b[7]
  if (fam !== 4 && fam !== 6) return { ok: false, error: 'bad-address' }
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength)
  return {
    ok: true,
    value: {
      transactionId: b.slice(8, 20),
      status,
      side: b[6] === 0 ? 'a' : b[6] === 1 ? 'b' : null,
      sessionPort: dv.getUint16(20),
      observed: { address: formatIp(b.subarray(44, fam === 4 ? 48 : 60)), port: dv.getUint16(22), family: fam === 4 ? 'IPv4' : 'IPv6' },
      idleTimeoutSec: dv.getUint32(24),
      sessionId: b.slice(28, 44),
    },
  }
}
