/**
 * From a party to a WireGuard configuration, pure: our address in the party subnet, and one peer per other
 * member routed by its /32 virtual address. For launchers on platforms the agent does not manage (render it
 * with renderWgQuick) and for simple direct setups; the agent itself adds hole punching and relays on top.
 */
import type { PartyInfo, PeerInfo } from '../control/types.ts'
import { WireGuardConfigError, type WgInterfaceConfig, type WgPeerConfig } from './config.ts'

/** Keeps NAT mappings open between handshakes (wg(8) suggests 25 s for peers behind NAT). */
export const DEFAULT_KEEPALIVE_S = 25
/** 1420 is WireGuard's default for IPv4+IPv6 underlay; 1380 leaves room for PPPoE and tunnels below. */
export const DEFAULT_MTU = 1380

export interface PartyConfigOptions {
  /** Our peer id in the party. */
  peerId: string
  /** Our base64 private key. */
  privateKey: string
  listenPort?: number
  mtu?: number
  keepalive?: number
  /** Chooses the endpoint to use for a member; default: its public endpoint, else its first local one. */
  endpointFor?: (peer: PeerInfo) => string | null
}

export function wireguardConfigForParty(party: PartyInfo, o: PartyConfigOptions): WgInterfaceConfig {
  const me = party.peers[o.peerId]
  if (!me) throw new WireGuardConfigError(`peer ${o.peerId} is not a member of party ${party.party_id}`)
  const prefix = /\/(\d{1,2})$/.exec(party.subnet)?.[1] ?? '16'
  const pick = o.endpointFor ?? ((p: PeerInfo) => p.public_endpoint ?? p.local_endpoints[0] ?? null)
  const peers: WgPeerConfig[] = Object.values(party.peers)
    .filter((p) => p.peer_id !== o.peerId)
    .sort((a, b) => a.virtual_ip.localeCompare(b.virtual_ip, 'en', { numeric: true }))
    .map((p) => ({ publicKey: p.public_key, allowedIps: [`${p.virtual_ip}/32`], endpoint: pick(p), persistentKeepalive: o.keepalive ?? DEFAULT_KEEPALIVE_S }))
  return { privateKey: o.privateKey, listenPort: o.listenPort, address: [`${me.virtual_ip}/${prefix}`], mtu: o.mtu ?? DEFAULT_MTU, peers }
}
