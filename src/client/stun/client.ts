/**
 * STUN Binding client (RFC 8489, IPv4) on one UDP socket, so several servers can be asked from the same local
 * port (that is what makes NAT mapping behaviour observable, RFC 5780 §4.3). Responses are matched by
 * transaction id and source address; anything else arriving on the socket is ignored.
 */
import { lookup } from 'node:dns/promises'
import { ATTR, BINDING_ERROR, decodeBindingResponse, decodeStun, encodeBindingRequest, getAttribute, newTransactionId, unmapIp, type AddrPort } from '../../shared/wire/stun.ts'
import { LanrageError } from '../../shared/errors.ts'
import { silentLogger, type Logger } from '../../shared/log.ts'
import { isUnreachable, openUdpSocket, type UdpSocket } from '../net/udp.ts'
import { RFC8489_RETRANSMIT, retransmitSchedule, transactionStep, type RetransmitPolicy } from './transaction.ts'

export class StunTimeoutError extends LanrageError {
  constructor(readonly server: string, afterMs: number) {
    super('STUN_TIMEOUT', `STUN server ${server} did not answer within ${afterMs}ms`, 504)
  }
}
/** The server answered with a Binding error response (RFC 8489 §14.8 ERROR-CODE). */
export class StunErrorResponseError extends LanrageError {
  constructor(readonly server: string, readonly stunCode: number, reason: string) {
    super('STUN_ERROR_RESPONSE', `STUN server ${server} answered error ${stunCode}${reason ? ' ' + reason : ''}`, 502)
  }
}
/** The kernel reported the server unreachable (ICMP port or host unreachable): nothing there answers STUN. */
export class StunUnreachableError extends LanrageError {
  constructor(readonly server: string, readonly reason: string) {
    super('STUN_UNREACHABLE', `STUN server ${server} is unreachable (${reason === 'ECONNREFUSED' ? 'ECONNREFUSED: nothing listens on that port' : reason})`, 502)
  }
}
export class StunSocketError extends LanrageError {
  constructor(message: string, options?: ErrorOptions) {
    super('STUN_SOCKET', message, 500, options)
  }
}

export interface StunServer {
  host: string
  port: number
}

/** "host:port" (port default 3478, RFC 8489 §9) → StunServer. */
export function parseStunServer(s: string): StunServer {
  const m = /^([^:]+)(?::(\d{1,5}))?$/.exec(s.trim())
  const port = m?.[2] ? Number(m[2]) : 3478
  if (!m || port < 1 || port > 65535) throw new LanrageError('INVALID_STUN_SERVER', `STUN server ${JSON.stringify(s)} is not host[:port]`)
  return { host: m[1]!, port }
}

export interface BindingResult {
  server: string
  /** Our address as the server saw it (XOR-MAPPED-ADDRESS). */
  mapped: AddrPort
  /** From the first send to the answer (includes retransmissions). */
  rttMs: number
}

interface Pending {
  key: string
  ip: string
  port: number
  resolve: (r: BindingResult) => void
  reject: (e: Error) => void
  started: number
  timer?: ReturnType<typeof setTimeout>
  /** A probe socket is asking this server alone whether it is unreachable (see onSocketError). */
  probing?: boolean
}

/**
 * How long a probe waits for the kernel's verdict: an ICMP error comes back within one round trip, and a
 * live server's answer ends the probe sooner.
 */
const PROBE_MS = 2000

const isIPv4 = (s: string) => /^\d{1,3}(\.\d{1,3}){3}$/.test(s)
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

export interface StunClientOptions {
  /** Local port; 0 (default) lets the OS choose. */
  port?: number
  /** Local address; default 0.0.0.0. */
  hostname?: string
  retransmit?: RetransmitPolicy
  log?: Logger
}

export class StunClient {
  private readonly pending = new Map<string, Pending>()
  private closed = false

  private constructor(
    private readonly socket: UdpSocket,
    private readonly retransmit: RetransmitPolicy,
    private readonly log: Logger,
    private readonly hostname: string,
  ) {}

  static async open(o: StunClientOptions = {}): Promise<StunClient> {
    let client: StunClient | undefined
    let socket: UdpSocket
    try {
      socket = await openUdpSocket({
        hostname: o.hostname ?? '0.0.0.0',
        port: o.port ?? 0,
        onMessage: (data, port, address) => client?.onDatagram(data, port, address),
        // ICMP errors (port unreachable...) and failed sends: never fatal; an unreachable server fails at once.
        onError: (err) => client?.onSocketError(err),
      })
    } catch (e) {
      throw new StunSocketError(`cannot bind UDP ${o.hostname ?? '0.0.0.0'}:${o.port ?? 0}: ${(e as Error).message}`, { cause: e })
    }
    client = new StunClient(socket, o.retransmit ?? RFC8489_RETRANSMIT, (o.log ?? silentLogger).child('stun'), o.hostname ?? '0.0.0.0')
    return client
  }

  get localPort(): number {
    return this.socket.port
  }
  get localAddress(): string {
    return this.socket.address
  }

  private onDatagram(data: Uint8Array, port: number, address: string): void {
    const r = decodeStun(data)
    if (!r.ok) return
    const key = hex(r.message.transactionId)
    const p = this.pending.get(key)
    // RFC 8489 §6.3: a response must come from where the request went; otherwise it is not ours.
    if (!p || p.ip !== unmapIp(address) || p.port !== port) return
    this.finish(p)
    const server = `${p.ip}:${p.port}`
    if (r.message.type === BINDING_ERROR) {
      const v = getAttribute(r.message, ATTR.ERROR_CODE)
      const code = v && v.length >= 4 ? (v[2]! & 7) * 100 + v[3]! : 0
      const reason = v && v.length > 4 ? new TextDecoder().decode(v.subarray(4)) : ''
      p.reject(new StunErrorResponseError(server, code, reason))
      return
    }
    const b = decodeBindingResponse(data)
    if (!b.ok) {
      p.reject(new StunErrorResponseError(server, 0, `malformed Binding response (${b.error})`))
      return
    }
    p.resolve({ server, mapped: { ...b.mapped, address: unmapIp(b.mapped.address) }, rttMs: Date.now() - p.started })
  }

  /**
   * The kernel reports ICMP port/host unreachable on the socket (Bun on Linux: ECONNREFUSED and the like through
   * the error handler, or from the next send) without saying which destination it was about, and every server
   * is asked from this one socket. So each transaction still waiting asks its server once more from a socket of
   * its own: an unreachable error there can only be about that server, which then fails at once instead of
   * after the whole retransmission schedule (39.5 s with RFC 8489's defaults).
   */
  private onSocketError(err: Error): void {
    this.log.debug('STUN socket error', { error: err, code: (err as { code?: string }).code })
    if (!isUnreachable(err) || this.closed) return
    for (const p of this.pending.values()) if (!p.probing) void this.probe(p)
  }

  private async probe(p: Pending): Promise<void> {
    p.probing = true
    const txid = newTransactionId()
    const server = `${p.ip}:${p.port}`
    let probe: UdpSocket | undefined
    let timer: ReturnType<typeof setTimeout> | undefined
    const end = () => {
      clearTimeout(timer)
      probe?.close()
      p.probing = false
    }
    try {
      probe = await openUdpSocket({
        hostname: this.hostname,
        port: 0,
        onMessage: (data, port, address) => {
          const r = decodeStun(data)
          // An answer from the server: it is alive, the error was about another destination.
          if (r.ok && hex(r.message.transactionId) === hex(txid) && unmapIp(address) === p.ip && port === p.port) end()
        },
        onError: (e) => {
          if (!isUnreachable(e)) return
          end()
          if (this.pending.get(p.key) !== p) return
          this.finish(p)
          p.reject(new StunUnreachableError(server, (e as { code?: string }).code ?? 'unreachable'))
        },
      })
    } catch (e) {
      this.log.debug('cannot open a STUN probe socket', { error: e as Error })
      p.probing = false
      return
    }
    if (this.pending.get(p.key) !== p) return end()
    timer = setTimeout(end, PROBE_MS)
    probe.send(encodeBindingRequest(txid), p.port, p.ip)
  }

  private finish(p: Pending) {
    clearTimeout(p.timer)
    this.pending.delete(p.key)
  }

  /** One Binding transaction with §6.2.1 retransmissions. Resolves with our mapped address. */
  async binding(server: StunServer | string): Promise<BindingResult> {
    const s = typeof server === 'string' ? parseStunServer(server) : server
    if (this.closed) throw new StunSocketError('the STUN client is closed')
    const ip = isIPv4(s.host) ? s.host : (await lookup(s.host, { family: 4 }).catch((e) => {
      throw new LanrageError('STUN_DNS', `cannot resolve STUN server ${s.host}: ${(e as Error).message}`, 502)
    })).address
    const txid = newTransactionId()
    const request = encodeBindingRequest(txid)
    const schedule = retransmitSchedule(this.retransmit)
    return new Promise<BindingResult>((resolve, reject) => {
      const p: Pending = { key: hex(txid), ip, port: s.port, resolve, reject, started: Date.now() }
      this.pending.set(p.key, p)
      let sent = 0
      const tick = () => {
        if (!this.pending.has(p.key)) return
        const step = transactionStep(schedule, p.started, sent, Date.now())
        if (step.action === 'send') {
          sent++
          this.socket.send(request, s.port, ip)
        } else if (step.action === 'timeout') {
          this.finish(p)
          reject(new StunTimeoutError(`${ip}:${s.port}`, schedule.timeoutAt))
          return
        }
        p.timer = setTimeout(tick, Math.max(0, step.nextAt - Date.now()))
      }
      tick()
    })
  }

  /** Closes the socket (freeing the port, e.g. for WireGuard); pending transactions fail. */
  close(): void {
    if (this.closed) return
    this.closed = true
    for (const p of [...this.pending.values()]) {
      this.finish(p)
      p.reject(new StunSocketError('the STUN client was closed'))
    }
    this.socket.close()
  }
}
