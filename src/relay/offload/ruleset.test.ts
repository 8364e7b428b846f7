// The kernel fast path's ruleset as text, without running nft: which elements a session adds, how changes
// become transactions, the limit arithmetic against the kernel's bounds, and reading nft's and ip's JSON.
// test/relay/offload.test.ts loads the same text into a real kernel.
import { describe, expect, test } from 'bun:test'
import {
  asIPv4,
  isIPv4,
  limitSpecs,
  oneLine,
  parseCounters,
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
      bytes: 'rate 25000000 bytes/second burst 0 bytes',
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
    const s = lines(setupScript(T))
    expect(s.slice(0, 3)).toEqual([`add table ip ${T}`, `delete table ip ${T}`, `add table ip ${T} { flags owner; }`])
    // NAT chains would see only a flow's first packet; the forwarding rule sits at raw priority, before conntrack.
    expect(s.some((l) => /chain .* pre \{ type filter hook prerouting priority raw;/.test(l))).toBe(true)
    expect(s.join('\n')).not.toMatch(/type nat|dnat|snat|masquerade/)
    expect(s.find((l) => l.includes('@locked limit'))).toMatch(/notrack ip daddr set .* udp sport set .* udp dport set udp dport map @out_dport$/)
  })

  test('one line per transaction for nft --interactive', () => {
    expect(oneLine('add a\n\nadd b\n')).toBe('add a ; add b')
  })
})

describe('sessionElements', () => {
  test('each side: its locked source, where its datagrams go, the relay address the other peer sees, its objects', () => {
    const e = sessionElements(session)
    expect(e.get('locked 198.51.100.7 . 40001 . 52000')).toBe('')
    expect(e.get('locked 192.0.2.33 . 51820 . 52001')).toBe('')
    // a → b: to b's peer, from b's relay port; and back.
    expect([e.get('out_daddr 52000'), e.get('out_sport 52000'), e.get('out_dport 52000')]).toEqual(['192.0.2.33', '52001', '51820'])
    expect([e.get('out_daddr 52001'), e.get('out_sport 52001'), e.get('out_dport 52001')]).toEqual(['198.51.100.7', '52000', '40001'])
    expect(e.get('out_saddr 192.0.2.33 . 51820 . 52001')).toBe('203.0.113.10')
    expect(e.get('out_saddr 198.51.100.7 . 40001 . 52000')).toBe('203.0.113.10')
    expect([e.get('pps_limit 52000'), e.get('bytes_limit 52000'), e.get('forwarded 52000'), e.get('limited 52000')]).toEqual([
      '"p52000"',
      '"b52000"',
      '"f52000"',
      '"d52000"',
    ])
    expect(e.size).toBe(18)
  })
})

describe('transitionScript', () => {
  test('install: the four objects per side first, then every element', () => {
    const s = lines(transitionScript(T, null, session, limits))
    const firstElement = s.findIndex((l) => l.startsWith('add element'))
    expect(s.slice(0, firstElement).sort()).toEqual(
      [
        `add counter ip ${T} f52000`,
        `add counter ip ${T} d52000`,
        `add limit ip ${T} p52000 { rate 20000/second burst 20000 packets; }`,
        `add limit ip ${T} b52000 { rate 25000000 bytes/second burst 0 bytes; }`,
        `add counter ip ${T} f52001`,
        `add counter ip ${T} d52001`,
        `add limit ip ${T} p52001 { rate 20000/second burst 20000 packets; }`,
        `add limit ip ${T} b52001 { rate 25000000 bytes/second burst 0 bytes; }`,
      ].sort(),
    )
    expect(s.slice(firstElement).every((l) => l.startsWith('add element'))).toBe(true)
    expect(s).toContain(`add element ip ${T} out_dport { 52000 : 51820 }`)
    expect(s).toContain(`add element ip ${T} locked { 198.51.100.7 . 40001 . 52000 }`)
    expect(s).toContain(`add element ip ${T} forwarded { 52001 : "f52001" }`)
    expect(s.length).toBe(8 + 18)
  })

  test('remove: every element first, then the objects they referenced', () => {
    const s = lines(transitionScript(T, session, null, limits))
    const firstObject = s.findIndex((l) => !l.startsWith('delete element'))
    expect(firstObject).toBe(18)
    expect(s.slice(firstObject).every((l) => /^delete (counter|limit) /.test(l))).toBe(true)
    expect(s).toContain(`delete element ip ${T} out_saddr { 192.0.2.33 . 51820 . 52001 }`)
    expect(s.length).toBe(18 + 8)
  })

  test('roaming: a new source port swaps only what depends on it; counters and limits stay', () => {
    const moved: KernelSession = { ...session, a: { ...session.a, peerPort: 40777 } }
    expect(lines(transitionScript(T, session, moved, limits))).toEqual([
      `delete element ip ${T} locked { 198.51.100.7 . 40001 . 52000 }`,
      `delete element ip ${T} out_dport { 52001 }`,
      `delete element ip ${T} out_saddr { 198.51.100.7 . 40001 . 52000 }`,
      `add element ip ${T} locked { 198.51.100.7 . 40777 . 52000 }`,
      `add element ip ${T} out_dport { 52001 : 40777 }`,
      `add element ip ${T} out_saddr { 198.51.100.7 . 40777 . 52000 : 203.0.113.10 }`,
    ])
  })

  test('nothing changed: nothing to send', () => {
    expect(transitionScript(T, session, { a: { ...session.a }, b: { ...session.b } }, limits)).toBe('')
    expect(transitionScript(T, null, null, limits)).toBe('')
  })
})

describe('reading nft and ip output', () => {
  test('named counters from nft -j list counters', () => {
    const json = JSON.stringify({
      nftables: [
        { metainfo: { version: '1.0.6', release_name: 'Lester Gooch #5', json_schema_version: 1 } },
        { counter: { family: 'ip', name: 'f52000', table: T, handle: 18, packets: 12, bytes: 2496 } },
        { counter: { family: 'ip', name: 'd52000', table: T, handle: 19, packets: 0, bytes: 0 } },
        { counter: { family: 'ip', name: 'broken', table: T, packets: '3' } },
        { limit: { name: 'p52000' } },
      ],
    })
    expect([...parseCounters(json)]).toEqual([
      ['f52000', { packets: 12, bytes: 2496 }],
      ['d52000', { packets: 0, bytes: 0 }],
    ])
  })

  test('output that is not nft JSON gives no counters and does not throw', () => {
    for (const bad of ['', 'Error: No such file or directory', '{"nftables": 3}', 'null', '[1,2]', '{"nftables":[null, 5, {"counter": null}]}'])
      expect(parseCounters(bad).size).toBe(0)
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
