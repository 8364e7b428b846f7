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
      error(s: unknown, error: Error): void
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
      error: (_s, error) => onError(error),
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
  return guarded(bound.port, bound.address, (d, p, a) => s.send(d, p, a, (e) => e && onError(e)), () => s.close(), onError)
}

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
      }
    },
    close() {
      if (closed) return
      closed = true
      close()
    },
  }
}
