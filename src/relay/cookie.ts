/**
 * ALLOCATE cookies: proof that a source receives at the address it sends from (src/shared/wire/allocate.ts).
 * A cookie is the first 16 bytes of HMAC-SHA256 (RFC 2104) under a secret drawn at start, over a coarse time, the
 * source address and port, and the ticket's side and session id. Nothing is stored per source: a cookie is
 * recomputed to check it, and is valid for the epoch it was made in and the next one (30 to 60 s), like the
 * rotating secret of WireGuard's cookie reply (whitepaper §5.4.7). A restart draws a new secret; clients then
 * get a new cookie on their next try.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { COOKIE_LEN } from '../shared/wire/allocate.ts'

export const COOKIE_EPOCH_MS = 30_000

export class CookieJar {
  private readonly secret: Buffer
  constructor(
    secret: Uint8Array = randomBytes(32),
    private readonly epochMs = COOKIE_EPOCH_MS,
  ) {
    this.secret = Buffer.from(secret)
  }

  /** `binding` is what the cookie is good for: the ticket's side and session id (ticket bytes 1..17). */
  make(address: string, port: number, binding: Uint8Array, now: number): Uint8Array {
    return this.mac(Math.floor(now / this.epochMs), address, port, binding)
  }

  check(cookie: Uint8Array, address: string, port: number, binding: Uint8Array, now: number): boolean {
    if (cookie.length !== COOKIE_LEN || cookie.every((b) => b === 0)) return false
    const epoch = Math.floor(now / this.epochMs)
    return this.equal(cookie, this.mac(epoch, address, port, binding)) || this.equal(cookie, this.mac(epoch - 1, address, port, binding))
  }

  private mac(epoch: number, address: string, port: number, binding: Uint8Array): Uint8Array {
    const head = Buffer.allocUnsafe(6)
    head.writeUInt32BE(epoch >>> 0, 0)
    head.writeUInt16BE(port, 4)
    return createHmac('sha256', this.secret).update(head).update(binding).update(address).digest().subarray(0, COOKIE_LEN)
  }

  private equal(a: Uint8Array, b: Uint8Array): boolean {
    return timingSafeEqual(a, b)
  }
}
