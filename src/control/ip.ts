/** IPv4 subnet arithmetic for virtual IP allocation (DESIGN.md "Parties": host gets .0.1, unique per party). */

export interface Subnet {
  base: number // network address as an unsigned 32-bit integer
  prefix: number
  size: number // number of addresses
}

export function parseIpv4(s: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s)
  if (!m) return undefined
  const parts = m.slice(1).map(Number)
  if (parts.some((p) => p > 255)) return undefined
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0
}
export const formatIpv4 = (n: number) => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.')

/** Parses "10.66.0.0/16"; prefixes 8..30 (a party needs at least two usable addresses). */
export function parseSubnet(cidr: string): Subnet | undefined {
  const [ip, p] = cidr.split('/')
  const base = parseIpv4(ip ?? '')
  const prefix = Number(p)
  if (base === undefined || !Number.isInteger(prefix) || prefix < 8 || prefix > 30) return undefined
  const size = 2 ** (32 - prefix)
  if (base % size !== 0) return undefined
  return { base, prefix, size }
}

/**
 * The lowest free host address (offset 1 = the host's .0.1), skipping the network and broadcast addresses.
 * Returns undefined when the subnet is full.
 */
export function allocateIp(subnet: Subnet, taken: Iterable<string>): string | undefined {
  const used = new Set<number>()
  for (const ip of taken) {
    const n = parseIpv4(ip)
    if (n !== undefined) used.add(n - subnet.base)
  }
  for (let off = 1; off < subnet.size - 1; off++) if (!used.has(off)) return formatIpv4(subnet.base + off)
  return undefined
}
