/**
 * Which address a request comes from when the server sits behind reverse proxies (pure; no sockets).
 *
 * A proxy appends the address it received the request from to `X-Forwarded-For` (nginx
 * `$proxy_add_x_forwarded_for`, Caddy, HAProxy `option forwardfor`): everything left of what our own proxies
 * wrote was written by the client and proves nothing. So the list is read from the right: the first entry that
 * is not one of our proxies is the client. `X-Forwarded-For: spoof, 127.0.0.1` from a client behind one proxy
 * arrives as `spoof, 127.0.0.1, <client>`, and `<client>` is what counts.
 */
import type { ControlConfig } from './config.ts'
import { ControlError } from './errors.ts'
import { parseIpv4 } from './ip.ts'

/** Parses IPv6 text (RFC 4291 §2.2, with an embedded IPv4 tail) to a 128-bit integer; undefined if it is not one. */
export function parseIpv6(s: string): bigint | undefined {
  if (!/^[0-9a-fA-F:.]{2,45}$/.test(s)) return undefined
  let text = s
  let tail: number[] = []
  const lastColon = s.lastIndexOf(':')
  if (s.includes('.')) {
    const v4 = parseIpv4(s.slice(lastColon + 1))
    if (v4 === undefined) return undefined
    tail = [v4 >>> 16, v4 & 0xffff]
    text = s.slice(0, lastColon + 1) + '0' // placeholder group, replaced below
  }
  const halves = text.split('::')
  if (halves.length > 2) return undefined
  const groups = (h: string) => (h === '' ? [] : h.split(':'))
  const head = groups(halves[0]!)
  const rest = halves.length === 2 ? groups(halves[1]!) : []
  if (tail.length) (rest.length ? rest : head).pop()
  const given = head.length + rest.length + tail.length
  if (halves.length === 1 ? given !== 8 : given > 7) return undefined
  const words: number[] = []
  for (const g of [...head, ...Array(8 - given).fill('0'), ...rest]) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined
    words.push(parseInt(g, 16))
  }
  return [...words, ...tail].reduce((acc, w) => (acc << 16n) | BigInt(w), 0n)
}

/** An address as one family and number: IPv4-mapped IPv6 (`::ffff:192.0.2.1`, what a dual-stack socket reports) is IPv4. */
function addressOf(ip: string): { v6: boolean; n: bigint } | undefined {
  const v4 = parseIpv4(ip)
  if (v4 !== undefined) return { v6: false, n: BigInt(v4) }
  const v6 = parseIpv6(ip)
  if (v6 === undefined) return undefined
  if (v6 >> 32n === 0xffffn) return { v6: false, n: v6 & 0xffffffffn }
  return { v6: true, n: v6 }
}

export const isIpAddress = (ip: string) => addressOf(ip) !== undefined

/**
 * A set of addresses and networks from "127.0.0.1, 10.0.0.0/8, ::1, fd00::/8". Returns the matcher, or the first
 * entry that is not an address or network (for a one-line configuration error).
 */
export function addressSet(list: string): { has(ip: string): boolean } | { bad: string } {
  const nets: { v6: boolean; net: bigint; mask: bigint }[] = []
  for (const entry of list.split(',').map((e) => e.trim()).filter(Boolean)) {
    const [ip, p, extra] = entry.split('/')
    const a = addressOf(ip!)
    const bits = a?.v6 ? 128 : 32
    const prefix = p === undefined ? bits : /^\d{1,3}$/.test(p) ? Number(p) : NaN
    if (!a || extra !== undefined || !(prefix >= 0 && prefix <= bits)) return { bad: entry }
    const mask = ((1n << BigInt(bits)) - 1n) ^ ((1n << BigInt(bits - prefix)) - 1n)
    nets.push({ v6: a.v6, net: a.n & mask, mask })
  }
  return {
    has(ip: string) {
      const a = addressOf(ip)
      return !!a && nets.some((n) => n.v6 === a.v6 && (a.n & n.mask) === n.net)
    },
  }
}

export interface ProxyTrust {
  /** Every direct peer is a proxy (the port is reachable from your proxy only): the rightmost entry is the client. */
  trustProxy: boolean
  /** Only these direct peers and hops are proxies; a request from anyone else is taken at its socket address. */
  trusted?: { has(ip: string): boolean }
}

/**
 * The client's address: the socket peer, or with trusted proxies the first `X-Forwarded-For` entry from the right
 * that is not a trusted proxy. An entry that is not an address stops the walk (the hop to its right, which wrote
 * it, is the client as far as we can tell).
 */
export function clientAddress(peer: string | undefined, forwardedFor: string | null | undefined, trust: ProxyTrust): string | undefined {
  if (!forwardedFor || !peer) return peer
  if (trust.trusted) {
    if (!trust.trusted.has(peer)) return peer
  } else if (!trust.trustProxy) return peer
  const hops = forwardedFor.split(',').map((h) => h.trim())
  let nearest = peer
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i]!
    if (!isIpAddress(hop)) return nearest
    if (!trust.trusted?.has(hop)) return hop
    nearest = hop
  }
  return nearest
}

/** The proxy settings of a control server; a bad --trusted-proxies entry is a one-line configuration error. */
export function proxyTrust(config: Pick<ControlConfig, 'trustProxy' | 'trustedProxies'>): ProxyTrust {
  if (!config.trustedProxies.trim()) return { trustProxy: config.trustProxy }
  const set = addressSet(config.trustedProxies)
  if ('bad' in set) throw new ControlError('INVALID_CONFIG', `--trusted-proxies: ${JSON.stringify(set.bad)} is not an IP address or network (e.g. 10.0.0.0/8)`)
  return { trustProxy: true, trusted: set }
}
