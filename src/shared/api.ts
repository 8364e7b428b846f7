/**
 * The control server's JSON API as TypeScript types (CONTRACTS.md "Control server HTTP"), written once for both
 * ends: the control server builds these objects, the client library receives them and passes them on untouched.
 * snake_case as on the wire; timestamps are ISO 8601 strings; keys standard base64 of 32 bytes.
 * Types only (plus NAT_TYPES): request validation lives with the routes, and the client checks what it receives.
 */

/** NAT type names from the seed (RFC 3489 vocabulary; `symmetric` = mapping varies by destination). */
export const NAT_TYPES = ['open', 'full_cone', 'restricted_cone', 'port_restricted_cone', 'symmetric', 'unknown'] as const
export type NatType = (typeof NAT_TYPES)[number]

/** One member of a party. */
export interface PeerInfo {
  peer_id: string
  /** base64 WireGuard public key */
  public_key: string
  virtual_ip: string
  /** "ip:port" as learned by STUN, null when unknown */
  public_endpoint: string | null
  local_endpoints: string[]
  nat_type: NatType
  /** ISO 8601 */
  last_seen: string
  joined_at: string
}

export interface PartyInfo {
  party_id: string
  name: string
  host_id: string
  created_at: string
  /** e.g. "10.66.0.0/16" */
  subnet: string
  max_peers: number
  peers: Record<string, PeerInfo>
}

/** What a peer reports about itself (create's host_peer_info, join's peer_info, PATCH, heartbeat); absent = unchanged. */
export interface PeerEndpointInfo {
  public_endpoint?: string | null
  local_endpoints?: string[]
  nat_type?: NatType
}

/** A message between two members of one party (POST/GET /parties/{id}/signals, the `signal` live message). */
export interface Signal {
  id: string
  party_id: string
  from_peer_id: string
  to_peer_id: string
  type: string
  data: unknown
  created_at: string
}

/** A registered relay (`POST /relays`, `GET /relays`). */
export interface RelayInfo {
  relay_id: string
  public_ip: string
  port: number
  /** a second port answering STUN Binding only (a second STUN target when there is one relay); null when none */
  stun_alt_port: number | null
  region: string
  capacity: number
  load: number
  last_seen: string
}

/** `POST /parties/{id}/relay` answer; the other member gets the same shape (side "b") as a `relay_offer` signal's data. */
export interface RelayOffer {
  /** 32 hex digits */
  session_id: string
  side: 'a' | 'b'
  /** base64url ticket bytes (src/shared/wire/ticket.ts) */
  ticket: string
  expires_at: string
  relay: Pick<RelayInfo, 'relay_id' | 'public_ip' | 'port' | 'region'>
  /** the member at the other end of the session */
  peer_id: string
}

/** `DELETE /parties/{id}/peers/{peer_id}` → `{status}`. */
export type LeaveResult = 'left' | 'party_deleted'
export type PeerLeftReason = 'left' | 'removed' | 'timeout'
export type PartyDeletedReason = 'host_left' | 'empty' | 'timeout'

/** Server → client messages on `GET /ws`. */
export type LiveMessage =
  | { type: 'hello'; peer_id: string; parties: string[] }
  | { type: 'peer_joined' | 'peer_updated'; party_id: string; peer: PeerInfo }
  | { type: 'peer_left'; party_id: string; peer_id: string; reason: PeerLeftReason }
  | { type: 'party_deleted'; party_id: string; reason: PartyDeletedReason }
  | { type: 'signal'; party_id: string; signal: Signal }
