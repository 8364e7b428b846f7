/**
 * The relay's session state and per-datagram decisions, with no sockets and no timers (the shape of Tailscale's
 * udprelay handlePacket): every function takes `now` (ms) and returns what to do; src/relay/sockets.ts does the
 * I/O and keeps the socket handles, which never enter this state.
 *
 * A session joins two peers of one party. It has one relay UDP port per side. Side X's
 * port receives what peer X sends towards the other peer Y and sends what Y sends towards X, so each peer's
 * WireGuard endpoint for the other is relay_ip:its_own_side_port.
 *
 * - A side is locked to the source IP that presented its ticket (ALLOCATE).
 * - Its source port is learned from, and moves only on, a WireGuard handshake message (initiation or response)
 *   whose mac1 is valid for the other side's public key (whitepaper §5.4.4): only someone who was given that
 *   key by the control server in a ticket can produce one, and it is addressed to the other peer.
 * - Everything else is dropped and counted by reason. One datagram in, at most one out.
 */
import type { Side as SideName, Ticket } from '../shared/wire/ticket.ts'
import { checkMac1, mac1Key, wgMessageType } from '../shared/wire/wireguard.ts'

export const DROP_REASONS = [
  'no_session', // datagram on a session port whose side no ticket has claimed yet
  'wrong_source', // from an IP other than the side's, or an unlearned port with a non-handshake message
  'bad_mac1', // handshake message whose mac1 is not valid for the other side's key
  'not_wireguard', // not a well-formed WireGuard message
  'peer_unknown', // the other side has not been heard from yet, nowhere to send it
  'rate_limited', // the side's token bucket is empty
  'blocked', // deny list or auto-blocked source
  'bad_ticket', // unreadable, badly signed, or not matching the session it names
  'expired_ticket',
  'wrong_relay',
  'no_control_key', // ALLOCATE before the relay knows a control server's ticket key
  'no_ports', // capacity reached or port range exhausted
  'side_taken', // ALLOCATE for a side already held from another IP
  'malformed', // starts like ALLOCATE but is not a well-formed version 2 request
  'busy', // ALLOCATE beyond the ticket checks per second (answered busy; the client retries)
  'bad_stun', // malformed STUN or not a Binding request
  'answer_limited', // STUN or ALLOCATE from an unproved source beyond the answer rate of its prefix
  'unknown_message', // neither STUN nor ALLOCATE on the main port
  'send_failed', // the kernel refused the send (backpressure or error)
] as const
export type DropReason = (typeof DROP_REASONS)[number]

export interface Limits {
  pps: number
  bps: number
  burstS: number
}

export interface SideState {
  readonly name: SideName
  /** The relay UDP port of this side. */
  readonly port: number
  /** WireGuard public key of the peer on this side. */
  readonly holderKey: Uint8Array
  /** mac1 key for messages FROM this side, which are addressed to the other side: HASH(LABEL_MAC1 ‖ other key). */
  readonly mac1Key: Uint8Array
  /** Source IP locked by ALLOCATE; null until claimed. */
  ip: string | null
  /** The ticket bytes that claimed this side (their signature was checked then); null until claimed. */
  ticket: Uint8Array | null
  /** Source port learned from a valid handshake; 0 until then. */
  peerPort: number
  // Token bucket (packets and bytes), refilled lazily from `now`.
  pktTokens: number
  byteTokens: number
  refilledAt: number
  // Counters.
  packetsIn: number
  bytesIn: number
  forwarded: number
  bytesForwarded: number
  dropped: number
}

export interface Session {
  readonly id: string // 32 hex
  readonly sessionId: Uint8Array
  readonly partyId: string
  readonly a: SideState
  readonly b: SideState
  readonly createdAt: number
  lastActive: number
  /** False until the sockets layer has bound both ports. */
  ready: boolean
}

export type AllocateDecision =
  | { status: 'ok'; session: Session; side: SideState; created: boolean }
  | { status: 'bad_ticket' | 'no_ports' | 'side_taken'; reason: DropReason }

const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  let d = 0
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!
  return d === 0
}

function newSide(name: SideName, port: number, holderKey: Uint8Array, otherKey: Uint8Array, limits: Limits, now: number): SideState {
  return {
    name,
    port,
    holderKey,
    mac1Key: mac1Key(otherKey),
    ip: null,
    ticket: null,
    peerPort: 0,
    pktTokens: limits.pps * limits.burstS,
    byteTokens: limits.bps * limits.burstS,
    refilledAt: now,
    packetsIn: 0,
    bytesIn: 0,
    forwarded: 0,
    bytesForwarded: 0,
    dropped: 0,
  }
}

/**
 * The per-datagram decision for a datagram that arrived on `from`'s port, from `address`:`port`.
 * Returns null when it must be forwarded to `to.ip`:`to.peerPort` through `to`'s socket, else the drop reason.
 * Mutates only counters, the token bucket, the learned port and `lastActive`. No allocation on the data path.
 */
export function decidePacket(
  s: Session,
  from: SideState,
  to: SideState,
  address: string,
  port: number,
  buf: Uint8Array,
  now: number,
  limits: Limits,
): DropReason | null {
  const len = buf.length
  from.packetsIn++
  from.bytesIn += len
  if (from.ip === null) return drop(from, 'no_session')
  if (address !== from.ip) return drop(from, 'wrong_source')
  // Token bucket before any crypto, so a flood from the locked IP cannot buy BLAKE2s work.
  const elapsed = now - from.refilledAt
  if (elapsed > 0) {
    from.pktTokens = Math.min(limits.pps * limits.burstS, from.pktTokens + (elapsed * limits.pps) / 1000)
    from.byteTokens = Math.min(limits.bps * limits.burstS, from.byteTokens + (elapsed * limits.bps) / 1000)
    from.refilledAt = now
  }
  if (from.pktTokens < 1 || from.byteTokens < len) return drop(from, 'rate_limited')
  from.pktTokens -= 1
  from.byteTokens -= len
  const type = wgMessageType(buf)
  if (type === null) return drop(from, 'not_wireguard')
  if (type === 'initiation' || type === 'response') {
    if (!checkMac1(buf, from.mac1Key)) return drop(from, 'bad_mac1')
    from.peerPort = port // learn, or roam (WireGuard §2.1: endpoints follow authenticated packets)
  } else if (port !== from.peerPort) return drop(from, 'wrong_source')
  if (to.peerPort === 0 || to.ip === null) return drop(from, 'peer_unknown')
  from.forwarded++
  from.bytesForwarded += len
  s.lastActive = now
  return null
}

function drop(side: SideState, reason: DropReason): DropReason {
  side.dropped++
  return reason
}

export interface TableOptions {
  firstPort: number
  lastPort: number
  capacity: number
  idleMs: number
  limits: Limits
}

export class SessionTable {
  readonly sessions = new Map<string, Session>()
  /** Ports in use by a session, and ports that failed to bind (skipped until `unbindable` is cleared). */
  readonly usedPorts = new Set<number>()
  readonly unbindable = new Set<number>()
  private cursor: number
  constructor(readonly opts: TableOptions) {
    this.cursor = opts.firstPort
  }

  get size() {
    return this.sessions.size
  }

  /**
   * The side these exact ticket bytes already claimed from `address`, if any: a retry of an ALLOCATE that
   * succeeded needs no second signature check, because the bytes are the ones checked then.
   */
  claimedBy(t: Ticket, ticketBytes: Uint8Array, address: string): { session: Session; side: SideState } | undefined {
    const s = this.sessions.get(hex(t.sessionId))
    const side = s && (t.side === 'a' ? s.a : s.b)
    if (!s || !side || side.ip !== address || !side.ticket || !sameBytes(side.ticket, ticketBytes)) return undefined
    return { session: s, side }
  }

  /** Claims the side `t` names for `address`. `t` must be verified already (signature, relay id, expiry). */
  allocate(t: Ticket, ticketBytes: Uint8Array, address: string, now: number): AllocateDecision {
    const id = hex(t.sessionId)
    let s = this.sessions.get(id)
    let created = false
    if (s) {
      // Both tickets of a session are signed together; anything else naming this session is not one of them.
      const mine = t.side === 'a' ? s.a : s.b
      const other = t.side === 'a' ? s.b : s.a
      if (s.partyId !== t.partyId || !sameBytes(mine.holderKey, t.holderKey) || !sameBytes(other.holderKey, t.otherKey))
        return { status: 'bad_ticket', reason: 'bad_ticket' }
    } else {
      if (this.sessions.size >= this.opts.capacity) return { status: 'no_ports', reason: 'no_ports' }
      const pa = this.takePort()
      const pb = pa === undefined ? undefined : this.takePort()
      if (pa === undefined || pb === undefined) {
        if (pa !== undefined) this.usedPorts.delete(pa)
        return { status: 'no_ports', reason: 'no_ports' }
      }
      const keyA = t.side === 'a' ? t.holderKey : t.otherKey
      const keyB = t.side === 'a' ? t.otherKey : t.holderKey
      const limits = this.opts.limits
      s = {
        id,
        sessionId: t.sessionId,
        partyId: t.partyId,
        a: newSide('a', pa, keyA, keyB, limits, now),
        b: newSide('b', pb, keyB, keyA, limits, now),
        createdAt: now,
        lastActive: now,
        ready: false,
      }
      this.sessions.set(id, s)
      created = true
    }
    const side = t.side === 'a' ? s.a : s.b
    if (side.ip === null) {
      side.ip = address
      side.ticket = ticketBytes.slice()
    } else if (side.ip !== address) return { status: 'side_taken', reason: 'side_taken' }
    s.lastActive = Math.max(s.lastActive, now)
    return { status: 'ok', session: s, side, created }
  }

  private takePort(): number | undefined {
    const { firstPort, lastPort } = this.opts
    const n = lastPort - firstPort + 1
    for (let i = 0; i < n; i++) {
      const p = this.cursor
      this.cursor = p >= lastPort ? firstPort : p + 1
      if (!this.usedPorts.has(p) && !this.unbindable.has(p)) {
        this.usedPorts.add(p)
        return p
      }
    }
    return undefined
  }

  /** Removes a session and frees its ports (after expiry, or when its ports could not be bound). */
  remove(s: Session) {
    if (this.sessions.get(s.id) !== s) return
    this.sessions.delete(s.id)
    this.usedPorts.delete(s.a.port)
    this.usedPorts.delete(s.b.port)
  }

  /** Sessions idle for longer than the idle timeout; removed from the table (the caller closes their sockets). */
  expire(now: number): Session[] {
    const out: Session[] = []
    for (const s of this.sessions.values()) if (now - s.lastActive > this.opts.idleMs) out.push(s)
    for (const s of out) this.remove(s)
    return out
  }
}

/**
 * Deny list plus automatic blocking of sources that flood invalid tickets (pure, takes `now`). Only sources that
 * proved their address (an ALLOCATE cookie) are counted: otherwise anyone could get an innocent address blocked
 * by forging it. Entries are exact IPs or IPv4 CIDRs ("198.51.100.0/24").
 */
export class SourceGuard {
  private readonly denyExact = new Set<string>()
  private readonly denyNets: { net: number; mask: number }[] = []
  private readonly blockedUntil = new Map<string, number>()
  private readonly invalid = new Map<string, { count: number; since: number }>()

  constructor(
    deny: readonly string[],
    private readonly opts: { limit: number; windowMs: number; blockMs: number },
  ) {
    for (const d of deny) {
      const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(d)
      const net = m ? ipv4ToInt(m[1]!) : undefined
      if (m && net !== undefined && Number(m[2]) <= 32) {
        const bits = Number(m[2])
        const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0
        this.denyNets.push({ net: (net & mask) >>> 0, mask })
      } else this.denyExact.add(d)
    }
  }

  isBlocked(ip: string, now: number): boolean {
    if (this.denyExact.has(ip)) return true
    if (this.denyNets.length) {
      const n = ipv4ToInt(ip)
      if (n !== undefined) for (const d of this.denyNets) if (((n & d.mask) >>> 0) === d.net) return true
    }
    if (this.blockedUntil.size === 0) return false
    const until = this.blockedUntil.get(ip)
    if (until === undefined) return false
    if (now < until) return true
    this.blockedUntil.delete(ip)
    return false
  }

  /** Records an invalid ticket from `ip`; returns true when this makes the source blocked. */
  noteInvalid(ip: string, now: number): boolean {
    let e = this.invalid.get(ip)
    if (!e || now - e.since > this.opts.windowMs) {
      e = { count: 0, since: now }
      this.invalid.set(ip, e)
    }
    if (++e.count < this.opts.limit) return false
    this.invalid.delete(ip)
    this.blockedUntil.set(ip, now + this.opts.blockMs)
    return true
  }

  get blockedCount() {
    return this.blockedUntil.size
  }

  /** Forgets old windows and expired blocks (called from the periodic sweep). */
  prune(now: number) {
    for (const [ip, e] of this.invalid) if (now - e.since > this.opts.windowMs) this.invalid.delete(ip)
    for (const [ip, until] of this.blockedUntil) if (now >= until) this.blockedUntil.delete(ip)
  }
}

function ipv4ToInt(s: string): number | undefined {
  const p = s.split('.')
  if (p.length !== 4) return undefined
  let n = 0
  for (const x of p) {
    const v = Number(x)
    if (!/^\d{1,3}$/.test(x) || v > 255) return undefined
    n = n * 256 + v
  }
  return n >>> 0
}
