/**
 * NAT detection from one UDP socket: ask two STUN servers (different destinations) for our mapped address.
 *
 * - Our public endpoint is what they report.
 * - Mapping behaviour (RFC 4787 §4.1, tested as in RFC 5780 §4.3): if the mapping differs by destination, the
 *   NAT is "address(-and-port)-dependent" — `symmetric` in the seed's names — and hole punching with the
 *   learned port will not work; otherwise the mapping is endpoint-independent (a cone).
 * - The mapped address being one of our own addresses with our own port means no NAT: `open`.
 * - Telling full / restricted / port-restricted cones apart needs the filtering test (RFC 5780 §4.4, a
 *   server with a second address); without it we report `port_restricted_cone`, the most restrictive cone,
 *   which is what hole punching must assume anyway.
 */
import { networkInterfaces } from 'node:os'
import type { AddrPort } from '../../shared/wire/stun.ts'
import type { Logger } from '../../shared/log.ts'
import type { NatType } from '../control/types.ts'
import { StunClient, type StunServer } from '../stun/client.ts'
import type { RetransmitPolicy } from '../stun/transaction.ts'

export interface NatReport {
  /** The local UDP port the mappings belong to. */
  localPort: number
  /** "ip:port" as the first answering server saw us; null when no server answered. */
  publicEndpoint: string | null
  /** One entry per server that answered, in the order given. */
  mappings: { server: string; mapped: string; rttMs: number }[]
  failures: { server: string; error: string; code: string }[]
  /** true: symmetric; false: endpoint-independent; null: fewer than two answers, cannot tell. */
  mappingVariesByDestination: boolean | null
  natType: NatType
}

const fmt = (a: AddrPort) => (a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`)

/** This machine's IPv4 addresses (loopback included: a STUN server on 127.0.0.1 sees us as 127.0.0.1). */
export function localAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flat()
    .filter((i) => i && i.family === 'IPv4')
    .map((i) => i!.address)
}

/** "ip:port" of every non-loopback IPv4 address for `port`: the local_endpoints a peer on the same LAN can use. */
export function localEndpoints(port: number): string[] {
  return Object.values(networkInterfaces())
    .flat()
    .filter((i) => i && i.family === 'IPv4' && !i.internal)
    .map((i) => `${i!.address}:${port}`)
}

/** Pure classification from the mapped addresses two (or more) servers reported for one local socket. */
export function classifyNat(mapped: AddrPort[], localPort: number, ownAddresses: readonly string[]): Pick<NatReport, 'natType' | 'mappingVariesByDestination'> {
  if (mapped.length === 0) return { natType: 'unknown', mappingVariesByDestination: null }
  const first = mapped[0]!
  const varies = mapped.length < 2 ? null : mapped.some((m) => m.address !== first.address || m.port !== first.port)
  if (varies) return { natType: 'symmetric', mappingVariesByDestination: true }
  if (first.port === localPort && ownAddresses.includes(first.address)) return { natType: 'open', mappingVariesByDestination: varies }
  return { natType: varies === null ? 'unknown' : 'port_restricted_cone', mappingVariesByDestination: varies }
}

export interface DetectOptions {
  retransmit?: RetransmitPolicy
  log?: Logger
  /** Overrides this machine's addresses (for the `open` test). */
  ownAddresses?: readonly string[]
}

/** Runs the mapping test on an open StunClient (all queries from its one socket, in parallel). */
export async function detectNat(client: StunClient, servers: (StunServer | string)[], o: DetectOptions = {}): Promise<NatReport> {
  const results = await Promise.allSettled(servers.map((s) => client.binding(s)))
  const mappings: NatReport['mappings'] = []
  const failures: NatReport['failures'] = []
  const mapped: AddrPort[] = []
  results.forEach((r, i) => {
    const s = servers[i]!
    const name = typeof s === 'string' ? s : `${s.host}:${s.port}`
    if (r.status === 'fulfilled') {
      mapped.push(r.value.mapped)
      mappings.push({ server: r.value.server, mapped: fmt(r.value.mapped), rttMs: r.value.rttMs })
    } else {
      const e = r.reason as Error & { code?: string }
      failures.push({ server: name, error: e.message, code: e.code ?? 'ERROR' })
    }
  })
  const c = classifyNat(mapped, client.localPort, o.ownAddresses ?? localAddresses())
  return { localPort: client.localPort, publicEndpoint: mapped[0] ? fmt(mapped[0]) : null, mappings, failures, ...c }
}

/**
 * Learns the public mapping of a given local UDP port — the port WireGuard is about to listen on — then frees
 * it. A cone NAT keeps that mapping for WireGuard's own packets as long as they keep flowing (keepalive).
 */
export async function detectNatFromPort(port: number, servers: (StunServer | string)[], o: DetectOptions & { hostname?: string } = {}): Promise<NatReport> {
  const client = await StunClient.open({ port, hostname: o.hostname, retransmit: o.retransmit, log: o.log })
  try {
    return await detectNat(client, servers, o)
  } finally {
    client.close()
  }
}
