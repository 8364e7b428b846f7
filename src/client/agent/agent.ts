/**
 * The `lanrage up` agent: one process that keeps this machine's WireGuard interface connected to every other
 * member of one party (the README's "The agent: `lanrage up`" describes it for users).
 *
 *   register (key proof) → STUN from the WireGuard port at the relay(s) → create/join the party → bring up the
 *   interface with the virtual IP → per peer: the connection state machine (../punch/conn.ts) → follow live events
 *
 * Everything that changes peer state runs in one place, `poll()`, every POLL_MS: it reads `wg show dump`,
 * turns fresh receive counters into `traffic` events, applies queued events (control-server messages, finished
 * relay allocations) and ticks every machine. Slow network calls (relay tickets, ALLOCATE, signals) run in the
 * background and report back through the queue, so no two steps of a machine ever interleave.
 */
import { Value } from '@sinclair/typebox/value'
import { Endpoint, IpAddress, MAX_PEER_NAME, PartyId, PeerName, Port } from '../../shared/api.ts'
import { LanrageError } from '../../shared/errors.ts'
import type { Logger } from '../../shared/log.ts'
import { safeText } from '../../shared/terminal.ts'
import type { ControlEventName, ControlEvents, ControlPlane, NatType, PartyInfo, PeerInfo, RelayOffer } from '../control/types.ts'
import { peerIdOf } from '../control/remote.ts'
import { parsePrivateKey, publicKeyOf } from '../wireguard/keys.ts'
import { inSubnet, type Subnet } from '../../shared/ipv4.ts'
import { ECHO_PORT, LatencyTracker, PROBE_MS } from './latency.ts'
import { checkOffer, checkParty, checkPeer, checkPeers, checkPunch, checkSignal } from './inbound.ts'
import { localEndpoints } from '../nat/detect.ts'
import { ControlMissingError } from '../control/errors.ts'
import { type ConnAction, type ConnContext, type ConnEvent, type ConnState, DEFAULT_TIMING, type ConnTiming, pathOf, startConn, stepConn } from '../punch/conn.ts'
import type { WgStatus, WgPeerConfig } from '../wireguard/config.ts'

/** How often the agent reads WireGuard's counters and ticks the machines. */
export const POLL_MS = 200
/**
 * Persistent keepalive (seconds) on every peer: keeps NAT mappings open (a cone NAT forgets an idle UDP
 * mapping after ~30 s) and gives the state machine a packet to see at least this often.
 */
export const KEEPALIVE_S = 5
/** An offer naming a relay not in the agent's list makes it read GET /relays again, at most this often. */
export const RELAY_LIST_REFRESH_MS = 10_000
/** Transfer counters and latency alone refresh the published status at most this often. */
export const STATUS_REFRESH_MS = 1000
/** A failed rejoin (server unreachable, say) is tried again this much later. */
export const REJOIN_RETRY_MS = 5000

export interface RelayEndpoint {
  host: string
  port: number
  /** The relay's second, STUN-only port (`stun_alt_port` in GET /relays), when it has one. */
  stunAltPort?: number
}

/**
 * Two STUN destinations for NAT detection: two relays' main ports, or, with one relay, its main port and its
 * STUN-only alt port. Either pair differs in destination ip:port, which is what tells a symmetric NAT (a new
 * mapping per destination) from a cone (RFC 5780 §4.3).
 */
export function stunTargets(relays: RelayEndpoint[]): RelayEndpoint[] {
  const first = relays[0]
  if (relays.length >= 2 || first?.stunAltPort === undefined) return relays.slice(0, 2)
  return [first, { host: first.host, port: first.stunAltPort }]
}
/**
 * A display name from a host name (the default of `up --name`): its printable characters, at most MAX_PEER_NAME
 * of them; undefined when nothing usable is left (the agent then gives no name).
 */
export function nameFromHost(host: string): string | undefined {
  let name = ''
  for (const c of host.replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu, '')) {
    if (name.length + c.length > MAX_PEER_NAME) break
    name += c
  }
  name = name.trim()
  return Value.Check(PeerName, name) ? name : undefined
}

/** What STUN told us about our WireGuard port (src/client/nat/detect.ts NatReport has these and more). */
export interface NatMapping {
  publicEndpoint: string | null
  natType: NatType
}

/** What the agent needs from a WireGuard interface (WireGuardInterface implements it). */
export interface AgentInterface {
  readonly name: string
  setPrivateKey(privateKey: string, listenPort?: number): Promise<void>
  setAddress(cidr: string): Promise<void>
  up(): Promise<void>
  setPeer(p: WgPeerConfig): Promise<void>
  removePeer(publicKey: string): Promise<void>
  status(): Promise<WgStatus>
  delete(): Promise<void>
}

/** The agent's UDP socket for the latency echo, bound to its virtual IP (src/client/net/udp.ts UdpSocket fits). */
export interface EchoSocket {
  send(data: Uint8Array, port: number, address: string): void
  close(): void
}

/** Timers as a dependency, so tests drive the poll loop and the retries with a manual clock instead of sleeping. */
export interface AgentTimers {
  /** Calls `fn` every `ms` until the returned function is called. */
  every(ms: number, fn: () => void): () => void
  /** Calls `fn` once after `ms` unless the returned function is called first. */
  after(ms: number, fn: () => void): () => void
}
export const realTimers: AgentTimers = {
  every(ms, fn) {
    const t = setInterval(fn, ms)
    return () => clearInterval(t)
  },
  after(ms, fn) {
    const t = setTimeout(fn, ms)
    return () => clearTimeout(t)
  },
}

export interface AgentDeps {
  control: ControlPlane
  /** The relays' main ports (STUN + ALLOCATE), from `GET /relays`. */
  listRelays(): Promise<RelayEndpoint[]>
  /** STUN from `localPort` (before WireGuard binds it) at up to two targets. */
  detectNat(localPort: number, targets: RelayEndpoint[]): Promise<NatMapping>
  /** Sends the ticket to the relay's main port; resolves with this side's session port. */
  allocate(relay: RelayEndpoint, ticket: string): Promise<number>
  createInterface(name: string): Promise<AgentInterface>
  now(): number
  /** Default: setInterval / setTimeout. */
  timers?: AgentTimers
  log: Logger
  /** A line for the user (stdout), already escaped for a terminal. */
  say(line: string): void
  /** Persists the status snapshot for `lanrage status`. */
  writeStatus(s: AgentStatus): void
  /**
   * Binds the latency echo (latency.ts) on `address`:`port`, the virtual IP once the interface has it. Absent, or
   * failing, the agent measures no latency and answers no probes; everything else works the same.
   */
  openEcho?(address: string, port: number, onMessage: (data: Uint8Array, port: number, address: string) => void): Promise<EchoSocket>
  /** A finer clock for round trips (milliseconds, any origin; e.g. performance.now). Default: now(). */
  hrNow?(): number
}

export interface AgentOptions {
  privateKey: string
  interfaceName: string
  listenPort: number
  party: { create: string; maxPeers?: number } | { join: string }
  password?: string
  /** This machine's display name in the party (src/shared/api.ts PeerName); none when absent. */
  name?: string
  timing?: ConnTiming
}

export interface PeerStatus {
  peer_id: string
  /** The member's display name (as it chose it; shown escaped), null when it gave none. */
  name: string | null
  virtual_ip: string
  public_key: string
  nat_type: NatType
  public_endpoint: string | null
  /** WireGuard's current endpoint for the peer (what it really sends to). */
  endpoint: string | null
  path: 'direct' | 'relay' | 'connecting'
  /** ISO 8601, null before the first handshake. */
  latest_handshake: string | null
  /** Round-trip time through the tunnel (milliseconds), null until measured or when the last probes went unanswered. */
  latency_ms: number | null
  /** WireGuard's transfer counters for the peer (bytes received from it and sent to it). */
  rx_bytes: number
  tx_bytes: number
}
export interface AgentStatus {
  pid: number
  interface: string
  listen_port: number
  party: { party_id: string; name: string; host_id: string; subnet: string } | null
  self: { peer_id: string; name: string | null; virtual_ip: string | null; public_endpoint: string | null; nat_type: NatType } | null
  peers: PeerStatus[]
  updated_at: string
}

interface Peer {
  info: PeerInfo
  ctx: ConnContext
  state: ConnState
  /** The endpoint this agent last told WireGuard to use, and the peer's rx counter then. */
  setEndpoint: string | null
  lastRx: number
  wg: { endpoint: string | null; latestHandshake: number | null; rx: number; tx: number } | null
  relayBusy: boolean
  lastPath: string
  /** Whether the peer is in WireGuard's configuration yet. */
  inWg: boolean
}

type Queued =
  | { kind: 'peer'; peer: PeerInfo }
  | { kind: 'left'; peerId: string }
  /** The full member list, after the live channel reconnected (events may have been missed meanwhile). */
  | { kind: 'sync'; peers: Record<string, PeerInfo> }
  | { kind: 'conn'; peerId: string; ev: ConnEvent }
  | { kind: 'offer'; offer: RelayOffer; requester: string }

const queuedPeer = (q: Queued) => (q.kind === 'peer' ? q.peer.peer_id : q.kind === 'left' || q.kind === 'conn' ? q.peerId : q.kind === 'offer' ? q.requester : null)

/** Prefix length of "10.66.0.0/16" → "/16" for the interface address. */
const prefixOf = (subnet: string) => subnet.split('/')[1] ?? '16'


export class Agent {
  private peers = new Map<string, Peer>()
  private queue: Queued[] = []
  /** Signals that arrived before the peer they concern (e.g. a punch racing the join response). */
  private early = new Map<string, Queued[]>()
  private beforeParty: { partyId: string; q: Queued }[] = []
  private iface: AgentInterface | null = null
  private party: PartyInfo | null = null
  private selfId = ''
  private nat: NatMapping = { publicEndpoint: null, natType: 'unknown' }
  private relays: RelayEndpoint[] = []
  private readonly timers: AgentTimers
  private cancelPoll = () => {}
  private cancelRejoin = () => {}
  /** The pass in progress, if any (poll is never re-entered; stop waits for it). */
  private polling: Promise<void> | null = null
  private offs: (() => void)[] = []
  private stopped = false
  private rejoining = false
  private relaysFetchedAt = -Infinity
  private readonly latency = new LatencyTracker()
  private echo: { socket: EchoSocket; address: string } | null = null
  private lastProbe = -Infinity
  /** The party's subnet, once the party is known (member records are checked against it). */
  private subnet: Subnet | null = null
  /** This machine's WireGuard public key: the holder every relay ticket for us must name. */
  private readonly selfKey: Uint8Array
  private lastStatus = ''
  private lastShape = ''
  private lastWrite = -Infinity
  /** Resolves when the agent ends on its own (party deleted); stop() is the other way out. */
  readonly ended: Promise<string>
  private end!: (why: string) => void

  constructor(
    private readonly opts: AgentOptions,
    private readonly deps: AgentDeps,
  ) {
    this.ended = new Promise((r) => (this.end = r))
    this.timers = deps.timers ?? realTimers
    this.selfKey = publicKeyOf(parsePrivateKey(opts.privateKey))
  }

  get partyId() {
    return this.party?.party_id ?? null
  }

  async start(): Promise<void> {
    const { control, log } = this.deps
    this.selfId = await control.register()
    if (this.selfId !== peerIdOf(this.selfKey))
      throw new LanrageError('CONTROL_PROTOCOL', `the control plane registered this machine as ${this.selfId}, but its key gives ${peerIdOf(this.selfKey)}`, 502)
    log.info('registered', { peer_id: this.selfId })
    this.listen()
    this.relays = await this.fetchRelays()
    if (this.relays.length) {
      this.nat = await this.deps.detectNat(this.opts.listenPort, stunTargets(this.relays)).catch((e) => {
        log.warn('STUN failed; peers will be reached through the relay', { error: e })
        return { publicEndpoint: null, natType: 'unknown' as NatType }
      })
      // The mapping came back in a STUN answer: an endpoint no peer could send to (port 0, say) is no mapping.
      if (this.nat.publicEndpoint !== null && !Value.Check(Endpoint, this.nat.publicEndpoint)) {
        log.warn('STUN gave an unusable public endpoint; peers will be reached through the relay', { endpoint: this.nat.publicEndpoint })
        this.nat = { publicEndpoint: null, natType: 'unknown' }
      }
    } else log.warn('no relay registered: no STUN, no relaying; only peers that reach us directly will connect')
    log.info('public mapping', { endpoint: this.nat.publicEndpoint, nat_type: this.nat.natType, listen_port: this.opts.listenPort })

    const peerInfo = this.peerInfo()
    const p = this.opts.party
    const raw: unknown =
      'create' in p
        ? await control.createParty(p.create, { password: this.opts.password, max_peers: p.maxPeers, peer_info: peerInfo })
        : await control.joinParty(p.join, { password: this.opts.password, peer_info: peerInfo })
    const checked = checkParty(raw, this.selfId)
    if (!checked.ok) {
      // We are a member now: leave again rather than hold a place we cannot use.
      const id = (raw as { party_id?: unknown } | null)?.party_id
      if (typeof id === 'string' && Value.Check(PartyId, id)) await control.leaveParty(id).catch(() => {})
      throw new LanrageError('CONTROL_PROTOCOL', `the control server's answer cannot be used: ${checked.error}`, 502)
    }
    for (const why of checked.value.dropped) log.warn('member left out: its record fails the checks', { error: why })
    this.party = checked.value.party
    this.subnet = checked.value.subnet
    this.say(`party_id: ${this.party.party_id}`)
    const me = this.party.peers[this.selfId]!
    this.say(`virtual_ip: ${me.virtual_ip}`)

    const iface = await this.deps.createInterface(this.opts.interfaceName)
    this.iface = iface
    await iface.setPrivateKey(this.opts.privateKey, this.opts.listenPort)
    await iface.setAddress(`${me.virtual_ip}/${prefixOf(this.party.subnet)}`)
    await iface.up()
    log.info('interface up', { name: iface.name, address: me.virtual_ip })
    await this.openEcho(me.virtual_ip)

    for (const peer of Object.values(this.party.peers)) if (peer.peer_id !== this.selfId) this.queue.push({ kind: 'peer', peer })
    for (const { partyId, q } of this.beforeParty.splice(0)) if (partyId === this.party.party_id) this.push(q)
    this.cancelPoll = this.timers.every(POLL_MS, () => void this.poll())
    await this.poll()
  }

  /** (Re)binds the latency echo on the virtual IP; a failure costs the latency figures only. */
  private async openEcho(address: string) {
    const open = this.deps.openEcho
    if (!open || this.echo?.address === address) return
    this.closeEcho()
    try {
      const socket = await open(address, ECHO_PORT, (data, port, from) => this.onEcho(data, port, from))
      if (this.stopped) return socket.close()
      this.echo = { socket, address }
    } catch (e) {
      this.deps.log.warn('latency echo unavailable; latency will not be shown', { address, port: ECHO_PORT, error: e })
    }
  }

  private closeEcho() {
    this.echo?.socket.close()
    this.echo = null
  }

  /**
   * A datagram on the echo port. Only members' virtual addresses are answered or listened to: WireGuard delivers a
   * packet from a member only with that member's address as its source (its allowed IP), so nothing else in the
   * party subnet can speak for it; anything from elsewhere is dropped unread.
   */
  private onEcho(data: Uint8Array, port: number, from: string) {
    if (!this.echo || !this.subnet || !inSubnet(from, this.subnet) || from === this.echo.address) return
    const reply = this.latency.receive(data, from, this.hrNow())
    if (reply) this.echo.socket.send(reply, port, from)
  }

  private hrNow() {
    return this.deps.hrNow?.() ?? this.deps.now()
  }

  /** One probe to every member with a path (none while connecting: a packet then would cost a handshake attempt). */
  private probe(now: number) {
    if (!this.echo || now - this.lastProbe < PROBE_MS) return
    this.lastProbe = now
    for (const p of this.peers.values()) {
      if (pathOf(p.state) === 'connecting') continue
      this.echo.socket.send(this.latency.probe(p.info.virtual_ip, this.hrNow()), ECHO_PORT, p.info.virtual_ip)
    }
  }

  /** A line for the user. Ids, addresses and reasons in it came from the network: escaped for the terminal. */
  private say(line: string) {
    this.deps.say(safeText(line))
  }

  private peerInfo() {
    return {
      ...(this.opts.name !== undefined ? { name: this.opts.name } : {}),
      public_endpoint: this.nat.publicEndpoint,
      nat_type: this.nat.natType,
      local_endpoints: localEndpoints(this.opts.listenPort),
    }
  }

  /**
   * Back into the party after the server dropped us (it removes members silent for 5 minutes, e.g. after a
   * suspend). One attempt at a time: every heartbeat that fails meanwhile would otherwise start another chain.
   */
  private async rejoin(serverCode: string | undefined, retry = false) {
    if (this.rejoining && !retry) return
    this.rejoining = true
    const { control, log } = this.deps
    const partyId = this.party!.party_id
    if (serverCode !== 'PEER_NOT_FOUND' || this.stopped) {
      this.say(`party ${partyId} is gone`)
      this.end(`party ${partyId} is gone (${serverCode ?? 'not found'})`)
      return
    }
    try {
      const checked = checkParty(await control.joinParty(partyId, { password: this.opts.password, peer_info: this.peerInfo() }), this.selfId)
      if (!checked.ok) throw new LanrageError('CONTROL_PROTOCOL', `the control server's answer cannot be used: ${checked.error}`, 502)
      const party = checked.value.party
      const before = this.party!.peers[this.selfId]?.virtual_ip
      const me = party.peers[this.selfId]!
      this.party = party
      this.subnet = checked.value.subnet
      if (me.virtual_ip !== before) {
        await this.iface!.setAddress(`${me.virtual_ip}/${prefixOf(party.subnet)}`)
        this.say(`virtual_ip: ${me.virtual_ip}`)
        await this.openEcho(me.virtual_ip)
      }
      log.info('rejoined the party after the server dropped us', { party_id: partyId, virtual_ip: me.virtual_ip })
      this.queue.push({ kind: 'sync', peers: party.peers })
      this.rejoining = false
    } catch (e) {
      log.warn('rejoining failed; trying again in 5 s', { error: e })
      if (!this.stopped) this.cancelRejoin = this.timers.after(REJOIN_RETRY_MS, () => void this.rejoin(serverCode, true))
    }
  }

  private listen() {
    const { control, log } = this.deps
    // A listener that throws would reach the emitter, which rethrows it as an uncaught exception (the agent would
    // die and take every WireGuard peer with it): whatever a handler cannot take is logged and dropped here.
    const on = <K extends ControlEventName>(type: K, fn: (e: ControlEvents[K]) => void) =>
      control.on(type, (e) => {
        try {
          fn(e)
        } catch (err) {
          log.warn('dropped a control-plane event that could not be handled', { type, error: err })
        }
      })
    const mine = (partyId: string) => this.party !== null && partyId === this.party.party_id
    // Member events that arrive while createParty/joinParty is still answering are kept, then filtered by party.
    const member = (partyId: string, q: Queued) => {
      if (mine(partyId)) this.push(q)
      else if (!this.party && this.beforeParty.length < 256) this.beforeParty.push({ partyId, q })
    }
    this.offs.push(
      on('peer_joined', (e) => member(e.party_id, { kind: 'peer', peer: e.peer })),
      on('peer_updated', (e) => member(e.party_id, { kind: 'peer', peer: e.peer })),
      on('peer_left', (e) => {
        if (typeof e.peer_id === 'string') member(e.party_id, { kind: 'left', peerId: e.peer_id })
      }),
      on('party_deleted', (e) => {
        if (!mine(e.party_id)) return
        log.warn('party deleted', { party_id: e.party_id, reason: e.reason })
        this.say(`party deleted: ${e.reason}`)
        this.end(`party deleted (${e.reason})`)
      }),
      on('signal', (e) => {
        // Signals may arrive before createParty/joinParty returns (the peer saw us join first): keep them.
        if (this.party && !mine(e.party_id)) return
        const r = checkSignal(e.signal)
        if (!r.ok) return log.warn('dropped a signal that fails the checks', { error: r.error })
        const s = r.value
        if (s.party_id !== e.party_id || s.to_peer_id !== this.selfId || s.from_peer_id === this.selfId)
          return log.warn('dropped a signal that is not addressed to this peer in this party', { from: s.from_peer_id, to: s.to_peer_id })
        // Whether the data fits the member it came from (its endpoint, its relay session) is checked once it is known.
        if (s.type === 'punch') this.enqueue({ kind: 'conn', peerId: s.from_peer_id, ev: { type: 'punch', at: s.data.at, endpoint: s.data.endpoint } })
        else this.enqueue({ kind: 'offer', offer: s.data, requester: s.from_peer_id })
      }),
      on('connected', (e) => {
        if (!e.reconnect || !this.party) return
        log.info('control channel reconnected; resynchronising members')
        control
          .getPeers(this.party.party_id)
          .then((peers) => this.push({ kind: 'sync', peers }))
          .catch((err) => log.warn('resynchronising members failed', { error: err }))
      }),
      on('error', (e) => {
        log.warn('control plane', { where: e.where, error: e.error })
        // The heartbeat loop (RemoteControlPlane) got 404: we were dropped (e.g. silent for too long), or the party is gone.
        if (this.party && e.where === `heartbeat ${this.party.party_id}` && e.error instanceof ControlMissingError) void this.rejoin(e.error.serverCode)
      }),
    )
  }

  /**
   * Queues an event for the next pass. Member records are checked here, against the party subnet (events that
   * came before the party are held in beforeParty unchecked and pass through here once it is known).
   */
  private push(q: Queued) {
    if (q.kind === 'peer') {
      const r = checkPeer(q.peer, this.subnet!)
      if (!r.ok) return this.deps.log.warn('dropped a member record that fails the checks', { error: r.error })
      q = { kind: 'peer', peer: r.value }
    }
    this.queue.push(q)
  }

  private enqueue(q: Queued & { peerId?: string }) {
    const id = q.kind === 'offer' ? q.requester : q.kind === 'conn' ? q.peerId : null
    if (id && !this.peers.has(id) && !this.queue.some((x) => x.kind === 'peer' && x.peer.peer_id === id)) {
      if (!this.early.has(id) && this.early.size >= 256) return
      const list = this.early.get(id) ?? []
      if (list.length < 16) list.push(q)
      this.early.set(id, list)
      return
    }
    this.queue.push(q)
  }

  /**
   * One pass: read WireGuard, apply queued events, tick every machine, publish status. Never re-entered, and it
   * never rejects: a step that throws (a WireGuard command that failed, an event the checks let through) is
   * logged and dropped on its own, so one bad input costs neither the other peers nor the next pass.
   */
  poll(): Promise<void> {
    if (this.polling || this.stopped || !this.iface) return Promise.resolve()
    const run = this.pass(this.iface).finally(() => (this.polling = null))
    this.polling = run
    return run
  }

  private async pass(iface: AgentInterface): Promise<void> {
    const now = this.deps.now()
    const wg = await iface.status().catch((e) => {
      this.deps.log.warn('reading WireGuard status failed', { error: e })
      return null
    })
    if (wg) {
      for (const peer of this.peers.values()) {
        await this.guard('reading the peer\'s counters', peer.info.peer_id, async () => {
          const w = wg.peers.find((x) => x.publicKey === peer.info.public_key)
          peer.wg = w ? { endpoint: w.endpoint, latestHandshake: w.latestHandshake, rx: w.rxBytes, tx: w.txBytes } : null
          if (!w) return
          // Fresh packets from the peer while WireGuard still uses the endpoint we set (it roams otherwise, §6.5).
          // A completed handshake is required too: a handshake initiation received while our answers cannot get
          // back (one-way filtering) raises rx without making a working path.
          const fresh = w.rxBytes > peer.lastRx && w.latestHandshake !== null
          peer.lastRx = w.rxBytes
          if (fresh && peer.setEndpoint !== null && w.endpoint === peer.setEndpoint) await this.step(peer, { type: 'traffic' }, now)
        })
      }
    }
    for (const q of this.queue.splice(0)) await this.guard(`applying ${q.kind}`, queuedPeer(q), () => this.apply(q, now))
    for (const peer of this.peers.values()) await this.guard('tick', peer.info.peer_id, () => this.step(peer, { type: 'tick' }, now))
    await this.guard('probing latency', null, () => this.probe(now))
    await this.guard('publishing the status', null, () => this.publish())
  }

  /** Runs one step of a pass; an exception is logged and ends that step only. */
  private async guard(what: string, peerId: string | null, fn: () => unknown): Promise<void> {
    try {
      await fn()
    } catch (e) {
      this.deps.log.warn(`${what} failed; skipped`, { peer_id: peerId ?? undefined, error: e })
    }
  }

  private async apply(q: Queued, now: number) {
    if (q.kind === 'peer') return this.upsertPeer(q.peer, now)
    if (q.kind === 'left') return this.removePeer(q.peerId, 'left')
    if (q.kind === 'sync') {
      const list = checkPeers(q.peers, this.subnet!)
      if (!list.ok) return this.deps.log.warn('dropped a member list that fails the checks', { error: list.error })
      for (const why of list.value.dropped) this.deps.log.warn('member left out: its record fails the checks', { error: why })
      // Removed: members the list no longer names. A member named with a record that fails is kept as it was.
      for (const id of [...this.peers.keys()]) if (!Object.hasOwn(q.peers, id)) await this.removePeer(id, 'left')
      for (const p of Object.values(list.value.peers)) await this.upsertPeer(p, now)
      return
    }
    const peer = this.peers.get(q.kind === 'conn' ? q.peerId : q.requester)
    if (!peer) return
    if (q.kind === 'conn') {
      if (q.ev.type === 'punch') {
        const wrong = checkPunch(q.ev.endpoint, peer.info)
        if (wrong) return this.deps.log.warn('dropped a punch signal', { error: wrong })
      }
      return this.step(peer, q.ev, now)
    }
    this.allocateFor(peer, q.offer, q.requester)
  }

  private async upsertPeer(info: PeerInfo, now: number) {
    if (info.peer_id === this.selfId) return
    const known = this.peers.get(info.peer_id)
    if (known) {
      known.info = info
      const changed = known.ctx.peerNat !== info.nat_type || (info.public_endpoint !== null && known.ctx.peerEndpoint !== info.public_endpoint)
      known.ctx.peerNat = info.nat_type
      if (info.public_endpoint) known.ctx.peerEndpoint = info.public_endpoint
      if (changed) await this.step(known, { type: 'peer-updated' }, now)
      return
    }
    // The peer enters WireGuard's configuration only with its first endpoint (perform, set-endpoint): a packet
    // sent to a peer without an endpoint still counts as a handshake attempt and blocks the next one for 5 s.
    const ctx: ConnContext = {
      selfId: this.selfId,
      peerId: info.peer_id,
      selfNat: this.nat.natType,
      peerNat: info.nat_type,
      selfEndpoint: this.nat.publicEndpoint,
      peerEndpoint: info.public_endpoint,
      timing: this.opts.timing ?? DEFAULT_TIMING,
    }
    const [state, actions] = startConn(ctx, now)
    const peer: Peer = { info, ctx, state, setEndpoint: null, lastRx: 0, wg: null, relayBusy: false, lastPath: '', inWg: false }
    this.peers.set(info.peer_id, peer)
    this.deps.log.info('peer added', { peer_id: info.peer_id, virtual_ip: info.virtual_ip, nat_type: info.nat_type, endpoint: info.public_endpoint })
    await this.perform(peer, actions)
    for (const q of this.early.get(info.peer_id) ?? []) await this.apply(q, now)
    this.early.delete(info.peer_id)
  }

  private async removePeer(peerId: string, why: string) {
    const peer = this.peers.get(peerId)
    if (!peer) return
    this.peers.delete(peerId)
    this.latency.forget(peer.info.virtual_ip)
    if (peer.inWg) await this.iface!.removePeer(peer.info.public_key).catch((e) => this.deps.log.warn('removing WireGuard peer failed', { error: e }))
    this.say(`peer ${peerId} ${peer.info.virtual_ip} ${why}`)
  }

  private async step(peer: Peer, ev: ConnEvent, now: number) {
    const [state, actions] = stepConn(peer.ctx, peer.state, ev, now)
    peer.state = state
    await this.perform(peer, actions)
  }

  private async perform(peer: Peer, actions: ConnAction[]) {
    const { control, log } = this.deps
    const partyId = this.party!.party_id
    for (const a of actions) {
      if (a.type === 'set-endpoint') {
        // Every endpoint was checked where it came in; this one last check keeps a WireGuard peer from being
        // removed below and then not set again because `wg set` refused the endpoint.
        if (!Value.Check(Endpoint, a.endpoint)) {
          log.warn('not pointing WireGuard at an unusable endpoint', { peer_id: peer.info.peer_id, endpoint: a.endpoint })
          continue
        }
        const base = { publicKey: peer.info.public_key, allowedIps: [`${peer.info.virtual_ip}/32`] }
        // WireGuard sends at most one handshake initiation per REKEY_TIMEOUT (5 s, whitepaper §6.1). A peer that
        // never completed a handshake is re-created, so its first initiation to the new endpoint leaves now
        // rather than up to 5 s later; a peer with a session keeps it and just moves (the other side roams, §6.5).
        const fresh = !peer.wg?.latestHandshake
        if (peer.inWg && fresh) await this.iface!.removePeer(peer.info.public_key)
        // Keepalive off → on makes WireGuard send at once (wg(8); wireguard-go uapi.go "pkaOn"), which starts the
        // handshake towards the new endpoint now instead of at the next retry.
        await this.iface!.setPeer({ ...base, endpoint: a.endpoint, persistentKeepalive: 0 })
        await this.iface!.setPeer({ ...base, persistentKeepalive: KEEPALIVE_S })
        peer.inWg = true
        peer.setEndpoint = a.endpoint
        peer.lastRx = fresh ? 0 : (peer.wg?.rx ?? peer.lastRx)
        log.info('endpoint set', { peer_id: peer.info.peer_id, endpoint: a.endpoint, state: peer.state.kind })
      } else if (a.type === 'send-punch') {
        control.sendSignal(partyId, peer.info.peer_id, 'punch', { at: a.at, endpoint: a.endpoint }).catch((e) => log.warn('punch signal failed', { peer_id: peer.info.peer_id, error: e }))
      } else if (a.type === 'request-relay') {
        if (peer.relayBusy) continue
        peer.relayBusy = true
        control
          .requestRelay(partyId, peer.info.peer_id)
          .then((offer) => this.allocateFor(peer, offer, this.selfId))
          .catch((e) => {
            peer.relayBusy = false
            log.warn('relay request failed', { peer_id: peer.info.peer_id, error: e })
            this.queue.push({ kind: 'conn', peerId: peer.info.peer_id, ev: { type: 'relay-failed' } })
          })
      }
    }
  }

  /**
   * ALLOCATE at the relay with our ticket (from our own request or from the peer's offer), then hands the
   * endpoint to the machine. The offer is checked first (inbound.ts checkOffer: this session, this machine's key,
   * the peer's key) and its relay must be one the control server lists: a forged offer makes this machine send
   * nothing anywhere. A refused offer from our own request counts as a failed request (the machine retries);
   * a refused `relay_offer` signal is just dropped.
   */
  private allocateFor(peer: Peer, raw: unknown, requester: string) {
    const { log } = this.deps
    const mine = requester === this.selfId
    const refuse = (msg: string, fields: Record<string, unknown>) => {
      log.warn(msg, { peer_id: peer.info.peer_id, ...fields })
      if (mine) this.queue.push({ kind: 'conn', peerId: peer.info.peer_id, ev: { type: 'relay-failed' } })
    }
    const r = checkOffer(raw, { partyId: this.party!.party_id, selfKey: this.selfKey, peer: peer.info, now: this.deps.now() })
    if (!r.ok) {
      if (mine) peer.relayBusy = false
      return refuse('dropped a relay offer that fails the checks', { error: r.error })
    }
    const offer = r.value
    const relay = { host: offer.relay.public_ip, port: offer.relay.port }
    this.listedRelay(relay)
      .then(async (listed) => {
        if (!listed) return refuse('dropped a relay offer naming a relay the control server does not list', { relay: `${relay.host}:${relay.port}` })
        const port = await this.deps.allocate(relay, offer.ticket)
        if (!Number.isInteger(port) || port < 1 || port > 65535) throw new LanrageError('RELAY_PROTOCOL', `the relay answered session port ${port}`, 502)
        log.info('relay allocated', { peer_id: peer.info.peer_id, relay: `${relay.host}:${relay.port}`, session_port: port, side: offer.side })
        const endpoint = relay.host.includes(':') ? `[${relay.host}]:${port}` : `${relay.host}:${port}`
        this.queue.push({ kind: 'conn', peerId: peer.info.peer_id, ev: { type: 'relay-ready', endpoint, requester } })
      })
      .catch((e) => {
        log.warn('relay allocation failed', { peer_id: peer.info.peer_id, error: e })
        this.queue.push({ kind: 'conn', peerId: peer.info.peer_id, ev: { type: 'relay-failed' } })
      })
      .finally(() => {
        if (mine) peer.relayBusy = false
      })
  }

  /** The relays from GET /relays whose address and ports are usable (on failure, the list we had). */
  private async fetchRelays(): Promise<RelayEndpoint[]> {
    this.relaysFetchedAt = this.deps.now()
    const list = await this.deps.listRelays().catch((e) => {
      this.deps.log.warn('could not list relays', { error: e })
      return null
    })
    if (!list) return this.relays
    const port = (p: unknown) => Value.Check(Port, p)
    return list.filter((r) => {
      const ok = Value.Check(IpAddress, r.host) && port(r.port) && (r.stunAltPort === undefined || port(r.stunAltPort))
      if (!ok) this.deps.log.warn('left out a relay with an unusable address', { host: r.host, port: r.port })
      return ok
    })
  }

  /**
   * Whether the control server lists this relay. A relay registered since the agent read the list is not in it:
   * the list is read again, at most once per RELAY_LIST_REFRESH_MS whatever the offers say.
   */
  private async listedRelay(relay: RelayEndpoint): Promise<boolean> {
    const listed = () => this.relays.some((r) => r.host === relay.host && r.port === relay.port)
    if (listed()) return true
    if (this.deps.now() - this.relaysFetchedAt < RELAY_LIST_REFRESH_MS) return false
    this.relays = await this.fetchRelays()
    return listed()
  }

  status(): AgentStatus {
    const me = this.party?.peers[this.selfId]
    return {
      pid: process.pid,
      interface: this.opts.interfaceName,
      listen_port: this.opts.listenPort,
      party: this.party && { party_id: this.party.party_id, name: this.party.name, host_id: this.party.host_id, subnet: this.party.subnet },
      self: this.selfId ? { peer_id: this.selfId, name: me?.name ?? this.opts.name ?? null, virtual_ip: me?.virtual_ip ?? null, public_endpoint: this.nat.publicEndpoint, nat_type: this.nat.natType } : null,
      peers: [...this.peers.values()].map((p) => ({
        peer_id: p.info.peer_id,
        name: p.info.name,
        virtual_ip: p.info.virtual_ip,
        public_key: p.info.public_key,
        nat_type: p.info.nat_type,
        public_endpoint: p.ctx.peerEndpoint,
        endpoint: p.wg?.endpoint ?? null,
        path: pathOf(p.state),
        latest_handshake: p.wg?.latestHandshake ? new Date(p.wg.latestHandshake).toISOString() : null,
        latency_ms: this.latencyOf(p),
        rx_bytes: p.wg?.rx ?? 0,
        tx_bytes: p.wg?.tx ?? 0,
      })),
      updated_at: new Date(this.deps.now()).toISOString(),
    }
  }

  private latencyOf(p: Peer): number | null {
    const ms = pathOf(p.state) === 'connecting' ? null : this.latency.latency(p.info.virtual_ip, this.hrNow())
    return ms === null ? null : Math.round(ms * 10) / 10
  }

  /** Tells the user about path changes and writes the status file when something changed. */
  private publish() {
    for (const p of this.peers.values()) {
      const path = pathOf(p.state)
      const line = `peer ${p.info.peer_id} ${p.info.virtual_ip} ${path}${path === 'connecting' ? '' : ' ' + (p.setEndpoint ?? '')}`
      if (line !== p.lastPath) {
        p.lastPath = line
        this.say(line)
      }
    }
    const s = this.status()
    const key = JSON.stringify({ ...s, updated_at: '' })
    if (key === this.lastStatus) return
    // Counters and latency move with every packet: a change of them alone is written at most once per
    // STATUS_REFRESH_MS; anything else (a member, a path, an endpoint) at once.
    const shape = JSON.stringify({ ...s, updated_at: '', peers: s.peers.map((p) => ({ ...p, latency_ms: null, rx_bytes: 0, tx_bytes: 0 })) })
    const now = this.deps.now()
    if (shape === this.lastShape && now - this.lastWrite < STATUS_REFRESH_MS) return
    this.lastStatus = key
    this.lastShape = shape
    this.lastWrite = now
    this.deps.writeStatus(s)
  }

  /**
   * Leaves the party and removes the interface. Safe to call twice. The control plane stays open: it belongs to
   * whoever made it (one `lanrage up` process holds one registration across the parties it joins in turn).
   */
  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    this.cancelPoll()
    this.cancelRejoin()
    for (const off of this.offs) off()
    await this.polling
    this.closeEcho()
    const { control, log } = this.deps
    if (this.party) {
      const r = await control.leaveParty(this.party.party_id).catch((e) => {
        log.warn('leaving the party failed', { error: e })
        return null
      })
      if (r) log.info('left party', { party_id: this.party.party_id, result: r })
    }
    if (this.iface) await this.iface.delete().catch((e) => log.warn('removing the interface failed', { error: e }))
  }
}
