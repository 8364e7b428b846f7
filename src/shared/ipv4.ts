/** IPv4 addresses and prefixes as unsigned 32-bit integers: the party subnet and its members' virtual IPs. */

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

/** Whether `ip` is an IPv4 address inside `subnet`. */
export function inSubnet(ip: string, subnet: Subnet): boolean {
  const n = parseIpv4(ip)
  return n !== undefined && n - subnet.base >= 0 && n - subnet.base < subnet.size
}
