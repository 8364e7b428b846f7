/**
 * The connection to one peer as a pure state machine, an explicit union of states plus a transition function
 * that takes `now`: no sockets, no timers. The agent feeds it events with the current time and performs the
 * actions it returns.
 *
 *   punching ──traffic──▶ direct ──silence > lostMs──▶ punching
 *      │ no traffic within directTimeoutMs, a symmetric NAT, or no endpoint to punch
 *      ▼
 *   relay-pending ──relay-ready──▶ relayed ──every directRetryMs: probe direct (punching inside relayed)──▶ direct
 *
 * Direct works when both NATs keep one mapping per socket (endpoint-independent mapping, RFC 4787 §4.1):
 * both sides point WireGuard at the other's STUN-learned public endpoint at one moment agreed through a `punch`
 * signal `{at, endpoint}`. Whichever side's first handshake initiation (WireGuard §5.4.2) leaves first opens
 * a mapping in its own NAT; the other side's initiation then passes that NAT, and the handshake completes.
 * With a symmetric NAT the STUN-learned port is not the one used towards the peer, so it goes straight to relay.
 *
 * Only one side asks the control server for relay tickets, so a pair normally ends up in one relay session:
 * the side with the lower peer_id (the "controlling" side, as in ICE, RFC 8445 §6.1.1). The other side waits
 * relayWaitMs for the offer and only then asks itself. When two sessions race, both sides keep the one requested
 * by the lower peer_id.
 *
 * `traffic` means: authenticated packets from the peer arrived while the WireGuard endpoint was still the one
 * this machine last set (the agent sees the peer's rx counter grow and the endpoint unchanged; WireGuard roams
 * the endpoint to the source of every authenticated packet, §6.5, so a packet that came another way changes it).
 */
import type { NatType } from '../../shared/api.ts'
export type { NatType }

export type Path = 'connecting' | 'direct' | 'relay'

export interface ConnTiming {
  /** Delay between sending the `punch` signal and the agreed moment, so the signal arrives first. */
  punchLeadMs: number
  /** No traffic this long after setting the direct endpoint → relay. WireGuard retries a handshake every 5 s (REKEY_TIMEOUT). */
  directTimeoutMs: number
  /** The controlled side waits this long for the controlling side's relay offer before requesting one itself. */
  relayWaitMs: number
  /** A relay request that has not produced a session after this long is made again. */
  relayRetryMs: number
  /** While relayed, try direct again this often. */
  directRetryMs: number
  /** An established path with no traffic this long is considered lost (keepalives arrive every few seconds). */
  lostMs: number
}

export const DEFAULT_TIMING: ConnTiming = {
  punchLeadMs: 400,
  directTimeoutMs: 5_000,
  relayWaitMs: 3_000,
  relayRetryMs: 5_000,
  directRetryMs: 60_000,
  lostMs: 30_000,
}

/** What the machine knows about both ends; the agent updates it from peer events and punch signals. */
export interface ConnContext {
  selfId: string
  peerId: string
  selfNat: NatType
  peerNat: NatType
  /** This peer's public endpoint (STUN, from the WireGuard port) — sent in punch signals. */
  selfEndpoint: string | null
  /** The peer's public endpoint as last reported (PeerInfo.public_endpoint or its punch signal). */
  peerEndpoint: string | null
  timing: ConnTiming
}

interface Probe {
  punchAt: number
  setAt: number | null
  deadline: number
}

export type ConnState =
  | ({ kind: 'punching' } & Probe)
  | { kind: 'direct'; endpoint: string; lastTrafficAt: number }
  | { kind: 'relay-pending'; requested: boolean; deadline: number }
  | {
      kind: 'relayed'
      endpoint: string
      requester: string
      lastTrafficAt: number
      nextDirectAt: number
      /** Direct probes that failed in a row: each doubles the wait before the next (up to 16×). */
      probeFailures: number
      probe: (Probe & { endpoint: string | null }) | null
    }

export type ConnEvent =
  | { type: 'tick' }
  /** The peer's `punch` signal. */
  | { type: 'punch'; at: number; endpoint: string }
  | { type: 'traffic' }
  /** ALLOCATE succeeded (our own request or the peer's offer): point WireGuard at relay_ip:our_session_port. */
  | { type: 'relay-ready'; endpoint: string; requester: string }
  | { type: 'relay-failed' }
  /** ctx changed (peer_updated: endpoint or NAT type). */
  | { type: 'peer-updated' }

export type ConnAction =
  | { type: 'set-endpoint'; endpoint: string }
  | { type: 'send-punch'; at: number; endpoint: string }
  | { type: 'request-relay' }

type Step = [ConnState, ConnAction[]]

export const directAllowed = (c: ConnContext) =>
  c.selfNat !== 'symmetric' && c.peerNat !== 'symmetric' && c.selfEndpoint !== null && c.peerEndpoint !== null
const controlling = (c: ConnContext) => c.selfId < c.peerId

export function pathOf(s: ConnState): Path {
  if (s.kind === 'direct') return 'direct'
  if (s.kind === 'relayed') return 'relay'
  return 'connecting'
}

/** The endpoint WireGuard should currently be using for this peer, if any. */
export function endpointOf(s: ConnState): string | null {
  if (s.kind === 'direct' || s.kind === 'relayed') return s.endpoint
  return null
}

/** The first decision for a newly seen peer. */
export function startConn(c: ConnContext, now: number): Step {
  return directAllowed(c) ? startPunch(c, now) : toRelay(c, now)
}

function startPunch(c: ConnContext, now: number): Step {
  const at = now + c.timing.punchLeadMs
  return [{ kind: 'punching', punchAt: at, setAt: null, deadline: Infinity }, [{ type: 'send-punch', at, endpoint: c.selfEndpoint! }]]
}

function toRelay(c: ConnContext, now: number): Step {
  if (controlling(c)) return [{ kind: 'relay-pending', requested: true, deadline: now + c.timing.relayRetryMs }, [{ type: 'request-relay' }]]
  return [{ kind: 'relay-pending', requested: false, deadline: now + c.timing.relayWaitMs }, []]
}

/** The peer's punch time is followed, but never further ahead than a few leads (clocks differ, signals lag). */
const punchTime = (c: ConnContext, at: number, now: number) => Math.min(Math.max(at, now), now + 4 * c.timing.punchLeadMs)

/** Advances a punch attempt (top-level or a probe inside relayed); null when it timed out. */
function advanceProbe(c: ConnContext, p: Probe, now: number): [Probe, ConnAction[]] | null {
  if (p.setAt === null) {
    if (now < p.punchAt) return [p, []]
    return [{ punchAt: p.punchAt, setAt: now, deadline: now + c.timing.directTimeoutMs }, [{ type: 'set-endpoint', endpoint: c.peerEndpoint! }]]
  }
  return now >= p.deadline ? null : [p, []]
}

export function stepConn(c: ConnContext, s: ConnState, ev: ConnEvent, now: number): Step {
  switch (s.kind) {
    case 'punching': {
      if (ev.type === 'relay-ready') return relayed(c, ev, now)
      if (!directAllowed(c)) return toRelay(c, now)
      if (ev.type === 'traffic' && s.setAt !== null) return [{ kind: 'direct', endpoint: c.peerEndpoint!, lastTrafficAt: now }, []]
      if (ev.type === 'punch') {
        const at = punchTime(c, ev.at, now)
        // Not yet pointed at the peer: follow its moment. Already pointed: point again at its moment, which
        // restarts our handshake towards the (possibly new) endpoint and gives the attempt its full time.
        return [{ kind: 'punching', punchAt: s.setAt === null ? Math.min(s.punchAt, at) : at, setAt: null, deadline: Infinity }, []]
      }
      const next = advanceProbe(c, s, now)
      if (!next) return toRelay(c, now)
      return [{ kind: 'punching', ...next[0] }, next[1]]
    }
    case 'direct': {
      if (ev.type === 'relay-ready') return relayed(c, ev, now)
      if (ev.type === 'traffic') return [{ ...s, lastTrafficAt: now }, []]
      if (ev.type === 'punch') return [{ kind: 'punching', punchAt: punchTime(c, ev.at, now), setAt: null, deadline: Infinity }, []]
      if (ev.type === 'peer-updated' && !directAllowed(c)) return toRelay(c, now)
      if (now - s.lastTrafficAt > c.timing.lostMs) return directAllowed(c) ? startPunch(c, now) : toRelay(c, now)
      return [s, []]
    }
    case 'relay-pending': {
      if (ev.type === 'relay-ready') return relayed(c, ev, now)
      if (ev.type === 'relay-failed') return [{ kind: 'relay-pending', requested: false, deadline: now + c.timing.relayRetryMs }, []]
      if (now >= s.deadline) return [{ kind: 'relay-pending', requested: true, deadline: now + c.timing.relayRetryMs }, [{ type: 'request-relay' }]]
      return [s, []]
    }
    case 'relayed': {
      if (ev.type === 'relay-ready') {
        // Two sessions raced: keep the one the lower peer_id asked for, so both sides use the same one.
        return ev.requester <= s.requester ? relayed(c, ev, now) : [s, []]
      }
      const p = s.probe
      if (ev.type === 'traffic') {
        if (p && p.setAt !== null && p.endpoint) return [{ kind: 'direct', endpoint: p.endpoint, lastTrafficAt: now }, []]
        return [{ ...s, lastTrafficAt: now }, []]
      }
      if (ev.type === 'punch') {
        if (!directAllowed(c) || (p && p.setAt === null)) return [s, []]
        return [{ ...s, probe: { punchAt: punchTime(c, ev.at, now), setAt: null, deadline: Infinity, endpoint: c.peerEndpoint } }, []]
      }
      if (p) {
        if (!directAllowed(c)) return [{ ...s, probe: null, nextDirectAt: now + c.timing.directRetryMs }, p.setAt === null ? [] : [{ type: 'set-endpoint', endpoint: s.endpoint }]]
        const next = advanceProbe(c, p, now)
        if (next) return [{ ...s, probe: { ...next[0], endpoint: p.setAt === null ? c.peerEndpoint : p.endpoint } }, next[1]]
        // The probe failed: back to the relay, which kept the session while we were away.
        // A probe costs the game a moment of traffic to a dead endpoint (until a relayed packet roams WireGuard
        // back), so a pair that keeps failing is probed less and less often.
        const probeFailures = s.probeFailures + 1
        const nextDirectAt = now + c.timing.directRetryMs * 2 ** Math.min(probeFailures, 4)
        return [{ ...s, probe: null, lastTrafficAt: now, probeFailures, nextDirectAt }, [{ type: 'set-endpoint', endpoint: s.endpoint }]]
      }
      if (now - s.lastTrafficAt > c.timing.lostMs) return toRelay(c, now)
      if (now >= s.nextDirectAt && directAllowed(c)) {
        const [punching, actions] = startPunch(c, now)
        const pr = punching as Probe
        return [{ ...s, probe: { punchAt: pr.punchAt, setAt: null, deadline: Infinity, endpoint: c.peerEndpoint } }, actions]
      }
      return [s, []]
    }
  }
}

function relayed(c: ConnContext, ev: { endpoint: string; requester: string }, now: number): Step {
  return [
    { kind: 'relayed', endpoint: ev.endpoint, requester: ev.requester, lastTrafficAt: now, nextDirectAt: now + c.timing.directRetryMs, probeFailures: 0, probe: null },
    [{ type: 'set-endpoint', endpoint: ev.endpoint }],
  ]
}
