/**
 * The kernel implementation of the relay's Forwarder (forwarder.ts): `--kernel-offload`. A session is handed to
 * the kernel when both sides are locked and again whenever a side moves to another port; it is taken out when it
 * expires or the relay closes. What the kernel forwarded comes back from its counters, read in the background
 * (every few seconds while sessions are offloaded, and at once when someone asks for stats), and `sync` adds
 * it to the sessions' counters, the relay's metrics and each session's `lastActive`, so idle expiry, /metrics and
 * the stats log see kernel traffic as they see user-space traffic.
 */
import type { Logger } from '../../shared/log.ts'
import type { Forwarder } from '../forwarder.ts'
import type { RelayMetrics } from '../metrics.ts'
import type { Session, SideState } from '../session-table.ts'
import { startKernelOffload, type KernelOffload, type SessionDelta, type SideDelta } from './kernel.ts'
import type { OffloadLimits } from './ruleset.ts'

/**
 * How often the kernel's counters are read at least while sessions are offloaded (idle expiry works in minutes;
 * the relay's sweep and every stats or /metrics request read them too). A read lists two sets of the table with
 * `nft`: ~50 ms of CPU at 1000 sessions on a busy 2-core machine, so not every second.
 */
const POLL_MS = 5000

export interface KernelForwarderOptions {
  firstPort: number
  host: string
  limits: OffloadLimits
  metrics: RelayMetrics
  log: Logger
  /** Command prefix for nft and ip (tests run them in a namespace). */
  exec?: string[]
}

/** Starts the kernel path; throws KernelOffloadUnavailable (one line saying why) when this host cannot do it. */
export async function startKernelForwarder(o: KernelForwarderOptions): Promise<Forwarder & { readonly offload: KernelOffload }> {
  const log = o.log.child('offload')
  const k = await startKernelOffload({ firstPort: o.firstPort, host: o.host, limits: o.limits, log, exec: o.exec })
  log.info('kernel fast path on', { table: k.table })
  /** Sessions handed to the kernel (or on their way), by id. */
  const sessions = new Map<string, Session>()
  let pending = new Map<string, SessionDelta>()
  let polling: Promise<void> | undefined
  let polledAt = 0

  const addToSide = (side: SideState, d: SideDelta) => {
    side.packetsIn += d.forwarded + d.limited
    side.bytesIn += d.bytesForwarded + d.bytesLimited
    side.forwarded += d.forwarded
    side.bytesForwarded += d.bytesForwarded
    side.dropped += d.limited
  }
  const addToMetrics = (d: SideDelta) => {
    o.metrics.packetsIn += d.forwarded + d.limited
    o.metrics.bytesIn += d.bytesForwarded + d.bytesLimited
    o.metrics.forwarded += d.forwarded
    o.metrics.bytesForwarded += d.bytesForwarded
    o.metrics.drops.rate_limited += d.limited
  }
  /** The relay's totals always count it; the session's own counters and activity when it is still there. */
  const add = (s: Session | undefined, d: SessionDelta, now: number | undefined) => {
    addToMetrics(d.a)
    addToMetrics(d.b)
    if (!s) return
    addToSide(s.a, d.a)
    addToSide(s.b, d.b)
    if (now !== undefined && d.a.forwarded + d.b.forwarded > 0) s.lastActive = Math.max(s.lastActive, now)
  }
  const merge = (into: Map<string, SessionDelta>, from: Map<string, SessionDelta>) => {
    for (const [id, d] of from) {
      const cur = into.get(id)
      if (!cur) into.set(id, d)
      else
        for (const side of ['a', 'b'] as const)
          for (const key of ['forwarded', 'bytesForwarded', 'limited', 'bytesLimited'] as const) cur[side][key] += d[side][key]
    }
  }
  const poll = () => {
    if (polling || !k.alive || k.size === 0) return
    polledAt = performance.now()
    polling = k
      .poll()
      .then((d) => merge(pending, d))
      .catch((e: unknown) => log.warn('reading kernel counters failed', { error: e instanceof Error ? e.message : String(e) }))
      .finally(() => (polling = undefined))
  }
  // The sweep's sync() reads every few seconds already; the timer covers a relay whose sweep is off.
  const timer = setInterval(() => performance.now() - polledAt >= POLL_MS && poll(), POLL_MS)

  return {
    kind: 'kernel (nftables)',
    offload: k,
    onLocked(s) {
      if (s.a.ip === null || s.b.ip === null) return
      sessions.set(s.id, s)
      const sides = { a: { port: s.a.port, ip: s.a.ip, peerPort: s.a.peerPort }, b: { port: s.b.port, ip: s.b.ip, peerPort: s.b.peerPort } }
      void k.apply(s.id, sides).then((ok) => {
        if (ok) log.debug('session in the kernel', { session: s.id.slice(0, 8), port_a: s.a.port, port_b: s.b.port })
        else log.debug('session stays in user space', { session: s.id.slice(0, 8) })
      })
    },
    onUnlocked(s) {
      if (!sessions.delete(s.id)) return
      // What it forwarded since the last read still counts in the relay's totals, though the session is gone.
      const d = pending.get(s.id)
      pending.delete(s.id)
      if (d) add(s, d, undefined)
      void k.remove(s.id).then((last) => last && add(s, last, undefined))
    },
    sync(now) {
      for (const [id, d] of pending) add(sessions.get(id), d, now)
      pending = new Map()
      poll() // a caller asking for numbers gets fresh ones on its next call
    },
    async close() {
      clearInterval(timer)
      await polling
      await k.close()
    },
  }
}
