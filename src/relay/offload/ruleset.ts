/**
 * The relay's kernel fast path as nftables text, with no I/O: what the table looks like, which elements a
 * session adds, how a change becomes one transaction, and how `nft -j` output is read back. kernel.ts runs it.
 *
 * Once both sides of a session are locked (source IP by ticket, source port by a WireGuard handshake with a
 * valid mac1), every further datagram of the session is a fixed rewrite of addresses and ports. The kernel does
 * that rewrite statelessly, in one table per relay process (`ip lanrage_<first session port>`):
 *
 *   prerouting, priority raw (before conntrack):
 *     fragments                      → return (user space reassembles and forwards them)
 *     saddr . sport . dport in @locked, within the side's packet and byte limits
 *                                    → count, notrack, daddr/sport/dport := the other side's peer, relay port
 *     saddr . sport . dport in @locked, over a limit
 *                                    → count as rate-limited, drop
 *   forward, priority filter (after routing, so the new source passes the martian-source check):
 *     daddr . dport . sport in @out_saddr → saddr := the relay's address as that peer sees it
 *
 * Anything else (an unlocked side, a new source port, wrong sources, other traffic of the host) misses the
 * lookups and goes on as if the table were not there: to the relay's user-space sockets, which check it as
 * they always do. Roaming therefore needs nothing special here: a handshake from a new port reaches user space,
 * mac1 moves the learned port, and the relay applies the session again (one transaction swaps the elements).
 *
 * Why stateless and not `dnat`/`snat`: NAT chains see only a connection's first packet, and a WireGuard flow
 * that already went both ways through the user-space relay has a conntrack entry that says "local delivery";
 * with DNAT rules added afterwards the datagrams kept going to the socket until the entry was deleted with
 * `conntrack -D` (checked in a namespace). A rule at raw priority that marks the datagram untracked is consulted
 * for every datagram, so adding or removing elements takes effect on the next one, whatever conntrack holds, and
 * a removed session leaves no NAT binding behind. A table created with `flags owner` belongs to the netlink
 * socket of the one `nft` process that made it: when that process ends (the relay exits, is killed, or nft
 * dies) the kernel deletes the table, so a crash leaves nothing that forwards.
 *
 * Counters and limits are named objects per side (`f`/`d`/`p`/`b` + relay port), reached through maps keyed by
 * the relay port, so they survive a roaming swap of the `locked` element and the rule count stays constant
 * (kube-proxy's nftables mode does the same with its service maps).
 *
 * IPv4 only: a session with an IPv6 side stays in user space.
 */

/** The per-side token bucket of the user-space path (config: ratePps, rateBps, burstS). */
export interface OffloadLimits {
  pps: number
  bps: number
  burstS: number
}

/** One side of a locked session, as the kernel sees it. */
export interface KernelSide {
  /** The relay's UDP port for this side (what this side's peer sends to). */
  port: number
  /** The peer's locked IPv4 address and learned source port. */
  peerIp: string
  peerPort: number
  /** The relay's own address as this peer sees it: the source of what the relay sends to this peer. */
  relayIp: string
}

export interface KernelSession {
  a: KernelSide
  b: KernelSide
}

/**
 * The table of the relay whose session ports start at `firstPort`: relay processes on one host have disjoint
 * port ranges, so each has its own table (and a restart finds its predecessor's).
 */
export const tableName = (firstPort: number) => `lanrage_${firstPort}`

/**
 * Named objects of a side. nft keywords cannot be object names (`fwd`, `snat`, `limit` ... are taken), so
 * these are a letter and the port.
 */
export const objectNames = (port: number) => ({ forwarded: `f${port}`, limited: `d${port}`, pps: `p${port}`, bytes: `b${port}` })

// ---------------------------------------------------------------------------------------------- limits

// Kernel bounds (net/netfilter/nft_limit.c): burst is a u32, and for byte limits 1e9 * (rate + burst) must fit
// a u64, or the transaction fails with EOVERFLOW. Above these a side is effectively unlimited anyway.
const U32_MAX = 4_294_967_295
const MAX_PPS = 1_000_000_000
const MAX_BYTES_RATE = 8_000_000_000
const MAX_BYTES_BURST = U32_MAX

/**
 * The two `limit` object bodies equivalent to the user-space token bucket (capacity rate × burstS, starts full).
 * nft's packet limit holds `burst` packets; its byte limit holds rate + burst bytes (nft_limit_init), so the
 * byte burst is what the bucket holds beyond one second of rate — with burstS < 1 the kernel's byte bucket is
 * one second of rate, a little more lenient than user space.
 */
export function limitSpecs(l: OffloadLimits): { pps: string; bytes: string } {
  const pps = clampInt(l.pps, 1, MAX_PPS)
  const ppsBurst = clampInt(l.pps * l.burstS, 1, U32_MAX)
  const bps = clampInt(l.bps, 1, MAX_BYTES_RATE)
  const bytesBurst = clampInt(l.bps * l.burstS - bps, 0, MAX_BYTES_BURST)
  return {
    pps: `rate ${pps}/second burst ${ppsBurst} packets`,
    bytes: `rate ${bps} bytes/second burst ${bytesBurst} bytes`,
  }
}

function clampInt(x: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, Math.round(x)))
}

// ---------------------------------------------------------------------------------------------- the table

/**
 * The batch that (re)creates the table. The first two commands remove a table of that name left by a relay that
 * ran without `flags owner` (add-then-delete succeeds whether or not it existed); if a live process owns it the
 * whole batch fails with "Operation not permitted", and nothing changes.
 */
export function setupScript(table: string): string {
  const t = `ip ${table}`
  return [
    `add table ${t}`,
    `delete table ${t}`,
    `add table ${t} { flags owner; }`,
    `add set ${t} locked { type ipv4_addr . inet_service . inet_service; }`,
    `add map ${t} out_daddr { type inet_service : ipv4_addr; }`,
    `add map ${t} out_sport { type inet_service : inet_service; }`,
    `add map ${t} out_dport { type inet_service : inet_service; }`,
    `add map ${t} out_saddr { type ipv4_addr . inet_service . inet_service : ipv4_addr; }`,
    `add map ${t} pps_limit { type inet_service : limit; }`,
    `add map ${t} bytes_limit { type inet_service : limit; }`,
    `add map ${t} forwarded { type inet_service : counter; }`,
    `add map ${t} limited { type inet_service : counter; }`,
    `add chain ${t} pre { type filter hook prerouting priority raw; policy accept; }`,
    `add chain ${t} post { type filter hook forward priority filter; policy accept; }`,
    // A fragment has no UDP header after the first one; the socket gets the reassembled datagram instead.
    `add rule ${t} pre ip frag-off & 0x3fff != 0 return`,
    // Limits first, so the counter counts what is forwarded; dport is rewritten last because the maps read it.
    `add rule ${t} pre ip saddr . udp sport . udp dport @locked` +
      ` limit name udp dport map @pps_limit limit name udp dport map @bytes_limit counter name udp dport map @forwarded notrack` +
      ` ip daddr set udp dport map @out_daddr udp sport set udp dport map @out_sport udp dport set udp dport map @out_dport`,
    // A locked side over its limit (the rule above stopped at a limit): count it, and do not hand it to user space.
    `add rule ${t} pre ip saddr . udp sport . udp dport @locked counter name udp dport map @limited drop`,
    `add rule ${t} post ip saddr set ip daddr . udp dport . udp sport map @out_saddr`,
  ].join('\n')
}

// ---------------------------------------------------------------------------------------------- elements

/** Every map or set element a session puts in the table: "set key" → value ('' for set elements). */
export function sessionElements(s: KernelSession): Map<string, string> {
  const out = new Map<string, string>()
  for (const [from, to] of [
    [s.a, s.b],
    [s.b, s.a],
  ] as const) {
    const o = objectNames(from.port)
    out.set(`locked ${from.peerIp} . ${from.peerPort} . ${from.port}`, '')
    out.set(`out_daddr ${from.port}`, to.peerIp)
    out.set(`out_sport ${from.port}`, String(to.port))
    out.set(`out_dport ${from.port}`, String(to.peerPort))
    // After the rewrite a datagram from `from` is addressed to `to`'s peer from `to`'s relay port.
    out.set(`out_saddr ${to.peerIp} . ${to.peerPort} . ${to.port}`, to.relayIp)
    out.set(`pps_limit ${from.port}`, `"${o.pps}"`)
    out.set(`bytes_limit ${from.port}`, `"${o.bytes}"`)
    out.set(`forwarded ${from.port}`, `"${o.forwarded}"`)
    out.set(`limited ${from.port}`, `"${o.limited}"`)
  }
  return out
}

const ports = (s: KernelSession | null) => (s ? [s.a.port, s.b.port] : [])

/**
 * One transaction taking the table from session state `before` to `after` (null = not installed): objects of new
 * ports are created first, elements that changed or went away are deleted before their replacements are added
 * (an `add` of an existing map key with another value fails), and objects of ports no longer used go last,
 * after the elements that referenced them. Returns '' when nothing changes.
 */
export function transitionScript(table: string, before: KernelSession | null, after: KernelSession | null, limits: OffloadLimits): string {
  const t = `ip ${table}`
  const old = before ? sessionElements(before) : new Map<string, string>()
  const next = after ? sessionElements(after) : new Map<string, string>()
  const lines: string[] = []
  const spec = limitSpecs(limits)
  const oldPorts = new Set(ports(before))
  const newPorts = new Set(ports(after))
  for (const p of newPorts) {
    if (oldPorts.has(p)) continue
    const o = objectNames(p)
    lines.push(`add counter ${t} ${o.forwarded}`, `add counter ${t} ${o.limited}`)
    lines.push(`add limit ${t} ${o.pps} { ${spec.pps}; }`, `add limit ${t} ${o.bytes} { ${spec.bytes}; }`)
  }
  for (const [k, v] of old) if (next.get(k) !== v) lines.push(`delete element ${t} ${setOf(k)} { ${keyOf(k)} }`)
  for (const [k, v] of next) if (old.get(k) !== v) lines.push(`add element ${t} ${setOf(k)} { ${keyOf(k)}${v ? ` : ${v}` : ''} }`)
  for (const p of oldPorts) {
    if (newPorts.has(p)) continue
    const o = objectNames(p)
    lines.push(`delete counter ${t} ${o.forwarded}`, `delete counter ${t} ${o.limited}`, `delete limit ${t} ${o.pps}`, `delete limit ${t} ${o.bytes}`)
  }
  return lines.join('\n')
}

const setOf = (k: string) => k.slice(0, k.indexOf(' '))
const keyOf = (k: string) => k.slice(k.indexOf(' ') + 1)

/**
 * nft reads a batch from one line in interactive mode (one line, one transaction). Newlines between commands
 * become `;`, which is the same separator to nft's parser.
 */
export const oneLine = (script: string) => script.split('\n').filter(Boolean).join(' ; ')

// ---------------------------------------------------------------------------------------------- reading back

export interface CounterValue {
  packets: number
  bytes: number
}

/**
 * Named counters from `nft -j list counters table ip T`: name → value. Output that is not what nft prints gives
 * an empty map and never throws (a version of nft that prints something else must not stop the relay).
 */
export function parseCounters(json: string): Map<string, CounterValue> {
  const out = new Map<string, CounterValue>()
  let doc: unknown
  try {
    doc = JSON.parse(json)
  } catch {
    return out
  }
  const items = (doc as { nftables?: unknown })?.nftables
  if (!Array.isArray(items)) return out
  for (const item of items) {
    const c = (item as { counter?: { name?: unknown; packets?: unknown; bytes?: unknown } })?.counter
    if (!c || typeof c.name !== 'string' || typeof c.packets !== 'number' || typeof c.bytes !== 'number') continue
    out.set(c.name, { packets: c.packets, bytes: c.bytes })
  }
  return out
}

/** The preferred source address from `ip -j route get ADDR` (what a socket bound to 0.0.0.0 would send from). */
export function parseRouteSource(json: string): string | undefined {
  try {
    const r = JSON.parse(json) as { prefsrc?: unknown }[]
    const src = Array.isArray(r) ? r[0]?.prefsrc : undefined
    return typeof src === 'string' && isIPv4(src) ? src : undefined
  } catch {
    return undefined
  }
}

/** Dotted-quad IPv4 with every part 0-255 and no leading zeros (nft would read "010" as octal). */
export function isIPv4(s: string): boolean {
  const p = s.split('.')
  return p.length === 4 && p.every((x) => /^(0|[1-9]\d{0,2})$/.test(x) && Number(x) <= 255)
}

/** The IPv4 address a socket reports, unmapped from `::ffff:a.b.c.d` (a dual-stack bind); undefined for IPv6. */
export function asIPv4(s: string): string | undefined {
  const v = s.startsWith('::ffff:') ? s.slice(7) : s
  return isIPv4(v) ? v : undefined
}
