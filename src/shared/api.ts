/**
 * The control server's JSON API, written once for both ends as TypeBox schemas with their TypeScript types:
 * the control server validates what it accepts with them, the client library and agent validate what they
 * receive with the same schemas (`Value.Check(LiveMessage, m)`) before acting on it.
 * snake_case as on the wire; timestamps are ISO 8601 strings; keys standard base64 of 32 bytes.
 *
 * Each schema and its type share one name (`PeerInfo` is both), so `import type { PeerInfo }` keeps working.
 */
import { Type, type Static, type TLiteral, type TSchema, type TUnion } from '@sinclair/typebox'

// ------------------------------------------------------------------ scalars

/** NAT type names from the seed (RFC 3489 vocabulary; `symmetric` = mapping varies by destination). */
export const NAT_TYPES = ['open', 'full_cone', 'restricted_cone', 'port_restricted_cone', 'symmetric', 'unknown'] as const
/** A union of string literals typed as a tuple, so that every consumer (Elysia's inference too) sees each literal. */
const literals = <const T extends readonly string[]>(xs: T) =>
  Type.Union(xs.map((x) => Type.Literal(x)) as unknown as { -readonly [K in keyof T]: TLiteral<T[K]> }) as TUnion<{ -readonly [K in keyof T]: TLiteral<T[K]> }>
// One literal per name rather than an enum schema: an enum carries a default, and a validator that fills defaults
// would turn a missing nat_type into "open".
export const NatType = literals(NAT_TYPES)
export type NatType = (typeof NAT_TYPES)[number]

/** A WireGuard/X25519 public key: standard base64 of exactly 32 bytes (44 characters, the last data digit's padding bits zero). */
export const Key = Type.String({ pattern: '^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$', description: 'standard base64 of 32 bytes' })
export const PeerId = Type.String({ pattern: '^[0-9a-f]{16}$', description: '16 lowercase hex digits' })
export const PartyId = Type.String({ pattern: '^[0-9a-f]{12}$', description: '12 lowercase hex digits' })
export const RelayId = Type.String({ pattern: '^[0-9a-f]{16}$', description: '16 lowercase hex digits' })
export const SessionId = Type.String({ pattern: '^[0-9a-f]{32}$', description: '32 lowercase hex digits' })
/** ISO 8601 time as the server writes it (`Date.toISOString()`). */
export const Timestamp = Type.String({ maxLength: 32, description: 'ISO 8601 time' })
/** A UDP port a datagram can be sent to (port 0 is "any" only when binding). */
export const Port = Type.Integer({ minimum: 1, maximum: 65535 })
/** Unix time in milliseconds, within what a JavaScript Date can hold. */
export const EpochMs = Type.Integer({ minimum: 0, maximum: 8.64e15, description: 'unix time in milliseconds' })

// Address patterns, built from parts so each is readable. Written for JavaScript's RegExp without flags (the
// validators compile `pattern` as is).
const PORT_RE = '(?:[1-9]\\d{0,3}|[1-5]\\d{4}|6[0-4]\\d{3}|65[0-4]\\d{2}|655[0-2]\\d|6553[0-5])'
const OCTET_RE = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)'
/** First octet 1..223: no "this network" (0/8, RFC 1122 §3.2.1.3), multicast (224/4) or reserved/broadcast (240/4). */
const FIRST_OCTET_RE = '(?:22[0-3]|2[01]\\d|1\\d\\d|[1-9]\\d?)'
const IPV4_RE = `${FIRST_OCTET_RE}(?:\\.${OCTET_RE}){3}`
const H16 = '[0-9a-fA-F]{1,4}'
const LS32 = `(?:${H16}:${H16}|${OCTET_RE}(?:\\.${OCTET_RE}){3})`
/** RFC 4291 §2.2 text forms (RFC 3986 §3.2.2 grammar), without zone ids; `::` and multicast ff00::/8 excluded. */
const IPV6_RE =
  '(?!::$)(?![fF]{2}[0-9a-fA-F]{2}:)(?:' +
  [
    `(?:${H16}:){6}${LS32}`,
    `::(?:${H16}:){5}${LS32}`,
    `(?:${H16})?::(?:${H16}:){4}${LS32}`,
    `(?:(?:${H16}:){0,1}${H16})?::(?:${H16}:){3}${LS32}`,
    `(?:(?:${H16}:){0,2}${H16})?::(?:${H16}:){2}${LS32}`,
    `(?:(?:${H16}:){0,3}${H16})?::${H16}:${LS32}`,
    `(?:(?:${H16}:){0,4}${H16})?::${LS32}`,
    `(?:(?:${H16}:){0,5}${H16})?::${H16}`,
    `(?:(?:${H16}:){0,6}${H16})?::`,
  ].join('|') +
  ')'

/** A unicast IPv4 or IPv6 address a peer can send to (not 0.0.0.0, ::, multicast or broadcast). */
export const IpAddress = Type.String({ pattern: `^(?:${IPV4_RE}|${IPV6_RE})$`, maxLength: 45, description: 'an IPv4 or IPv6 unicast address' })
/**
 * A UDP endpoint: `"ip:port"`, `"[ipv6]:port"`, port 1–65535. Every endpoint that enters the control server
 * (create's host_peer_info, join's peer_info, heartbeat, PATCH, punch data) and every endpoint a client uses is
 * checked with this one schema.
 */
export const Endpoint = Type.String({
  pattern: `^(?:${IPV4_RE}|\\[(?!::\\])${IPV6_RE.replace('(?!::$)', '')}\\]):${PORT_RE}$`,
  maxLength: 53,
  description: '"ip:port" with port 1-65535 ("[ipv6]:port" for IPv6)',
})

/**
 * Characters a display string may not hold: C0 controls (ESC, BEL, ...), DEL, C1 controls, line/paragraph
 * separators, bidirectional overrides and isolates (they reorder what a terminal shows), and the BOM.
 */
const NOT_PRINTABLE = '\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029\\u202a-\\u202e\\u2066-\\u2069\\ufeff'
/**
 * Text shown to people (a party name, later a peer's name): printable characters only, at most `maxLength`
 * UTF-16 units, not blank. Reuse it for every display string the server accepts.
 */
export const DisplayString = (maxLength: number, description = 'printable text') =>
  Type.String({ minLength: 1, maxLength, pattern: `^(?!\\s*$)[^${NOT_PRINTABLE}]+$`, description: `${description}, 1-${maxLength} characters` })
export const PartyName = DisplayString(64)
/** The longest peer display name (UTF-16 units): fits a member list row and a terminal column. */
export const MAX_PEER_NAME = 32
/** A member's display name, chosen by the member (`up --name`, the host name by default). */
export const PeerName = DisplayString(MAX_PEER_NAME, 'a display name')
/** A relay region label: letters, digits, `.`, `_`, `-`. */
export const Region = Type.String({ minLength: 1, maxLength: 32, pattern: '^[A-Za-z0-9._-]+$', description: 'letters, digits, ".", "_", "-"' })

// ------------------------------------------------------------------ parties and peers

/** One member of a party. */
export const PeerInfo = Type.Object({
  peer_id: PeerId,
  /** the member's display name, null when it gave none */
  name: Type.Union([PeerName, Type.Null()]),
  public_key: Key,
  virtual_ip: IpAddress,
  /** as learned by STUN, null when unknown */
  public_endpoint: Type.Union([Endpoint, Type.Null()]),
  local_endpoints: Type.Array(Endpoint, { maxItems: 16 }),
  nat_type: NatType,
  last_seen: Timestamp,
  joined_at: Timestamp,
})
export type PeerInfo = Static<typeof PeerInfo>

export const PartyInfo = Type.Object({
  party_id: PartyId,
  name: PartyName,
  host_id: PeerId,
  created_at: Timestamp,
  /** e.g. "10.66.0.0/16" */
  subnet: Type.String({ maxLength: 43 }),
  max_peers: Type.Integer({ minimum: 2 }),
  peers: Type.Record(PeerId, PeerInfo),
})
export type PartyInfo = Static<typeof PartyInfo>

/** What a peer reports about itself (create's host_peer_info, join's peer_info, PATCH, heartbeat); absent = unchanged. */
export const PeerEndpointInfo = Type.Object({
  /** the display name (null: none) */
  name: Type.Optional(Type.Union([PeerName, Type.Null()])),
  public_endpoint: Type.Optional(Type.Union([Endpoint, Type.Null()])),
  local_endpoints: Type.Optional(Type.Array(Endpoint, { maxItems: 16 })),
  nat_type: Type.Optional(NatType),
})
export type PeerEndpointInfo = Static<typeof PeerEndpointInfo>

// ------------------------------------------------------------------ relays

/** A registered relay (`POST /relays`, `GET /relays`). */
export const RelayInfo = Type.Object({
  relay_id: RelayId,
  public_ip: IpAddress,
  port: Port,
  /** a second port answering STUN Binding only (a second STUN target when there is one relay); null when none */
  stun_alt_port: Type.Union([Port, Type.Null()]),
  region: Region,
  capacity: Type.Integer({ minimum: 0 }),
  load: Type.Number({ minimum: 0 }),
  last_seen: Timestamp,
})
export type RelayInfo = Static<typeof RelayInfo>

/**
 * `POST /parties/{id}/relay` answer (side "a", for the member who asked); the other member gets the same shape
 * with side "b" as the data of a `relay_offer` signal. Each side sends its ticket in an ALLOCATE to
 * `relay.public_ip:relay.port` and learns its own session port on the relay; it then points WireGuard's endpoint
 * for the other member at `relay.public_ip:<that port>`.
 */
export const RelayOffer = Type.Object(
  {
    session_id: Type.String({ ...SessionId, description: 'the relay session (32 lowercase hex digits), the same in both sides\' offers' }),
    side: Type.Union([Type.Literal('a'), Type.Literal('b')], {
      description: '"a": the member who asked for the session; "b": the other member (its relay_offer signal). Each side gets its own UDP port on the relay',
    }),
    ticket: Type.String({
      pattern: '^[A-Za-z0-9_-]+$',
      maxLength: 512,
      description:
        'the 164-byte ticket the control server signed for this side, base64url without padding (RFC 4648 §5). Bytes: version (1), ' +
        'side (0 = a, 1 = b), session id (16), relay id (8), party id (6), the holder\'s WireGuard public key (32), the other side\'s ' +
        'WireGuard public key (32), not-after (unix seconds, 4, big endian), Ed25519 signature over the first 100 bytes (RFC 8032, 64; ' +
        'the key is the ticket_public_key a relay gets when it registers). Both keys are the keys the two members registered with ' +
        '(POST /auth/register): the relay accepts WireGuard handshake messages from this side only when their mac1 is valid for the ' +
        'other side\'s key (WireGuard §5.4.4), so each member must run WireGuard with the key it registered',
    }),
    expires_at: Type.String({ ...Timestamp, description: 'when the ticket expires (ISO 8601); ALLOCATE with it fails afterwards' }),
    relay: Type.Object(
      { relay_id: RelayId, public_ip: IpAddress, port: Port, region: Region },
      { description: 'the relay that accepts the ticket: send the ALLOCATE to public_ip:port (its main UDP port)' },
    ),
    peer_id: Type.String({ ...PeerId, description: 'the member at the other end of the session' }),
  },
  { description: 'One side of a relay session: the ticket to present to the relay and where to present it.' },
)
export type RelayOffer = Static<typeof RelayOffer>

// ------------------------------------------------------------------ signals

/**
 * `punch` data: "point WireGuard at `endpoint` at time `at`". `endpoint` is always the sender's own public
 * endpoint as the control server knows it: a member may leave it out (the server fills it in) and is refused
 * if it names any other address.
 */
export const PunchData = Type.Object({ at: EpochMs, endpoint: Endpoint })
export type PunchData = Static<typeof PunchData>
/** What a member sends as `punch` data. */
export const PunchInput = Type.Object({ at: EpochMs, endpoint: Type.Optional(Endpoint) })

/** Every signal type and the schema of its data. */
export const SIGNAL_DATA = { punch: PunchData, relay_offer: RelayOffer } as const
export type SignalType = keyof typeof SIGNAL_DATA
/** Signal types a member may send (POST /parties/{id}/signals, the WebSocket `signal` message). */
export const MEMBER_SIGNAL_TYPES = ['punch'] as const
/** Signal types only the control server sends; a member sending one is refused (422 naming `type`). */
export const SERVER_SIGNAL_TYPES = ['relay_offer'] as const

/**
 * A message between two members of one party, or from the server to a member (POST/GET /parties/{id}/signals,
 * the `signal` live message). The envelope; `data` follows SIGNAL_DATA[type] (see KnownSignal).
 */
export const Signal = Type.Object({
  id: Type.String({ pattern: '^[0-9a-f]{16}$' }),
  party_id: PartyId,
  from_peer_id: PeerId,
  to_peer_id: PeerId,
  type: Type.String({ maxLength: 32 }),
  data: Type.Unknown({ description: 'follows the type: PunchData for punch, RelayOffer for relay_offer (see KnownSignal)' }),
  created_at: Timestamp,
})
export type Signal = Static<typeof Signal>
const signalOf = <K extends SignalType>(type: K) => Type.Object({ ...Signal.properties, type: Type.Literal(type), data: SIGNAL_DATA[type] })
/** A signal whose data matches its type: what a client may act on. */
export const KnownSignal = Type.Union([signalOf('punch'), signalOf('relay_offer')])
export type KnownSignal = Static<typeof KnownSignal>

// ------------------------------------------------------------------ HTTP requests and answers

// Descriptions of request fields with a pattern finish the sentence "must be ...": validation errors quote them.

/**
 * Every error answer: `{"error": {"code", "message"}}`. `code` is stable SCREAMING_SNAKE for programs to branch
 * on, `message` says in words what is wrong (naming the field for validation errors).
 */
export const ApiError = Type.Object(
  { error: Type.Object({ code: Type.String({ pattern: '^[A-Z][A-Z0-9_]*$' }), message: Type.String() }) },
  { description: 'An error: a stable code and a sentence naming what is wrong' },
)
export type ApiError = Static<typeof ApiError>

const status = <T extends string>(value: T) => Type.Object({ status: Type.Literal(value) })

/** `GET /` */
export const ServiceStatus = Type.Object({
  service: Type.Literal('lanrage-control'),
  version: Type.String(),
  status: Type.Literal('ok'),
  parties: Type.Integer({ minimum: 0, description: 'parties with at least one member' }),
  peers: Type.Integer({ minimum: 0, description: 'distinct peers that are members of a party' }),
  relays: Type.Integer({ minimum: 0, description: 'registered relays' }),
  ws_clients: Type.Integer({ minimum: 0, description: 'open WebSocket connections' }),
})
/** `{status: "ok"}`: `GET /health`, heartbeats. */
export const StatusOk = status('ok')
/** Prometheus text exposition format (`GET /metrics`). */
export const MetricsText = Type.String({ description: 'Prometheus text exposition format 0.0.4' })

/**
 * A public key as a registering client sends it. Looser than Key on purpose: a string that is not 32 bytes of
 * base64 gets 422 INVALID_KEY from the service, with a sentence saying what a key is.
 */
export const KeyInput = Type.String({ maxLength: 64, description: 'standard base64 of 32 bytes (as `wg pubkey` prints it)' })
/** `POST /auth/challenge` */
export const ChallengeRequest = Type.Object({ public_key: KeyInput })
export const Challenge = Type.Object({
  challenge: Type.String({ description: 'standard base64 of 32 random bytes; single use' }),
  server_public_key: Type.String({ ...Key, description: "the server's X25519 public key (standard base64)" }),
  expires_at: Timestamp,
})
/** `POST /auth/register`: proof = base64(HMAC-SHA256(key = X25519(client private key, server_public_key), message = the challenge bytes)). */
export const RegisterRequest = Type.Object({
  public_key: KeyInput,
  challenge: Type.String({ maxLength: 64, description: 'as received from POST /auth/challenge' }),
  proof: Type.String({ maxLength: 64, description: 'base64(HMAC-SHA256(X25519(client private key, server_public_key), challenge bytes))' }),
})
/** `POST /auth/register`, `POST /auth/refresh`: a bearer token. */
export const Token = Type.Object({
  token: Type.String({ description: 'send as `Authorization: Bearer <token>`' }),
  peer_id: Type.String({ ...PeerId, description: 'first 16 hex digits of SHA-256(public key)' }),
  expires_at: Timestamp,
})
export const Revoked = status('revoked')

/** `POST /parties` */
export const CreatePartyRequest = Type.Object({
  name: PartyName,
  password: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'joins must present it' })),
  max_peers: Type.Optional(Type.Integer({ minimum: 2, description: 'at most the server\'s --max-peers-limit; default --default-max-peers' })),
  host_peer_info: Type.Optional(PeerEndpointInfo),
})
export const CreatedParty = Type.Object({ party_id: PartyId, party: PartyInfo })
/** `POST /parties/{id}/join` (the body may be left out). */
export const JoinRequest = Type.Object({
  password: Type.Optional(Type.String({ maxLength: 128 })),
  peer_info: Type.Optional(PeerEndpointInfo),
})
export const PartyAnswer = Type.Object({ party: PartyInfo })
export const PeersAnswer = Type.Object({ peers: Type.Record(PeerId, PeerInfo) })
export const PeerAnswer = Type.Object({ peer: PeerInfo })
/** `POST /parties/{id}/peers/{peer_id}/heartbeat` (the body may be left out): what changed, if anything. */
export const HeartbeatRequest = Type.Object({
  public_endpoint: Type.Optional(Type.Union([Endpoint, Type.Null()])),
  nat_type: Type.Optional(NatType),
})
export const LeaveAnswer = Type.Object({
  status: Type.Union([Type.Literal('left'), Type.Literal('party_deleted')], { description: 'party_deleted when the host left (or the last member)' }),
})
export const Bans = Type.Object({ bans: Type.Array(Type.Object({ peer_id: PeerId, banned_at: Timestamp })) })
export const Lifted = status('lifted')

/** Signal types a member names: lowercase letters, digits, `_`, `.`, `-` (which ones are accepted: MEMBER_SIGNAL_TYPES). */
export const SignalTypeName = Type.String({ minLength: 1, maxLength: 32, pattern: '^[a-z0-9_.-]+$' })
/** `POST /parties/{id}/signals` */
export const SendSignalRequest = Type.Object({
  to_peer_id: PeerId,
  /** punch: members send no other type */
  type: SignalTypeName,
  data: Type.Optional(Type.Unknown({ description: 'for punch: PunchInput' })),
})
/** Signals as the server hands them out: only types it sends (punch, relay_offer), data matching the type. */
export const SignalAnswer = Type.Object({ signal: KnownSignal })
export const SignalsAnswer = Type.Object({ signals: Type.Array(KnownSignal) })

/** `POST /parties/{id}/relay`: a relay session with `peer_id` (answer: RelayOffer). */
export const RelayTicketRequest = Type.Object({
  /** the other member */
  peer_id: PeerId,
  /** a preferred relay region */
  region: Type.Optional(Region),
})

/** `POST /relays` (X-Relay-Secret) */
export const RegisterRelayRequest = Type.Object({
  relay_id: RelayId,
  // Clients are sent to this address as is: a unicast address, never 0.0.0.0 (nor the request's Host).
  public_ip: IpAddress,
  /** the relay's main UDP port (STUN and ALLOCATE) */
  port: Port,
  stun_alt_port: Type.Optional(Type.Union([Port, Type.Null()])),
  region: Region,
  capacity: Type.Integer({ minimum: 0, description: 'sessions it accepts' }),
  load: Type.Number({ minimum: 0, description: 'sessions it holds' }),
  ports: Type.String({ pattern: '^\\d{1,5}-\\d{1,5}$', description: 'a port range "first-last" (its session ports)' }),
  sessions: Type.Optional(Type.Integer({ minimum: 0 })),
})
export const RelayRegistration = Type.Object({
  relay: RelayInfo,
  ticket_public_key: Type.String({ ...Key, description: "the control server's Ed25519 public key (standard base64): tickets are verified with it" }),
  heartbeat_interval_s: Type.Integer({ minimum: 1, description: 'send POST /relays/{relay_id}/heartbeat this often' }),
})
/** `POST /relays/{relay_id}/heartbeat` (X-Relay-Secret) */
export const RelayHeartbeatRequest = Type.Object({ load: Type.Number({ minimum: 0 }), sessions: Type.Optional(Type.Integer({ minimum: 0 })) })
export const Relays = Type.Object({ relays: Type.Array(RelayInfo) })

// ------------------------------------------------------------------ results and live messages

/** `DELETE /parties/{id}/peers/{peer_id}` → `{status}`. */
export type LeaveResult = 'left' | 'party_deleted'
export const PEER_LEFT_REASONS = ['left', 'removed', 'timeout'] as const
export type PeerLeftReason = (typeof PEER_LEFT_REASONS)[number]
export const PARTY_DELETED_REASONS = ['host_left', 'empty', 'timeout'] as const
export type PartyDeletedReason = (typeof PARTY_DELETED_REASONS)[number]

const live = <T extends string, P extends Record<string, TSchema>>(type: T, props: P) => Type.Object({ type: Type.Literal(type), ...props })
/** Server → client messages on `GET /ws` (the events; replies to the client's own messages are LiveReply). */
export const LiveMessage = Type.Union([
  live('hello', { peer_id: PeerId, parties: Type.Array(PartyId) }),
  live('peer_joined', { party_id: PartyId, peer: PeerInfo }),
  live('peer_updated', { party_id: PartyId, peer: PeerInfo }),
  live('peer_left', { party_id: PartyId, peer_id: PeerId, reason: literals(PEER_LEFT_REASONS) }),
  live('party_deleted', { party_id: PartyId, reason: literals(PARTY_DELETED_REASONS) }),
  live('signal', { party_id: PartyId, signal: Signal }),
])
export type LiveMessage =
  | { type: 'hello'; peer_id: string; parties: string[] }
  | { type: 'peer_joined' | 'peer_updated'; party_id: string; peer: PeerInfo }
  | { type: 'peer_left'; party_id: string; peer_id: string; reason: PeerLeftReason }
  | { type: 'party_deleted'; party_id: string; reason: PartyDeletedReason }
  | { type: 'signal'; party_id: string; signal: Signal }

/** Client → server: `{type: "signal", party_id, to_peer_id, signal_type, data}` sends a signal like POST /parties/{id}/signals. */
export const LiveSignalRequest = live('signal', { party_id: PartyId, to_peer_id: PeerId, signal_type: Type.String({ minLength: 1, maxLength: 32 }), data: Type.Optional(Type.Unknown()) })
/** Client → server messages on `GET /ws`. */
export const LiveRequest = Type.Union([live('ping', {}), LiveSignalRequest])
export type LiveRequest = Static<typeof LiveRequest>

/** Server → client answers to LiveRequest. */
export const LiveReply = Type.Union([
  live('pong', {}),
  live('signal_sent', { signal: Signal }),
  live('error', { error: Type.Object({ code: Type.String(), message: Type.String() }) }),
])
export type LiveReply = Static<typeof LiveReply>

/**
 * WebSocket close codes the server uses (RFC 6455 §7.4.2: 4000-4999 are for applications). A client that gets
 * 4001 registers again (or refreshes) before reconnecting; 4008 means a newer socket of the same token took
 * this one's place.
 */
export const WS_CLOSE = {
  /** the token is missing, unknown, revoked (reason "token revoked"), replaced by a refresh ("token refreshed") or expired ("token expired") */
  UNAUTHORIZED: 4001,
  /** more sockets than the server allows per token were opened; the oldest is closed */
  TOO_MANY_SOCKETS: 4008,
} as const
/** Subprotocol a client offers with `bearer.<token>` to pass its token in `Sec-WebSocket-Protocol`; the server answers with it. */
export const WS_PROTOCOL = 'lanrage'
export const WS_BEARER_PREFIX = 'bearer.'
