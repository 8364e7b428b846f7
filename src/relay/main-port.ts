/**
 * The relay's main UDP port as pure decisions: a datagram (bytes, source, time) in, the bytes to answer with (or
 * nothing) out. No sockets and no timers; sockets.ts receives, sends and binds the session ports that an ALLOCATE
 * asks for. STUN Binding (RFC 8489) and ALLOCATE (src/shared/wire/allocate.ts) are told apart by their first bytes.
 */
import type { Logger } from '../shared/log.ts'
import { decodeAllocateRequest, encodeAllocateResponse, isAllocate, type AllocateStatus } from '../shared/wire/allocate.ts'
import { BINDING_REQUEST, decodeStun, encodeBindingResponse, isStun } from '../shared/wire/stun.ts'
import { decodeTicket, type Side } from '../shared/wire/ticket.ts'
import type { RelayMetrics } from './metrics.ts'
import type { Session, SessionTable, SideState, SourceGuard } from './session-table.ts'

/** How many times an ALLOCATE tries fresh ports when a session port cannot be bound (held by another program). */
export const BIND_RETRIES = 4

/** An ALLOCATE whose session ports must be bound before it can be answered (see MainPort.bound). */
export interface PendingAllocate {
  readonly session: Session
  readonly side: SideState
  readonly request: { transactionId: Uint8Array; ticket: Uint8Array }
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
  metrics: RelayMetrics
  log: Logger
  idleTimeoutSec: number
  blockSeconds: number
}

export class MainPort {
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
    if (isStun(buf)) return this.stun(buf, port, ip)
    if (allocate && isAllocate(buf)) return this.allocate(buf, port, ip, address, now)
    metrics.drops.unknown_message++
    return null
  }

  /** The session ports of `p` were bound (`ok`) or one of them could not be: answer, or try other ports. */
  bound(p: PendingAllocate, ok: boolean, now: number): MainResult {
    if (ok) {
      this.o.metrics.allocateOk++
      return this.respond(p.port, p.ip, p.request.transactionId, 'ok', p.side.name, p.side.port, p.session.sessionId)
    }
    if (p.retriesLeft > 0) return this.claim(p.request, p.port, p.ip, p.raw, now, p.retriesLeft - 1)
    this.o.metrics.drops.no_ports++
    return this.respond(p.port, p.ip, p.request.transactionId, 'no_ports', p.side.name, 0, p.session.sessionId)
  }

  private stun(buf: Uint8Array, port: number, ip: string): MainResult {
    const d = decodeStun(buf)
    // RFC 8489 §6.3: only Binding requests get an answer; indications and anything malformed are dropped.
    if (!d.ok || d.message.type !== BINDING_REQUEST) {
      this.o.metrics.drops.bad_stun++
      return null
    }
    this.o.log.debug('stun binding', { from: `${ip}:${port}` })
    this.o.metrics.stunResponses++
    return encodeBindingResponse(d.message.transactionId, { address: ip, port, family: ip.includes(':') ? 'IPv6' : 'IPv4' }, { fingerprint: true })
  }

  private allocate(buf: Uint8Array, port: number, ip: string, raw: string, now: number): MainResult {
    this.o.metrics.allocateRequests++
    const req = decodeAllocateRequest(buf)
    if (!req.ok) {
      this.o.metrics.drops.bad_ticket++
      this.noteInvalid(ip, now)
      return null
    }
    return this.claim(req.value, port, ip, raw, now, BIND_RETRIES)
  }

  private claim(request: PendingAllocate['request'], port: number, ip: string, raw: string, now: number, retriesLeft: number): MainResult {
    const d = this.o.table.allocate(request.ticket, raw, now)
    if (d.status !== 'ok') {
      this.o.metrics.drops[d.reason]++
      if (d.reason === 'bad_ticket' || d.reason === 'expired_ticket' || d.reason === 'wrong_relay') this.noteInvalid(ip, now)
      // Echo side and session id when the ticket is readable (unverified: the requester's own bytes).
      const t = decodeTicket(request.ticket)
      this.o.log.debug('allocate refused', { from: `${ip}:${port}`, reason: d.reason })
      return this.respond(port, ip, request.transactionId, d.status, t.ok ? t.ticket.side : null, 0, t.ok ? t.ticket.sessionId : undefined)
    }
    const pending: PendingAllocate = { session: d.session, side: d.side, request, raw, ip, port, retriesLeft }
    return d.session.ready ? this.bound(pending, true, now) : pending
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

  private noteInvalid(ip: string, now: number) {
    if (this.o.guard.noteInvalid(ip, now)) this.o.log.warn('blocking source after repeated invalid tickets', { ip, seconds: this.o.blockSeconds })
  }
}
