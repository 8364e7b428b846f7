/**
 * The control plane as the client sees it: the seed's operations and types, shared by RemoteControlPlane
 * (HTTP + WebSocket to a control server) and LocalControlPlane (a LAN with no server). PeerInfo, PartyInfo and
 * the other wire types are the control server's own (src/shared/api.ts), so they pass through untouched.
 */

import type { LeaveResult, PartyDeletedReason, PartyInfo, PeerEndpointInfo, PeerInfo, PeerLeftReason, RelayOffer, Signal } from '../../shared/api.ts'

export { NAT_TYPES } from '../../shared/api.ts'
export type { LeaveResult, NatType, PartyDeletedReason, PartyInfo, PeerEndpointInfo, PeerInfo, PeerLeftReason, RelayOffer, Signal } from '../../shared/api.ts'

/** Live events, for every party this peer is in (the `/ws` messages plus the client's own connection state). */
export interface ControlEvents {
  /** The live channel is (re)established; `reconnect` is true after a drop. */
  connected: { peer_id: string; parties: string[]; reconnect: boolean }
  disconnected: { reason: string; retry_in_ms: number }
  /** The client obtained a new token (first registration, or after a 401 / revoked token). */
  registered: { peer_id: string; reregistered: boolean }
  peer_joined: { party_id: string; peer: PeerInfo }
  peer_updated: { party_id: string; peer: PeerInfo }
  peer_left: { party_id: string; peer_id: string; reason: PeerLeftReason }
  party_deleted: { party_id: string; reason: PartyDeletedReason }
  signal: { party_id: string; signal: Signal }
  /** A background task (heartbeat, live channel) failed; the client keeps trying unless told to stop. */
  error: { where: string; error: Error }
}
export type ControlEventName = keyof ControlEvents

export interface CreatePartyOptions {
  password?: string
  max_peers?: number
  peer_info?: PeerEndpointInfo
}
export interface JoinPartyOptions {
  password?: string
  peer_info?: PeerEndpointInfo
}

export interface ControlPlane {
  /** This peer's id once registered (derived from its public key). */
  readonly peerId: string | undefined
  register(): Promise<string>
  createParty(name: string, opts?: CreatePartyOptions): Promise<PartyInfo>
  joinParty(partyId: string, opts?: JoinPartyOptions): Promise<PartyInfo>
  leaveParty(partyId: string): Promise<LeaveResult>
  updatePeer(partyId: string, info: PeerEndpointInfo): Promise<PeerInfo>
  getParty(partyId: string): Promise<PartyInfo>
  getPeers(partyId: string): Promise<Record<string, PeerInfo>>
  discoverPeer(partyId: string, peerId: string): Promise<PeerInfo>
  heartbeat(partyId: string, info?: Pick<PeerEndpointInfo, 'public_endpoint' | 'nat_type'>): Promise<void>
  sendSignal(partyId: string, toPeerId: string, type: string, data: unknown): Promise<Signal>
  /** Drains this peer's queued signals in the party (for callers that poll instead of listening). */
  getSignals(partyId: string): Promise<Signal[]>
  /** Asks for relay tickets towards `peerId` (the other side gets a `relay_offer` signal). */
  requestRelay(partyId: string, peerId: string): Promise<RelayOffer>
  /** Subscribes to live events; returns the unsubscribe function. */
  on<K extends ControlEventName>(type: K, fn: (e: ControlEvents[K]) => void): () => void
  close(): Promise<void>
}
