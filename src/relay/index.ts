/**
 * The relay process core (DESIGN.md "Relay"): the only file that touches sockets. `startRelay(config, deps)`
 * binds the main UDP port (STUN + ALLOCATE), binds two session ports per session on demand, forwards, expires,
 * registers with the control server, and serves /metrics. Decisions live in session-table.ts (pure).
 *
 * Hot path (a datagram on a session port): one decision, then the received Buffer object itself goes into the
 * other side's `socket.send` — no copy, no allocation of ours, at most one send per datagram received.
 */
import { createHash } from 'node:crypto'
import { networkInterfaces } from 'node:os'
import type { Clock } from '../shared/clock.ts'
import { createLogger, type Logger } from '../shared/log.ts'
import { decodeAllocateRequest, encodeAllocateResponse, isAllocate, type AllocateStatus } from '../shared/wire/allocate.ts'
import { BINDING_REQUEST, decodeStun, encodeBindingResponse, isStun } from '../shared/wire/stun.ts'
import { decodeTicket } from '../shared/wire/ticket.ts'
import { parsePortRange, type RelayConfig } from './config.ts'
import { startControlLink, type ControlLink } from './control-link.ts'
import { RelayMetrics, renderPrometheus, sessionStats, type SessionStats } from './metrics.ts'
import { decidePacket, SessionTable, SourceGuard, type Limits, type Session, type SideState } from './session-table.ts'

type Sock = Bun.udp.Socket<'buffer'>

export interface RelayDeps {
  log?: Logger
  clock?: Clock
  /** The control server's Ed25519 ticket key, when known without registering (lanrage serve, tests, bench). */
  ticketPublicKey?: Uint8Array
  fetch?: typeof fetch
  /** How often idle sessions are swept (ms); tests pass 0 and call sweep() themselves. */
  sweepIntervalMs?: number
  /** Registration retry backoff bounds in ms (default 1 s doubling to 60 s); tests shorten them. */
  controlBackoffMs?: [number, number]
}

export interface Relay {
  /** The main UDP port (STUN + ALLOCATE). */
  readonly port: number
  /** The second port answering STUN Binding only (--stun-alt-port); null when off. */
  readonly stunAltPort: number | null
  readonly host: string
  readonly relayId: string
  readonly publicIp: string
  /** The metrics HTTP port, when enabled. */
  readonly metricsPort: number | undefined
  /** Resolves when the control server registration first succeeded (only with --control). */
  readonly registered: Promise<void> | undefined
  sessionPorts(): { session_id: string; party_id: string; a: number; b: number }[]
  sessions(): SessionStats[]
  stats(): ReturnType<RelayMetrics['snapshot']> & { sessions: number; capacity: number; blocked_sources: number; control_key_known: boolean }
  metricsText(): string
  setTicketPublicKey(key: Uint8Array): void
  /** Runs idle expiry now (the timer does it every few seconds). Returns how many sessions were freed. */
  sweep(): number
  close(): Promise<void>
}

/** Stable relay id when none is configured: tickets issued before a restart stay valid after it. */
export function defaultRelayId(publicIp: string, port: number): string {
  return createHash('sha256').update(`lanrage-relay ${publicIp}:${port}`).digest('hex').slice(0, 16)
}

export function defaultPublicIp(host: string): string {
  if (host !== '0.0.0.0' && host !== '::' && host !== '') return host
  for (const list of Object.values(networkInterfaces()))
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address
  return '127.0.0.1'
}

const SWEEP_MS = 5000
const COARSE_CLOCK_MS = 5
/** How many times ALLOCATE tries fresh ports when a session port cannot be bound (held by another program). */
const BIND_RETRIES = 4

export async function startRelay(config: RelayConfig, deps: RelayDeps = {}): Promise<Relay> {
  const log = deps.log ?? createLogger('relay')
  // Reading the system clock costs ~60 ns here (more than the rest of the per-datagram decision), so the data
  // path reads a value a timer refreshes every COARSE_CLOCK_MS; token buckets and expiry need no finer time.
  // An injected clock (tests) is read directly.
  let coarseNow = Date.now()
  const clock: Clock = deps.clock ?? { now: () => coarseNow }
  const range = parsePortRange(config.ports)
  if (!range) throw new RangeError(`bad port range ${JSON.stringify(config.ports)}: expected FIRST-LAST within 1-65535`)
  const host = config.host
  const limits: Limits = { pps: config.ratePps, bps: config.rateBps, burstS: config.burstS }
  const metrics = new RelayMetrics()
  const guard = new SourceGuard(config.deny, {
    limit: config.invalidTicketLimit,
    windowMs: config.invalidTicketWindow * 1000,
    blockMs: config.blockSeconds * 1000,
  })
  const publicIp = config.publicIp || defaultPublicIp(host)
  const capacity = Math.min(config.capacity, Math.floor((range.last - range.first + 1) / 2))
  const sockets = new Set<Sock>()
  const binding = new Map<Session, Promise<boolean>>()
  let closed = false

  // STYLE.md §3: without an error handler an ICMP unreachable (ECONNREFUSED) would kill the process. Bun 1.4.4
  // calls it with the error alone although the typings say (socket, error), so take whichever is the error.
  const onError = (where: string) => (a: unknown, b?: unknown) => {
    const err = (b ?? a) as (Error & { code?: string }) | undefined
    metrics.socketErrors++
    log.debug('socket error', { where, code: err?.code, error: err instanceof Error ? err.message : String(err) })
  }

  // ---------------------------------------------------------------- main port: STUN + ALLOCATE
  // The alt port shares this handler with `allocate` false: STUN only. A client that sees one relay still gets two
  // destinations to compare mappings from (RFC 5780 §4.3: a mapping that changes with the destination is symmetric).
  const mainData =
    (allocate: boolean) =>
    (sock: Sock, buf: Buffer, port: number, address: string): void => {
      metrics.mainPacketsIn++
      const ip = address.startsWith('::ffff:') ? address.slice(7) : address
      const now = clock.now()
      if (guard.isBlocked(ip, now)) {
        metrics.drops.blocked++
        return
      }
      if (isStun(buf)) return onStun(sock, buf, port, ip)
      if (allocate && isAllocate(buf)) return onAllocate(sock, buf, port, ip, address, now)
      metrics.drops.unknown_message++
    }
  const main: Sock = await Bun.udpSocket({ hostname: host, port: config.port, socket: { data: mainData(true), error: onError('main') } })
  sockets.add(main)
  let alt: Sock | undefined
  if (config.stunAltPort >= 0) {
    try {
      alt = await Bun.udpSocket({ hostname: host, port: config.stunAltPort, socket: { data: mainData(false), error: onError('stun-alt') } })
    } catch (e) {
      main.close()
      throw new Error(`STUN alt port ${config.stunAltPort}: ${e instanceof Error ? e.message : String(e)}`)
    }
    sockets.add(alt)
  }
  const coarseTimer = deps.clock ? undefined : setInterval(() => (coarseNow = Date.now()), COARSE_CLOCK_MS)
  const relayId: string = config.relayId || defaultRelayId(publicIp, main.port)
  const table: SessionTable = new SessionTable({
    relayId,
    firstPort: range.first,
    lastPort: range.last,
    capacity,
    idleMs: config.idleTimeout * 1000,
    limits,
  })
  if (deps.ticketPublicKey) table.controlKey = deps.ticketPublicKey

  function onStun(sock: Sock, buf: Buffer, port: number, ip: string): void {
    const d = decodeStun(buf)
    // RFC 8489 §6.3: only Binding requests get an answer; indications and anything malformed are dropped.
    if (!d.ok || d.message.type !== BINDING_REQUEST) {
      metrics.drops.bad_stun++
      return
    }
    const res = encodeBindingResponse(d.message.transactionId, { address: ip, port, family: ip.includes(':') ? 'IPv6' : 'IPv4' }, { fingerprint: true })
    log.debug('stun binding', { from: `${ip}:${port}` })
    if (sock.send(res, port, ip)) metrics.stunResponses++
    else metrics.drops.send_failed++
  }

  function respond(
    sock: Sock,
    port: number,
    ip: string,
    txid: Uint8Array,
    status: AllocateStatus,
    extra: { side?: 'a' | 'b' | null; sessionPort?: number; sessionId?: Uint8Array },
  ): void {
    const res = encodeAllocateResponse({
      transactionId: txid,
      status,
      side: extra.side ?? null,
      sessionPort: extra.sessionPort ?? 0,
      observed: { address: ip, port, family: ip.includes(':') ? 'IPv6' : 'IPv4' },
      idleTimeoutSec: config.idleTimeout,
      sessionId: extra.sessionId ?? new Uint8Array(16),
    })
    if (!sock.send(res, port, ip)) metrics.drops.send_failed++
  }

  // `ip` is the source as reported (IPv4-mapped addresses unmapped); `raw` is the string the sockets report, which
  // the session ports will see too (they share the bind address), so the side is locked to `raw`.
  function onAllocate(sock: Sock, buf: Buffer, port: number, ip: string, raw: string, now: number): void {
    metrics.allocateRequests++
    const req = decodeAllocateRequest(buf)
    if (!req.ok) {
      metrics.drops.bad_ticket++
      noteInvalid(ip, now)
      return
    }
    const txid = req.value.transactionId
    // A port someone else holds fails to bind: it is skipped from then on and the allocation is retried.
    const attempt = (left: number): void => {
      const d = table.allocate(req.value.ticket, raw, now)
      if (d.status !== 'ok') {
        metrics.drops[d.reason]++
        if (d.reason === 'bad_ticket' || d.reason === 'expired_ticket' || d.reason === 'wrong_relay') noteInvalid(ip, now)
        // Echo side and session id when the ticket is readable (unverified: the requester's own bytes).
        const t = decodeTicket(req.value.ticket)
        const ticket = t.ok ? t.ticket : undefined
        log.debug('allocate refused', { from: `${ip}:${port}`, reason: d.reason })
        return respond(sock, port, ip, txid, d.status, { side: ticket?.side, sessionId: ticket?.sessionId })
      }
      const { session, side } = d
      const answer = (ok: boolean) => {
        if (!ok) {
          if (left > 0 && !closed) return attempt(left - 1)
          metrics.drops.no_ports++
          return respond(sock, port, ip, txid, 'no_ports', { side: side.name, sessionId: session.sessionId })
        }
        metrics.allocateOk++
        respond(sock, port, ip, txid, 'ok', { side: side.name, sessionPort: side.port, sessionId: session.sessionId })
      }
      if (session.ready) return answer(true)
      let p = binding.get(session)
      if (!p) {
        p = bindSession(session)
        binding.set(session, p)
      }
      void p.then(answer)
    }
    attempt(BIND_RETRIES)
  }

  function noteInvalid(ip: string, now: number) {
    if (guard.noteInvalid(ip, now)) log.warn('blocking source after repeated invalid tickets', { ip, seconds: config.blockSeconds })
  }

  async function bindSide(s: Session, from: SideState, to: SideState): Promise<Sock> {
    return Bun.udpSocket({
      hostname: host,
      port: from.port,
      socket: {
        data(_sock, buf, port, address) {
          metrics.packetsIn++
          metrics.bytesIn += buf.length
          // No deny-list lookup here: a side only accepts its locked IP, which passed the list at ALLOCATE.
          const r = decidePacket(s, from, to, address, port, buf, clock.now(), limits)
          if (r !== null) {
            metrics.drops[r]++
            return
          }
          // The received Buffer goes out as is: no copy (DESIGN.md "Relay").
          if ((to.socket as Sock).send(buf, to.peerPort, to.ip!)) {
            metrics.forwarded++
            metrics.bytesForwarded += buf.length
          } else metrics.drops.send_failed++
        },
        error: onError(`session ${from.port}`),
      },
    })
  }

  async function bindSession(s: Session): Promise<boolean> {
    const socks: Sock[] = []
    try {
      for (const [from, to] of [
        [s.a, s.b],
        [s.b, s.a],
      ] as const) {
        try {
          const sock = await bindSide(s, from, to)
          socks.push(sock)
          from.socket = sock
        } catch (e) {
          // Someone else holds this port: skip it from now on, free the session; the peer's retry gets new ports.
          table.unbindable.add(from.port)
          throw e
        }
      }
      if (closed || !table.sessions.has(s.id)) throw new Error('relay closed while binding')
      for (const sock of socks) sockets.add(sock)
      s.ready = true
      metrics.sessionsOpened++
      log.info('session opened', { session: s.id.slice(0, 8), party: s.partyId, port_a: s.a.port, port_b: s.b.port })
      return true
    } catch (e) {
      for (const sock of socks) sock.close()
      table.remove(s)
      log.warn('could not bind session ports', { session: s.id.slice(0, 8), error: e instanceof Error ? e.message : String(e) })
      return false
    } finally {
      binding.delete(s)
    }
  }

  function sweep(): number {
    const now = clock.now()
    guard.prune(now)
    table.unbindable.clear() // ports held by others may be free again
    const gone = table.expire(now)
    for (const s of gone) {
      for (const side of [s.a, s.b]) {
        const sock = side.socket as Sock | null
        if (sock) {
          sockets.delete(sock)
          sock.close()
        }
      }
      metrics.sessionsExpired++
      log.info('session expired', { session: s.id.slice(0, 8), idle_s: Math.round((now - s.lastActive) / 1000), port_a: s.a.port, port_b: s.b.port })
    }
    return gone.length
  }
  const sweepMs = deps.sweepIntervalMs ?? SWEEP_MS
  const sweepTimer = sweepMs > 0 ? setInterval(sweep, sweepMs) : undefined

  // ---------------------------------------------------------------- stats log, metrics, control
  let last = { in: 0, fwd: 0, at: clock.now() }
  const statsTimer =
    config.statsInterval > 0
      ? setInterval(() => {
          const now = clock.now()
          const secs = Math.max(1, (now - last.at) / 1000)
          const drops = Object.entries(metrics.drops).filter(([, v]) => v > 0)
          log.info('stats', {
            sessions: table.size,
            in_pps: Math.round((metrics.packetsIn - last.in) / secs),
            fwd_pps: Math.round((metrics.forwarded - last.fwd) / secs),
            forwarded: metrics.forwarded,
            stun: metrics.stunResponses,
            blocked: guard.blockedCount,
            drops: drops.length ? drops.map(([k, v]) => `${k}:${v}`).join(',') : '0',
          })
          last = { in: metrics.packetsIn, fwd: metrics.forwarded, at: now }
        }, config.statsInterval * 1000)
      : undefined

  const gauges = () => ({ sessions: table.size, capacity, blocked: guard.blockedCount, controlKnown: table.controlKey !== null })
  const metricsText = () => renderPrometheus(metrics, gauges())
  const httpServer =
    config.metricsPort >= 0
      ? Bun.serve({
          hostname: config.metricsHost,
          port: config.metricsPort,
          fetch(req) {
            const path = new URL(req.url).pathname
            if (path === '/metrics') return new Response(metricsText(), { headers: { 'content-type': 'text/plain; version=0.0.4' } })
            if (path === '/health') return Response.json({ status: 'ok', relay_id: relayId, sessions: table.size })
            return Response.json({ error: { code: 'ROUTE_NOT_FOUND', message: 'not found' } }, { status: 404 })
          },
        })
      : undefined

  let link: ControlLink | undefined
  if (config.control) {
    if (!config.relaySecret) log.warn('--control is set but --relay-secret is not; the control server will refuse registration')
    link = startControlLink({
      url: config.control,
      secret: config.relaySecret,
      log,
      fetch: deps.fetch,
      minBackoffMs: deps.controlBackoffMs?.[0],
      maxBackoffMs: deps.controlBackoffMs?.[1],
      register: () => ({
        relay_id: relayId,
        public_ip: publicIp,
        port: main.port,
        stun_alt_port: alt?.port ?? null,
        region: config.region,
        capacity,
        load: table.size,
        ports: config.ports,
      }),
      heartbeat: () => ({ load: table.size, sessions: table.size }),
      onKey: (key) => {
        table.controlKey = key
      },
    })
  } else if (!table.controlKey) {
    log.warn('no --control server: serving STUN only; cannot accept tickets until it knows a control server key')
  }

  log.info('relay listening', {
    host,
    port: main.port,
    stun_alt_port: alt?.port ?? 'off',
    ports: config.ports,
    public_ip: publicIp,
    relay_id: relayId,
    region: config.region,
    capacity,
    metrics: httpServer ? `${config.metricsHost}:${httpServer.port}` : 'off',
  })

  return {
    port: main.port,
    stunAltPort: alt?.port ?? null,
    host,
    relayId,
    publicIp,
    metricsPort: httpServer?.port,
    registered: link?.registered,
    sessionPorts: () => [...table.sessions.values()].filter((s) => s.ready).map((s) => ({ session_id: s.id, party_id: s.partyId, a: s.a.port, b: s.b.port })),
    sessions: () => [...table.sessions.values()].map((s) => sessionStats(s, clock.now())),
    stats: () => ({ ...metrics.snapshot(), sessions: table.size, capacity, blocked_sources: guard.blockedCount, control_key_known: table.controlKey !== null }),
    metricsText,
    setTicketPublicKey: (key) => {
      table.controlKey = key
    },
    sweep,
    async close() {
      if (closed) return
      closed = true
      link?.stop()
      if (coarseTimer) clearInterval(coarseTimer)
      if (sweepTimer) clearInterval(sweepTimer)
      if (statsTimer) clearInterval(statsTimer)
      await Promise.allSettled([...binding.values()])
      for (const sock of sockets) sock.close()
      sockets.clear()
      for (const s of [...table.sessions.values()]) table.remove(s)
      if (httpServer) await httpServer.stop(true)
      log.info('relay stopped', { forwarded: metrics.forwarded })
    },
  }
}
