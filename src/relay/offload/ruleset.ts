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
 *     saddr . sport . dport in @locked, within the side's byte and packet limits (both on the element)
 *                                    → notrack; daddr/sport/dport := the other side's peer and relay port
 *     saddr . sport . dport in @limited (a locked source over a limit) → counted, dropped
 *   forward, priority filter (after routing, so the new source passes the martian-source check), and input
 *   (a peer on the relay's own host):
 *     daddr . dport . sport in @out_saddr → counted; saddr := the relay's address as that peer sees it
 *   output, a route chain (datagrams of a peer on the relay's own host, which reach prerouting only on loopback):
 *     the same lookups and rewrites, saddr included, then the kernel routes the datagram again
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
 * Limits and counters are per element: the sets declare them once and nftables clones them into every element;
 * the rewrite maps are keyed by the relay port, and the rule count stays constant however many sessions there
 * are (kube-proxy's nftables mode puts its services in maps the same way). What a side forwards is counted on the
 * @out_saddr element of the side it goes to, what is over a limit on its @limited element. A roaming move
 * replaces a side's elements, so their counters start again from zero and kernel.ts reads them just before.
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

// ---------------------------------------------------------------------------------------------- limits

// Kernel bounds (net/netfilter/nft_limit.c): burst is a u32, and for byte limits 1e9 * (rate + burst) must fit
// a u64, or the transaction fails with EOVERFLOW. Above these a side is effectively unlimited anyway.
const U32_MAX = 4_294_967_295
const MAX_PPS = 1_000_000_000
const MAX_BYTES_RATE = 8_000_000_000
const MAX_BYTES_BURST = U32_MAX

/**
 * The two `limit` statements equivalent to the user-space token bucket (capacity rate × burstS, starts full).
 * nft's packet limit holds `burst` packets; its byte limit holds rate + burst bytes (nft_limit_init), so the
 * byte burst is what the bucket holds beyond one second of rate, and at least 1 (nft refuses a byte limit
 * without a burst): with burstS ≤ 1 the kernel's byte bucket is one second of rate, a little more lenient than
 * user space when burstS < 1.
 */
export function limitSpecs(l: OffloadLimits): { pps: string; bytes: string } {
  const pps = clampInt(l.pps, 1, MAX_PPS)
  const ppsBurst = clampInt(l.pps * l.burstS, 1, U32_MAX)
  const bps = clampInt(l.bps, 1, MAX_BYTES_RATE)
  const bytesBurst = clampInt(l.bps * l.burstS - bps, 1, MAX_BYTES_BURST)
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
export function setupScript(table: string, limits: OffloadLimits): string {
  const t = `ip ${table}`
  const key = 'type ipv4_addr . inet_service . inet_service'
  const spec = limitSpecs(limits)
  const locked = 'ip saddr . udp sport . udp dport'
  const outSaddr = 'ip saddr set ip daddr . udp dport . udp sport map @out_saddr'
  const rewrite = 'ip daddr set udp dport map @out_daddr udp sport set udp dport map @out_sport udp dport set udp dport map @out_dport'
  return [
    `add table ${t}`,
    `delete table ${t}`,
    `add table ${t} { flags owner; }`,
    // Element templates: every element gets its own copy (its own buckets, its own counter).
    `add set ${t} locked { ${key}; limit ${spec.bytes}; limit ${spec.pps}; }`,
    `add set ${t} limited { ${key}; counter; }`,
    `add map ${t} out_daddr { type inet_service : ipv4_addr; }`,
    `add map ${t} out_sport { type inet_service : inet_service; }`,
    `add map ${t} out_dport { type inet_service : inet_service; }`,
    `add map ${t} out_saddr { ${key} : ipv4_addr; counter; }`,
    `add chain ${t} pre { type filter hook prerouting priority raw; policy accept; }`,
    // A peer on the relay's own host: its datagrams leave through output and come back in on loopback. They are
    // rewritten in output, by a route chain, so that the kernel routes them again for their new destination.
    `add chain ${t} out { type route hook output priority raw; policy accept; }`,
    `add chain ${t} post { type filter hook forward priority filter; policy accept; }`,
    `add chain ${t} local { type filter hook input priority filter; policy accept; }`,
    // Sent from this host and over its limit in output, where the rewrite stopped (dropping it there would fail
    // the sender's send with EPERM): counted and dropped here, as a datagram from elsewhere is.
    `add rule ${t} pre iif "lo" ${locked} @limited drop`,
    `add rule ${t} pre iif "lo" return`,
    // A fragment has no UDP header after the first one; the socket gets the reassembled datagram instead.
    `add rule ${t} pre ip frag-off & 0x3fff != 0 return`,
    // The lookup stops at an element's limit that is used up. dport is rewritten last: the maps are keyed by it.
    `add rule ${t} pre ${locked} @locked notrack ${rewrite}`,
    // A locked source over its limit (the rule above stopped at a limit): count it, and do not hand it to user space.
    `add rule ${t} pre ${locked} @limited drop`,
    // Locally sent datagrams are never fragments here (fragmenting comes after the hooks), and their new source
    // is set at once: a local source is no martian.
    `add rule ${t} out ${locked} @locked notrack ${rewrite} ${outSaddr}`,
    // What came in from another host: the new source (and the count) after routing, on the forward hook, or on
    // input for a peer on this host. What came back on loopback was done in output.
    `add rule ${t} post ${outSaddr}`,
    `add rule ${t} local iif != "lo" ${outSaddr}`,
  ].join('\n')
}

// ---------------------------------------------------------------------------------------------- elements

/** The key of a side's elements in @locked, @limited and (as the side datagrams go to) @out_saddr. */
export const sideKey = (x: KernelSide) => `${x.peerIp} . ${x.peerPort} . ${x.port}`

/** Every map or set element a session puts in the table: "set key" → value ('' for set elements). */
export function sessionElements(s: KernelSession): Map<string, string> {
  const out = new Map<string, string>()
  for (const [from, to] of [
    [s.a, s.b],
    [s.b, s.a],
  ] as const) {
    for (const set of ['locked', 'limited']) out.set(`${set} ${sideKey(from)}`, '')
    out.set(`out_daddr ${from.port}`, to.peerIp)
    out.set(`out_sport ${from.port}`, String(to.port))
    out.set(`out_dport ${from.port}`, String(to.peerPort))
    // After the rewrite a datagram from `from` is addressed to `to`'s peer from `to`'s relay port.
    out.set(`out_saddr ${sideKey(to)}`, to.relayIp)
  }
  return out
}

/**
 * One transaction's commands taking the table from session state `before` to `after` (null = not installed):
 * elements that changed or went away are deleted before their replacements are added (an `add` of an existing
 * map key with another value fails). Returns '' when nothing changes.
 */
export function transitionScript(table: string, before: KernelSession | null, after: KernelSession | null): string {
  const t = `ip ${table}`
  const old = before ? sessionElements(before) : new Map<string, string>()
  const next = after ? sessionElements(after) : new Map<string, string>()
  const lines: string[] = []
  for (const [k, v] of old) if (next.get(k) !== v) lines.push(`delete element ${t} ${setOf(k)} { ${keyOf(k)} }`)
  for (const [k, v] of next) if (old.get(k) !== v) lines.push(`add element ${t} ${setOf(k)} { ${keyOf(k)}${v ? ` : ${v}` : ''} }`)
  return lines.join('\n')
}

/**
 * Several sessions' transition scripts as one: all deletions, then all additions, one command per set with
 * every element in it. nft handles a command per set far faster than a command per element (a relay restart
 * locks hundreds of sessions at once), and since no two sessions share a key, moving every deletion first keeps
 * each session's own order.
 */
export function mergeScripts(scripts: readonly string[]): string {
  const groups = { delete: new Map<string, string[]>(), add: new Map<string, string[]>() }
  for (const line of scripts.flatMap((x) => x.split('\n'))) {
    const m = /^(add|delete) element (ip \S+ \S+) \{ (.*) \}$/.exec(line)
    if (!m) throw new Error(`not an element command: ${line}`)
    const g = groups[m[1] as 'add' | 'delete']
    g.set(m[2]!, [...(g.get(m[2]!) ?? []), m[3]!])
  }
  const out: string[] = []
  for (const verb of ['delete', 'add'] as const) for (const [set, elems] of groups[verb]) out.push(`${verb} element ${set} { ${elems.join(', ')} }`)
  return out.join('\n')
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
 * Element counters from `nft -j list set|map ip T NAME` (one or more such documents, one per line): side key
 * ("ip . port . port", as sideKey) → value. Output that is not what nft prints gives nothing and never throws (a
 * version of nft that prints something else must not stop the relay).
 */
export function parseSetCounters(json: string): Map<string, CounterValue> {
  const out = new Map<string, CounterValue>()
  for (const line of json.split('\n')) {
    let doc: unknown
    try {
      doc = JSON.parse(line)
    } catch {
      continue
    }
    const items = (doc as { nftables?: unknown })?.nftables
    if (!Array.isArray(items)) continue
    for (const item of items) {
      const x = item as { set?: { elem?: unknown }; map?: { elem?: unknown } } | null
      const elems = (x?.set ?? x?.map)?.elem
      if (!Array.isArray(elems)) continue
      for (const e of elems) {
        // A set element is {elem}; a map element is [{elem}, value].
        const el = ((Array.isArray(e) ? e[0] : e) as { elem?: { val?: { concat?: unknown }; counter?: { packets?: unknown; bytes?: unknown } } })?.elem
        const k = el?.val?.concat
        const c = el?.counter
        if (!Array.isArray(k) || k.length !== 3 || !c || typeof c.packets !== 'number' || typeof c.bytes !== 'number') continue
        out.set(k.join(' . '), { packets: c.packets, bytes: c.bytes })
      }
    }
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
