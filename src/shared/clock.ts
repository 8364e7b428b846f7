/** Time as an injectable dependency, so expiry and cleanup logic is tested by moving a clock, not by sleeping. */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number
}
export const systemClock: Clock = { now: () => Date.now() }

/** A clock that moves only when told to (tests). */
export class ManualClock implements Clock {
  constructor(private t = 1_700_000_000_000) {}
  now() {
    return this.t
  }
  advance(ms: number) {
    this.t += ms
  }
  set(ms: number) {
    this.t = ms
  }
}
