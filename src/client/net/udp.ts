/**
 * UDP for the client library on both runtimes it supports: Bun's own socket (`Bun.udpSocket`) when running on
 * Bun, `node:dgram` on Node (>= 20, Electron). The library needs little: bind one local port, send datagrams to
 * an IP literal, receive them as bytes with their source, close. Nothing here throws after the socket is bound:
 * an ICMP error or a failed send goes to `onError` (on Linux Bun reports ICMP port unreachable on the socket;
 * with no handler that would be an uncaught error, and a launcher must not die because a peer went away).
 */
import { createSocket } from 'node:dgram'

export interface UdpSocket {
  /** The bound local port (the OS's choice when 0 was asked). */
  readonly port: number
  /** The bound local address. */
  readonly address: string
  /** Sends one datagram; `address` must be an IP literal (no DNS here). Failures go to `onError`. */
  send(data: Uint8Array, port: number, address: string): void
  /** Frees the port; idempotent. */
  close(): void
}

export interface UdpSocketOptions {
  /** Local address to bind; default 0.0.0.0. An IPv6 address (`::`) opens a dual-stack socket. */
  hostname?: string
  /** Local port; 0 (default) lets the OS choose. */
  port?: number
  /** Every datagram received: its bytes, and the source port and address. */
  onMessage(data: Uint8Array, port: number, address: string): void
  /** ICMP errors, failed sends; default: ignored. */
  onError?(error: Error): void
}

export type UdpRuntime = 'bun' | 'node'

/** The part of Bun's API used here, declared locally so the library's types do not depend on Bun's. */
interface BunUdp {
  udpSocket(o: {
    hostname: string
    port: number
    binaryType: 'uint8array'
    socket: {
      data(s: unknown, data: Uint8Array, port: number, address: string): void
      error(...args: unknown[]): void
    }
  }): Promise<{ readonly port: number; readonly hostname: string; send(d: Uint8Array, port: number, address: string): boolean; close(): void }>
}

const bunRuntime = (): BunUdp | undefined => (globalThis as { Bun?: BunUdp }).Bun

/** Which implementation `openUdpSocket` uses here. */
export function udpRuntime(): UdpRuntime {
  return typeof bunRuntime()?.udpSocket === 'function' ? 'bun' : 'node'
}

/** Binds a UDP socket with the runtime's own implementation (or the one asked for: tests run both on Bun). */
export function openUdpSocket(o: UdpSocketOptions, runtime: UdpRuntime = udpRuntime()): Promise<UdpSocket> {
  return runtime === 'bun' ? openBun(o) : openNode(o)
}

const ignore = () => {}

async function openBun(o: UdpSocketOptions): Promise<UdpSocket> {
  const bun = bunRuntime()
  if (!bun) throw new Error('Bun.udpSocket is not available in this runtime')
  const onError = o.onError ?? ignore
  const s = await bun.udpSocket({
    hostname: o.hostname ?? '0.0.0.0',
    port: o.port ?? 0,
    binaryType: 'uint8array',
    socket: {
      data: (_s, data, port, address) => o.onMessage(data, port, address),
      // Bun 1.4.4 calls it with the error alone although its typings say (socket, error): take the error.
      error: (...args) => onError((args.find((a) => a instanceof Error) as Error | undefined) ?? new Error(String(args[args.length - 1]))),
    },
  })
  // false means the kernel buffer is full: a lost datagram, as UDP allows; retransmissions cover it
  return guarded(s.port, s.hostname, (d, p, a) => void s.send(d, p, a), () => s.close(), onError)
}

async function openNode(o: UdpSocketOptions): Promise<UdpSocket> {
  const hostname = o.hostname ?? '0.0.0.0'
  const onError = o.onError ?? ignore
  // An IPv6 socket bound to :: takes IPv4 too (ipv6Only is false by default), like Bun's.
  const s = createSocket({ type: hostname.includes(':') ? 'udp6' : 'udp4' })
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject)
    s.bind({ port: o.port ?? 0, address: hostname, exclusive: true }, () => {
      s.off('error', reject)
      resolve()
    })
  })
  s.on('error', onError)
  s.on('message', (msg, rinfo) => o.onMessage(new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength), rinfo.port, rinfo.address))
  const bound = s.address()
  // Bun's node:dgram reports an earlier datagram's ICMP error through the next send's callback (real Node does
  // not ask the kernel for them on unconnected sockets): that datagram was not sent, so it is sent once more.
  const send = (d: Uint8Array, p: number, a: string, again = true): void =>
    s.send(d, p, a, (e) => {
      if (!e) return
      onError(e)
      if (!again || !isUnreachable(e)) return
      try {
        send(d, p, a, false)
      } catch (closed) {
        onError(closed as Error) // closed in the meantime
      }
    })
  return guarded(bound.port, bound.address, (d, p, a) => send(d, p, a), () => s.close(), onError)
}

/**
 * ICMP errors the kernel keeps on the socket for an earlier datagram (IP_RECVERR, which Bun sets on Linux) and
 * hands to whatever send comes next: that send fails although its own destination is fine.
 */
export const UNREACHABLE_CODES: ReadonlySet<string> = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN'])
export const isUnreachable = (e: unknown) => UNREACHABLE_CODES.has((e as { code?: unknown } | null)?.code as string)

/** The common part: a send that reports instead of throwing, and a close that runs once. */
function guarded(port: number, address: string, send: UdpSocket['send'], close: () => void, onError: (e: Error) => void): UdpSocket {
  let closed = false
  return {
    port,
    address,
    send(data, p, a) {
      if (closed) return onError(new Error('send on a closed UDP socket'))
      try {
        send(data, p, a)
      } catch (e) {
        onError(e as Error)
        if (!isUnreachable(e)) return
        // The error was about an earlier datagram to somewhere else, and reporting it cleared it: this datagram
        // was not sent yet (a dead STUN server asked first would otherwise cost the good one a retransmission).
        try {
          send(data, p, a)
        } catch (again) {
          onError(again as Error)
        }
      }
    },
    close() {
      if (closed) return
      closed = true
      close()
    },
  }
}
