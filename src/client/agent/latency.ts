/**
 * Latency through the tunnel: every agent answers a small UDP echo on its virtual IP (ECHO_PORT), and measures
 * each member's round trip by sending it a probe there every PROBE_MS. The datagrams travel inside WireGuard
 * between the two virtual addresses, so what is measured is the path the game's packets take (direct or through
 * the relay), including both WireGuard stacks.
 *
 * Pure: no sockets, no timers. The agent owns the socket and passes bytes, source addresses and times in.
 *
 * Datagram (16 bytes, big-endian):
 *
 *   0      4      5        8          12         16
 *   | LRE1 | kind | 0 0 0  | sequence | token    |
 *
 *   kind 1 = request, 2 = reply. A reply is the request with kind 2, byte for byte otherwise: one datagram of the
 *   same size in, at most one out (nothing to amplify), and only within a budget of replies per second. The token
 *   is random per probe, so a reply matches only the probe it answers.
 */

/** UDP port of the echo on every member's virtual IP (LANrage's number, as the local API's TCP port). */
export const ECHO_PORT = 8666
/** One probe per member this often. */
export const PROBE_MS = 2000
/** A probe unanswered this long is lost (a later answer to it is ignored). */
export const PROBE_TIMEOUT_MS = 3000
/** The shown latency is the last answer's, while that answer is at most this old; after that it is unknown. */
export const LATENCY_FRESH_MS = 3 * PROBE_MS
/** Replies sent per second at most (a party has at most 254 members probing every 2 s: ~127/s). */
export const REPLY_BUDGET_PER_S = 200
export const ECHO_BYTES = 16

const MAGIC = [0x4c, 0x52, 0x45, 0x31] // "LRE1"
const REQUEST = 1
const REPLY = 2
/** Probes kept waiting per member: older ones are given up when more are sent. */
const MAX_PENDING = 4

export type EchoMessage = { kind: 'request' | 'reply'; seq: number; token: number }

/** Decodes an echo datagram; null for anything else (wrong size, magic, kind or reserved bytes). */
export function decodeEcho(b: Uint8Array): EchoMessage | null {
  if (b.length !== ECHO_BYTES) return null
  for (let i = 0; i < 4; i++) if (b[i] !== MAGIC[i]) return null
  if (b[5] !== 0 || b[6] !== 0 || b[7] !== 0) return null
  const kind = b[4] === REQUEST ? 'request' : b[4] === REPLY ? 'reply' : null
  if (!kind) return null
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength)
  return { kind, seq: v.getUint32(8), token: v.getUint32(12) }
}

export function encodeEcho(m: EchoMessage): Uint8Array {
  const b = new Uint8Array(ECHO_BYTES)
  b.set(MAGIC)
  b[4] = m.kind === 'request' ? REQUEST : REPLY
  const v = new DataView(b.buffer)
  v.setUint32(8, m.seq >>> 0)
  v.setUint32(12, m.token >>> 0)
  return b
}

interface Member {
  pending: { seq: number; token: number; sentAt: number }[]
  rttMs: number | null
  answeredAt: number
}

export class LatencyTracker {
  private readonly members = new Map<string, Member>()
  private seq = 0
  private budget = { second: -1, used: 0 }

  constructor(private readonly random: () => number = Math.random) {}

  /** The probe to send to the member at `ip` now. */
  probe(ip: string, now: number): Uint8Array {
    const m = this.member(ip)
    m.pending = m.pending.filter((p) => now - p.sentAt < PROBE_TIMEOUT_MS).slice(-(MAX_PENDING - 1))
    const probe = { seq: (this.seq = (this.seq + 1) >>> 0), token: Math.floor(this.random() * 0x1_0000_0000) >>> 0, sentAt: now }
    m.pending.push(probe)
    return encodeEcho({ kind: 'request', seq: probe.seq, token: probe.token })
  }

  /**
   * A datagram that arrived on the echo port from `ip`: returns the reply to send back (for a request, within the
   * budget) or null. A reply to one of our probes from that member records its round trip.
   */
  receive(bytes: Uint8Array, ip: string, now: number): Uint8Array | null {
    const m = decodeEcho(bytes)
    if (!m) return null
    if (m.kind === 'request') {
      const second = Math.floor(now / 1000)
      if (second !== this.budget.second) this.budget = { second, used: 0 }
      if (this.budget.used >= REPLY_BUDGET_PER_S) return null
      this.budget.used++
      return encodeEcho({ ...m, kind: 'reply' })
    }
    const member = this.members.get(ip)
    const i = member?.pending.findIndex((p) => p.seq === m.seq && p.token === m.token) ?? -1
    if (!member || i < 0) return null
    const sent = member.pending[i]!
    member.pending.splice(i, 1)
    if (now - sent.sentAt >= PROBE_TIMEOUT_MS) return null
    member.rttMs = Math.max(0, now - sent.sentAt)
    member.answeredAt = now
    return null
  }

  /** The member's round-trip time in milliseconds, null when never answered or the last answer is stale. */
  latency(ip: string, now: number): number | null {
    const m = this.members.get(ip)
    if (!m || m.rttMs === null || now - m.answeredAt > LATENCY_FRESH_MS) return null
    return m.rttMs
  }

  forget(ip: string): void {
    this.members.delete(ip)
  }

  private member(ip: string): Member {
    let m = this.members.get(ip)
    if (!m) this.members.set(ip, (m = { pending: [], rttMs: null, answeredAt: -Infinity }))
    return m
  }
}
