/**
 * Control server tables (DESIGN.md "Identity and auth", "Parties", "Relay"). Times are unix milliseconds.
 * Keys are stored as standard base64 text (STYLE.md §4.7: no BLOBs at the driver edge).
 * Pure drizzle-orm/sqlite-core: drizzle-kit loads this file under Node (STYLE.md §4.3).
 */
import { index, integer, primaryKey, sqliteTable, text, uniqueIndex } from 'drizzle-orm/sqlite-core'
import { NAT_TYPES } from '../../shared/api.ts'

/** A registered identity: its WireGuard X25519 public key. peer_id = first 16 hex digits of SHA-256(key). */
export const peers = sqliteTable('peers', {
  peerId: text('peer_id').primaryKey(),
  publicKey: text('public_key').notNull().unique(),
  createdAt: integer('created_at', { mode: 'number' }).notNull(),
})

// Rows that belong to a party or a peer go with it (ON DELETE CASCADE).
const partyRef = () => text('party_id').notNull().references(() => parties.partyId, { onDelete: 'cascade' })
const peerRef = () => text('peer_id').notNull().references(() => peers.peerId, { onDelete: 'cascade' })

/** Bearer tokens, stored only as SHA-256 (hex) of the token text. */
export const tokens = sqliteTable(
  'tokens',
  {
    tokenHash: text('token_hash').primaryKey(),
    peerId: peerRef(),
    createdAt: integer('created_at', { mode: 'number' }).notNull(),
    expiresAt: integer('expires_at', { mode: 'number' }).notNull(),
  },
  (t) => [index('tokens_expires_idx').on(t.expiresAt)],
)

/** Single-use registration challenges (32 random bytes, base64), bound to the public key that asked. */
export const challenges = sqliteTable(
  'challenges',
  {
    challenge: text('challenge').primaryKey(),
    publicKey: text('public_key').notNull(),
    expiresAt: integer('expires_at', { mode: 'number' }).notNull(),
  },
  (t) => [index('challenges_expires_idx').on(t.expiresAt)],
)

export const parties = sqliteTable('parties', {
  partyId: text('party_id').primaryKey(),
  name: text('name').notNull(),
  hostId: text('host_id')
    .notNull()
    .references(() => peers.peerId, { onDelete: 'cascade' }),
  /** argon2id hash in PHC string form (Bun.password), null when the party has no password. */
  passwordHash: text('password_hash'),
  maxPeers: integer('max_peers', { mode: 'number' }).notNull(),
  subnet: text('subnet').notNull(),
  createdAt: integer('created_at', { mode: 'number' }).notNull(),
})

/**
 * One row per (party, peer) that joined while the party lives. `leftAt` set = not a member now, but the row keeps
 * the peer's virtual IP reserved so a rejoin gets the same address, until a newcomer needs the address (the
 * longest-departed member's row is then reused).
 */
export const memberships = sqliteTable(
  'memberships',
  {
    partyId: partyRef(),
    peerId: peerRef(),
    virtualIp: text('virtual_ip').notNull(),
    /** The member's display name as it reported it (null: none). */
    name: text('name'),
    publicEndpoint: text('public_endpoint'),
    localEndpoints: text('local_endpoints', { mode: 'json' }).notNull().$type<string[]>(),
    natType: text('nat_type', { enum: NAT_TYPES }).notNull(),
    joinedAt: integer('joined_at', { mode: 'number' }).notNull(),
    lastSeen: integer('last_seen', { mode: 'number' }).notNull(),
    leftAt: integer('left_at', { mode: 'number' }),
  },
  (t) => [
    primaryKey({ columns: [t.partyId, t.peerId] }),
    uniqueIndex('memberships_party_ip_uq').on(t.partyId, t.virtualIp),
    index('memberships_peer_idx').on(t.peerId),
  ],
)

/** Queued signals for peers without a live WebSocket (bounded per recipient, expire after a TTL). */
export const signals = sqliteTable(
  'signals',
  {
    id: text('id').primaryKey(),
    partyId: partyRef(),
    fromPeerId: text('from_peer_id').notNull(),
    toPeerId: text('to_peer_id').notNull(),
    type: text('type').notNull(),
    data: text('data', { mode: 'json' }).notNull().$type<unknown>(),
    createdAt: integer('created_at', { mode: 'number' }).notNull(),
    expiresAt: integer('expires_at', { mode: 'number' }).notNull(),
  },
  (t) => [index('signals_to_idx').on(t.toPeerId, t.createdAt), index('signals_expires_idx').on(t.expiresAt)],
)

/** Peers the host removed from a party: they cannot join it again until the host lifts the ban (or the party ends). */
export const partyBans = sqliteTable(
  'party_bans',
  {
    partyId: partyRef(),
    peerId: peerRef(),
    bannedAt: integer('banned_at', { mode: 'number' }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.partyId, t.peerId] })],
)

/**
 * Relay sessions this server issued tickets for, counted until their tickets expire: one per pair of members of
 * a party (a new ticket for the pair replaces the row), and a bounded number per peer. `peerLo` < `peerHi` (the
 * pair in a canonical order); `requestedBy` is the side-a member. The relay is not a foreign key: relays are
 * dropped when silent and register again.
 */
export const relaySessions = sqliteTable(
  'relay_sessions',
  {
    sessionId: text('session_id').primaryKey(),
    relayId: text('relay_id').notNull(),
    partyId: partyRef(),
    peerLo: text('peer_lo').notNull(),
    peerHi: text('peer_hi').notNull(),
    requestedBy: text('requested_by').notNull(),
    createdAt: integer('created_at', { mode: 'number' }).notNull(),
    expiresAt: integer('expires_at', { mode: 'number' }).notNull(),
  },
  (t) => [
    uniqueIndex('relay_sessions_pair_uq').on(t.partyId, t.peerLo, t.peerHi),
    index('relay_sessions_lo_idx').on(t.peerLo),
    index('relay_sessions_hi_idx').on(t.peerHi),
    index('relay_sessions_expires_idx').on(t.expiresAt),
  ],
)

export const relays = sqliteTable('relays', {
  relayId: text('relay_id').primaryKey(),
  publicIp: text('public_ip').notNull(),
  port: integer('port', { mode: 'number' }).notNull(),
  /** The relay's second STUN-only port (null: none, or a relay from before it had one). */
  stunAltPort: integer('stun_alt_port', { mode: 'number' }),
  region: text('region').notNull(),
  capacity: integer('capacity', { mode: 'number' }).notNull(),
  load: integer('load', { mode: 'number' }).notNull(),
  ports: text('ports').notNull(),
  sessions: integer('sessions', { mode: 'number' }),
  registeredAt: integer('registered_at', { mode: 'number' }).notNull(),
  lastSeen: integer('last_seen', { mode: 'number' }).notNull(),
})

/** The control server's long-term keys, generated on first start: 'x25519' (registration) and 'ed25519' (tickets). */
export const serverKeys = sqliteTable('server_keys', {
  name: text('name', { enum: ['x25519', 'ed25519'] }).primaryKey(),
  secretKey: text('secret_key').notNull(),
  publicKey: text('public_key').notNull(),
  createdAt: integer('created_at', { mode: 'number' }).notNull(),
})
