// `lanrage up` end to end in the natlab: gamers behind real Linux NATs run the agent, the control server and
// relay (`lanrage serve`) run on the "internet" at 203.0.113.10, and pings cross the WireGuard tunnel.
import { describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { Natlab, natlabSkipReason, natWanIp, type NatKind, NS_PREFIX, PUB_IP } from './natlab.ts'
import { type AgentHandle, CONTROL, lanrage, scenario, status, until } from './scenario.ts'

const skip = natlabSkipReason()
if (skip) console.warn(`skipping lanrage up end-to-end tests: ${skip}`)

describe.skipIf(!!skip)('lanrage up: cone / cone / cone', () => {
  const s = scenario(['cone', 'cone', 'cone'])
  let a1: AgentHandle, a2: AgentHandle, a3: AgentHandle

  test('two gamers ping each other within 10 s over a direct path, and see each other by name with a latency', s.logged(async () => {
    a1 = await s.up(1, { create: 'lan night' }, ['--name', 'Ana 🎮'])
    const started = Date.now()
    a2 = await s.up(2, { join: a1.partyId }, ['--name', 'bob'])
    expect(a2.partyId).toBe(a1.partyId)
    expect(a2.vip).not.toBe(a1.vip)
    await s.ctx.lab!.waitForPing(a1.ns, a2.vip, 10_000 - (Date.now() - started))
    await s.ctx.lab!.waitForPing(a2.ns, a1.vip, 2_000)
    // Direct: each side's WireGuard endpoint is the other NAT's public address, not the relay.
    const k2 = (await until('a2 in status', () => status(a1), (st) => st.peers.length === 1, 3000)).peers[0]!.public_key
    expect(s.endpoints(a1).get(k2)).toStartWith(natWanIp(2) + ':')
    expect([...s.endpoints(a2).values()][0]).toStartWith(natWanIp(1) + ':')
    const st1 = await until('a1 sees a2 direct', () => status(a1), (st) => st.peers[0]?.path === 'direct' && st.peers[0].endpoint !== null, 3000)
    expect(st1).toMatchObject({ running: true, self: { virtual_ip: a1.vip, nat_type: 'port_restricted_cone' } })
    expect(st1.peers[0]).toMatchObject({ virtual_ip: a2.vip, path: 'direct' })
    expect(st1.peers[0]!.endpoint).toStartWith(natWanIp(2) + ':')
    await a1.proc.waitFor(new RegExp(`^peer [0-9a-f]{16} ${a2.vip.replace(/\./g, '\\.')} direct ${natWanIp(2)}:\\d+$`, 'm'), 2000)
    // Names, and a latency measured through the tunnel (a probe every 2 s once the path is up).
    for (const [a, other] of [[a1, 'bob'], [a2, 'Ana 🎮']] as const) {
      const st = await until(`${a.iface} measures a latency`, () => status(a), (x) => typeof x.peers[0]?.latency_ms === 'number', 5000)
      expect(st.peers[0]).toMatchObject({ name: other, path: 'direct' })
      expect(st.peers[0]!.latency_ms!).toBeGreaterThanOrEqual(0)
      expect(st.peers[0]!.latency_ms!).toBeLessThan(1000)
      expect(st.peers[0]!.rx_bytes).toBeGreaterThan(0)
      expect(st.peers[0]!.tx_bytes).toBeGreaterThan(0)
      expect(Date.parse(st.peers[0]!.latest_handshake!)).toBeGreaterThan(started - 60_000)
      const text = lanrage(['status'], a).out
      expect(text).toMatch(new RegExp(`^  ${other}${a === a2 ? ' \\(host\\)' : ''} +[0-9a-f]{16}  ${st.peers[0]!.virtual_ip.replace(/\./g, '\\.')} +direct +[0-9.]+ ms +\\d+ s ago +[0-9.]+ (B|KiB) +[0-9.]+ (B|KiB) +${natWanIp(a === a1 ? 2 : 1)}:\\d+$`, 'm'))
    }
    expect(status(a1).self.name).toBe('Ana 🎮')
  }), 30_000)

  test('a third member joining later reaches both, and both reach it', s.logged(async () => {
    a3 = await s.up(3, { join: a1.partyId })
    await s.ctx.lab!.waitForPing(a3.ns, a1.vip, 10_000)
    await s.ctx.lab!.waitForPing(a3.ns, a2.vip, 5_000)
    await s.ctx.lab!.waitForPing(a1.ns, a3.vip, 5_000)
    await s.ctx.lab!.waitForPing(a2.ns, a3.vip, 5_000)
    expect(new Set([a1.vip, a2.vip, a3.vip]).size).toBe(3)
  }), 30_000)

  test('a member leaving (lanrage down) disappears from the others; nothing of it is left behind', async () => {
    const key2 = status(a2).self
    const r = lanrage(['down'], a2)
    expect(r).toMatchObject({ code: 0 })
    expect(r.out).toContain('stopped agent')
    expect(await a2.proc.exited).toBe(0)
    // No interface, no process in its namespace, no status file.
    expect(s.ctx.lab!.exec(a2.ns, ['ip', 'link', 'show', 'dev', a2.iface]).code).not.toBe(0)
    expect(Bun.spawnSync(['ip', 'netns', 'pids', a2.ns]).stdout.toString().trim()).toBe('')
    const st2 = lanrage(['status', '--json'], a2)
    expect(st2.code).toBe(1)
    expect(JSON.parse(st2.out)).toEqual({ running: false, message: 'no agent is running' })
    // The others were told (peer_left) and removed it from their WireGuard configuration.
    for (const a of [a1, a3]) {
      await until(`${a.iface} drops a2`, () => status(a).peers.map((p) => p.peer_id), (ids) => !ids.includes(key2.peer_id), 5000)
      expect(s.endpoints(a).size).toBe(1)
    }
    await s.ctx.lab!.waitForPing(a1.ns, a3.vip, 3000)
  }, 30_000)

  test('after an agent is killed (SIGKILL), lanrage down removes its interface and leaves the party for it', async () => {
    a3.proc.proc.kill('SIGKILL')
    await a3.proc.exited
    expect(s.ctx.lab!.exec(a3.ns, ['ip', 'link', 'show', 'dev', a3.iface]).code).toBe(0) // left behind by the kill
    const r = lanrage(['down'], a3)
    expect(r.code).toBe(0)
    expect(r.out).toContain(`removed interface ${a3.iface}`)
    expect(r.out).toContain(`party ${a1.partyId}: left`)
    expect(s.ctx.lab!.exec(a3.ns, ['ip', 'link', 'show', 'dev', a3.iface]).code).not.toBe(0)
    await until('a1 drops a3', () => status(a1).peers.length, (n) => n === 0, 5000)
    expect(s.endpoints(a1).size).toBe(0)
  }, 30_000)

  test('lanrage down of the last member leaves no interface, process or membership', async () => {
    for (const a of [a1]) {
      expect(lanrage(['down'], a).code).toBe(0)
      expect(await a.proc.exited).toBe(0)
      expect(s.ctx.lab!.exec(a.ns, ['ip', 'link', 'show', 'dev', a.iface]).code).not.toBe(0)
      expect(Bun.spawnSync(['ip', 'netns', 'pids', a.ns]).stdout.toString().trim()).toBe('')
    }
    const probe = `console.log(JSON.stringify(await fetch('http://127.0.0.1:8667/').then((r) => r.json())))`
    const health = JSON.parse(s.ctx.lab!.exec(Natlab.ns('pub'), [process.execPath, '-e', probe]).out)
    expect(health).toMatchObject({ status: 'ok', parties: 0, peers: 0 })
  }, 30_000)

  test('joining a party that does not exist fails with a clear message and leaves nothing behind', async () => {
    const a = { home: join(s.ctx.dir, 'home-nope'), ns: Natlab.ns('peer1') }
    const iface = `${NS_PREFIX}w9`
    s.ctx.lab!.trackInterface(iface)
    const r = lanrage(['up', '--control', CONTROL, '--join', '0123456789ab', '--interface', iface], a)
    expect(r.code).toBe(1)
    expect(r.err).toMatch(/lanrage up: .*0123456789ab.* \(CONTROL_NOT_FOUND\)/)
    expect(s.ctx.lab!.exec(a.ns, ['ip', 'link', 'show', 'dev', iface]).code).not.toBe(0)
    expect(lanrage(['status'], a)).toMatchObject({ code: 1, err: 'lanrage status: no agent is running\n' })
  }, 30_000)

  test('UDP to the relays blocked: up says in a WARN that no relay answered STUN and what that means', s.logged(async () => {
    const lab = s.ctx.lab!
    const block = (op: '-I' | '-D') => lab.exec(Natlab.ns('nat1'), ['iptables', op, 'FORWARD', '-p', 'udp', '-d', PUB_IP, '-j', 'DROP'])
    expect(block('-I').code).toBe(0)
    try {
      const a = await s.up(1, { create: 'behind a firewall' })
      expect(a.proc.err).toMatch(
        /WARN {2}agent: no STUN answer from any relay: UDP from this machine to the relays is blocked \(a firewall\?\) or they are down, .* asked="203\.0\.113\.10:\d+ STUN_TIMEOUT, 203\.0\.113\.10:\d+ STUN_TIMEOUT"$/m,
      )
      expect(a.proc.err).toMatch(/public mapping endpoint=null nat_type=unknown/)
      expect(lanrage(['down'], a).code).toBe(0)
    } finally {
      block('-D')
    }
  }), 30_000)
})

for (const kinds of [
  ['cone', 'symmetric'],
  ['symmetric', 'symmetric'],
] as NatKind[][]) {
  describe.skipIf(!!skip)(`lanrage up: ${kinds.join(' / ')}`, () => {
    const s = scenario(kinds)
    test('ping within 15 s through the relay', s.logged(async () => {
      const a1 = await s.up(1, { create: 'relayed' })
      const started = Date.now()
      const a2 = await s.up(2, { join: a1.partyId })
      await s.ctx.lab!.waitForPing(a1.ns, a2.vip, 15_000 - (Date.now() - started))
      await s.ctx.lab!.waitForPing(a2.ns, a1.vip, 2_000)
      // Relayed: both endpoints are session ports on the relay; neither side ever learns the other's address.
      for (const a of [a1, a2]) {
        const st = await until(`${a.iface} relayed`, () => status(a), (x) => x.peers[0]?.path === 'relay' && x.peers[0].endpoint !== null, 3000)
        expect(st.peers[0]!.endpoint).toStartWith(PUB_IP + ':')
        // The latency of the relayed path, measured through the tunnel like a direct one.
        await until(`${a.iface} measures a latency`, () => status(a).peers[0]?.latency_ms, (ms) => typeof ms === 'number', 5000)
        expect([...s.endpoints(a).values()][0]).toStartWith(PUB_IP + ':')
      }
      expect(s.endpoints(a1).values().next().value).not.toBe(s.endpoints(a2).values().next().value)
      for (const a of [a2, a1]) {
        expect(lanrage(['down'], a).code).toBe(0)
        expect(s.ctx.lab!.exec(a.ns, ['ip', 'link', 'show', 'dev', a.iface]).code).not.toBe(0)
      }
    }), 40_000)
  })
}

describe.skipIf(!!skip)('lanrage up: cone / symmetric, one relay (its STUN alt port is the second target)', () => {
  // One relay, but it answers STUN on its main port and on its alt port: two destinations, so peer2's agent sees
  // its NAT hand out a new mapping per destination (symmetric) and both sides go to the relay without punching.
  // (Before the alt port both reported `unknown`, punched, and fell back only after the 5 s punch timeout.)
  const s = scenario(['cone', 'symmetric'], 1)
  test('the symmetric side knows it is symmetric; no punch, relayed; ping within 15 s', s.logged(async () => {
    const a1 = await s.up(1, { create: 'fallback' })
    const started = Date.now()
    const a2 = await s.up(2, { join: a1.partyId })
    // The agent's own view (its party, its NAT) reaches the status file with the interface, shortly after the
    // virtual IP is printed; before that the file says the agent is starting.
    expect((await until('a2 status', () => status(a2), (x) => x.running && x.party !== null, 5000)).self.nat_type).toBe('symmetric')
    expect(status(a1).self.nat_type).toBe('port_restricted_cone')
    await s.ctx.lab!.waitForPing(a1.ns, a2.vip, 15_000 - (Date.now() - started))
    await a1.proc.waitFor(/^peer [0-9a-f]{16} \S+ relay 203\.0\.113\.10:\d+$/m, 3000)
    expect(a1.proc.out).not.toMatch(/ direct /)
    // The WireGuard endpoint in the status file comes from the agent's next `wg` poll, a moment after the path.
    const st = await until('a1 relayed', () => status(a1), (x) => x.peers[0]?.path === 'relay' && x.peers[0].endpoint !== null, 3000)
    expect(st.peers[0]).toMatchObject({ nat_type: 'symmetric' })
    expect(st.peers[0]!.endpoint).toStartWith(PUB_IP + ':')
    // Neither side ever pointed WireGuard at the other's NAT: no punch was tried (it would log "endpoint set").
    expect(a1.proc.err).not.toMatch(new RegExp(`endpoint set .*endpoint=${natWanIp(2).replace(/\./g, '\\.')}:`))
    expect(a2.proc.err).not.toMatch(new RegExp(`endpoint set .*endpoint=${natWanIp(1).replace(/\./g, '\\.')}:`))
    for (const a of [a2, a1]) expect(lanrage(['down'], a).code).toBe(0)
  }), 40_000)
})

describe.skipIf(!!skip)('lanrage up: dropped by the control server, the agent rejoins', () => {
  // The server drops members silent for 2 s here; gamer 2's router stops passing its control traffic for a while.
  const s = scenario(['cone', 'cone'], 2, ['--peer-timeout-s', '2', '--cleanup-interval-s', '0.5'])
  test('the others see it leave (timeout) and come back, and the tunnel works again', s.logged(async () => {
    const lab = s.ctx.lab!
    const block = (op: '-I' | '-D') => lab.exec(Natlab.ns('nat2'), ['iptables', op, 'FORWARD', '-p', 'tcp', '-d', PUB_IP, '--dport', '8667', '-j', 'DROP'])
    try {
      const a1 = await s.up(1, { create: 'flaky' }, ['--heartbeat-interval', '0.5'])
      const a2 = await s.up(2, { join: a1.partyId }, ['--heartbeat-interval', '0.5'])
      await lab.waitForPing(a1.ns, a2.vip, 10_000)
      const id2 = status(a2).self.peer_id
      expect(block('-I').code).toBe(0)
      await until('a1 drops a2 (timeout)', () => status(a1).peers.length, (n) => n === 0, 10_000)
      expect(block('-D').code).toBe(0)
      await until('a1 sees a2 again', () => status(a1).peers.map((p) => p.peer_id), (ids) => ids.includes(id2), 20_000)
      await a2.proc.waitFor(/rejoined the party/, 5000)
      await lab.waitForPing(a1.ns, a2.vip, 10_000)
      await lab.waitForPing(a2.ns, a1.vip, 2_000)
      for (const a of [a2, a1]) expect(lanrage(['down'], a).code).toBe(0)
    } finally {
      block('-D')
    }
  }), 60_000)
})

describe.skipIf(!!skip)('lanrage up: relayed while direct is blocked, direct once it is not', () => {
  const s = scenario(['cone', 'cone'])
  test('falls back to the relay, then a later direct try succeeds', s.logged(async () => {
    const lab = s.ctx.lab!
    // Each router drops what comes from the other's public address: punching cannot work, the relay can.
    const block = (op: '-I' | '-D') =>
      [1, 2].map((n) => lab.exec(Natlab.ns(`nat${n}`), ['iptables', op, 'FORWARD', '-s', natWanIp(3 - n), '-j', 'DROP']).code)
    try {
      expect(block('-I')).toEqual([0, 0])
      const a1 = await s.up(1, { create: 'blocked' }, ['--direct-retry', '3'])
      const a2 = await s.up(2, { join: a1.partyId }, ['--direct-retry', '3'])
      await lab.waitForPing(a1.ns, a2.vip, 15_000)
      for (const a of [a1, a2]) await until(`${a.iface} relayed`, () => status(a).peers[0]?.path, (p) => p === 'relay', 3000)
      expect(block('-D')).toEqual([0, 0])
      for (const [a, other] of [[a1, 2], [a2, 1]] as const) {
        const st = await until(`${a.iface} direct again`, () => status(a), (x) => x.peers[0]?.path === 'direct' && x.peers[0].endpoint !== null, 20_000)
        expect(st.peers[0]!.endpoint).toStartWith(natWanIp(other) + ':')
      }
      await lab.waitForPing(a1.ns, a2.vip, 3000)
      for (const a of [a2, a1]) expect(lanrage(['down'], a).code).toBe(0)
    } finally {
      block('-D')
    }
  }), 60_000)
})
