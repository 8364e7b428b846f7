// The agent process's party lifecycle (session.ts) with fake agents: idle → starting → in_party → leaving → idle.
import { describe, expect, test } from 'bun:test'
import { ControlForbiddenError, ControlUnreachableError } from '../control/errors.ts'
import { createLogger } from '../../shared/log.ts'
import type { AgentOptions, AgentStatus } from './agent.ts'
import { AgentSession, failureOf, type SessionAgent, type SessionStatus } from './session.ts'

const idle = (): AgentStatus => ({ pid: 1, interface: 'lr0', listen_port: 51820, party: null, self: null, peers: [], updated_at: new Date(0).toISOString() })

class FakeAgent implements SessionAgent {
  started = false
  stops = 0
  readonly ended: Promise<string>
  end!: (why: string) => void
  startGate = Promise.withResolvers<void>()
  constructor(
    readonly party: AgentOptions['party'],
    readonly password: string | undefined,
    readonly onStatus: (s: AgentStatus) => void,
  ) {
    this.ended = new Promise((r) => (this.end = r))
  }
  async start() {
    await this.startGate.promise
    this.started = true
    this.onStatus(this.status())
  }
  async stop() {
    this.stops++
  }
  status(): AgentStatus {
    const id = 'join' in this.party ? this.party.join : 'abcdefabcdef'
    return { ...idle(), party: { party_id: id, name: 'lan', host_id: '0011223344556677', subnet: '10.66.0.0/16' } }
  }
}

function world() {
  const agents: FakeAgent[] = []
  const published: SessionStatus[] = []
  const session = new AgentSession({
    makeAgent: (party, password, onStatus) => {
      const a = new FakeAgent(party, password, onStatus)
      agents.push(a)
      return a
    },
    idleStatus: idle,
    publish: (s) => published.push(s),
    log: createLogger('test', 'silent'),
  })
  return { session, agents, published, states: () => published.map((s) => s.state) }
}

describe('AgentSession', () => {
  test('create: starting while the agent starts, in_party once it runs; its status is published as it changes', async () => {
    const w = world()
    expect(w.session.status()).toMatchObject({ state: 'idle', party: null, message: null })
    const p = w.session.create('lan', { password: 'pw', maxPeers: 4 })
    expect(w.session.status().state).toBe('starting')
    expect(w.agents[0]!.party).toEqual({ create: 'lan', maxPeers: 4 })
    expect(w.agents[0]!.password).toBe('pw')
    w.agents[0]!.startGate.resolve()
    expect(await p).toMatchObject({ state: 'in_party', party: { party_id: 'abcdefabcdef' } })
    expect(w.states()).toEqual(['starting', 'starting', 'in_party'])
  })

  test('one party at a time: create or join while starting or in a party is 409; leave while idle is 409', async () => {
    const w = world()
    await expect(w.session.leave()).rejects.toMatchObject({ code: 'NOT_IN_PARTY', status: 409 })
    const p = w.session.join('0123456789ab')
    await expect(w.session.create('x')).rejects.toMatchObject({ code: 'BUSY', status: 409 })
    await expect(w.session.leave()).rejects.toMatchObject({ code: 'BUSY', status: 409 })
    w.agents[0]!.startGate.resolve()
    await p
    await expect(w.session.join('0123456789ab')).rejects.toMatchObject({ code: 'ALREADY_IN_PARTY', message: 'already in party 0123456789ab; leave it first' })
    expect(w.agents).toHaveLength(1)
  })

  test('a failed start cleans up and goes back to idle with the reason; the next join works', async () => {
    const w = world()
    const p = w.session.join('0123456789ab', { password: 'wrong' })
    const a = w.agents[0]!
    a.startGate.reject(new ControlForbiddenError('join party 0123456789ab: wrong password (WRONG_PASSWORD)', 'WRONG_PASSWORD'))
    await expect(p).rejects.toBeInstanceOf(ControlForbiddenError)
    expect(a.stops).toBe(1)
    expect(w.session.status()).toMatchObject({ state: 'idle', party: null, message: 'join party 0123456789ab failed: join party 0123456789ab: wrong password (WRONG_PASSWORD)' })
    const again = w.session.join('0123456789ab', { password: 'right' })
    w.agents[1]!.startGate.resolve()
    expect((await again).state).toBe('in_party')
  })

  test('leave: leaving, then idle; the agent is stopped once', async () => {
    const w = world()
    const p = w.session.create('lan')
    w.agents[0]!.startGate.resolve()
    await p
    const s = await w.session.leave()
    expect(s).toMatchObject({ state: 'idle', party: null, message: 'left party abcdefabcdef' })
    expect(w.agents[0]!.stops).toBe(1)
    expect(w.states().slice(-2)).toEqual(['leaving', 'idle'])
  })

  test('a party that ends on its own goes back to idle and resolves partyEnded; a stale agent’s status is ignored', async () => {
    const w = world()
    const p = w.session.create('lan')
    const a = w.agents[0]!
    a.startGate.resolve()
    await p
    a.end('party deleted (host_left)')
    expect(await w.session.partyEnded).toBe('party deleted (host_left)')
    expect(w.session.status()).toMatchObject({ state: 'idle', message: 'party deleted (host_left)' })
    const n = w.published.length
    a.onStatus(a.status()) // a late status from the stopped agent
    expect(w.published).toHaveLength(n)
  })

  test('subscribers get every change; one that throws costs the others nothing', async () => {
    const w = world()
    const seen: string[] = []
    w.session.subscribe(() => {
      throw new Error('broken subscriber')
    })
    const off = w.session.subscribe((s) => seen.push(s.state))
    const p = w.session.create('lan')
    w.agents[0]!.startGate.resolve()
    await p
    off()
    await w.session.leave()
    expect(seen).toEqual(['starting', 'starting', 'in_party'])
  })

  test('stop: stops the agent of a running party; no request is taken afterwards', async () => {
    const w = world()
    const p = w.session.create('lan')
    w.agents[0]!.startGate.resolve()
    await p
    await w.session.stop()
    await w.session.stop()
    expect(w.agents[0]!.stops).toBe(1)
    await expect(w.session.create('again')).rejects.toMatchObject({ code: 'BUSY' })
  })

  test('failureOf: the control server’s code and 4xx status, 502 for a server that failed, 500 for the unknown', () => {
    expect(failureOf(new ControlForbiddenError('wrong password', 'WRONG_PASSWORD'))).toEqual({ status: 403, code: 'WRONG_PASSWORD', message: 'wrong password' })
    expect(failureOf(new ControlUnreachableError('no answer'))).toEqual({ status: 502, code: 'CONTROL_UNREACHABLE', message: 'no answer' })
    expect(failureOf(new TypeError('x is undefined'))).toEqual({ status: 500, code: 'INTERNAL', message: 'the agent failed; see its log' })
  })
})
