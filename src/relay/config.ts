/**
 * The relay's options: one TypeBox schema feeds flags, LANRAGE_* env, settings (`relay.*`) and --help
 * (src/shared/config.ts). `lanrage serve` reuses the same schema for the relay it runs in-process.
 */
import { Type, type Static } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'

/** Idle time after which a session's ports are freed: 5 minutes is well above WireGuard's 2-minute rekey. */
export const DEFAULT_IDLE_TIMEOUT_S = 300
/**
 * Per-side token bucket. Games send small packets at 20-128 Hz; a busy side that also carries voice and file
 * transfers stays far below 20k packets/s and 25 MB/s. The limit is there to stop abuse, not to shape games.
 */
export const DEFAULT_RATE_PPS = 20_000
export const DEFAULT_RATE_BPS = 25_000_000
/** Burst: how many seconds of the rate the bucket holds. */
export const DEFAULT_BURST_S = 1
/**
 * A source that presents this many invalid tickets within the window gets blocked for `blockSeconds`. Only sources
 * that proved their address with an ALLOCATE cookie are counted.
 */
export const DEFAULT_INVALID_TICKET_LIMIT = 20
export const DEFAULT_INVALID_TICKET_WINDOW_S = 10
export const DEFAULT_BLOCK_S = 300
/**
 * Answers per second per source /24 (IPv4) or /64 (IPv6) to sources that have not proved their address: STUN
 * responses and ALLOCATE cookie replies; the bucket holds two seconds' worth. An agent sends a handful of each when
 * it starts; the limit keeps forged floods from reflecting off the relay, or costing it a send each.
 */
export const DEFAULT_ANSWER_RATE = 20
/**
 * Ed25519 ticket checks per second, all sources together (about 120 µs each, so the default costs at most ~6% of
 * a core). Only sources that echoed an ALLOCATE cookie get one, and an ALLOCATE retried with the same ticket needs
 * none.
 */
export const DEFAULT_TICKET_CHECK_RATE = 500

export const relaySchema = Type.Object({
  host: Type.String({ default: '0.0.0.0', description: 'address to bind the main port and the session ports' }),
  port: Type.Integer({ minimum: 0, maximum: 65535, default: 51820, description: 'main UDP port: STUN and ALLOCATE' }),
  stunAltPort: Type.Integer({
    minimum: -1,
    maximum: 65535,
    default: 0,
    description: 'second UDP port answering STUN Binding only, so one relay gives clients two STUN targets; 0 = any free port, -1 = off',
  }),
  ports: Type.String({ pattern: '^\\d{1,5}-\\d{1,5}$', expected: 'a range FIRST-LAST, e.g. 52000-52999', default: '52000-52999', description: 'session port range, one port per side of a session' }),
  publicIp: Type.String({ default: '', description: 'address clients reach this relay at (default: the first non-loopback IPv4)' }),
  region: Type.String({ default: 'default', description: 'region reported to the control server' }),
  capacity: Type.Integer({ minimum: 1, default: 500, description: 'most sessions at once (each takes two ports)' }),
  control: Type.String({ default: '', description: 'control server URL to register with, e.g. https://control.example:8667' }),
  caFile: Type.String({ default: '', description: 'PEM file of the CA that signed an https:// control server certificate (a private CA; replaces the system list)' }),
  relaySecret: Type.String({
    default: '',
    description:
      'shared secret for registering with the control server (X-Relay-Secret). As a flag it is visible to every local user in /proc/*/cmdline: prefer --relay-secret-file or the environment',
  }),
  relaySecretFile: Type.String({ default: '', description: 'file whose first line is the relay secret (instead of --relay-secret)' }),
  relayId: Type.String({ pattern: '^([0-9a-f]{16})?$', expected: '16 hex digits (or empty)', default: '', description: '16 hex digits (default: derived from public ip and port)' }),
  metricsPort: Type.Integer({ minimum: -1, maximum: 65535, default: -1, description: 'HTTP port for GET /metrics (Prometheus); -1 = off' }),
  metricsHost: Type.String({ default: '127.0.0.1', description: 'address the metrics HTTP server binds' }),
  ratePps: Type.Integer({ minimum: 1, default: DEFAULT_RATE_PPS, description: 'per-side limit, packets per second' }),
  rateBps: Type.Integer({ minimum: 1, default: DEFAULT_RATE_BPS, description: 'per-side limit, bytes per second' }),
  burstS: Type.Number({ exclusiveMinimum: 0, default: DEFAULT_BURST_S, description: 'token bucket size in seconds of the rate' }),
  idleTimeout: Type.Integer({ minimum: 1, default: DEFAULT_IDLE_TIMEOUT_S, description: 'seconds without traffic before a session is freed' }),
  deny: Type.Array(Type.String(), { default: [], description: 'source addresses (IPs or IPv4 CIDRs) always dropped' }),
  invalidTicketLimit: Type.Integer({ minimum: 1, default: DEFAULT_INVALID_TICKET_LIMIT, description: 'invalid tickets per window before a source is blocked (counted only from sources that echoed an ALLOCATE cookie)' }),
  invalidTicketWindow: Type.Integer({ minimum: 1, default: DEFAULT_INVALID_TICKET_WINDOW_S, description: 'window for invalidTicketLimit, seconds' }),
  blockSeconds: Type.Integer({ minimum: 1, default: DEFAULT_BLOCK_S, description: 'how long an auto-blocked source stays blocked' }),
  answerRate: Type.Integer({
    minimum: 1,
    default: DEFAULT_ANSWER_RATE,
    description: 'answers per second per source /24 (IPv4) or /64 (IPv6) to sources not proved yet (STUN, ALLOCATE cookies); more are dropped',
  }),
  ticketCheckRate: Type.Integer({
    minimum: 1,
    default: DEFAULT_TICKET_CHECK_RATE,
    description: 'ticket signature checks per second, all sources together; ALLOCATEs beyond are answered busy and retried',
  }),
  statsInterval: Type.Integer({ minimum: 0, default: 30, description: 'seconds between one-line stats logs (0 = off)' }),
  kernelOffload: Type.Boolean({
    default: false,
    description: 'forward locked sessions in the kernel (Linux nftables; needs CAP_NET_ADMIN, the nft tool and net.ipv4.ip_forward=1)',
  }),
})
export type RelayConfig = Static<typeof relaySchema>

/** The defaults with `over` on top: what a program that embeds the relay (`lanrage/relay`) starts from. */
export function defaultRelayConfig(over: Partial<RelayConfig> = {}): RelayConfig {
  return Value.Default(relaySchema, { ...over }) as RelayConfig
}

export function parsePortRange(s: string): { first: number; last: number } | undefined {
  const m = /^(\d{1,5})-(\d{1,5})$/.exec(s)
  if (!m) return undefined
  const first = Number(m[1])
  const last = Number(m[2])
  if (first < 1 || last > 65535 || first > last) return undefined
  return { first, last }
}
