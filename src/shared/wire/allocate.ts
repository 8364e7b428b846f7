/**
 * ALLOCATE: how a peer claims its side of a relay session on the relay's main UDP port. The peer sends the
 * 164-byte ticket the control server signed for it (ticket.ts); the relay answers with the UDP port of that side.
 * The peer then points its WireGuard endpoint for the other peer at relay_ip:port.
 *
 * Return routability first: a request whose source has not proved that it receives at its address gets only a
 * cookie (an HMAC of the source address and port, the ticket's session id and side, and a coarse time, under a
 * secret only the relay knows), in a reply smaller than the request; the side is claimed by a request that echoes
 * it. A spoofed source never sees the cookie, so it can neither claim a side for the address it forges nor get
 * that address blocked. This is the pattern of WireGuard's cookie reply (whitepaper §5.4.7), DTLS's
 * HelloVerifyRequest (RFC 6347 §4.2.1) and QUIC's Retry (RFC 9000 §8.1.2).
 *
 * The main port also carries STUN, and WireGuard never talks to it, so a message must be told apart from both
 * by its first bytes: STUN starts with two zero bits and has the magic cookie 0x2112A442 at offset 4
 * (RFC 8489 §5); WireGuard messages start with a little-endian u32 type 1..4 (bytes `0x01..0x04 00 00 00`,
 * WireGuard whitepaper §5.4). ALLOCATE starts with the ASCII bytes "LRA" (0x4C: top bits 01, so never STUN)
 * followed by a version byte, so it is neither.
 *
 * Request, 200 bytes (integers big endian):
 *
 *   offset  size  field
 *   0       4     magic              "LRA" 0x02  (4C 52 41 02: ALLOCATE version 2)
 *   4       1     kind               0x01 = request
 *   5       3     reserved           zero
 *   8       12    transaction id     random; echoed in the answer so retries can be matched
 *   20      16    cookie             zeros, or the cookie the relay answered this source with
 *   36      164   ticket             exactly as signed by the control server (ticket.ts)
 *
 * Cookie reply, 36 bytes (the relay's answer to a request without a valid cookie):
 *
 *   0       4     magic              "LRA" 0x02
 *   4       1     kind               0x03 = cookie
 *   5       3     reserved           zero
 *   8       12    transaction id     copied from the request
 *   20      16    cookie             echo it in the same request, sent again
 *
 * Response, 60 bytes:
 *
 *   offset  size  field
 *   0       4     magic              "LRA" 0x02
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
 * Every answer is smaller than the request it answers (no amplification). ALLOCATE is idempotent: a retry with
 * the same ticket from the same source IP gets the same port. Decoding never throws.
 */
import { formatIp, parseIp, unmapIp, type AddrPort } from './stun.ts'
import { TICKET_LEN, type Side } from './ticket.ts'

export const ALLOCATE_VERSION = 0x02
export const ALLOCATE_MAGIC = Uint8Array.of(0x4c, 0x52, 0x41, ALLOCATE_VERSION)
export const ALLOCATE_REQUEST = 0x01
export const ALLOCATE_RESPONSE = 0x02
export const ALLOCATE_COOKIE = 0x03
export const COOKIE_LEN = 16
export const ALLOCATE_REQUEST_LEN = 36 + TICKET_LEN
export const ALLOCATE_RESPONSE_LEN = 60
export const ALLOCATE_COOKIE_LEN = 20 + COOKIE_LEN
/** Where a request carries its cookie and its ticket. */
export const ALLOCATE_COOKIE_AT = 20
export const ALLOCATE_TICKET_AT = 36
const TICKET_AT = ALLOCATE_TICKET_AT

/** Status codes in a response; the names are the relay's drop reasons where one applies. */
export const ALLOCATE_STATUS = {
  ok: 0,
  bad_ticket: 1, // unreadable or badly signed
  expired_ticket: 2,
  wrong_relay: 3, // signed for another relay
  no_control_key: 4, // the relay does not know a control server's ticket key yet
  no_ports: 5, // the session port range is exhausted (or capacity reached)
  side_taken: 6, // this side is already held from another source IP
  malformed: 7, // not a version 2 request of 200 bytes (answered only to requests of at least 60 bytes)
  busy: 8, // the relay's ticket checks per second are spent: send the same request again later
} as const
export type AllocateStatus = keyof typeof ALLOCATE_STATUS
const STATUS_BY_CODE = new Map<number, AllocateStatus>(Object.entries(ALLOCATE_STATUS).map(([k, v]) => [v, k as AllocateStatus] as const))

export interface AllocateRequest {
  transactionId: Uint8Array // 12
  /** 16 zero bytes when the client has no cookie yet. */
  cookie: Uint8Array // 16
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
export interface AllocateCookie {
  transactionId: Uint8Array // 12
  cookie: Uint8Array // 16
}

export type AllocateDecodeError = 'short' | 'not-allocate' | 'bad-version' | 'bad-kind' | 'bad-length' | 'bad-status' | 'bad-address'
export type Decoded<T> = { ok: true; value: T } | { ok: false; error: AllocateDecodeError }

/** Cheap prefilter for the relay's main port: "LRA" and a version byte, any version (others are answered malformed). */
export function isAllocate(b: Uint8Array): boolean {
  return b.length >= 4 && b[0] === 0x4c && b[1] === 0x52 && b[2] === 0x41
}

/** Why `b` is not a well-formed request, or null when it is (no allocation: the relay calls it for every one). */
export function allocateRequestError(b: Uint8Array): AllocateDecodeError | null {
  return header(b, ALLOCATE_REQUEST, ALLOCATE_REQUEST_LEN)
}

function header(b: Uint8Array, kind: number, len: number): AllocateDecodeError | null {
  if (b.length < 5) return 'short'
  if (!isAllocate(b)) return 'not-allocate'
  if (b[3] !== ALLOCATE_VERSION) return 'bad-version'
  if (b[4] !== kind) return 'bad-kind'
  if (b.length !== len) return 'bad-length'
  return null
}

export function encodeAllocateRequest(r: { transactionId: Uint8Array; ticket: Uint8Array; cookie?: Uint8Array }): Uint8Array {
  if (r.transactionId.length !== 12) throw new TypeError('an ALLOCATE transaction id is 12 bytes')
  if (r.ticket.length !== TICKET_LEN) throw new TypeError(`a ticket is ${TICKET_LEN} bytes`)
  if (r.cookie && r.cookie.length !== COOKIE_LEN) throw new TypeError(`a cookie is ${COOKIE_LEN} bytes`)
  const out = new Uint8Array(ALLOCATE_REQUEST_LEN)
  out.set(ALLOCATE_MAGIC, 0)
  out[4] = ALLOCATE_REQUEST
  out.set(r.transactionId, 8)
  if (r.cookie) out.set(r.cookie, ALLOCATE_COOKIE_AT)
  out.set(r.ticket, TICKET_AT)
  return out
}

/** Decodes a request; the fields are views into `b` (the relay reads them before `b` is reused). */
export function decodeAllocateRequest(b: Uint8Array): Decoded<AllocateRequest> {
  const e = allocateRequestError(b)
  if (e) return { ok: false, error: e }
  return { ok: true, value: { transactionId: b.subarray(8, 20), cookie: b.subarray(ALLOCATE_COOKIE_AT, TICKET_AT), ticket: b.subarray(TICKET_AT, TICKET_AT + TICKET_LEN) } }
}

export function encodeAllocateCookie(c: AllocateCookie): Uint8Array {
  if (c.transactionId.length !== 12 || c.cookie.length !== COOKIE_LEN) throw new TypeError('bad transaction id or cookie length')
  const out = new Uint8Array(ALLOCATE_COOKIE_LEN)
  out.set(ALLOCATE_MAGIC, 0)
  out[4] = ALLOCATE_COOKIE
  out.set(c.transactionId, 8)
  out.set(c.cookie, 20)
  return out
}

export function decodeAllocateCookie(b: Uint8Array): Decoded<AllocateCookie> {
  const e = header(b, ALLOCATE_COOKIE, ALLOCATE_COOKIE_LEN)
  if (e) return { ok: false, error: e }
  return { ok: true, value: { transactionId: b.slice(8, 20), cookie: b.slice(20, 20 + COOKIE_LEN) } }
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
  const e = header(b, ALLOCATE_RESPONSE, ALLOCATE_RESPONSE_LEN)
  if (e) return { ok: false, error: e }
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

/** What a datagram from the relay means to an ALLOCATE exchange (AllocateExchange.receive). */
export type AllocateEvent =
  /** The relay sent its cookie: send `request()` again now. */
  | { kind: 'resend' }
  /** The final answer (ok or a refusal). */
  | { kind: 'done'; response: AllocateResponse }
  /** The relay is busy: keep retransmitting as scheduled. */
  | { kind: 'busy' }

/**
 * One ALLOCATE from the client's side, without sockets or timers: the bytes to send (again), and what each
 * datagram from the relay means. The caller retransmits `request()` on its own schedule (every try carries the
 * latest cookie) and sends it at once on `resend`. Datagrams of other transactions are ignored (null).
 */
export class AllocateExchange {
  private cookie: Uint8Array = new Uint8Array(COOKIE_LEN)
  private bytes: Uint8Array
  constructor(
    private readonly ticket: Uint8Array,
    readonly transactionId: Uint8Array = crypto.getRandomValues(new Uint8Array(12)),
  ) {
    this.bytes = encodeAllocateRequest({ transactionId, ticket, cookie: this.cookie })
  }

  request(): Uint8Array {
    return this.bytes
  }

  receive(b: Uint8Array): AllocateEvent | null {
    const c = decodeAllocateCookie(b)
    if (c.ok) {
      if (!sameBytes(c.value.transactionId, this.transactionId)) return null
      this.cookie = c.value.cookie
      this.bytes = encodeAllocateRequest({ transactionId: this.transactionId, ticket: this.ticket, cookie: this.cookie })
      return { kind: 'resend' }
    }
    const r = decodeAllocateResponse(b)
    if (!r.ok || !sameBytes(r.value.transactionId, this.transactionId)) return null
    return r.value.status === 'busy' ? { kind: 'busy' } : { kind: 'done', response: r.value }
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i])
}
