/** Rate limits of the main port, pure (they take `now` in ms): one token bucket, and one bucket per source prefix. */
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
    this.refill(now)
    if (this.tokens < 1) return false
    this.tokens -= 1
    return true
  }

  /** Full again: nothing taken for long enough that forgetting this bucket changes nothing. */
  full(now: number): boolean {
    this.refill(now)
    return this.tokens >= this.burst
  }

  private refill(now: number) {
    if (now > this.at) {
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) * this.rate) / 1000)
      this.at = now
    }
  }
}

/** The network a source belongs to for rate limiting: its IPv4 /24 or IPv6 /64 (what one site or subscriber holds). */
export function sourcePrefix(ip: string): string {
  if (!ip.includes(':')) return ip.slice(0, ip.lastIndexOf('.'))
  const b = parseIp(ip)
  return b ? Buffer.from(b.subarray(0, 8)).toString('hex') : ip
}

/**
 * One token bucket per source prefix, so that nobody can make the relay send much to one network however many
 * addresses they forge. The table is bounded: when it is full, buckets that are full again are forgotten, and
 * prefixes beyond that share one overflow bucket.
 */
export class PrefixLimiter {
  private readonly buckets = new Map<string, TokenBucket>()
  private readonly overflow: TokenBucket

  constructor(
    private readonly o: { rate: number; burst: number; maxPrefixes: number },
    now: number,
  ) {
    this.overflow = new TokenBucket(o.rate, o.burst, now)
  }

  take(ip: string, now: number): boolean {
    const key = sourcePrefix(ip)
    let b = this.buckets.get(key)
    if (!b) {
      if (this.buckets.size >= this.o.maxPrefixes) this.prune(now)
      if (this.buckets.size >= this.o.maxPrefixes) return this.overflow.take(now)
      b = new TokenBucket(this.o.rate, this.o.burst, now)
      this.buckets.set(key, b)
    }
    return b.take(now)
  }

  get size() {
    return this.buckets.size
  }

  /** Forgets buckets that are full again (called from the periodic sweep, and when the table is full). */
  prune(now: number) {
    for (const [k, b] of this.buckets) if (b.full(now)) this.buckets.delete(k)
  }
}
