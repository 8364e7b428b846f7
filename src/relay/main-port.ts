/**
 * The relay's main UDP port as pure decisions: a datagram (bytes, source, time) in, the bytes to answer with (or
 * nothing) out. No sockets and no timers; sockets.ts receives, sends and binds the session ports that an ALLOCATE
 * asks for. STUN Binding (RFC 8489) and ALLOCATE (src/shared/wire/allocate.ts) are told apart by their first bytes.
 *
 * Anyone can forge a UDP source address, so nothing here trusts one before it is proved:
 * - answers to sources that have not proved their address (STUN, ALLOCATE cookie replies) are limited per source
 *   prefix and never larger than what a client needs, so the relay is no amplifier and no useful reflector, and
 *   a flood of forged requests costs it little more than reading them;
 * - an ALLOCATE from a source that has not proved its address (by echoing a cookie, cookie.ts) gets only the
 *   cookie; a proved source then gets the cheap checks (layout, relay id, expiry) and only then the Ed25519
 *   signature check, within a budget per second for all sources together. Only a proved source can claim a side
 *   or count towards being blocked.
 */
import type { Logger } from '../shared/log.ts'
import { ALLOCATE_RESPONSE_LEN, allocateRequestError, decodeAllocateRequest, encodeAllocateResponse, isAllocate, type AllocateStatus } from '../shared/wire/allocate.ts'
import { ATTR, BINDING_REQUEST, decodeStun, encodeBindingResponse, isStun } from '../shared/wire/stun.ts'
import { checkTicketFields, checkTicketSignature, decodeTicket, type Side, type Ticket } from '../shared/wire/ticket.ts'
import type { CookieJar } from './cookie.ts'
import type { PrefixLimiter, TokenBucket } from './limits.ts'
import type { RelayMetrics } from './metrics.ts'
import type { DropReason, Session, SessionTable, SideState, SourceGuard } from './session-table.ts'

/** How many times an ALLOCATE tries fresh ports when a session port cannot be bound (held by another program). */
export const BIND_RETRIES = 4

/** An ALLOCATE whose session ports must be bound before it can be answered (see MainPort.bound). */
export interface PendingAllocate {
  readonly session: Session
  readonly side: SideState
  readonly ticket: Ticket
  /** Copies: the received datagram is not ours to keep while the ports are bound. */
  readonly ticketBytes: Uint8Array
  readonly transactionId: Uint8Array
  /** The source as the socket reported it, and unmapped from IPv4-mapped IPv6. */
  readonly raw: string
  readonly ip: string
  readonly port: number
  readonly retriesLeft: number
}

/** What to do with a datagram: answer these bytes to its source, bind a session first, or nothing. */
export type MainResult = Uint8Array | PendingAllocate | null

export interface MainPortOptions {
  table: SessionTable
  guard: SourceGuard
  cookies: CookieJar
  /**
   * Answers to sources that have not proved their address, per source prefix: STUN responses, and ALLOCATE cookie
   * replies (and malformed answers). Two tables, so that forging one kind at a network does not cost it the other.
   */
  answers: { stun: PrefixLimiter; allocate: PrefixLimiter }
  /** Ed25519 ticket checks, all sources together. */
  ticketChecks: TokenBucket
  metrics: RelayMetrics
  log: Logger
  idleTimeoutSec: number
  blockSeconds: number
}

/** Refusals that say the sender holds no valid ticket for this relay: they count towards blocking a proved source. */
const INVALID: ReadonlySet<DropReason> = new Set(['bad_ticket', 'expired_ticket', 'wrong_relay'])

export class MainPort {
  /** The control server's Ed25519 ticket key; null until known (then ALLOCATE answers no_control_key). */
  controlKey: Uint8Array | null = null
  /** This relay's id, which tickets must name (set once the main port is bound: the default derives from it). */
  relayId = ''

  constructor(private readonly o: MainPortOptions) {}

  /**
   * A datagram on the main port (`allocate` true) or the STUN alt port (false: STUN only). `address` is the source
   * as the socket reports it: the session ports share the bind address and report sources the same way, so a side
   * is locked to exactly this string.
   */
  datagram(buf: Uint8Array, port: number, address: string, allocate: boolean, now: number): MainResult {
    const { metrics } = this.o
    metrics.mainPacketsIn++
    const ip = address.startsWith('::ffff:') ? address.slice(7) : address
    if (this.o.guard.isBlocked(ip, now)) {
      metrics.drops.blocked++
      return null
    }
    if (isStun(buf)) return this.stun(buf, port, ip, now)
    if (allocate && isAllocate(buf)) return this.allocate(buf, port, ip, address, now)
    metrics.drops.unknown_message++
    return null
  }

  /** The session ports of `p` were bound (`ok`) or one of them could not be: answer, or try other ports. */
  bound(p: PendingAllocate, ok: boolean, now: number): MainResult {
    if (ok) {
      this.o.metrics.allocateOk++
      return this.respond(p.port, p.ip, p.transactionId, 'ok', p.side.name, p.side.port, p.session.sessionId)
    }
    if (p.retriesLeft > 0) return this.claim(p, now, p.retriesLeft - 1)
    this.o.metrics.drops.no_ports++
    return this.respond(p.port, p.ip, p.transactionId, 'no_ports', p.side.name, 0, p.session.sessionId)
  }

  /** Whether an unproved source may be answered now (its prefix's bucket); counts the drop when not. */
  private mayAnswer(kind: 'stun' | 'allocate', ip: string, now: number): boolean {
    if (this.o.answers[kind].take(ip, now)) return true
    this.o.metrics.drops.answer_limited++
    return false
  }

  private stun(buf: Uint8Array, port: number, ip: string, now: number): MainResult {
    if (!this.mayAnswer('stun', ip, now)) return null
    const d = decodeStun(buf)
    // RFC 8489 §6.3: only Binding requests get an answer; indications and anything malformed are dropped.
    if (!d.ok || d.message.type !== BINDING_REQUEST) {
      this.o.metrics.drops.bad_stun++
      return null
    }
    this.o.log.debug('stun binding', { from: `${ip}:${port}` })
    this.o.metrics.stunResponses++
    // FINGERPRINT only when the request carried one (RFC 8489 §14.7 lets a server mirror the client): a 20-byte
    // request gets 32 bytes, not 40.
    const fingerprint = d.message.attributes.some((a) => a.type === ATTR.FINGERPRINT)
    return encodeBindingResponse(d.message.transactionId, { address: ip, port, family: ip.includes(':') ? 'IPv6' : 'IPv4' }, { fingerprint })
  }

  private allocate(buf: Uint8Array, port: number, ip: string, raw: string, now: number): MainResult {
    const { metrics } = this.o
    metrics.allocateRequests++
    // Nothing is allocated until the source has proved its address: a flood of forged requests ends here.
    if (allocateRequestError(buf)) {
      // Not a request we understand (another version, kind or length). Never counts towards blocking: anyone can
      // send it from any address. Answered only when the answer is not larger than what came in.
      metrics.drops.malformed++
      if (buf.length < ALLOCATE_RESPONSE_LEN || !this.mayAnswer('allocate', ip, now)) return null
      return this.respond(port, ip, buf.subarray(8, 20), 'malformed', null, 0)
    }
    // Return routability before anything else: an unproved source only ever gets a cookie (smaller than its
    // request), so a forged source address can neither claim a side nor count towards blocking that address.
    if (!this.o.cookies.check(buf, raw, port, now)) {
      if (!this.mayAnswer('allocate', ip, now)) return null
      metrics.allocateCookies++
      return this.o.cookies.reply(buf, raw, port, now)
    }
    const req = decodeAllocateRequest(buf)
    if (!req.ok) return null // checked above
    const { transactionId, ticket: ticketBytes } = req.value
    const refuse = (status: Exclude<AllocateStatus, 'ok'>, t?: Ticket) => this.refuse({ port, ip, transactionId, ticket: t }, status, now)
    // Then the checks that cost a comparison, and only then the signature, within its budget.
    const d = decodeTicket(ticketBytes)
    if (!d.ok) return refuse('bad_ticket')
    const t = d.ticket
    if (!this.controlKey) return refuse('no_control_key', t)
    const cheap = checkTicketFields(t, { relayId: this.relayId, nowSec: Math.floor(now / 1000) })
    if (cheap) return refuse(cheap === 'expired' ? 'expired_ticket' : 'wrong_relay', t)
    const pending = { ticket: t, ticketBytes: ticketBytes.slice(), transactionId: transactionId.slice(), raw, ip, port }
    // A retry of an ALLOCATE that succeeded: these exact bytes were checked when they claimed the side.
    const held = this.o.table.claimedBy(t, ticketBytes, raw)
    if (held) return this.opened({ ...pending, ...held, retriesLeft: BIND_RETRIES }, now)
    if (!this.o.ticketChecks.take(now)) return refuse('busy', t)
    metrics.ticketChecks++
    if (!checkTicketSignature(ticketBytes, this.controlKey)) return refuse('bad_ticket', t)
    return this.claim(pending, now, BIND_RETRIES)
  }

  private claim(p: Omit<PendingAllocate, 'session' | 'side' | 'retriesLeft'>, now: number, retriesLeft: number): MainResult {
    const d = this.o.table.allocate(p.ticket, p.ticketBytes, p.raw, now)
    if (d.status !== 'ok') return this.refuse(p, d.status, now)
    return this.opened({ ...p, session: d.session, side: d.side, retriesLeft }, now)
  }

  /** Answers a refusal to a source that proved its address; invalid tickets count towards blocking it. */
  private refuse(p: { port: number; ip: string; transactionId: Uint8Array; ticket?: Ticket }, status: Exclude<AllocateStatus, 'ok'>, now: number) {
    this.o.metrics.drops[status]++
    if (INVALID.has(status) && this.o.guard.noteInvalid(p.ip, now))
      this.o.log.warn('blocking source after repeated invalid tickets', { ip: p.ip, seconds: this.o.blockSeconds })
    this.o.log.debug('allocate refused', { from: `${p.ip}:${p.port}`, reason: status })
    return this.respond(p.port, p.ip, p.transactionId, status, p.ticket?.side ?? null, 0, p.ticket?.sessionId)
  }

  private opened(p: PendingAllocate, now: number): MainResult {
    return p.session.ready ? this.bound(p, true, now) : p
  }

  private respond(port: number, ip: string, txid: Uint8Array, status: AllocateStatus, side: Side | null, sessionPort: number, sessionId?: Uint8Array) {
    return encodeAllocateResponse({
      transactionId: txid,
      status,
      side,
      sessionPort,
      observed: { address: ip, port, family: ip.includes(':') ? 'IPv6' : 'IPv4' },
      idleTimeoutSec: this.o.idleTimeoutSec,
      sessionId: sessionId ?? new Uint8Array(16),
    })
  }
}
