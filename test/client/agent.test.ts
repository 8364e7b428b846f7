// The agent (src/client/agent/agent.ts) with every dependency faked (agent-fakes.ts): the test plays the control
// server, WireGuard and the relay, moves a manual clock, and checks what the agent tells WireGuard, the server and
// the user. The same flows run for real, behind Linux NATs, in test/e2e/agent.test.ts.
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test'
import { nameFromHost, RELAY_LIST_REFRESH_MS, REJOIN_RETRY_MS, STATUS_REFRESH_MS } from '../../src/client/agent/agent.ts'
import { ControlMissingError, ControlUnreachableError } from '../../src/client/control/errors.ts'
import { DEFAULT_TIMING } from '../../src/client/punch/conn.ts'
import { decodeEcho, ECHO_PORT, encodeEcho, LATENCY_FRESH_MS, PROBE_MS } from '../../src/client/agent/latency.ts'
import type { PeerInfo } from '../../src/shared/api.ts'
import { LanrageError } from '../../src/shared/errors.ts'
import { AgentWorld, member, offerFor, PARTY_ID, POLL_MS, RELAY, RELAY_ID, settle, type Member } from './agent-fakes.ts'

const T = DEFAULT_TIMING

// Anything that escapes the agent's loops ends up here; every test asserts that nothing did.
const escaped: unknown[] = []
const onEscape = (e: unknown) => void escaped.push(e)
beforeAll(() => {
  process.on('unhandledRejection', onEscape)
  process.on('uncaughtException', onEscape)
})
afterAll(() => {
  process.off('unhandledRejection', onEscape)
  process.off('uncaughtException', onEscape)
})
const worlds: AgentWorld[] = []
afterEach(async () => {
  for (const w of worlds.splice(0)) await w.agent.stop()
  expect(escaped.splice(0)).toEqual([])
})

async function started(self?: Member, opts?: ConstructorParameters<typeof AgentWorld>[1]) {
  const w = new AgentWorld(self, opts)
  worlds.push(w)
  await w.start()
  return w
}

/** `b` joins, both punch at the agreed moment and the handshake completes: the pair is direct. */
async function direct(w: AgentWorld, b: Member) {
  w.control.join(b)
  await w.poll()
  await w.advance(T.punchLeadMs)
  w.wg.traffic(b.publicKey, w.now)
  await w.advance(POLL_MS)
  expect(w.pathOf(b.peerId)).toBe('direct')
}

describe('agent: joining', () => {
  test('join: registers, learns its mapping, joins, brings the interface up with its virtual IP', async () => {
    const w = await started()
    expect(w.lines).toEqual([`party_id: ${PARTY_ID}`, `virtual_ip: ${w.self.info.virtual_ip}`])
    expect(w.wg.address).toBe(`${w.self.info.virtual_ip}/16`)
    expect(w.wg.isUp).toBe(true)
    expect(w.control.joins).toBe(1)
    // What STUN said is what the server was told.
    expect(w.control.party.peers[w.self.peerId]).toMatchObject({ public_endpoint: w.nat.publicEndpoint, nat_type: w.nat.natType })
    expect(w.status).toMatchObject({
      interface: 'lrtest0',
      listen_port: 51820,
      party: { party_id: PARTY_ID, name: 'friday' },
      self: { peer_id: w.self.peerId, virtual_ip: w.self.info.virtual_ip, public_endpoint: w.nat.publicEndpoint, nat_type: w.nat.natType },
      peers: [],
    })
  })

  test('create: the party carries the name, and members already listed are connected', async () => {
    const w = new AgentWorld(member(), { party: { create: 'lan night', maxPeers: 8 } })
    worlds.push(w)
    const b = member()
    w.control.party.peers[b.peerId] = b.info
    await w.start()
    expect(w.status?.party?.name).toBe('lan night')
    expect(w.status?.peers.map((p) => p.peer_id)).toEqual([b.peerId])
    expect(w.control.signals.map((s) => s.type)).toEqual(['punch'])
  })

  test('no relay registered: no STUN, the agent still joins with an unknown NAT', async () => {
    const w = new AgentWorld()
    worlds.push(w)
    w.relays = []
    await w.start()
    expect(w.status?.self).toMatchObject({ public_endpoint: null, nat_type: 'unknown' })
    expect(w.logs.join('\n')).toContain('no relay registered')
  })

  test('STUN failing is a warning: the agent joins and relies on the relay', async () => {
    const w = new AgentWorld()
    worlds.push(w)
    const d = w as unknown as { agent: { deps: { detectNat: () => Promise<never> } } }
    d.agent.deps.detectNat = () => Promise.reject(new Error('no STUN answer'))
    await w.start()
    expect(w.status?.self?.nat_type).toBe('unknown')
    expect(w.logs.join('\n')).toContain('STUN failed')
  })
})

describe('agent: names and counters', () => {
  test('the agent names itself at join; members are shown with their names, renamed live', async () => {
    const w = await started(member(), { name: 'Ana 🎮' })
    expect(w.control.party.peers[w.self.peerId]!.name).toBe('Ana 🎮')
    expect(w.status?.self?.name).toBe('Ana 🎮')
    const b = member({ name: 'bob' })
    w.control.join(b)
    await w.poll()
    expect(w.status?.peers[0]).toMatchObject({ peer_id: b.peerId, name: 'bob' })
    w.control.emit('peer_updated', { party_id: PARTY_ID, peer: { ...b.info, name: 'bobby' } })
    await w.poll()
    expect(w.status?.peers[0]?.name).toBe('bobby')
  })

  test('without a name the agent reports none', async () => {
    const w = await started()
    expect(w.control.peerInfos).toHaveLength(1)
    expect(w.control.peerInfos[0]).not.toHaveProperty('name')
  })

  test('the default name comes from the host name: printable characters, at most 32 UTF-16 units', () => {
    expect(nameFromHost('gaming-pc')).toBe('gaming-pc')
    expect(nameFromHost('pc\x1b[31m\u202e')).toBe('pc[31m')
    expect(nameFromHost('h'.repeat(40))).toBe('h'.repeat(32))
    expect(nameFromHost('🎮'.repeat(20))).toBe('🎮'.repeat(16))
    expect(nameFromHost('  \x07 ')).toBeUndefined()
    expect(nameFromHost('')).toBeUndefined()
  })

  test('WireGuard transfer counters reach the status; counter changes alone are written at most once a second', async () => {
    const w = await started()
    const b = member()
    await direct(w, b)
    const writes: number[] = []
    const d = w as unknown as { agent: { deps: { writeStatus: (s: unknown) => void } } }
    d.agent.deps.writeStatus = (s) => {
      w.status = s as typeof w.status
      writes.push(w.now)
    }
    for (let i = 0; i < 10; i++) {
      w.wg.peers.get(b.publicKey)!.txBytes += 1000
      await w.advance(POLL_MS)
    }
    await w.advance(STATUS_REFRESH_MS)
    expect(w.status?.peers[0]).toMatchObject({ rx_bytes: 148, tx_bytes: 10_000 })
    // 3 s of counters moving every 200 ms: at most one write per second, not fifteen.
    expect(writes.length).toBeGreaterThanOrEqual(2)
    expect(writes.length).toBeLessThanOrEqual(4)
    for (let i = 1; i < writes.length; i++) expect(writes[i]! - writes[i - 1]!).toBeGreaterThanOrEqual(STATUS_REFRESH_MS)
    // A path change is written at once, whatever the last write.
    w.control.emit('peer_left', { party_id: PARTY_ID, peer_id: b.peerId, reason: 'left' })
    const before = writes.length
    await w.poll()
    expect(writes.length).toBe(before + 1)
    expect(w.status?.peers).toEqual([])
  })
})

describe('agent: latency through the tunnel', () => {
  /** Answers every probe the agent sent to `b` since `from`, `ms` later on the fine clock. */
  function answer(w: AgentWorld, b: Member, ms: number, from = 0) {
    const probes = w.echo.sent.slice(from).filter((d) => d.address === b.info.virtual_ip)
    w.hrExtra += ms
    for (const p of probes) w.echo.deliver(encodeEcho({ ...decodeEcho(p.data)!, kind: 'reply' }), b.info.virtual_ip)
    w.hrExtra -= ms
    return probes.length
  }

  test('the echo is bound to the virtual IP; members with a path are probed every 2 s; the answer is the latency', async () => {
    const w = await started()
    expect(w.echoes.map((e) => `${e.address}:${e.port}`)).toEqual([`${w.self.info.virtual_ip}:${ECHO_PORT}`])
    const b = member()
    w.control.join(b)
    await w.poll()
    await w.advance(PROBE_MS)
    // Connecting: no probe (it would cost a WireGuard handshake attempt towards no endpoint).
    expect(w.echo.sent).toEqual([])
    await w.advance(T.punchLeadMs)
    w.wg.traffic(b.publicKey, w.now)
    await w.advance(POLL_MS)
    expect(w.pathOf(b.peerId)).toBe('direct')
    // Poll by poll until the next probe leaves; it is answered 12.34 ms later.
    for (let i = 0; i < PROBE_MS / POLL_MS && w.echo.sent.length === 0; i++) await w.advance(POLL_MS)
    expect(w.echo.sent.length).toBe(1)
    expect(w.echo.sent.every((d) => d.port === ECHO_PORT && d.address === b.info.virtual_ip && decodeEcho(d.data)?.kind === 'request')).toBe(true)
    const n = w.echo.sent.length
    answer(w, b, 12.34)
    await w.advance(STATUS_REFRESH_MS)
    expect(w.status?.peers[0]?.latency_ms).toBe(12.3)
    await w.advance(2 * PROBE_MS)
    expect(w.echo.sent.length).toBe(n + 2)
    // No more answers: after LATENCY_FRESH_MS the latency is unknown again.
    await w.advance(LATENCY_FRESH_MS + STATUS_REFRESH_MS)
    expect(w.status?.peers[0]?.latency_ms).toBeNull()
  })

  test('probes from members are answered, byte for byte; from anywhere else, from itself or malformed: nothing', async () => {
    const w = await started()
    const b = member()
    await direct(w, b)
    const req = encodeEcho({ kind: 'request', seq: 5, token: 77 })
    w.echo.sent = []
    w.echo.deliver(req, b.info.virtual_ip, 40000)
    expect(w.echo.sent).toEqual([{ data: encodeEcho({ kind: 'reply', seq: 5, token: 77 }), port: 40000, address: b.info.virtual_ip }])
    w.echo.sent = []
    for (const from of ['192.168.1.50', '10.67.0.2', w.self.info.virtual_ip]) w.echo.deliver(req, from)
    w.echo.deliver(new Uint8Array(1400), b.info.virtual_ip)
    w.echo.deliver(req.subarray(0, 8), b.info.virtual_ip)
    expect(w.echo.sent).toEqual([])
  })

  test('a member that leaves is no longer probed; stop closes the echo', async () => {
    const w = await started()
    const b = member()
    await direct(w, b)
    w.control.emit('peer_left', { party_id: PARTY_ID, peer_id: b.peerId, reason: 'left' })
    await w.poll()
    w.echo.sent = []
    await w.advance(3 * PROBE_MS)
    expect(w.echo.sent).toEqual([])
    await w.agent.stop()
    expect(w.echo.closed).toBe(true)
  })

  test('an echo that cannot be bound costs the latency only', async () => {
    const w = new AgentWorld()
    worlds.push(w)
    w.echoFails = Object.assign(new Error('bind failed'), { code: 'EADDRINUSE' })
    await w.start()
    const b = member()
    await direct(w, b)
    expect(w.status?.peers[0]).toMatchObject({ path: 'direct', latency_ms: null })
    expect(w.logs.join('\n')).toContain('latency echo unavailable')
  })

  test('after a rejoin with a new virtual IP the echo moves to it', async () => {
    const w = await started()
    const moved = { ...w.self.info, virtual_ip: '10.66.9.9' }
    w.control.joinAnswers.push({ ...structuredClone(w.control.party), peers: { ...structuredClone(w.control.party.peers), [w.self.peerId]: moved } })
    w.control.emit('error', { where: `heartbeat ${PARTY_ID}`, error: new ControlMissingError('gone', 'PEER_NOT_FOUND') })
    await w.poll()
    await settle()
    expect(w.echoes.map((e) => [e.address, e.closed])).toEqual([
      [w.self.info.virtual_ip, true],
      ['10.66.9.9', false],
    ])
  })
})

describe('agent: peers', () => {
  test('peer arrives and the punch succeeds: punch signal, endpoint at the agreed moment, direct on traffic', async () => {
    const w = await started()
    const b = member()
    w.control.join(b)
    await w.poll()
    const punch = w.control.signals[0]!
    expect(punch).toMatchObject({ to: b.peerId, type: 'punch', data: { endpoint: w.nat.publicEndpoint } })
    const at = (punch.data as { at: number }).at
    expect(at).toBe(w.now + T.punchLeadMs)
    // Not in WireGuard before the moment: a peer without an endpoint would still cost a handshake attempt.
    expect(w.wg.peers.has(b.publicKey)).toBe(false)
    expect(w.pathOf(b.peerId)).toBe('connecting')

    await w.advance(T.punchLeadMs)
    const wgPeer = w.wg.peers.get(b.publicKey)!
    expect(wgPeer).toMatchObject({ endpoint: b.info.public_endpoint, allowedIps: [`${b.info.virtual_ip}/32`], persistentKeepalive: 5 })

    w.wg.traffic(b.publicKey, w.now)
    await w.advance(POLL_MS)
    expect(w.pathOf(b.peerId)).toBe('direct')
    expect(w.lines).toContain(`peer ${b.peerId} ${b.info.virtual_ip} direct ${b.info.public_endpoint}`)
    expect(w.status?.peers[0]).toMatchObject({ endpoint: b.info.public_endpoint, public_endpoint: b.info.public_endpoint, latest_handshake: new Date(w.now - POLL_MS).toISOString() })
  })

  test('the punch fails: the controlling side asks for a relay and points WireGuard at its session port', async () => {
    const b = member()
    const w = await started(member({}, { below: b.peerId })) // our peer id is lower: we ask for the relay
    w.control.relayAnswer = async (peerId) => offerFor(w.self, b, 'a', w.now, { peer_id: peerId })
    w.control.join(b)
    await w.poll()
    await w.advance(T.punchLeadMs)
    expect(w.wg.endpointOf(b.publicKey)).toBe(b.info.public_endpoint)
    // No handshake: after directTimeoutMs the machine gives up on direct.
    await w.advance(T.directTimeoutMs + POLL_MS)
    expect(w.control.relayRequests).toEqual([b.peerId])
    expect(w.allocations).toHaveLength(1)
    expect(w.allocations[0]!.relay).toEqual({ host: RELAY.host, port: RELAY.port })
    await w.advance(POLL_MS)
    expect(w.wg.endpointOf(b.publicKey)).toBe(`${RELAY.host}:50001`)
    expect(w.pathOf(b.peerId)).toBe('relay')
    expect(w.lines).toContain(`peer ${b.peerId} ${b.info.virtual_ip} relay ${RELAY.host}:50001`)
  })

  test('a failed relay request or ALLOCATE is retried after relayRetryMs', async () => {
    const b = member({ nat_type: 'symmetric' })
    const w = await started(member({}, { below: b.peerId }))
    let fail = true
    w.control.relayAnswer = async (peerId) => offerFor(w.self, b, 'a', w.now, { peer_id: peerId })
    w.allocateAnswer = async () => {
      if (fail) throw new Error('relay did not answer')
      return 50007
    }
    w.control.join(b)
    await w.poll() // symmetric: straight to the relay, no punch
    expect(w.control.signals).toEqual([])
    expect(w.control.relayRequests).toHaveLength(1)
    await w.advance(POLL_MS)
    expect(w.pathOf(b.peerId)).toBe('connecting')
    expect(w.logs.join('\n')).toContain('relay allocation failed')
    fail = false
    await w.advance(T.relayRetryMs + POLL_MS)
    expect(w.control.relayRequests).toHaveLength(2)
    await w.advance(POLL_MS)
    expect(w.wg.endpointOf(b.publicKey)).toBe(`${RELAY.host}:50007`)
  })

  test('relay offer from the peer: the controlled side allocates with the offered ticket and does not ask itself', async () => {
    const b = member({ nat_type: 'symmetric' })
    const w = await started(member({}, { above: b.peerId })) // the peer's id is lower: it asks, we wait
    w.control.join(b)
    await w.poll()
    expect(w.pathOf(b.peerId)).toBe('connecting')
    const offer = offerFor(w.self, b, 'b', w.now)
    w.control.signal(b.peerId, 'relay_offer', offer)
    await w.advance(POLL_MS)
    expect(w.allocations.map((a) => a.ticket)).toEqual([offer.ticket])
    await w.advance(POLL_MS)
    expect(w.wg.endpointOf(b.publicKey)).toBe(`${RELAY.host}:50001`)
    expect(w.pathOf(b.peerId)).toBe('relay')
    await w.advance(T.relayWaitMs * 2)
    expect(w.control.relayRequests).toEqual([])
  })

  test('the controlled side asks for a relay itself when no offer came within relayWaitMs', async () => {
    const b = member({ nat_type: 'symmetric' })
    const w = await started(member({}, { above: b.peerId }))
    w.control.relayAnswer = async (peerId) => offerFor(w.self, b, 'a', w.now, { peer_id: peerId })
    w.control.join(b)
    await w.poll()
    await w.advance(T.relayWaitMs - POLL_MS)
    expect(w.control.relayRequests).toEqual([])
    await w.advance(2 * POLL_MS)
    expect(w.control.relayRequests).toEqual([b.peerId])
    await w.advance(POLL_MS)
    expect(w.pathOf(b.peerId)).toBe('relay')
  })

  test('an offer that arrives before the peer_joined event is kept and used once the peer is known', async () => {
    const b = member({ nat_type: 'symmetric' })
    const w = await started()
    const offer = offerFor(w.self, b, 'b', w.now)
    w.control.signal(b.peerId, 'relay_offer', offer)
    await w.poll()
    expect(w.allocations).toEqual([])
    w.control.join(b)
    await w.poll()
    await w.advance(POLL_MS)
    expect(w.allocations.map((a) => a.ticket)).toContain(offer.ticket)
  })

  test('peer leaves: removed from WireGuard and from the status, the user is told', async () => {
    const w = await started()
    const b = member()
    await direct(w, b)
    w.control.emit('peer_left', { party_id: PARTY_ID, peer_id: b.peerId, reason: 'left' })
    await w.poll()
    expect(w.wg.peers.has(b.publicKey)).toBe(false)
    expect(w.status?.peers).toEqual([])
    expect(w.lines.at(-1)).toBe(`peer ${b.peerId} ${b.info.virtual_ip} left`)
  })

  test("events of another party are not this agent's business", async () => {
    const w = await started()
    const b = member()
    w.control.emit('peer_joined', { party_id: 'ffffffffffff', peer: b.info })
    w.control.emit('party_deleted', { party_id: 'ffffffffffff', reason: 'empty' })
    await w.poll()
    expect(w.status?.peers).toEqual([])
  })

  test('peer_updated with a new endpoint restarts the punch towards it', async () => {
    const w = await started()
    const b = member()
    w.control.join(b)
    await w.poll()
    const moved = { ...b.info, public_endpoint: '198.51.100.200:41000' }
    w.control.emit('peer_updated', { party_id: PARTY_ID, peer: moved })
    await w.poll()
    await w.advance(T.punchLeadMs * 4)
    expect(w.wg.endpointOf(b.publicKey)).toBe('198.51.100.200:41000')
  })
})

describe('agent: the server', () => {
  test('server drops us (heartbeat 404 PEER_NOT_FOUND) → rejoin, keep the peers, retry while it fails', async () => {
    const w = await started()
    const b = member()
    await direct(w, b)
    w.control.joinAnswers.push(new ControlUnreachableError('control server down'))
    const dropped = () => w.control.emit('error', { where: `heartbeat ${PARTY_ID}`, error: new ControlMissingError('not a member', 'PEER_NOT_FOUND') })
    dropped()
    await w.poll()
    expect(w.control.joins).toBe(2)
    expect(w.logs.join('\n')).toContain('rejoining failed')
    // Heartbeats keep failing while the rejoin waits for its retry: still one rejoin at a time.
    dropped()
    dropped()
    await w.poll()
    expect(w.control.joins).toBe(2)
    await w.advance(REJOIN_RETRY_MS)
    expect(w.control.joins).toBe(3)
    await w.poll()
    expect(w.pathOf(b.peerId)).toBe('direct')
    expect(w.wg.peers.has(b.publicKey)).toBe(true)
  })

  test('a rejoin that gets a new virtual IP moves the interface address', async () => {
    const w = await started()
    const moved = structuredClone(w.control.party)
    moved.peers[w.self.peerId] = { ...w.self.info, virtual_ip: '10.66.9.9' }
    w.control.joinAnswers.push(moved)
    w.control.emit('error', { where: `heartbeat ${PARTY_ID}`, error: new ControlMissingError('not a member', 'PEER_NOT_FOUND') })
    await w.poll()
    expect(w.wg.address).toBe('10.66.9.9/16')
    expect(w.lines.at(-1)).toBe('virtual_ip: 10.66.9.9')
  })

  test('party gone (heartbeat 404 PARTY_NOT_FOUND) or deleted: the agent ends and says why', async () => {
    const w = await started()
    w.control.emit('error', { where: `heartbeat ${PARTY_ID}`, error: new ControlMissingError('no party', 'PARTY_NOT_FOUND') })
    expect(await w.agent.ended).toBe(`party ${PARTY_ID} is gone (PARTY_NOT_FOUND)`)

    const v = await started()
    v.control.emit('party_deleted', { party_id: PARTY_ID, reason: 'host_left' })
    expect(await v.agent.ended).toBe('party deleted (host_left)')
    expect(v.lines.at(-1)).toBe('party deleted: host_left')
  })

  test('live channel reconnected: the member list is read again and peers that left meanwhile are removed', async () => {
    const w = await started()
    const b = member()
    const c = member()
    await direct(w, b)
    w.control.join(c)
    await w.poll()
    delete w.control.party.peers[b.peerId]
    w.control.emit('connected', { peer_id: w.self.peerId, parties: [PARTY_ID], reconnect: true })
    await w.poll()
    expect(w.status?.peers.map((p) => p.peer_id)).toEqual([c.peerId])
    expect(w.wg.peers.has(b.publicKey)).toBe(false)
  })

  test('stop: leaves the party, deletes the interface, stops the loop; the control plane stays open for its owner', async () => {
    const w = new AgentWorld()
    await w.start()
    await w.agent.stop()
    await w.agent.stop()
    expect(w.control.left).toEqual([PARTY_ID])
    expect(w.wg.deleted).toBe(true)
    expect(w.control.closed).toBe(false)
    expect(w.timers.count).toBe(0)
  })
})

describe('agent: nothing escapes its loops', () => {
  test('a WireGuard command that fails for one peer costs neither the other peers nor the next pass', async () => {
    const w = await started()
    const b = member()
    const c = member()
    w.wg.failSetPeer = (p) => (p.publicKey === b.publicKey ? new Error('wg set failed') : null)
    w.control.join(b)
    w.control.join(c)
    await w.poll()
    await w.advance(T.punchLeadMs)
    expect(w.wg.endpointOf(c.publicKey)).toBe(c.info.public_endpoint)
    expect(w.logs.join('\n')).toContain('wg set failed')
    w.wg.failStatus = true
    await w.advance(POLL_MS)
    expect(w.logs.join('\n')).toContain('reading WireGuard status failed')
  })
})

// Hostile input through the fakes: forged signals from a member, broken records from a server, odd answers from
// STUN and the relay. Each is dropped and logged; nothing is sent anywhere because of it, no WireGuard peer goes.
describe('agent: hostile input from the network', () => {
  const THIRD = '192.0.2.66' // the address an attacker wants the victim to send to

  /** A world where `b` is a member (we are its relay's controlled side) and every WireGuard op is recorded. */
  async function withMember(bOver: Partial<PeerInfo> = { nat_type: 'symmetric' }) {
    const b = member(bOver)
    const w = await started(member({}, { above: b.peerId }))
    w.control.join(b)
    await w.poll()
    return { w, b }
  }
  const endpointsSet = (w: AgentWorld) => w.wg.ops.filter((o) => o.startsWith('set ')).map((o) => o.split(' ')[2]!).filter((e) => e !== '-')

  test('forged relay offers make the agent send no ALLOCATE anywhere; a genuine one still works after them', async () => {
    const { w, b } = await withMember()
    const c = member()
    w.control.join(c)
    await w.poll()
    let relayLists = 0
    const d = (w.agent as unknown as { deps: { listRelays: () => Promise<unknown> } }).deps
    const list = d.listRelays
    d.listRelays = () => (relayLists++, list())
    await w.advance(RELAY_LIST_REFRESH_MS) // the list read at start is no longer fresh
    const good = () => offerFor(w.self, b, 'b', w.now)
    const forged: [string, unknown][] = [
      ['a relay the server does not list', { ...good(), relay: { ...good().relay, public_ip: THIRD, port: 9999 } }],
      ['a listed relay address under another relay id', { ...good(), relay: { ...good().relay, relay_id: 'ffffffffffffffff' } }],
      ['about another member', offerFor(w.self, b, 'b', w.now, { peer_id: c.peerId })],
      ["the sender's own ticket (holder is not this machine)", offerFor(b, w.self, 'b', w.now, { peer_id: b.peerId })],
      ["a ticket whose other side is not the sender", offerFor(w.self, c, 'b', w.now, { peer_id: b.peerId })],
      ['the side swapped', { ...good(), side: 'a' }],
      ['another session id', { ...good(), session_id: 'ab'.repeat(16) }],
      ['an expired ticket', offerFor(w.self, b, 'b', w.now - 400_000)],
      ['a ticket that is not one', { ...good(), ticket: 'AAAA' }],
      ['port 0', { ...good(), relay: { ...good().relay, port: 0 } }],
      ['port 70000', { ...good(), relay: { ...good().relay, port: 70000 } }],
      ['no address', { ...good(), relay: { ...good().relay, public_ip: '999.999.999.999' } }],
      ['missing fields', { ticket: good().ticket }],
      ['null', null],
      ['a string', 'relay me'],
      ['an array', [good()]],
    ]
    for (const [, data] of forged) w.control.signal(b.peerId, 'relay_offer', data)
    await w.advance(POLL_MS)
    await w.advance(POLL_MS)
    expect(w.allocations).toEqual([])
    expect(w.logs.filter((l) => l.includes('dropped a relay offer') || l.includes('dropped a signal')).length).toBe(forged.length)
    // The unlisted relay made the agent read the list again, once, not once per forged offer.
    expect(relayLists).toBe(1)
    expect(endpointsSet(w).some((e) => e?.startsWith(THIRD))).toBe(false)

    const offer = good()
    w.control.signal(b.peerId, 'relay_offer', offer)
    await w.advance(POLL_MS)
    await w.advance(POLL_MS)
    expect(w.allocations.map((a) => a.relay)).toEqual([{ host: RELAY.host, port: RELAY.port }])
    expect(w.pathOf(b.peerId)).toBe('relay')
  })

  test('a relay registered after the agent started is found by reading the list again', async () => {
    const { w, b } = await withMember()
    const newRelay = { host: '203.0.113.11', port: 3478 }
    w.relays = [RELAY, newRelay]
    await w.advance(RELAY_LIST_REFRESH_MS)
    w.control.signal(b.peerId, 'relay_offer', offerFor(w.self, b, 'b', w.now, { relay: { relay_id: RELAY_ID, public_ip: newRelay.host, port: newRelay.port, region: 'x' } }))
    await w.advance(POLL_MS)
    await w.advance(POLL_MS)
    expect(w.allocations.map((a) => a.relay)).toEqual([newRelay])
  })

  test("our own relay request answered with an offer for someone else: no ALLOCATE, the request is made again", async () => {
    const b = member({ nat_type: 'symmetric' })
    const w = await started(member({}, { below: b.peerId }))
    let forged = true
    w.control.relayAnswer = async (peerId) => (forged ? offerFor(w.self, b, 'a', w.now, { relay: { relay_id: RELAY_ID, public_ip: THIRD, port: 9 , region: 'x' } }) : offerFor(w.self, b, 'a', w.now, { peer_id: peerId }))
    w.control.join(b)
    await w.poll()
    await w.advance(POLL_MS)
    expect(w.control.relayRequests).toHaveLength(1)
    expect(w.allocations).toEqual([])
    forged = false
    await w.advance(T.relayRetryMs + POLL_MS)
    await w.advance(POLL_MS)
    expect(w.control.relayRequests).toHaveLength(2)
    expect(w.allocations.map((a) => a.relay.host)).toEqual([RELAY.host])
    expect(w.pathOf(b.peerId)).toBe('relay')
  })

  test('a relay that answers ALLOCATE with port 0 is a failed allocation, not an endpoint', async () => {
    const { w, b } = await withMember()
    w.allocateAnswer = async () => 0
    w.control.signal(b.peerId, 'relay_offer', offerFor(w.self, b, 'b', w.now))
    await w.advance(POLL_MS)
    await w.advance(POLL_MS)
    expect(w.allocations).toHaveLength(1)
    expect(w.wg.peers.has(b.publicKey)).toBe(false)
    expect(w.logs.join('\n')).toContain('the relay answered session port 0')
  })

  test('punch signals with bad or foreign endpoints are dropped: WireGuard is never pointed at them', async () => {
    const w = await started()
    const b = member()
    w.control.join(b)
    await w.poll()
    const bad: unknown[] = [
      { at: w.now, endpoint: '999.999.999.999:99999' },
      { at: w.now, endpoint: '198.51.100.7:0' },
      { at: w.now, endpoint: `${THIRD}:51820` }, // well formed, but not b's endpoint as the server lists it
      { at: 'soon', endpoint: b.info.public_endpoint },
      { at: -5, endpoint: b.info.public_endpoint },
      { at: 1e300, endpoint: b.info.public_endpoint },
      { endpoint: b.info.public_endpoint },
      null,
      'punch!',
    ]
    for (const data of bad) w.control.signal(b.peerId, 'punch', data)
    // Well-formed, but not from b to us in this party.
    const hostile = w.control as unknown as { emit(type: string, e: unknown): void }
    const sig = (over: object) => ({ id: '00000000000000aa', party_id: PARTY_ID, from_peer_id: b.peerId, to_peer_id: w.self.peerId, type: 'punch', data: { at: w.now, endpoint: `${THIRD}:1` }, created_at: '', ...over })
    hostile.emit('signal', { party_id: PARTY_ID, signal: sig({ to_peer_id: b.peerId }) })
    hostile.emit('signal', { party_id: PARTY_ID, signal: sig({ from_peer_id: w.self.peerId }) })
    hostile.emit('signal', { party_id: PARTY_ID, signal: sig({ party_id: 'ffffffffffff' }) })
    hostile.emit('signal', { party_id: PARTY_ID, signal: sig({ type: 'relay_offer\x1b[2J' }) })
    await w.advance(T.punchLeadMs * 4)
    expect(endpointsSet(w)).toEqual([b.info.public_endpoint!])
    expect(w.logs.filter((l) => l.includes('dropped a punch') || l.includes('dropped a signal')).length).toBe(bad.length + 4)
    // Nothing raw from the network reached the log lines.
    expect(w.logs.join('\n')).not.toContain('\x1b')
  })

  test('member records that fail the checks are dropped; a known member keeps its WireGuard peer', async () => {
    const w = await started()
    const b = member()
    await direct(w, b)
    const x = member()
    const y = member()
    const broken: unknown[] = [
      { ...x.info, public_endpoint: '999.999.999.999:99999' },
      { ...x.info, public_endpoint: '198.51.100.9:0' },
      { ...x.info, public_key: y.publicKey }, // x's id with y's key
      { ...x.info, virtual_ip: '8.8.8.8' }, // would route 8.8.8.8 into the tunnel
      { ...x.info, virtual_ip: '0.0.0.0/0' },
      { ...x.info, nat_type: 'wide_open' },
      { ...x.info, local_endpoints: 'all' },
      null,
      42,
    ]
    const hostile = w.control as unknown as { emit(type: string, e: unknown): void }
    for (const peer of broken) hostile.emit('peer_joined', { party_id: PARTY_ID, peer })
    // Updates for b that fail the checks leave b as it was.
    hostile.emit('peer_updated', { party_id: PARTY_ID, peer: { ...b.info, public_endpoint: `${THIRD}:0` } })
    hostile.emit('peer_updated', { party_id: PARTY_ID, peer: { peer_id: b.peerId } })
    hostile.emit('peer_left', { party_id: PARTY_ID })
    hostile.emit('peer_left', { party_id: PARTY_ID, peer_id: { toString: null } })
    await w.advance(POLL_MS)
    expect(w.status?.peers.map((p) => p.peer_id)).toEqual([b.peerId])
    expect(w.logs.filter((l) => l.includes('dropped a member record')).length).toBe(broken.length + 2)
    expect(w.wg.peers.get(b.publicKey)?.endpoint).toBe(b.info.public_endpoint)
    w.wg.traffic(b.publicKey, w.now)
    await w.advance(POLL_MS)
    expect(w.pathOf(b.peerId)).toBe('direct')
  })

  test('a member list after a reconnect that fails the checks removes nobody', async () => {
    const w = await started()
    const b = member()
    await direct(w, b)
    for (const answer of [null, 'peers', [b.info], { [b.peerId]: { ...b.info, public_key: member().publicKey } }]) {
      w.control.peersAnswer = async () => answer as never
      w.control.emit('connected', { peer_id: w.self.peerId, parties: [PARTY_ID], reconnect: true })
      await w.poll()
      expect(w.wg.peers.has(b.publicKey)).toBe(true)
    }
    expect(w.status?.peers.map((p) => p.peer_id)).toEqual([b.peerId])
  })

  test('a party answer that cannot be used ends start with one clear error, and the agent leaves that party', async () => {
    const w = new AgentWorld()
    worlds.push(w)
    const bad = structuredClone(w.control.party)
    bad.peers[w.self.peerId] = { ...w.self.info, virtual_ip: '192.168.1.1' }
    w.control.joinAnswers.push(bad)
    const err = await w.agent.start().catch((e) => e)
    expect(err).toBeInstanceOf(LanrageError)
    expect(err.code).toBe('CONTROL_PROTOCOL')
    expect(err.message).toContain('does not list this peer')
    expect(w.control.left).toEqual([PARTY_ID])
    expect(w.iface).toBeNull()
  })

  test('members with broken records in the party answer are left out; the others connect', async () => {
    const w = new AgentWorld()
    worlds.push(w)
    const b = member()
    const x = member()
    w.control.party.peers[b.peerId] = b.info
    w.control.party.peers[x.peerId] = { ...x.info, public_endpoint: '1.2.3.4:99999' }
    await w.start()
    expect(w.status?.peers.map((p) => p.peer_id)).toEqual([b.peerId])
    expect(w.logs.join('\n')).toContain('member left out')
  })

  test('an unusable STUN mapping (port 0) is no mapping; relays with unusable addresses are left out', async () => {
    const w = new AgentWorld()
    worlds.push(w)
    w.nat = { publicEndpoint: '198.51.100.1:0', natType: 'full_cone' }
    w.relays = [{ host: 'relay.example', port: 3478 }, { host: RELAY.host, port: 0 }, RELAY]
    await w.start()
    expect(w.status?.self).toMatchObject({ public_endpoint: null, nat_type: 'unknown' })
    expect(w.control.party.peers[w.self.peerId]?.public_endpoint).toBeNull()
    expect(w.logs.filter((l) => l.includes('left out a relay')).length).toBe(2)
  })

  test('a registration under another peer id than the key gives is refused', async () => {
    const w = new AgentWorld()
    worlds.push(w)
    w.control.register = async () => 'ffffffffffffffff'
    const err = await w.agent.start().catch((e) => e)
    expect(err).toBeInstanceOf(LanrageError)
    expect(err.code).toBe('CONTROL_PROTOCOL')
  })
  test('events whose shape is wrong are dropped: no exception reaches the emitter, the peers stay', async () => {
    const w = await started()
    const b = member()
    await direct(w, b)
    const hostile = w.control as unknown as { emit(type: string, e: unknown): void }
    hostile.emit('signal', { party_id: PARTY_ID, signal: null })
    hostile.emit('peer_joined', { party_id: PARTY_ID, peer: null })
    hostile.emit('peer_updated', { party_id: PARTY_ID, peer: { peer_id: b.peerId } })
    hostile.emit('peer_left', { party_id: PARTY_ID })
    await w.advance(POLL_MS)
    await settle()
    expect(w.wg.peers.has(b.publicKey)).toBe(true)
    w.wg.traffic(b.publicKey, w.now)
    await w.advance(POLL_MS)
    expect(w.pathOf(b.peerId)).toBe('direct')
    // The loop still takes new members.
    const c = member()
    w.control.join(c)
    await w.poll()
    expect(w.status?.peers.map((p) => p.peer_id)).toContain(c.peerId)
  })
})
