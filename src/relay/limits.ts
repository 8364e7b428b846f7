/** Rate limits of the main port, pure (they take `now` in ms): one token bucket, and buckets per source prefix. */
import { randomInt } from 'node:crypto'
import { parseIp } from '../shared/wire/stun.ts'

/** A token bucket refilled lazily: `rate` tokens per second, holding at most `burst`. */
export class TokenBucket {
  private tokens: number
  private at: number
  constructor(
    private readonly rate: number,
    private readonly burst: number,
    now: number,
  ) {
    this.tokens = burst
    this.at = now
  }

  take(now: number): boolean {
    if (now > this.at) {
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) * this.rate) / 1000)
      this.at = now
    }
    if (this.tokens < 1) return false
    this.tokens -= 1
    return true
  }
}

/**
 * Token buckets per source prefix, an IPv4 /24 or IPv6 /64 (what one site or subscriber holds), so that nobody can
 * make the relay send much to one network however many of its addresses they forge. The buckets are a fixed
 * table indexed by a seeded hash of the prefix (like DNS response rate limiting): memory and time per datagram
 * stay the same however many prefixes a flood forges. Two prefixes may share a bucket; with the default 65,536
 * buckets and a seed drawn at start, a forged flood spread over many prefixes puts a fraction of a request per
 * second into any one bucket, far below its rate.
 */
export class PrefixLimiter {
  private readonly tokens: Float64Array
  private readonly at: Float64Array
  private readonly mask: number

  constructor(
    private readonly o: { rate: number; burst: number; buckets?: number },
    private readonly seed = randomInt(2 ** 32),
  ) {
    const n = o.buckets ?? 65_536
    if (n & (n - 1)) throw new RangeError('the number of buckets is a power of two')
    this.mask = n - 1
    this.tokens = new Float64Array(n).fill(o.burst)
    this.at = new Float64Array(n) // 0: long ago, so a first use finds the bucket full
  }

  take(ip: string, now: number): boolean {
    const i = this.bucket(ip)
    const elapsed = now - this.at[i]!
    if (elapsed > 0) {
      this.tokens[i] = Math.min(this.o.burst, this.tokens[i]! + (elapsed * this.o.rate) / 1000)
      this.at[i] = now
    }
    if (this.tokens[i]! < 1) return false
    this.tokens[i]! -= 1
    return true
  }

  /** The bucket of `ip`'s prefix: FNV-1a (seeded) over the IPv4 text up to its last dot, or the first 8 IPv6 bytes. */
  bucket(ip: string): number {
    let h = (0x811c9dc5 ^ this.seed) >>> 0
    if (!ip.includes(':')) {
      for (let k = 0, end = ip.lastIndexOf('.'); k < end; k++) h = Math.imul(h ^ ip.charCodeAt(k), 0x01000193)
    } else {
      const b = parseIp(ip) // IPv6 text has many spellings; its bytes have one
      if (b) for (let k = 0; k < 8; k++) h = Math.imul(h ^ b[k]!, 0x01000193)
      else for (let k = 0; k < ip.length; k++) h = Math.imul(h ^ ip.charCodeAt(k), 0x01000193)
    }
    h ^= h >>> 15
    h = Math.imul(h, 0x2c1b3c6d)
    h ^= h >>> 12
    return (h >>> 0) & this.mask
  }
}
