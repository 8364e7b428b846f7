/**
 * WireGuard configuration text, pure: the wg-quick file (for platforms the agent does not manage; it carries
 * Address/MTU/DNS) and the `wg setconf` form (only what `wg` itself understands, see wg(8) CONFIGURATION FILE
 * FORMAT), plus the parser of `wg show NAME dump`. Every value is checked before it is written, so nothing a
 * peer sent us (an endpoint, an allowed IP) can inject a line into a config.
 */
import { LanrageError } from '../../shared/errors.ts'
import { parsePrivateKey, parsePublicKey } from './keys.ts'

export class WireGuardConfigError extends LanrageError {
  constructor(message: string) {
    super('INVALID_WIREGUARD_CONFIG', message, 400)
  }
}

export interface WgPeerConfig {
  /** base64 public key */
  publicKey: string
  presharedKey?: string
  /** "ip:port" or "[ipv6]:port"; absent or null when the peer's address is not known yet (it may roam to us). */
  endpoint?: string | null
  /** CIDRs routed to this peer, e.g. ["10.66.0.2/32"]. */
  allowedIps: string[]
  /** Seconds, 0 or absent = off. 25 keeps a NAT mapping alive (wg(8)). */
  persistentKeepalive?: number
}

export interface WgInterfaceConfig {
  /** base64 private key */
  privateKey: string
  /** UDP port; absent = random. */
  listenPort?: number
  fwmark?: number
  /** wg-quick only: interface addresses, e.g. ["10.66.0.2/16"]. */
  address?: string[]
  /** wg-quick only. */
  mtu?: number
  /** wg-quick only. */
  dns?: string[]
  peers: WgPeerConfig[]
}

const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/
const IPV6_RE = /^[0-9a-fA-F:.]{2,45}$/

export function isIPv4(s: string): boolean {
  return IPV4_RE.test(s)
}
function isIp(s: string): boolean {
  return IPV4_RE.test(s) || (s.includes(':') && IPV6_RE.test(s))
}

/** "1.2.3.4:51820" or "[::1]:51820" → {host, port}; undefined when malformed. */
export function parseEndpoint(s: string): { host: string; port: number } | undefined {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(s) ?? /^([^:[\]]+):(\d{1,5})$/.exec(s)
  if (!m || !isIp(m[1]!)) return undefined
  const port = Number(m[2])
  if (port < 1 || port > 65535) return undefined
  return { host: m[1]!, port }
}

export function checkCidr(s: string): string {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(s)
  const max = m && IPV4_RE.test(m[1]!) ? 32 : 128
  if (!m || !isIp(m[1]!) || Number(m[2]) > max) throw new WireGuardConfigError(`${JSON.stringify(s)} is not an address/prefix (e.g. 10.66.0.2/32)`)
  return s
}

function checkPort(p: number, what: string): number {
  if (!Number.isInteger(p) || p < 0 || p > 65535) throw new WireGuardConfigError(`${what} ${p} is not a port (0-65535)`)
  return p
}

function checkKeepalive(s: number): number {
  if (!Number.isInteger(s) || s < 0 || s > 65535) throw new WireGuardConfigError(`persistent keepalive ${s} must be 0-65535 seconds`)
  return s
}

export function checkEndpoint(e: string): string {
  if (!parseEndpoint(e)) throw new WireGuardConfigError(`endpoint ${JSON.stringify(e)} is not ip:port`)
  return e
}

function peerLines(p: WgPeerConfig): string[] {
  parsePublicKey(p.publicKey)
  const lines = ['[Peer]', `PublicKey = ${p.publicKey.trim()}`]
  if (p.presharedKey) lines.push(`PresharedKey = ${(parsePrivateKey(p.presharedKey), p.presharedKey.trim())}`)
  if (p.allowedIps.length) lines.push(`AllowedIPs = ${p.allowedIps.map(checkCidr).join(', ')}`)
  if (p.endpoint) lines.push(`Endpoint = ${checkEndpoint(p.endpoint)}`)
  if (p.persistentKeepalive) lines.push(`PersistentKeepalive = ${checkKeepalive(p.persistentKeepalive)}`)
  return lines
}

function interfaceLines(c: WgInterfaceConfig): string[] {
  parsePrivateKey(c.privateKey)
  const lines = ['[Interface]', `PrivateKey = ${c.privateKey.trim()}`]
  if (c.listenPort !== undefined) lines.push(`ListenPort = ${checkPort(c.listenPort, 'listen port')}`)
  if (c.fwmark) lines.push(`FwMark = ${c.fwmark}`)
  return lines
}

function render(head: string[], c: WgInterfaceConfig): string {
  const seen = new Set<string>()
  for (const p of c.peers) {
    if (seen.has(p.publicKey)) throw new WireGuardConfigError(`peer ${p.publicKey} appears twice`)
    seen.add(p.publicKey)
  }
  return [head, ...c.peers.map(peerLines)].map((b) => b.join('\n')).join('\n\n') + '\n'
}

/** The `wg setconf` / `wg syncconf` form: no Address/MTU/DNS (wg(8) rejects them). */
export function renderSetconf(c: WgInterfaceConfig): string {
  return render(interfaceLines(c), c)
}

/** A wg-quick(8) file: the setconf form plus Address, MTU and DNS. */
export function renderWgQuick(c: WgInterfaceConfig): string {
  const head = interfaceLines(c)
  if (c.address?.length) head.push(`Address = ${c.address.map(checkCidr).join(', ')}`)
  if (c.mtu !== undefined) {
    if (!Number.isInteger(c.mtu) || c.mtu < 576 || c.mtu > 9000) throw new WireGuardConfigError(`MTU ${c.mtu} must be 576-9000`)
    head.push(`MTU = ${c.mtu}`)
  }
  if (c.dns?.length) {
    for (const d of c.dns) if (!isIp(d)) throw new WireGuardConfigError(`DNS server ${JSON.stringify(d)} is not an IP address`)
    head.push(`DNS = ${c.dns.join(', ')}`)
  }
  return render(head, c)
}

export interface WgPeerStatus {
  publicKey: string
  presharedKey: string | null
  endpoint: string | null
  allowedIps: string[]
  /** Unix ms of the latest handshake, null if none yet. */
  latestHandshake: number | null
  rxBytes: number
  txBytes: number
  persistentKeepalive: number
}
export interface WgStatus {
  privateKey: string
  publicKey: string
  listenPort: number
  fwmark: number
  peers: WgPeerStatus[]
}

/**
 * Parses `wg show NAME dump` (wg(8) "dump"): tab-separated; the first line is the interface
 * (private-key, public-key, listen-port, fwmark), then one line per peer (public-key, preshared-key,
 * endpoint, allowed-ips, latest-handshake (unix s), transfer-rx, transfer-tx, persistent-keepalive).
 * "(none)" and "off" mean absent. Returns undefined when the text is not a dump.
 */
export function parseDump(text: string): WgStatus | undefined {
  const lines = text.split('\n').filter((l) => l.length > 0)
  const head = lines[0]?.split('\t')
  if (!head || head.length !== 4) return undefined
  const none = (v: string | undefined) => (v === undefined || v === '(none)' || v === 'off' ? null : v)
  const peers: WgPeerStatus[] = []
  for (const l of lines.slice(1)) {
    const f = l.split('\t')
    if (f.length !== 8) return undefined
    const hs = Number(f[4])
    peers.push({
      publicKey: f[0]!,
      presharedKey: none(f[1]),
      endpoint: none(f[2]),
      allowedIps: none(f[3]) ? f[3]!.split(',') : [],
      latestHandshake: hs > 0 ? hs * 1000 : null,
      rxBytes: Number(f[5]),
      txBytes: Number(f[6]),
      persistentKeepalive: none(f[7]) ? Number(f[7]) : 0,
    })
  }
  return { privateKey: head[0]!, publicKey: head[1]!, listenPort: Number(head[2]), fwmark: none(head[3]) ? Number(head[3]) : 0, peers }
}
