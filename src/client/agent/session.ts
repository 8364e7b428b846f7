/**
 * One `lanrage up` process: its registration with the control server and at most one party at a time. It starts
 * idle (or straight into the party named by --create / --join), creates or joins a party when asked (the local API,
 * the page), leaves it when asked, and goes back to idle when the party ends; the party's work itself is an Agent
 * (agent.ts), made afresh for every party.
 *
 *   idle ──create/join──▶ starting ──▶ in_party ──leave / party ends──▶ leaving ──▶ idle
 *                            └── fails (wrong password, no such party...) ──▶ idle, with the reason as `message`
 *
 * No I/O of its own: the Agent it is given does the work, and every change of state or status is handed to
 * `publish` (the status file) and to the subscribers (the local API's live updates).
 */
import { LanrageError } from '../../shared/errors.ts'
import type { Logger } from '../../shared/log.ts'
import { ControlPlaneError } from '../control/errors.ts'
import type { AgentOptions, AgentStatus } from './agent.ts'

export type SessionState = 'idle' | 'starting' | 'in_party' | 'leaving'

export interface SessionStatus extends AgentStatus {
  state: SessionState
  /** What the last request or the party's end came to (a refused join, "party deleted (host_left)"); null when nothing to tell. */
  message: string | null
}

/** The part of an Agent the session drives (Agent implements it). */
export interface SessionAgent {
  start(): Promise<void>
  stop(): Promise<void>
  status(): AgentStatus
  readonly ended: Promise<string>
}

export interface SessionDeps {
  /** A new Agent for one party; it reports its status through `onStatus`. */
  makeAgent(party: AgentOptions['party'], password: string | undefined, onStatus: (s: AgentStatus) => void): SessionAgent
  /** The status while no party runs: this machine's registration, no party, no peers. */
  idleStatus(): AgentStatus
  /** Every new status (the status file). */
  publish(s: SessionStatus): void
  log: Logger
}

/** A request the session cannot take in its current state (the local API answers 409 with this code). */
export class SessionBusyError extends LanrageError {
  constructor(code: 'ALREADY_IN_PARTY' | 'NOT_IN_PARTY' | 'BUSY', message: string) {
    super(code, message, 409)
  }
}

export class AgentSession {
  private agent: SessionAgent | null = null
  private state: SessionState = 'idle'
  private message: string | null = null
  private last: AgentStatus
  private readonly subscribers = new Set<(s: SessionStatus) => void>()
  private stopped = false
  /** Resolves with the reason when a party ends on its own (deleted, gone), for a process that exits then. */
  readonly partyEnded: Promise<string>
  private endParty!: (why: string) => void

  constructor(private readonly deps: SessionDeps) {
    this.last = deps.idleStatus()
    this.partyEnded = new Promise((r) => (this.endParty = r))
  }

  status(): SessionStatus {
    return { ...this.last, state: this.state, message: this.message }
  }

  /** Calls `fn` with every new status; returns the unsubscribe function. */
  subscribe(fn: (s: SessionStatus) => void): () => void {
    this.subscribers.add(fn)
    return () => void this.subscribers.delete(fn)
  }

  create(name: string, o: { password?: string; maxPeers?: number } = {}): Promise<SessionStatus> {
    return this.enter({ create: name, maxPeers: o.maxPeers }, o.password, `create party "${name}"`)
  }

  join(partyId: string, o: { password?: string } = {}): Promise<SessionStatus> {
    return this.enter({ join: partyId }, o.password, `join party ${partyId}`)
  }

  /**
   * Creates or joins; resolves once the party runs (interface up), or rejects with the reason after leaving
   * nothing behind (the Agent cleans up after a failed start).
   */
  private async enter(party: AgentOptions['party'], password: string | undefined, what: string): Promise<SessionStatus> {
    if (this.stopped) throw new SessionBusyError('BUSY', 'the agent is stopping')
    if (this.state === 'in_party') throw new SessionBusyError('ALREADY_IN_PARTY', `already in party ${this.last.party?.party_id ?? ''}; leave it first`.trim())
    if (this.state !== 'idle') throw new SessionBusyError('BUSY', `busy (${this.state}); try again in a moment`)
    const agent = this.deps.makeAgent(party, password, (s) => {
      if (this.agent !== agent) return
      this.last = s
      this.changed()
    })
    this.agent = agent
    this.set('starting', null)
    try {
      await agent.start()
    } catch (e) {
      await agent.stop().catch(() => {})
      this.agent = null
      this.last = this.deps.idleStatus()
      this.set('idle', `${what} failed: ${e instanceof Error ? e.message : String(e)}`)
      throw e
    }
    if (this.stopped || this.agent !== agent) return this.status()
    this.last = agent.status()
    this.set('in_party', null)
    void agent.ended.then((why) => this.ended(agent, why))
    return this.status()
  }

  private async ended(agent: SessionAgent, why: string) {
    if (this.agent !== agent || this.state !== 'in_party') return
    this.deps.log.info('the party ended', { reason: why })
    await this.close(agent, why)
    this.endParty(why)
  }

  /** Leaves the party; resolves once back to idle. */
  async leave(): Promise<SessionStatus> {
    const agent = this.agent
    if (this.state === 'idle' || !agent) throw new SessionBusyError('NOT_IN_PARTY', 'not in a party')
    if (this.state !== 'in_party') throw new SessionBusyError('BUSY', `busy (${this.state}); try again in a moment`)
    await this.close(agent, `left party ${this.last.party?.party_id ?? ''}`.trim())
    return this.status()
  }

  private async close(agent: SessionAgent, message: string) {
    this.set('leaving', null)
    await agent.stop().catch((e) => this.deps.log.warn('stopping the party failed', { error: e }))
    if (this.agent === agent) this.agent = null
    this.last = this.deps.idleStatus()
    this.set('idle', message)
  }

  /** Leaves the party if in one; no request is taken afterwards. */
  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    const agent = this.agent
    this.agent = null
    if (agent) await agent.stop().catch((e) => this.deps.log.warn('stopping the party failed', { error: e }))
  }

  private set(state: SessionState, message: string | null) {
    this.state = state
    this.message = message
    this.changed()
  }

  private changed() {
    const s = this.status()
    this.deps.publish(s)
    for (const fn of this.subscribers) {
      try {
        fn(s)
      } catch (e) {
        this.deps.log.warn('a status subscriber failed', { error: e })
      }
    }
  }
}

/** The HTTP status and code a failed create/join maps to for the local API (the control server's own code first). */
export function failureOf(e: unknown): { status: number; code: string; message: string } {
  if (e instanceof ControlPlaneError) {
    const status = e.status >= 400 && e.status < 500 ? e.status : 502
    return { status, code: e.serverCode ?? e.code, message: e.message }
  }
  if (e instanceof LanrageError) return { status: e.status >= 400 && e.status < 500 ? e.status : 502, code: e.code, message: e.message }
  return { status: 500, code: 'INTERNAL', message: 'the agent failed; see its log' }
}
