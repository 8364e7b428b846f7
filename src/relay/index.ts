/**
 * The relay process: `startRelay(config, deps)` wires its parts together and runs its timers.
 *
 *   main-port.ts      STUN and ALLOCATE on the main port, as pure decisions (cookie.ts, limits.ts)
 *   session-table.ts  sessions, their sides, and the per-datagram decision (pure)
 *   sockets.ts        the only file with sockets: main port, STUN alt port, session ports and the hot path
 *   forwarder.ts      who forwards a locked session: user space, or the kernel with --kernel-offload (offload/)
 *   metrics.ts, metrics-server.ts, control-link.ts   counters, the HTTP endpoint, registration with the control server
 */
import { createHash } from 'node:crypto'
import { networkInterfaces } from 'node:os'
import type { Clock } from '../shared/clock.ts'
import { createLogger, type Logger } from '../shared/log.ts'
import { parsePortRange, type RelayConfig } from './config.ts'
import { startControlLink, type ControlLink } from './control-link.ts'
import { userSpaceForwarder, type Forwarder } from './forwarder.ts'
import { CookieJar } from './cookie.ts'
import { PrefixLimiter, TokenBucket } from './limits.ts'
import { MainPort } from './main-port.ts'
import { startKernelForwarder } from './offload/forwarder.ts'
import { RelayMetrics, renderPrometheus, sessionStats, type SessionStats } from './metrics.ts'
import { startMetricsServer, type MetricsServer } from './metrics-server.ts'
import { SessionTable, SourceGuard, type Limits } from './session-table.ts'
import { openSockets } from './sockets.ts'

// What a program embedding the relay needs besides startRelay (the `lanrage/relay` package entry).
export { defaultRelayConfig, relaySchema, type RelayConfig } from './config.ts'

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
  /** Forwarding of locked sessions (default: the kernel with config.kernelOffload, else user space). */
  forwarder?: Forwarder
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

/**
 * Starts the relay. A port another process holds stops it with a PortInUseError naming the `lanrage relay` flag
 * that moves it (--port, --stun-alt-port, --metrics-port).
 */
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
  const table: SessionTable = new SessionTable({
    firstPort: range.first,
    lastPort: range.last,
    capacity,
    idleMs: config.idleTimeout * 1000,
    limits,
  })
  // The kernel path starts first: when this host cannot do it, the relay stops with its reason before binding anything.
  const forwarder =
    deps.forwarder ?? (config.kernelOffload ? await startKernelForwarder({ firstPort: range.first, host, limits, metrics, log }) : userSpaceForwarder())
  const start = clock.now()
  const answerLimiter = () => new PrefixLimiter({ rate: config.answerRate, burst: 2 * config.answerRate })
  const answers = { stun: answerLimiter(), allocate: answerLimiter() }
  const ticketChecks = new TokenBucket(config.ticketCheckRate, config.ticketCheckRate, start)
  const main = new MainPort({ table, guard, cookies: new CookieJar(), answers, ticketChecks, metrics, log, idleTimeoutSec: config.idleTimeout, blockSeconds: config.blockSeconds })
  if (deps.ticketPublicKey) main.controlKey = deps.ticketPublicKey
  const sockets = await openSockets({ host, port: config.port, stunAltPort: config.stunAltPort, main, table, limits, metrics, forwarder, clock, log }).catch(
    async (e: unknown) => {
      await forwarder.close()
      throw e
    },
  )
  // The default relay id derives from the main port, known only once it is bound.
  const relayId: string = config.relayId || defaultRelayId(publicIp, sockets.port)
  main.relayId = relayId

  const gauges = () => ({ sessions: table.size, capacity, blocked: guard.blockedCount, controlKnown: main.controlKey !== null })
  const metricsText = () => {
    forwarder.sync(clock.now())
    return renderPrometheus(metrics, gauges())
  }
  let httpServer: MetricsServer | undefined
  try {
    if (config.metricsPort >= 0)
      httpServer = startMetricsServer({ host: config.metricsHost, port: config.metricsPort, metrics: metricsText, health: () => ({ relay_id: relayId, sessions: table.size }) })
  } catch (e) {
    await sockets.close()
    throw e
  }
  const coarseTimer = deps.clock ? undefined : setInterval(() => (coarseNow = Date.now()), COARSE_CLOCK_MS)

  function sweep(): number {
    const now = clock.now()
    forwarder.sync(now)
    guard.prune(now)
    table.unbindable.clear() // ports held by others may be free again
    const gone = table.expire(now)
    for (const s of gone) {
      forwarder.onUnlocked(s)
      sockets.closeSession(s)
      metrics.sessionsExpired++
      log.info('session expired', { session: s.id.slice(0, 8), idle_s: Math.round((now - s.lastActive) / 1000), port_a: s.a.port, port_b: s.b.port })
    }
    return gone.length
  }
  const sweepMs = deps.sweepIntervalMs ?? SWEEP_MS
  const sweepTimer = sweepMs > 0 ? setInterval(sweep, sweepMs) : undefined

  let last = { in: 0, fwd: 0, at: clock.now() }
  const statsTimer =
    config.statsInterval > 0
      ? setInterval(() => {
          const now = clock.now()
          forwarder.sync(now)
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
        port: sockets.port,
        stun_alt_port: sockets.stunAltPort,
        region: config.region,
        capacity,
        load: table.size,
        ports: config.ports,
      }),
      heartbeat: () => ({ load: table.size, sessions: table.size }),
      onKey: (key) => {
        main.controlKey = key
      },
    })
  } else if (!main.controlKey) {
    log.warn('no --control server: serving STUN only; cannot accept tickets until it knows a control server key')
  }

  log.info('relay listening', {
    host,
    port: sockets.port,
    stun_alt_port: sockets.stunAltPort ?? 'off',
    ports: config.ports,
    public_ip: publicIp,
    relay_id: relayId,
    region: config.region,
    capacity,
    forwarding: forwarder.kind,
    metrics: httpServer ? `${config.metricsHost}:${httpServer.port}` : 'off',
  })

  let closed = false
  return {
    port: sockets.port,
    stunAltPort: sockets.stunAltPort,
    host,
    relayId,
    publicIp,
    metricsPort: httpServer?.port,
    registered: link?.registered,
    sessionPorts: () => [...table.sessions.values()].filter((s) => s.ready).map((s) => ({ session_id: s.id, party_id: s.partyId, a: s.a.port, b: s.b.port })),
    sessions: () => {
      forwarder.sync(clock.now())
      return [...table.sessions.values()].map((s) => sessionStats(s, clock.now()))
    },
    stats: () => {
      forwarder.sync(clock.now())
      return { ...metrics.snapshot(), sessions: table.size, capacity, blocked_sources: guard.blockedCount, control_key_known: main.controlKey !== null }
    },
    metricsText,
    setTicketPublicKey: (key) => {
      main.controlKey = key
    },
    sweep,
    async close() {
      if (closed) return
      closed = true
      link?.stop()
      if (coarseTimer) clearInterval(coarseTimer)
      if (sweepTimer) clearInterval(sweepTimer)
      if (statsTimer) clearInterval(statsTimer)
      await sockets.close()
      for (const s of [...table.sessions.values()]) {
        forwarder.onUnlocked(s)
        table.remove(s)
      }
      await forwarder.close()
      if (httpServer) await httpServer.stop()
      log.info('relay stopped', { forwarded: metrics.forwarded })
    },
  }
}
