/**
 * UDP datagrams from forged IPv4 source addresses, for the relay's attack tests and benches: a raw socket
 * (socket(AF_INET, SOCK_RAW, IPPROTO_RAW), which implies IP_HDRINCL, raw(7)) opened through bun:ffi, so the IPv4
 * header with any source address is ours to write. The kernel fills in the IP checksum and total length; the UDP
 * checksum is left 0 ("no checksum", RFC 768). Needs CAP_NET_RAW (root); the tests only send to loopback
 * addresses, where every 127.0.0.0/8 source is delivered.
 *
 * As a program it floods (for a test that needs the flood to run beside the relay, not in its thread):
 *   bun test/relay/spoof.ts DST_IP DST_PORT FIRST_SRC_IP SOURCES COUNT PAYLOAD_HEX
 * sends COUNT copies of the payload to DST from SOURCES consecutive addresses starting at FIRST_SRC_IP (source
 * ports vary too), then prints {"sent": N} and exits.
 */
import { dlopen, FFIType } from 'bun:ffi'

const AF_INET = 2
const SOCK_RAW = 3
const IPPROTO_RAW = 255
const IPPROTO_UDP = 17

let libc: ReturnType<typeof open> | undefined
function open() {
  return dlopen('libc.so.6', {
    socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    sendto: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i64 },
    close: { args: [FFIType.i32], returns: FFIType.i32 },
  })
}

/** Why forged datagrams cannot be sent here, or null when they can. */
export function spoofSkipReason(): string | null {
  if (process.platform !== 'linux') return 'forged source addresses need Linux raw sockets'
  if (process.getuid?.() !== 0) return 'forged source addresses need root (CAP_NET_RAW)'
  try {
    const s = Spoofer.open()
    s.close()
    return null
  } catch (e) {
    return e instanceof Error ? e.message : String(e)
  }
}

const ipBytes = (ip: string) => {
  const p = ip.split('.').map(Number)
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) throw new TypeError(`not an IPv4 address: ${ip}`)
  return p
}
export const ipv4Add = (ip: string, n: number) => {
  const v = (ipBytes(ip).reduce((a, b) => a * 256 + b, 0) + n) >>> 0
  return [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join('.')
}

export class Spoofer {
  private constructor(private fd: number) {}

  static open(): Spoofer {
    libc ??= open()
    const fd = libc.symbols.socket(AF_INET, SOCK_RAW, IPPROTO_RAW)
    if (fd < 0) throw new Error('socket(AF_INET, SOCK_RAW, IPPROTO_RAW) failed (needs CAP_NET_RAW)')
    return new Spoofer(fd)
  }

  /** Sends one UDP datagram from `src` to `dst`; returns whether the kernel took it. */
  send(src: { ip: string; port: number }, dst: { ip: string; port: number }, payload: Uint8Array): boolean {
    const pkt = new Uint8Array(28 + payload.length)
    const dv = new DataView(pkt.buffer)
    pkt[0] = 0x45 // IPv4, 5 words of header
    dv.setUint16(2, pkt.length)
    pkt[8] = 64 // TTL
    pkt[9] = IPPROTO_UDP
    pkt.set(ipBytes(src.ip), 12)
    pkt.set(ipBytes(dst.ip), 16)
    dv.setUint16(20, src.port)
    dv.setUint16(22, dst.port)
    dv.setUint16(24, 8 + payload.length)
    pkt.set(payload, 28)
    const sa = new Uint8Array(16) // struct sockaddr_in
    new DataView(sa.buffer).setUint16(0, AF_INET, true)
    sa.set(ipBytes(dst.ip), 4)
    return Number(libc!.symbols.sendto(this.fd, pkt, pkt.length, 0, sa, sa.length)) === pkt.length
  }

  close() {
    if (this.fd >= 0) libc!.symbols.close(this.fd)
    this.fd = -1
  }
}

/** Runs the flood program above in its own process; resolves with how many datagrams it sent (bounded in time). */
export async function floodInProcess(o: { dst: { ip: string; port: number }; firstSource: string; sources: number; count: number; payload: Uint8Array }): Promise<number> {
  const proc = Bun.spawn([process.execPath, import.meta.path, o.dst.ip, String(o.dst.port), o.firstSource, String(o.sources), String(o.count), Buffer.from(o.payload).toString('hex')], {
    stdout: 'pipe',
    stderr: 'pipe',
  })
  const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000)
  const [out, code] = [await new Response(proc.stdout).text(), await proc.exited]
  clearTimeout(timer)
  if (code !== 0) throw new Error(`spoof flood exited ${code}: ${await new Response(proc.stderr).text()}`)
  return (JSON.parse(out) as { sent: number }).sent
}

if (import.meta.main) {
  const [dstIp, dstPort, first, sources, count, hex] = process.argv.slice(2)
  const s = Spoofer.open()
  const payload = new Uint8Array(Buffer.from(hex!, 'hex'))
  const n = Number(count)
  const k = Number(sources)
  let sent = 0
  for (let i = 0; i < n; i++) if (s.send({ ip: ipv4Add(first!, i % k), port: 1024 + (i % 60000) }, { ip: dstIp!, port: Number(dstPort) }, payload)) sent++
  s.close()
  console.log(JSON.stringify({ sent }))
}
