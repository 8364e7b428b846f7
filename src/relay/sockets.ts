/**
 * The only file of the relay that touches sockets: the main UDP port (STUN + ALLOCATE), the STUN alt port, and two
 * session ports per session. Decisions come from main-port.ts and session-table.ts (pure); socket handles stay
 * here, outside the session state.
 *
 * Hot path (a datagram on a session port): one decision, then the received Buffer object itself goes into the
 * other side's `send`: no copy, no allocation of ours, at most one send per datagram received.
 */
import type { Clock } from '../shared/clock.ts'
import { isAddrInUse, PortInUseError } from '../shared/errors.ts'
import type { Logger } from '../shared/log.ts'
import type { Forwarder } from './forwarder.ts'
import type { MainPort, MainResult } from './main-port.ts'
import type { RelayMetrics } from './metrics.ts'
import { decidePacket, type Limits, type Session, type SessionTable, type SideState } from './session-table.ts'

type Sock = Bun.udp.Socket<'buffer'>
/** A session's two sockets; `a` receives from side a and sends to it. */
interface Pair {
  a?: Sock
  b?: Sock
}

export interface SocketsOptions {
  host: string
  port: number
  /** -1 = no alt port. */
  stunAltPort: number
  main: MainPort
  table: SessionTable
  limits: Limits
  metrics: RelayMetrics
  forwarder: Forwarder
  clock: Clock
  log: Logger
}

export interface RelaySockets {
  readonly port: number
  readonly stunAltPort: number | null
  /** Closes the sockets of a session the table no longer holds (idle expiry). */
  closeSession(s: Session): void
  close(): Promise<void>
}

export async function openSockets(o: SocketsOptions): Promise<RelaySockets> {
  const { host, main, table, limits, metrics, forwarder, clock, log } = o
  const pairs = new Map<Session, Pair>()
  const binding = new Map<Session, Promise<boolean>>()
  let closed = false

  // Without an error handler an ICMP unreachable (ECONNREFUSED) would kill the process. Bun 1.4.4 calls it with
  // the error alone although the typings say (socket, error), so take whichever is the error.
  const onError = (where: string) => (a: unknown, b?: unknown) => {
    const err = (b ?? a) as (Error & { code?: string }) | undefined
    metrics.socketErrors++
    log.debug('socket error', { where, code: err?.code, error: err instanceof Error ? err.message : String(err) })
  }

  const send = (sock: Sock, bytes: Uint8Array, port: number, address: string) => {
    if (!sock.send(bytes, port, address)) metrics.drops.send_failed++
  }
  // The answer goes back from the socket the request came in on (STUN clients compare ports, RFC 5780 §4.3).
  const perform = (sock: Sock, r: MainResult, port: number, address: string): void => {
    if (r === null || closed) return
    if (r instanceof Uint8Array) return send(sock, r, port, address)
    let p = binding.get(r.session)
    if (!p) {
      p = bindSession(r.session)
      binding.set(r.session, p)
    }
    void p.then((ok) => perform(sock, main.bound(r, ok, clock.now()), port, address))
  }
  const mainData =
    (allocate: boolean) =>
    (sock: Sock, buf: Buffer, port: number, address: string): void =>
      perform(sock, main.datagram(buf, port, address, allocate, clock.now()), port, address)

  const bindMain = async (port: number, what: string, flag: string, allocate: boolean): Promise<Sock> => {
    try {
      return await Bun.udpSocket({ hostname: host, port, socket: { data: mainData(allocate), error: onError(what) } })
    } catch (e) {
      if (isAddrInUse(e)) throw new PortInUseError(what, port, 'udp', flag, { cause: e })
      throw e
    }
  }
  const mainSock = await bindMain(o.port, 'relay main port', '--port', true)
  let alt: Sock | undefined
  if (o.stunAltPort >= 0) {
    try {
      alt = await bindMain(o.stunAltPort, 'relay STUN alt port', '--stun-alt-port', false)
    } catch (e) {
      mainSock.close()
      throw e
    }
  }

  function bindSide(s: Session, from: SideState, to: SideState, pair: Pair): Promise<Sock> {
    const out = to === s.a ? 'a' : 'b'
    return Bun.udpSocket({
      hostname: host,
      port: from.port,
      socket: {
        data(_sock, buf, port, address) {
          metrics.packetsIn++
          metrics.bytesIn += buf.length
          // No deny-list lookup here: a side only accepts its locked IP, which passed the list at ALLOCATE.
          const learned = from.peerPort
          const r = decidePacket(s, from, to, address, port, buf, clock.now(), limits)
          if (from.peerPort !== learned && to.peerPort !== 0) forwarder.onLocked(s)
          if (r !== null) {
            metrics.drops[r]++
            return
          }
          // The received Buffer goes out as is: no copy.
          if (pair[out]!.send(buf, to.peerPort, to.ip!)) {
            metrics.forwarded++
            metrics.bytesForwarded += buf.length
          } else metrics.drops.send_failed++
        },
        error: onError(`session ${from.port}`),
      },
    })
  }

  async function bindSession(s: Session): Promise<boolean> {
    const pair: Pair = {}
    try {
      for (const [from, to] of [
        [s.a, s.b],
        [s.b, s.a],
      ] as const) {
        try {
          pair[from.name] = await bindSide(s, from, to, pair)
        } catch (e) {
          // Someone else holds this port: skip it from now on, free the session; the peer's retry gets new ports.
          table.unbindable.add(from.port)
          throw e
        }
      }
      if (closed || !table.sessions.has(s.id)) throw new Error('relay closed while binding')
      pairs.set(s, pair)
      s.ready = true
      metrics.sessionsOpened++
      log.info('session opened', { session: s.id.slice(0, 8), party: s.partyId, port_a: s.a.port, port_b: s.b.port })
      return true
    } catch (e) {
      pair.a?.close()
      pair.b?.close()
      table.remove(s)
      log.warn('could not bind session ports', { session: s.id.slice(0, 8), error: e instanceof Error ? e.message : String(e) })
      return false
    } finally {
      binding.delete(s)
    }
  }

  function closeSession(s: Session) {
    const pair = pairs.get(s)
    pairs.delete(s)
    pair?.a?.close()
    pair?.b?.close()
  }

  return {
    port: mainSock.port,
    stunAltPort: alt?.port ?? null,
    closeSession,
    async close() {
      if (closed) return
      closed = true
      await Promise.allSettled([...binding.values()])
      mainSock.close()
      alt?.close()
      for (const s of [...pairs.keys()]) closeSession(s)
    },
  }
}
