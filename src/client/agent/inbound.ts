/**
 * What the agent accepts from the network, checked before it acts on it. Pure functions: no sockets, no clock
 * of their own; the agent (agent.ts) calls them and logs and drops whatever fails.
 *
 * Shapes come from the API's own schemas (src/shared/api.ts, the ones the control server validates with): ids,
 * keys, addresses, ports 1-65535, endpoints. On top of the shapes, what the agent can check by itself:
 *
 * - a member's peer id is the one its public key gives (the server derives it the same way), so a record cannot
 *   pair one member's id with another's key; its virtual IP is an IPv4 address inside the party subnet, since it
 *   becomes a WireGuard allowed IP (a route) on this machine;
 * - a `punch` names the sender's own public endpoint as the server reported it in the member list, so no member
 *   can make this machine send handshakes to a third address;
 * - a relay offer is about the member it came from, names a relay the control server lists, and carries a
 *   ticket for exactly this session: this party, this relay, this machine's key as holder, the member's key as
 *   the other side, the offered side and session id, not expired. A ticket for anything else would be refused by
 *   the relay anyway; checking it here means a forged offer costs no datagram at all.
 */
import { type Static, type TSchema, Type } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { type KnownSignal, PartyInfo, PeerId, PeerInfo, RelayOffer, Signal, SIGNAL_DATA, type SignalType } from '../../shared/api.ts'
import { inSubnet, parseSubnet, type Subnet } from '../../shared/ipv4.ts'
import { decodeTicket } from '../../shared/wire/ticket.ts'
import { peerIdOf } from '../control/remote.ts'
import { keysEqual } from '../wireguard/keys.ts'

export type Checked<T> = { ok: true; value: T } | { ok: false; error: string }
const bad = (error: string): { ok: false; error: string } => ({ ok: false, error })

/** The first problem the schema finds, as `path: message` (`peer/public_endpoint: Expected string to match ...`). */
function shape<S extends TSchema>(schema: S, v: unknown, what: string): Checked<Static<S>> {
  if (Value.Check(schema, v)) return { ok: true, value: v as Static<S> }
  const e = Value.Errors(schema, v).First()
  return bad(`${what}${e?.path ?? ''}: ${e?.message ?? 'invalid'}`)
}

/** A member record (PeerInfo) from the server: its shape, its id from its key, its virtual IP inside the subnet. */
export function checkPeer(v: unknown, subnet: Subnet): Checked<PeerInfo> {
  const r = shape(PeerInfo, v, 'peer')
  if (!r.ok) return r
  const p = r.value
  if (peerIdOf(new Uint8Array(Buffer.from(p.public_key, 'base64'))) !== p.peer_id) return bad(`peer ${p.peer_id}: its public key belongs to another peer id`)
  if (!inSubnet(p.virtual_ip, subnet)) return bad(`peer ${p.peer_id}: virtual_ip ${p.virtual_ip} is not an IPv4 address in the party subnet`)
  return r
}

/**
 * A member list (the party's `peers`, GET /parties/{id}/peers): every valid member, and one line per member
 * left out. Keys must be the members' own ids. A list that is not an object at all is an error.
 */
export function checkPeers(v: unknown, subnet: Subnet): Checked<{ peers: Record<string, PeerInfo>; dropped: string[] }> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return bad('peers: expected an object keyed by peer id')
  const peers: Record<string, PeerInfo> = {}
  const dropped: string[] = []
  for (const [id, raw] of Object.entries(v)) {
    const r = checkPeer(raw, subnet)
    if (!r.ok) dropped.push(r.error)
    else if (r.value.peer_id !== id) dropped.push(`peers/${Value.Check(PeerId, id) ? id : '?'}: listed under another peer's id`)
    else peers[id] = r.value
  }
  return { ok: true, value: { peers, dropped } }
}

/**
 * The party from create/join: its fields, a usable IPv4 subnet, this peer among the members. Members that fail
 * their checks are left out (listed in `dropped`); the name is only displayed (escaped), so any string will do.
 */
const PartyHead = Type.Composite([Type.Omit(PartyInfo, ['peers', 'name']), Type.Object({ name: Type.String({ maxLength: 1024 }) })])
export function checkParty(v: unknown, selfId: string): Checked<{ party: PartyInfo; subnet: Subnet; dropped: string[] }> {
  const head = shape(PartyHead, v, 'party')
  if (!head.ok) return head
  const subnet = parseSubnet(head.value.subnet)
  if (!subnet) return bad(`party/subnet: ${JSON.stringify(head.value.subnet)} is not an IPv4 prefix between /8 and /30`)
  const list = checkPeers((v as { peers?: unknown }).peers, subnet)
  if (!list.ok) return bad(`party/${list.error}`)
  if (!list.value.peers[selfId]) return bad(`party ${head.value.party_id} does not list this peer ${selfId} (or lists it wrongly)`)
  return { ok: true, value: { party: { ...head.value, peers: list.value.peers }, subnet, dropped: list.value.dropped } }
}

/** A signal whose type the agent knows and whose data has that type's shape (punch, relay_offer). */
export function checkSignal(v: unknown): Checked<KnownSignal> {
  const r = shape(Signal, v, 'signal')
  if (!r.ok) return r
  const type = r.value.type
  if (!Object.hasOwn(SIGNAL_DATA, type)) return bad(`signal: type ${type} is not one this agent knows`)
  const d = shape(SIGNAL_DATA[type as SignalType], r.value.data, `signal ${type}: data`)
  return d.ok ? { ok: true, value: r.value as KnownSignal } : d
}

/** A `punch` from `from`: its endpoint must be the one the server lists for it. */
export function checkPunch(endpoint: string, from: PeerInfo): string | null {
  if (from.public_endpoint === null) return `punch from ${from.peer_id}: the server lists no public endpoint for it`
  return endpoint === from.public_endpoint ? null : `punch from ${from.peer_id}: endpoint ${endpoint} is not its public endpoint ${from.public_endpoint}`
}

export interface OfferContext {
  partyId: string
  /** This machine's WireGuard public key (the ticket's holder). */
  selfKey: Uint8Array
  /** The member at the other end, as the server lists it. */
  peer: PeerInfo
  /** Unix ms. */
  now: number
}

/** A relay offer (our own request's answer or a `relay_offer` signal) for the session with `ctx.peer`; null when it is one. */
export function checkOffer(v: unknown, ctx: OfferContext): Checked<RelayOffer> {
  const r = shape(RelayOffer, v, 'offer')
  if (!r.ok) return r
  const o = r.value
  if (o.peer_id !== ctx.peer.peer_id) return bad(`offer: peer_id ${o.peer_id} is not the member ${ctx.peer.peer_id} it is about`)
  const bytes = Buffer.from(o.ticket, 'base64url')
  const t = decodeTicket(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength))
  if (!t.ok) return bad(`offer: the ticket does not decode (${t.error})`)
  const k = t.ticket
  const mismatch =
    k.partyId !== ctx.partyId ? 'party'
    : k.relayId !== o.relay.relay_id ? 'relay'
    : k.side !== o.side ? 'side'
    : Buffer.from(k.sessionId).toString('hex') !== o.session_id ? 'session id'
    : !keysEqual(k.holderKey, ctx.selfKey) ? 'holder key (not this machine)'
    : !keysEqual(k.otherKey, new Uint8Array(Buffer.from(ctx.peer.public_key, 'base64'))) ? `other key (not ${ctx.peer.peer_id})`
    : null
  if (mismatch) return bad(`offer: the ticket's ${mismatch} does not match the offer`)
  if (k.notAfter * 1000 <= ctx.now) return bad(`offer: the ticket expired at ${new Date(k.notAfter * 1000).toISOString()}`)
  return r
}
