/** Retry policy, pure: which failures are retried and how long to wait (exponential backoff with jitter). */

export interface BackoffPolicy {
  /** First delay's ceiling. */
  baseMs: number
  /** No delay exceeds this. */
  maxMs: number
  /** Total tries of one request (1 = no retry). */
  attempts: number
}

/** 5 tries over about 3 s: a control server restart takes about that long; a dead one fails fast enough. */
export const DEFAULT_RETRY: BackoffPolicy = { baseMs: 200, maxMs: 5000, attempts: 5 }
/** The live channel retries forever, but never more often than every 10 s once the server stays down. */
export const DEFAULT_RECONNECT: BackoffPolicy = { baseMs: 250, maxMs: 10_000, attempts: Infinity }

/**
 * Delay before retry number `attempt` (0-based): "equal jitter" — half of min(max, base·2^attempt) plus a
 * random part of the other half, so clients that lost the server together do not come back in lockstep, yet
 * each still waits at least half the exponential step.
 */
export function backoffDelay(attempt: number, p: BackoffPolicy, random: () => number = Math.random): number {
  const cap = Math.min(p.maxMs, p.baseMs * 2 ** Math.min(attempt, 30))
  return Math.round(cap / 2 + random() * (cap / 2))
}

/** Network errors (no status) and 5xx are worth retrying; a 4xx will answer the same again. */
export function isRetryable(status: number | undefined): boolean {
  return status === undefined || status >= 500
}
