/**
 * Who moves a locked session's datagrams. A session is locked once both sides have an IP (from ALLOCATE) and a
 * learned port (from a handshake with a valid mac1); from then on each datagram is a fixed rewrite of addresses
 * and ports. The relay picks one implementation at start:
 *
 * - user space (the default, every OS, no privileges): the session sockets (sockets.ts) forward every datagram
 *   themselves, so this implementation has nothing to do when a session locks or goes;
 * - kernel (Linux, opt-in): installs rules for a locked session so that its datagrams never reach user space, and
 *   reports what it forwarded so that counters, metrics and idle expiry still see that traffic.
 *
 * Either way the session sockets stay bound: datagrams from an unlocked side, or from a new port (roaming), still
 * arrive there and are checked as before.
 */
import type { Session } from './session-table.ts'

export interface Forwarder {
  readonly kind: string
  /** Both sides of `s` have an IP and a learned port; called again whenever a side moves to another port. */
  onLocked(s: Session): void
  /** `s` is gone (idle expiry, relay closing): stop forwarding it. */
  onUnlocked(s: Session): void
  /**
   * Adds what was forwarded outside user space since the last call to the sessions' counters, the relay's
   * metrics and each session's `lastActive`. Called before every idle sweep and metrics rendering.
   */
  sync(now: number): void
  close(): Promise<void>
}

/** The default: the session sockets forward everything in user space. */
export function userSpaceForwarder(): Forwarder {
  return {
    kind: 'user space',
    onLocked() {},
    onUnlocked() {},
    sync() {},
    async close() {},
  }
}
