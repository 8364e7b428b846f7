// The kernel fast path's ruleset as text, without running nft: which elements a session adds, how changes
// become transactions, the limit arithmetic against the kernel's bounds, and reading nft's and ip's JSON.
// test/relay/offload.test.ts loads the same text into a real kernel.
import { describe, expect, test } from 'bun:test'
import {
  asIPv4,
  isIPv4,
  limitSpecs,
  mergeScripts,
  oneLine,
  parseSetCounters,
  parseRouteSource,
  sessionElements,
  setupScript,
  tableName,
  transitionScript,
  type KernelSession,
} from './ruleset.ts'

const T = tableName(51820)
const limits = { pps: 20_000, bps: 25_000_000, burstS: 1 }
const session: KernelSession = {
  a: { port: 52000, peerIp: '198.51.100.7', peerPort: 40001, relayIp: '203.0.113.10' },
  b: { port: 52001, peerIp: '192.0.2.33', peerPort: 51820, relayIp: '203.0.113.10' },
}
const lines = (s: string) => s.split('\n')

describe('limitSpecs', () => {
  test('the defaults: a packet bucket of rate × burst; a byte bucket that nft sizes as rate + burst', () => {
    expect(limitSpecs(limits)).toEqual({
      pps: 'rate 20000/second burst 20000 packets',
      bytes: 'rate 25000000 bytes/second burst 1 bytes', // nft wants a byte burst above 0
    })
    expect(limitSpecs({ ...limits, burstS: 2.5 })).toEqual({
      pps: 'rate 20000/second burst 50000 packets',
      bytes: 'rate 25000000 bytes/second burst 37500000 bytes',
    })
  })

  test('limits beyond what the kernel accepts are clamped inside its bounds (burst u32; 1e9 × (rate + burst) < 2^64)', () => {
    // The benchmark runs the relay with 100M packets/s and 1 TB/s: the kernel refused such a byte limit with EOVERFLOW.
    const s = limitSpecs({ pps: 100_000_000, bps: 1_000_000_000_000, burstS: 10 })
    const n = (re: RegExp, text: string) => Number(re.exec(text)![1])
    const rate = n(/rate (\d+) bytes/, s.bytes)
    const burst = n(/burst (\d+) bytes/, s.bytes)
    expect(burst).toBeLessThanOrEqual(2 ** 32 - 1)
    expect(BigInt(rate + burst) * 1_000_000_000n < 2n ** 64n).toBe(true)
    expect(n(/burst (\d+) packets/, s.pps)).toBeLessThanOrEqual(2 ** 32 - 1)
    // A tiny bucket still lets one packet through, as the user-space bucket does at rate × burst ≥ 1.
    expect(limitSpecs({ pps: 1, bps: 1, burstS: 0.1 }).pps).toBe('rate 1/second burst 1 packets')
  })
})

describe('the table', () => {
  test('created with flags owner after removing a leftover of the same name, all in one batch', () => {
    const s = lines(setupScript(T, limits))
    expect(s.slice(0, 3)).toEqual([`add table ip ${T}`, `delete table ip ${T}`, `add table ip ${T} { flags owner; }`])
    // NAT chains would see only a flow's first packet; the forwarding rule sits at raw priority, before conntrack.
    expect(s.some((l) => /chain .* pre \{ type filter hook prerouting priority raw;/.test(l))).toBe(true)
    expect(s.join('\n')).not.toMatch(/type nat|dnat|snat|masquerade/)
    expect(s.find((l) => l.includes('@locked notrack'))).toMatch(/@locked notrack ip daddr set .* udp sport set .* udp dport set udp dport map @out_dport$/)
  })

  test("the side's limits and counters are element templates of the sets and the map the rules look up", () => {
    const s = lines(setupScript(T, limits))
    expect(s).toContain(
      `add set ip ${T} locked { type ipv4_addr . inet_service . inet_service; limit rate 25000000 bytes/second burst 1 bytes; limit rate 20000/second burst 20000 packets; }`,
    )
    expect(s).toContain(`add set ip ${T} limited { type ipv4_addr . inet_service . inet_service; counter; }`)
    expect(s).toContain(`add map ip ${T} out_saddr { type ipv4_addr . inet_service . inet_service : ipv4_addr; counter; }`)
    expect(s).toContain(`add rule ip ${T} pre ip saddr . udp sport . udp dport @limited drop`)
    // The new source (and the count) after routing: on the forward hook, and on input for a peer on this host.
    expect(s).toContain(`add rule ip ${T} post ip saddr set ip daddr . udp dport . udp sport map @out_saddr`)
    expect(s).toContain(`add rule ip ${T} local iif != "lo" ip saddr set ip daddr . udp dport . udp sport map @out_saddr`)
    expect(s.find((l) => / local \{/.test(l))).toContain('type filter hook input')
  })

  test("a peer on the relay's host: rewritten in a route chain on output, so the kernel routes it again; not twice on loopback", () => {
    const s = lines(setupScript(T, limits))
    expect(s.find((l) => / out \{/.test(l))).toContain('type route hook output priority raw;')
    expect(s.find((l) => l.startsWith(`add rule ip ${T} out `) && l.includes('@locked notrack'))).toMatch(/udp dport map @out_dport ip saddr set .* map @out_saddr$/)
    // Over its limit it is dropped when it comes back on loopback, not in output (which would fail the send).
    expect(s.filter((l) => l.startsWith(`add rule ip ${T} out `))).toHaveLength(1)
    expect(s.filter((l) => l.startsWith(`add rule ip ${T} pre `)).slice(0, 2)).toEqual([
      `add rule ip ${T} pre iif "lo" ip saddr . udp sport . udp dport @limited drop`,
      `add rule ip ${T} pre iif "lo" return`,
    ])
  })

  test('one line per transaction for nft --interactive', () => {
    expect(oneLine('add a\n\nadd b\n')).toBe('add a ; add b')
  })
})

describe('sessionElements', () => {
  test('each side: its locked source in the three sets, where its datagrams go, the relay address the other peer sees', () => {
    const e = sessionElements(session)
    for (const set of ['locked', 'limited']) {
      expect(e.get(`${set} 198.51.100.7 . 40001 . 52000`)).toBe('')
      expect(e.get(`${set} 192.0.2.33 . 51820 . 52001`)).toBe('')
    }
    // a → b: to b's peer, from b's relay port; and back.
    expect([e.get('out_daddr 52000'), e.get('out_sport 52000'), e.get('out_dport 52000')]).toEqual(['192.0.2.33', '52001', '51820'])
    expect([e.get('out_daddr 52001'), e.get('out_sport 52001'), e.get('out_dport 52001')]).toEqual(['198.51.100.7', '52000', '40001'])
    expect(e.get('out_saddr 192.0.2.33 . 51820 . 52001')).toBe('203.0.113.10')
    expect(e.get('out_saddr 198.51.100.7 . 40001 . 52000')).toBe('203.0.113.10')
    expect(e.size).toBe(12)
  })
})

describe('transitionScript', () => {
  test('install: every element added', () => {
    const s = lines(transitionScript(T, null, session))
    expect(s.every((l) => l.startsWith(`add element ip ${T} `))).toBe(true)
    expect(s).toContain(`add element ip ${T} out_dport { 52000 : 51820 }`)
    expect(s).toContain(`add element ip ${T} locked { 198.51.100.7 . 40001 . 52000 }`)
    expect(s).toContain(`add element ip ${T} out_saddr { 192.0.2.33 . 51820 . 52001 : 203.0.113.10 }`)
    expect(s.length).toBe(12)
  })

  test('remove: every element deleted, by key', () => {
    const s = lines(transitionScript(T, session, null))
    expect(s.every((l) => l.startsWith(`delete element ip ${T} `))).toBe(true)
    expect(s).toContain(`delete element ip ${T} out_saddr { 192.0.2.33 . 51820 . 52001 }`)
    expect(s).toContain(`delete element ip ${T} limited { 198.51.100.7 . 40001 . 52000 }`)
    expect(s.length).toBe(12)
  })

  test('roaming: a new source port swaps only what depends on it, deletions first', () => {
    const moved: KernelSession = { ...session, a: { ...session.a, peerPort: 40777 } }
    expect(lines(transitionScript(T, session, moved))).toEqual([
      `delete element ip ${T} locked { 198.51.100.7 . 40001 . 52000 }`,
      `delete element ip ${T} limited { 198.51.100.7 . 40001 . 52000 }`,
      `delete element ip ${T} out_dport { 52001 }`,
      `delete element ip ${T} out_saddr { 198.51.100.7 . 40001 . 52000 }`,
      `add element ip ${T} locked { 198.51.100.7 . 40777 . 52000 }`,
      `add element ip ${T} limited { 198.51.100.7 . 40777 . 52000 }`,
      `add element ip ${T} out_dport { 52001 : 40777 }`,
      `add element ip ${T} out_saddr { 198.51.100.7 . 40777 . 52000 : 203.0.113.10 }`,
    ])
  })

  test('several sessions in one transaction: every deletion first, one command per set', () => {
    const other: KernelSession = {
      a: { port: 52002, peerIp: '198.51.100.8', peerPort: 1, relayIp: '203.0.113.10' },
      b: { port: 52003, peerIp: '192.0.2.34', peerPort: 2, relayIp: '203.0.113.10' },
    }
    const moved: KernelSession = { ...session, a: { ...session.a, peerPort: 40777 } }
    const merged = lines(mergeScripts([transitionScript(T, null, other), transitionScript(T, session, moved)]))
    expect(merged.slice(0, 4).every((l) => l.startsWith('delete element'))).toBe(true)
    expect(merged.slice(4).every((l) => l.startsWith('add element'))).toBe(true)
    expect(merged).toContain(`delete element ip ${T} out_dport { 52001 }`)
    expect(merged).toContain(`add element ip ${T} out_dport { 52002 : 2, 52003 : 1, 52001 : 40777 }`)
    expect(merged).toContain(`add element ip ${T} locked { 198.51.100.8 . 1 . 52002, 192.0.2.34 . 2 . 52003, 198.51.100.7 . 40777 . 52000 }`)
    expect(merged.length).toBe(4 + 6)
    expect(() => mergeScripts(['flush ruleset'])).toThrow('not an element command')
  })

  test('nothing changed: nothing to send', () => {
    expect(transitionScript(T, session, { a: { ...session.a }, b: { ...session.b } })).toBe('')
    expect(transitionScript(T, null, null)).toBe('')
  })
})

describe('reading nft and ip output', () => {
  test('element counters from nft -j list set, one document a line', () => {
    const doc = (name: string, elem: unknown[]) =>
      JSON.stringify({
        nftables: [
          { metainfo: { version: '1.0.6', release_name: 'Lester Gooch #5', json_schema_version: 1 } },
          { set: { family: 'ip', name, table: T, type: ['ipv4_addr', 'inet_service', 'inet_service'], handle: 1, elem, stmt: [{ counter: null }] } },
        ],
      })
    const json = [
      doc('locked', [
        { elem: { val: { concat: ['198.51.100.7', 40001, 52000] }, counter: { packets: 12, bytes: 2496 } } },
        { elem: { val: { concat: ['192.0.2.33', 51820, 52001] }, counter: { packets: 0, bytes: 0 } } },
        { elem: { val: { concat: ['192.0.2.34', 1] }, counter: { packets: 1, bytes: 1 } } },
        { elem: { val: '192.0.2.35', counter: { packets: 1, bytes: 1 } } },
        { elem: { val: { concat: ['192.0.2.36', 1, 2] }, counter: { packets: '3', bytes: 1 } } },
      ]),
      doc('limited', [{ elem: { val: { concat: ['10.0.0.1', 2, 3] }, counter: { packets: 5, bytes: 500 } } }]),
      // A map element is a pair: the key with its counter, then the value.
      JSON.stringify({
        nftables: [
          { map: { family: 'ip', name: 'out_saddr', table: T, map: 'ipv4_addr', elem: [[{ elem: { val: { concat: ['10.0.0.2', 4, 5] }, counter: { packets: 7, bytes: 700 } } }, '203.0.113.10']] } },
        ],
      }),
    ].join('\n')
    expect([...parseSetCounters(json)]).toEqual([
      ['198.51.100.7 . 40001 . 52000', { packets: 12, bytes: 2496 }],
      ['192.0.2.33 . 51820 . 52001', { packets: 0, bytes: 0 }],
      ['10.0.0.1 . 2 . 3', { packets: 5, bytes: 500 }],
      ['10.0.0.2 . 4 . 5', { packets: 7, bytes: 700 }],
    ])
  })

  test('output that is not nft JSON gives no counters and does not throw', () => {
    for (const bad of ['', 'Error: No such file or directory', '{"nftables": 3}', 'null', '[1,2]', '{"nftables":[null, 5, {"set": null}, {"set": {"elem": 7}}]}'])
      expect(parseSetCounters(bad).size).toBe(0)
  })

  test('the preferred source of a route', () => {
    const json = '[{"dst":"10.201.2.2","dev":"rb","prefsrc":"10.201.2.1","flags":[],"uid":0,"cache":[]}]'
    expect(parseRouteSource(json)).toBe('10.201.2.1')
    for (const bad of ['', '[]', '[{"dst":"10.0.0.1"}]', '[{"prefsrc":"fe80::1"}]', '{"prefsrc":"10.0.0.1"}', 'x'])
      expect(parseRouteSource(bad)).toBeUndefined()
  })

  test('IPv4 as nft reads it: four decimal parts, no leading zeros; IPv4-mapped addresses unmapped', () => {
    for (const ok of ['0.0.0.0', '10.201.1.2', '255.255.255.255']) expect(isIPv4(ok)).toBe(true)
    for (const bad of ['010.1.1.1', '1.1.1', '1.1.1.256', '::1', '1.1.1.1 ', 'a.b.c.d', '']) expect(isIPv4(bad)).toBe(false)
    expect(asIPv4('::ffff:198.51.100.7')).toBe('198.51.100.7')
    expect(asIPv4('2001:db8::1')).toBeUndefined()
  })
})
