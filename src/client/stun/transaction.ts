/**
 * STUN retransmission over UDP, pure (RFC 8489 §6.2.1): the request is sent at 0, RTO, 3·RTO, 7·RTO, ...
 * (the interval doubling each time) — Rc sends in all — and the transaction fails Rm·RTO after the last
 * send. With the RFC's defaults (RTO 500 ms, Rc 7, Rm 16): sends at 0, 500, 1500, 3500, 7500, 15500,
 * 31500 ms and a timeout at 39500 ms.
 */

export interface RetransmitPolicy {
  /** Initial retransmission timeout; §6.2.1 recommends 500 ms. */
  rtoMs: number
  /** Total number of sends; §6.2.1 default 7. */
  rc: number
  /** Final wait after the last send, in multiples of RTO; §6.2.1 default 16. */
  rm: number
}

export const RFC8489_RETRANSMIT: RetransmitPolicy = { rtoMs: 500, rc: 7, rm: 16 }

export interface Schedule {
  /** Offsets from the start (ms) at which the request is (re)sent. */
  sends: number[]
  /** Offset at which the transaction has failed. */
  timeoutAt: number
}

export function retransmitSchedule(p: RetransmitPolicy = RFC8489_RETRANSMIT): Schedule {
  const sends: number[] = []
  let t = 0
  let interval = p.rtoMs
  for (let i = 0; i < p.rc; i++) {
    sends.push(t)
    if (i < p.rc - 1) {
      t += interval
      interval *= 2
    }
  }
  return { sends, timeoutAt: t + p.rm * p.rtoMs }
}

/** What a transaction started at `start` should do at `now`: send again, give up, or wait until `nextAt`. */
export function transactionStep(s: Schedule, start: number, sent: number, now: number): { action: 'send' | 'timeout' | 'wait'; nextAt: number } {
  const elapsed = now - start
  if (sent < s.sends.length && elapsed >= s.sends[sent]!) return { action: 'send', nextAt: start + (s.sends[sent + 1] ?? s.timeoutAt) }
  if (sent >= s.sends.length && elapsed >= s.timeoutAt) return { action: 'timeout', nextAt: start + s.timeoutAt }
  return { action: 'wait', nextAt: start + (sent < s.sends.length ? s.sends[sent]! : s.timeoutAt) }
}
