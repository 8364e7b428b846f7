/** The control server's options: one TypeBox schema → flags, LANRAGE_* env, settings keys, --help (src/shared/config.ts). */
import { Type, type Static } from '@sinclair/typebox'

// Timing defaults (DESIGN.md "Parties", "Cleanup"), named so the schema and the README agree.
export const DEFAULT_PORT = 8667
/** Peers silent this long are removed from their parties. */
export const PEER_TIMEOUT_S = 300
/** Relays silent this long are dropped from the registry. */
export const RELAY_TIMEOUT_S = 600
/** How often the cleanup loop runs. */
export const CLEANUP_INTERVAL_S = 60
/** Heartbeats only touch memory; last_seen reaches the database in batches this often (a crash loses at most this). */
export const HEARTBEAT_FLUSH_MS = 5000

export const controlSchema = Type.Object({
  host: Type.String({ default: '0.0.0.0', description: 'address the HTTP server binds' }),
  port: Type.Integer({ minimum: 0, maximum: 65535, default: DEFAULT_PORT, description: 'HTTP port (0 = any free port)' }),
  db: Type.String({ default: './data/lanrage.db', description: 'SQLite database file (also holds this server’s settings)', settings: false }),
  relaySecret: Type.String({
    default: '',
    description:
      'shared secret relays present in X-Relay-Secret (empty: relay registration refused). As a flag it is visible to every local user in /proc/*/cmdline: prefer --relay-secret-file or the environment',
  }),
  relaySecretFile: Type.String({ default: '', description: 'file whose first line is the relay secret (instead of --relay-secret)' }),
  tlsCert: Type.String({ default: '', description: 'PEM certificate (chain) file: serve HTTPS and WSS instead of HTTP; re-read on SIGHUP (with --tls-key)' }),
  tlsKey: Type.String({ default: '', description: 'PEM private key file of --tls-cert; re-read on SIGHUP' }),
  subnet: Type.String({ default: '10.66.0.0/16', description: 'virtual network of every party (IPv4 CIDR, prefix 8..30)' }),
  tokenTtlS: Type.Integer({ minimum: 60, default: 86_400, description: 'bearer token lifetime in seconds' }),
  challengeTtlS: Type.Integer({ minimum: 5, default: 60, description: 'registration challenge lifetime in seconds' }),
  registerRatePerMin: Type.Integer({ minimum: 1, default: 30, description: 'auth challenges + registrations allowed per source address per minute' }),
  wrongPasswordsPerPeer: Type.Integer({ minimum: 1, default: 10, description: 'wrong party passwords one peer may try per minute (then 429)' }),
  wrongPasswordsPerParty: Type.Integer({ minimum: 1, default: 30, description: 'wrong passwords tried on one party per minute, by anyone (then 429)' }),
  passwordHashConcurrency: Type.Integer({ minimum: 1, default: 2, description: 'party password hashes computed at once (argon2id, 19 MiB each); others wait their turn' }),
  defaultMaxPeers: Type.Integer({ minimum: 2, default: 16, description: 'party size when the creator names none' }),
  maxPeersLimit: Type.Integer({ minimum: 2, maximum: 65_534, default: 256, description: 'largest max_peers a party may ask for' }),
  maxPartiesPerHost: Type.Integer({ minimum: 1, default: 16, description: 'parties one peer may host at once (409 beyond)' }),
  peerTimeoutS: Type.Integer({ minimum: 1, default: PEER_TIMEOUT_S, description: 'remove peers silent this long' }),
  relayTimeoutS: Type.Integer({ minimum: 1, default: RELAY_TIMEOUT_S, description: 'drop relays silent this long' }),
  cleanupIntervalS: Type.Number({ minimum: 0.1, default: CLEANUP_INTERVAL_S, description: 'cleanup loop period in seconds' }),
  heartbeatFlushMs: Type.Integer({ minimum: 10, default: HEARTBEAT_FLUSH_MS, description: 'batch period for last_seen writes' }),
  signalTtlS: Type.Integer({ minimum: 1, default: 60, description: 'queued signals expire after this many seconds' }),
  signalQueueMax: Type.Integer({ minimum: 1, default: 64, description: 'queued signals kept per recipient (oldest dropped)' }),
  ticketTtlS: Type.Integer({ minimum: 10, default: 600, description: 'relay ticket lifetime in seconds' }),
  maxRelaySessionsPerPeer: Type.Integer({
    minimum: 1,
    default: 32,
    description: 'relay sessions with unexpired tickets one peer may be part of (429 beyond; one per pair of members)',
  }),
  relayHeartbeatS: Type.Integer({ minimum: 1, default: 30, description: 'heartbeat period told to relays' }),
  trustProxy: Type.Boolean({
    default: false,
    description: 'every direct peer is your reverse proxy: the client address is the rightmost X-Forwarded-For entry (only when nothing else can reach the port)',
  }),
  trustedProxies: Type.String({
    default: '',
    description: 'addresses/networks of your reverse proxies, comma-separated (e.g. 127.0.0.1,10.0.0.0/8): X-Forwarded-For is read, from the right, only on their requests',
  }),
  maxSocketsPerToken: Type.Integer({
    minimum: 1,
    default: 4,
    description: 'WebSockets one token may hold open; one more closes the oldest (close code 4008)',
  }),
  bodyTimeoutS: Type.Number({ minimum: 0.1, maximum: 240, default: 5, description: 'a request body must arrive within this many seconds of the request (408 after)' }),
  maxBodyBytes: Type.Integer({ minimum: 1024, default: 65_536, description: 'largest request body accepted (413 above)' }),
})
export type ControlConfig = Static<typeof controlSchema>

/** The defaults as a value (tests and `lanrage serve` start from it). */
export function defaultControlConfig(over: Partial<ControlConfig> = {}): ControlConfig {
  const out: Record<string, unknown> = {}
  for (const [k, s] of Object.entries(controlSchema.properties)) out[k] = (s as { default?: unknown }).default
  return { ...(out as ControlConfig), ...over }
}
