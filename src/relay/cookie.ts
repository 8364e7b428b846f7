/**
 * ALLOCATE cookies: proof that a source receives at the address it sends from (src/shared/wire/allocate.ts).
 * A cookie is the first 16 bytes of HMAC-SHA256 (RFC 2104) under a secret drawn at start, over a coarse time, the
 * source address and port, and the ticket's side and session id. Nothing is stored per source: a cookie is
 * recomputed to check it, and is valid for the epoch it was made in and the next one (30 to 60 s), like the
 * rotating secret of WireGuard's cookie reply (whitepaper §5.4.7). A restart draws a new secret; clients then
 * get a new cookie on their next try.
 *
 * A flood of forged ALLOCATEs makes the relay check and make cookies at the flood's rate, so this works on the
 * request's bytes in place: one keyed hash state copied per MAC, one scratch input, no allocation to check.
 */
import { randomBytes } from 'node:crypto'
import { ALLOCATE_COOKIE_AT, ALLOCATE_TICKET_AT, COOKIE_LEN, encodeAllocateCookie } from '../shared/wire/allocate.ts'

export const COOKIE_EPOCH_MS = 30_000
/** The ticket's side and session id (ticket bytes 1..17): what a cookie is good for besides the source. */
const BINDING_AT = ALLOCATE_TICKET_AT + 1
const BINDING_LEN = 17
/** MAC input: epoch (4) ‖ port (2) ‖ binding (17) ‖ address length (1) ‖ address text (up to 64 bytes, zero padded). */
const ADDRESS_AT = 4 + 2 + BINDING_LEN + 1
const ADDRESS_MAX = 64

export class CookieJar {
  private readonly keyed: Bun.CryptoHasher
  private readonly input = new Uint8Array(ADDRESS_AT + ADDRESS_MAX)
  private readonly view = new DataView(this.input.buffer)
  private readonly out = new Uint8Array(64)

  constructor(
    secret: Uint8Array = randomBytes(32),
    private readonly epochMs = COOKIE_EPOCH_MS,
  ) {
    this.keyed = new Bun.CryptoHasher('sha256', secret)
  }

  /** Whether the cookie in `req` (a well-formed ALLOCATE request) is good for its source now. */
  check(req: Uint8Array, address: string, port: number, now: number): boolean {
    let zero = true
    for (let i = 0; i < COOKIE_LEN; i++) if (req[ALLOCATE_COOKIE_AT + i] !== 0) zero = false
    if (zero) return false // the first request of every client: no cookie yet
    const epoch = Math.floor(now / this.epochMs)
    return this.matches(req, epoch, address, port) || this.matches(req, epoch - 1, address, port)
  }

  /** The cookie reply (36 bytes) to `req`, a well-formed ALLOCATE request from `address`:`port`. */
  reply(req: Uint8Array, address: string, port: number, now: number): Uint8Array {
    const mac = this.mac(req, Math.floor(now / this.epochMs), address, port)
    return encodeAllocateCookie({ transactionId: req.subarray(8, 20), cookie: mac.subarray(0, COOKIE_LEN) })
  }

  private matches(req: Uint8Array, epoch: number, address: string, port: number): boolean {
    const mac = this.mac(req, epoch, address, port)
    let diff = 0
    for (let i = 0; i < COOKIE_LEN; i++) diff |= mac[i]! ^ req[ALLOCATE_COOKIE_AT + i]!
    return diff === 0
  }

  private mac(req: Uint8Array, epoch: number, address: string, port: number): Uint8Array {
    const input = this.input
    this.view.setUint32(0, epoch >>> 0)
    this.view.setUint16(4, port)
    for (let i = 0; i < BINDING_LEN; i++) input[6 + i] = req[BINDING_AT + i]!
    const n = Math.min(address.length, ADDRESS_MAX)
    input[ADDRESS_AT - 1] = n
    for (let i = 0; i < ADDRESS_MAX; i++) input[ADDRESS_AT + i] = i < n ? address.charCodeAt(i) & 0xff : 0
    const h = this.keyed.copy()
    h.update(input)
    h.digest(this.out)
    return this.out
  }
}
