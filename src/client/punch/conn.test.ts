import { describe, expect, test } from 'bun:test'
import { type ConnAction, type ConnContext, type ConnEvent, type ConnState, DEFAULT_TIMING, directAllowed, endpointOf, pathOf, startConn, stepConn } from './conn.ts'

const T = DEFAULT_TIMING
const A_PUB = '203.0.113.21:40001'
const B_PUB = '203.0.113.22:40002'
const RELAY_A = '203.0.113.10:52000'

function ctx(over: Partial<ConnContext> = {}): ConnContext {
  return { selfId: 'aaaa', peerId: 'bbbb', selfNat: 'port_restricted_cone', peerNat: 'port_restricted_cone', selfEndpoint: A_PUB, peerEndpoint: B_PUB, timing: T, ...over }
}

/** Drives one machine through a script, collecting every action with the time it was emitted. */
class Driver {
  state: ConnState
  actions: { at: number; action: ConnAction }[] = []
  constructor(
    readonly c: ConnContext,
    public now = 1_000_000,
  ) {
    const [s, a] = startConn(c, now)
    this.state = s
    this.record(a)
  }
  private record(a: ConnAction[]) {
    for (const action of a) this.actions.push({ at: this.now, action })
  }
  send(ev: ConnEvent) {
    const [s, a] = stepConn(this.c, this.state, ev, this.now)
    this.state = s
    this.record(a)
    return a
  }
  /** Moves time forward in 100 ms ticks, like the agent's poll loop. */
  advance(ms: number) {
    const end = this.now + ms
    while (this.now < end) {
      this.now = Math.min(end, this.now + 100)
      this.send({ type: 'tick' })
    }
  }
  of(type: ConnAction['type']) {
    return this.actions.filter((x) => x.action.type === type)
  }
}

describe('direct between two cone NATs', () => {
  test('sends a punch signal, sets the endpoint at the agreed moment, and is direct on traffic', () => {
    const d = new Driver(ctx())
    const t0 = d.now
    expect(d.actions).toEqual([{ at: t0, action: { type: 'send-punch', at: t0 + T.punchLeadMs, endpoint: A_PUB } }])
    expect(pathOf(d.state)).toBe('connecting')
    d.advance(T.punchLeadMs - 100)
    expect(d.of('set-endpoint')).toEqual([])
    d.advance(100)
    expect(d.of('set-endpoint')).toEqual([{ at: t0 + T.punchLeadMs, action: { type: 'set-endpoint', endpoint: B_PUB } }])
    d.advance(700)
    d.send({ type: 'traffic' })
    expect(d.state).toMatchObject({ kind: 'direct', endpoint: B_PUB })
    expect(pathOf(d.state)).toBe('direct')
    expect(endpointOf(d.state)).toBe(B_PUB)
    expect(d.of('request-relay')).toEqual([])
  })

  test("the peer's punch moves ours earlier but never beyond a few leads ahead", () => {
    const d = new Driver(ctx())
    const t0 = d.now
    d.send({ type: 'punch', at: t0 + 150, endpoint: B_PUB })
    d.advance(200)
    expect(d.of('set-endpoint')[0]!.at).toBe(t0 + 200) // first tick at or after t0+150
    const e = new Driver(ctx())
    e.send({ type: 'punch', at: e.now + 3_600_000, endpoint: B_PUB })
    e.advance(4 * T.punchLeadMs)
    expect(e.of('set-endpoint').length).toBe(1)
  })

  test('a punch after we already pointed at the peer re-points at the new endpoint and restarts the timeout', () => {
    const c = ctx()
    const d = new Driver(c)
    d.advance(T.punchLeadMs + 3000)
    expect(d.of('set-endpoint').length).toBe(1)
    c.peerEndpoint = '203.0.113.22:40099'
    d.send({ type: 'punch', at: d.now + 200, endpoint: c.peerEndpoint })
    d.advance(300)
    expect(d.of('set-endpoint').map((x) => x.action)).toEqual([
      { type: 'set-endpoint', endpoint: B_PUB },
      { type: 'set-endpoint', endpoint: '203.0.113.22:40099' },
    ])
    d.advance(T.directTimeoutMs - 500)
    expect(d.state.kind).toBe('punching')
    expect(d.of('request-relay')).toEqual([])
  })

  test('traffic before the endpoint was set does not count as direct', () => {
    const d = new Driver(ctx())
    d.send({ type: 'traffic' })
    expect(d.state.kind).toBe('punching')
  })

  test('a direct path that goes silent is punched again', () => {
    const d = new Driver(ctx())
    d.advance(T.punchLeadMs)
    d.send({ type: 'traffic' })
    d.advance(T.lostMs - 100)
    d.send({ type: 'traffic' })
    d.advance(T.lostMs)
    expect(d.state.kind).toBe('direct') // exactly lostMs of silence is still alive
    d.advance(200)
    expect(d.state.kind).toBe('punching')
    expect(d.of('send-punch').length).toBe(2)
  })
})

describe('falling back to the relay', () => {
  test('no traffic within directTimeoutMs: the controlling side (lower peer_id) requests a relay once', () => {
    const d = new Driver(ctx())
    d.advance(T.punchLeadMs + T.directTimeoutMs - 100)
    expect(d.of('request-relay')).toEqual([])
    d.advance(100)
    expect(d.of('request-relay').length).toBe(1)
    expect(d.state).toMatchObject({ kind: 'relay-pending', requested: true })
    expect(pathOf(d.state)).toBe('connecting')
    d.send({ type: 'relay-ready', endpoint: RELAY_A, requester: 'aaaa' })
    expect(d.state).toMatchObject({ kind: 'relayed', endpoint: RELAY_A })
    expect(d.actions.at(-1)!.action).toEqual({ type: 'set-endpoint', endpoint: RELAY_A })
    expect(pathOf(d.state)).toBe('relay')
  })

  test('the controlled side waits for the offer, and asks itself only after relayWaitMs', () => {
    const d = new Driver(ctx({ selfId: 'cccc' }))
    d.advance(T.punchLeadMs + T.directTimeoutMs)
    expect(d.state).toMatchObject({ kind: 'relay-pending', requested: false })
    d.advance(T.relayWaitMs - 100)
    expect(d.of('request-relay')).toEqual([])
    d.advance(100)
    expect(d.of('request-relay').length).toBe(1)
  })

  test('the controlled side takes the offer when it comes in time', () => {
    const d = new Driver(ctx({ selfId: 'cccc' }))
    d.advance(T.punchLeadMs + T.directTimeoutMs + 500)
    d.send({ type: 'relay-ready', endpoint: RELAY_A, requester: 'bbbb' })
    d.advance(T.relayWaitMs * 2)
    expect(d.of('request-relay')).toEqual([])
    expect(d.state).toMatchObject({ kind: 'relayed', endpoint: RELAY_A, requester: 'bbbb' })
  })

  test.each([
    ['self', { selfNat: 'symmetric' as const }],
    ['peer', { peerNat: 'symmetric' as const }],
    ['no peer endpoint', { peerEndpoint: null }],
    ['no own endpoint', { selfEndpoint: null }],
  ])('%s symmetric or unknown endpoint: no punch, straight to relay', (_name, over) => {
    const c = ctx(over)
    expect(directAllowed(c)).toBe(false)
    const d = new Driver(c)
    expect(d.actions.map((x) => x.action)).toEqual([{ type: 'request-relay' }])
    d.advance(T.directRetryMs * 3)
    expect(d.of('send-punch')).toEqual([])
  })

  test('a failed relay request is retried after relayRetryMs; a silent request is repeated', () => {
    const d = new Driver(ctx({ peerNat: 'symmetric' }))
    d.send({ type: 'relay-failed' })
    d.advance(T.relayRetryMs - 100)
    expect(d.of('request-relay').length).toBe(1)
    d.advance(100)
    expect(d.of('request-relay').length).toBe(2)
    d.advance(T.relayRetryMs)
    expect(d.of('request-relay').length).toBe(3)
  })

  test('a peer turning out symmetric mid-punch sends us to the relay', () => {
    const c = ctx()
    const d = new Driver(c)
    c.peerNat = 'symmetric'
    d.send({ type: 'peer-updated' })
    expect(d.state).toMatchObject({ kind: 'relay-pending', requested: true })
  })

  test('an offer while direct is followed (the peer saw no traffic), so both ends agree', () => {
    const d = new Driver(ctx({ selfId: 'cccc' }))
    d.advance(T.punchLeadMs)
    d.send({ type: 'traffic' })
    d.send({ type: 'relay-ready', endpoint: RELAY_A, requester: 'bbbb' })
    expect(d.state.kind).toBe('relayed')
  })

  test('racing sessions: the one requested by the lower peer_id wins on both sides', () => {
    const d = new Driver(ctx({ selfId: 'cccc', peerNat: 'symmetric' }))
    d.advance(T.relayWaitMs)
    d.send({ type: 'relay-ready', endpoint: '203.0.113.10:52010', requester: 'cccc' })
    d.send({ type: 'relay-ready', endpoint: RELAY_A, requester: 'bbbb' })
    d.send({ type: 'relay-ready', endpoint: '203.0.113.10:52020', requester: 'cccc' })
    expect(d.state).toMatchObject({ kind: 'relayed', endpoint: RELAY_A, requester: 'bbbb' })
  })
})

describe('while relayed', () => {
  function relayedDriver() {
    const d = new Driver(ctx())
    d.advance(T.punchLeadMs + T.directTimeoutMs)
    d.send({ type: 'relay-ready', endpoint: RELAY_A, requester: 'aaaa' })
    d.actions = []
    return d
  }

  test('tries direct again every directRetryMs and goes back to the relay when it fails', () => {
    const d = relayedDriver()
    d.send({ type: 'traffic' })
    for (let i = 0; i < 10; i++) {
      d.advance(3000)
      d.send({ type: 'traffic' })
    }
    d.advance(T.directRetryMs - 30_000)
    expect(d.of('send-punch').length).toBe(1)
    d.advance(T.punchLeadMs)
    expect(d.of('set-endpoint').map((x) => x.action.type === 'set-endpoint' && x.action.endpoint)).toEqual([B_PUB])
    expect(pathOf(d.state)).toBe('relay')
    d.advance(T.directTimeoutMs)
    expect(d.of('set-endpoint').map((x) => x.action.type === 'set-endpoint' && x.action.endpoint)).toEqual([B_PUB, RELAY_A])
    expect(d.state).toMatchObject({ kind: 'relayed', probe: null, probeFailures: 1 })
    // The next probes wait 2×, 4×, ... the retry interval (capped at 16×).
    const probeTimes: number[] = []
    for (let i = 0; i < 8; i++) {
      const before = d.of('send-punch').length
      const t0 = d.now
      while (d.of('send-punch').length === before) {
        d.advance(5000)
        d.send({ type: 'traffic' })
      }
      probeTimes.push(d.now - t0)
      d.advance(T.punchLeadMs + T.directTimeoutMs)
    }
    expect(probeTimes.map((t) => Math.round(t / T.directRetryMs))).toEqual([2, 4, 8, 16, 16, 16, 16, 16])
  })

  test('a probe that sees traffic on the direct endpoint switches to direct', () => {
    const d = relayedDriver()
    d.send({ type: 'punch', at: d.now + 100, endpoint: B_PUB })
    d.advance(100)
    expect(d.of('set-endpoint').map((x) => x.action)).toEqual([{ type: 'set-endpoint', endpoint: B_PUB }])
    d.send({ type: 'traffic' })
    expect(d.state).toMatchObject({ kind: 'direct', endpoint: B_PUB })
  })

  test('traffic before the probe pointed at the peer keeps us relayed', () => {
    const d = relayedDriver()
    d.send({ type: 'punch', at: d.now + 300, endpoint: B_PUB })
    d.send({ type: 'traffic' })
    expect(d.state.kind).toBe('relayed')
  })

  test('a relay that goes silent is requested again', () => {
    const d = relayedDriver()
    d.advance(T.lostMs + 100)
    expect(d.of('request-relay').length).toBe(1)
    expect(d.state.kind).toBe('relay-pending')
  })

  test('with a symmetric NAT there is never a direct probe', () => {
    const c = ctx({ peerNat: 'symmetric' })
    const d = new Driver(c)
    d.send({ type: 'relay-ready', endpoint: RELAY_A, requester: 'aaaa' })
    for (let i = 0; i < 40; i++) {
      d.advance(5000)
      d.send({ type: 'traffic' })
    }
    d.send({ type: 'punch', at: d.now, endpoint: B_PUB })
    d.advance(T.directTimeoutMs)
    expect(d.of('send-punch')).toEqual([])
    expect(d.of('set-endpoint').map((x) => x.action)).toEqual([{ type: 'set-endpoint', endpoint: RELAY_A }])
  })
})

test('two machines wired back to back reach direct with one punch each and no relay', () => {
  // Each machine's actions become the other's events, as the agent and the control server would deliver them.
  const a = new Driver(ctx())
  const b = new Driver(ctx({ selfId: 'bbbb', peerId: 'aaaa', selfEndpoint: B_PUB, peerEndpoint: A_PUB }))
  const deliver = (from: Driver, to: Driver) => {
    for (const { action } of from.actions.splice(0)) if (action.type === 'send-punch') to.send({ type: 'punch', at: action.at, endpoint: action.endpoint })
  }
  let aSet = false
  let bSet = false
  for (let i = 0; i < 20; i++) {
    a.advance(100)
    b.advance(100)
    aSet ||= a.actions.some((x) => x.action.type === 'set-endpoint')
    bSet ||= b.actions.some((x) => x.action.type === 'set-endpoint')
    deliver(a, b)
    deliver(b, a)
    // WireGuard's handshake completes once both sides point at each other.
    if (aSet && bSet) {
      a.send({ type: 'traffic' })
      b.send({ type: 'traffic' })
    }
  }
  expect(a.state).toMatchObject({ kind: 'direct', endpoint: B_PUB })
  expect(b.state).toMatchObject({ kind: 'direct', endpoint: A_PUB })
})
