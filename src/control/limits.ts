/**
 * Limits that keep one client from taking the server: fixed-window counters (registrations per address, wrong
 * party passwords per peer and per party) and a gate that bounds how many password hashes run at once and
 * serves the waiting callers in turn. No timers or I/O: the caller passes the time.
 */

/**
 * Counts attempts per key in fixed windows of `windowMs`. `take` counts one attempt (before the work is done,
 * so concurrent attempts cannot all pass a check made before any of them finished) and `refund` gives it back
 * when it turned out not to count (a right password).
 */
export class FixedWindowLimiter {
  private readonly windows = new Map<string, { start: number; count: number }>()

  constructor(
    readonly limit: number,
    readonly windowMs = 60_000,
  ) {}

  /** Counts one attempt: undefined when allowed, else the seconds until the key's window resets. */
  take(key: string, now: number): number | undefined {
    const retry = this.check(key, now)
    if (retry === undefined) this.windows.get(key)!.count++
    return retry
  }

  /** Like take without counting: undefined while the key has attempts left. */
  check(key: string, now: number): number | undefined {
    let w = this.windows.get(key)
    if (!w || now - w.start >= this.windowMs) this.windows.set(key, (w = { start: now, count: 0 }))
    return w.count >= this.limit ? Math.max(1, Math.ceil((w.start + this.windowMs - now) / 1000)) : undefined
  }

  refund(key: string): void {
    const w = this.windows.get(key)
    if (w && w.count > 0) w.count--
  }

  /** Forgets windows that ended (the cleanup pass). */
  sweep(now: number): void {
    for (const [k, w] of this.windows) if (now - w.start >= this.windowMs) this.windows.delete(k)
  }
}

/** Thrown by FairGate.run when too many callers already wait. */
export class GateFullError extends Error {}

/**
 * Runs at most `concurrency` tasks at once; callers beyond wait, served one key at a time in rotation (each key
 * its own queue), so a key with hundreds of waiting tasks delays another key's task by at most one task per
 * key ahead of it, not by its whole queue. At most `maxWaiting` callers wait (GateFullError beyond).
 */
export class FairGate {
  private running = 0
  private waitingCount = 0
  /** key → its waiters; the Map's order is the rotation (a served key moves to the back). */
  private readonly queues = new Map<string, (() => void)[]>()
  /** Tasks started so far (tests read it to see who went first). */
  started = 0

  constructor(
    readonly concurrency: number,
    readonly maxWaiting = 10_000,
  ) {}

  get waiting(): number {
    return this.waitingCount
  }

  async run<T>(key: string, task: () => Promise<T>): Promise<T> {
    if (this.running < this.concurrency && this.waitingCount === 0) this.running++
    else {
      if (this.waitingCount >= this.maxWaiting) throw new GateFullError(`${this.waitingCount} tasks are waiting already`)
      this.waitingCount++
      await new Promise<void>((wake) => {
        const q = this.queues.get(key)
        if (q) q.push(wake)
        else this.queues.set(key, [wake])
      })
    }
    this.started++
    try {
      return await task()
    } finally {
      this.release()
    }
  }

  /** Hands the finished task's slot to the first key in rotation, or frees it. */
  private release(): void {
    const first = this.queues.entries().next()
    if (first.done) {
      this.running--
      return
    }
    const [key, q] = first.value
    const wake = q.shift()!
    this.queues.delete(key)
    if (q.length) this.queues.set(key, q)
    this.waitingCount--
    wake()
  }
}
