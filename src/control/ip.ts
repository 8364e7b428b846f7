/** Virtual IP allocation in a party subnet: the host gets .0.1, every member an address unique in its party. */

import { formatIpv4, parseIpv4, type Subnet } from '../shared/ipv4.ts'

export { formatIpv4, parseIpv4, parseSubnet, type Subnet } from '../shared/ipv4.ts'

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
