/**
 * Fakes for the agent's dependencies (src/client/agent/agent.ts AgentDeps): a control plane whose server side the
 * test plays, a WireGuard interface that keeps its peers in memory and validates like the real one, a manual clock
 * whose timers fire when it moves, and recorders for ALLOCATE, STUN and the user's lines. `AgentWorld` wires them to
 * one Agent and drives its poll loop the way the real timer would.
 */
import { Agent, type AgentInterface, type EchoSocket, type AgentOptions, type AgentStatus, type AgentTimers, type NatMapping, POLL_MS, type RelayEndpoint } from '../../src/client/agent/agent.ts'
import { Emitter } from '../../src/client/control/events.ts'
import { peerIdOf } from '../../src/client/control/remote.ts'
import type { ControlEventName, ControlEvents, ControlPlane, LeaveResult, PartyInfo, PeerEndpointInfo, PeerInfo, RelayOffer, Signal } from '../../src/client/control/types.ts'
import { DEFAULT_TIMING } from '../../src/client/punch/conn.ts'
import { checkCidr, checkEndpoint, type WgPeerConfig, type WgPeerStatus, type WgStatus } from '../../src/client/wireguard/config.ts'
import { encodeKey, generateKeyPair, parsePublicKey } from '../../src/client/wireguard/keys.ts'
import { createLogger, type Logger } from '../../src/shared/log.ts'
import { signTicket } from '../../src/shared/wire/ticket.ts'
import { ed25519 } from '@noble/curves/ed25519.js'

export const PARTY_ID = '0123456789ab'
export const SUBNET = '10.66.0.0/16'
export const RELAY: RelayEndpoint = { host: '203.0.113.10', port: 3478 }
export const RELAY_ID = '00000000000000a1'
const SERVER_SECRET = ed25519.utils.randomSecretKey()

/** A member with a real key pair, so its peer id is the one the server would derive. */
export interface Member {
  privateKey: string
  publicKey: string
  peerId: string
  info: PeerInfo
}
let nextHost = 2
export function member(over: Partial<PeerInfo> = {}, order: { below?: string; above?: string } = {}): Member {
  for (;;) {
    const kp = generateKeyPair()
    const peerId = peerIdOf(kp.publicKey)
    // Tests pick which side of a pair is "controlling" (the lower peer id asks for relays).
    if ((order.below !== undefined && peerId >= order.below) || (order.above !== undefined && peerId <= order.above)) continue
    const host = nextHost++
    const info: PeerInfo = {
      peer_id: peerId,
      name: `gamer ${host}`,
      public_key: encodeKey(kp.publicKey),
      virtual_ip: `10.66.${host >> 8}.${host & 255}`,
      public_endpoint: `198.51.100.${host & 255}:${40000 + host}`,
      local_endpoints: [],
      nat_type: 'port_restricted_cone',
      last_seen: new Date(0).toISOString(),
      joined_at: new Date(0).toISOString(),
      ...over,
    }
    return { privateKey: encodeKey(kp.privateKey), publicKey: info.public_key, peerId, info }
  }
}

/** A relay offer as the control server makes it (ticket signed, both keys right), for `self` towards `other`. */
export function offerFor(self: Member, other: Member, side: 'a' | 'b', now: number, over: Partial<RelayOffer> = {}): RelayOffer {
  const sessionId = crypto.getRandomValues(new Uint8Array(16))
  const notAfter = Math.floor(now / 1000) + 300
  const ticket = signTicket(
    { side, sessionId, relayId: RELAY_ID, partyId: PARTY_ID, holderKey: parsePublicKey(self.publicKey), otherKey: parsePublicKey(other.publicKey), notAfter },
    SERVER_SECRET,
  )
  return {
    session_id: Buffer.from(sessionId).toString('hex'),
    side,
    ticket: Buffer.from(ticket).toString('base64url'),
    expires_at: new Date(notAfter * 1000).toISOString(),
    relay: { relay_id: RELAY_ID, public_ip: RELAY.host, port: RELAY.port, region: 'test' },
    peer_id: other.peerId,
    ...over,
  }
}

/** Time that moves only when told to; `after`/`every` callbacks run as it passes their moment. */
export class ManualTimers implements AgentTimers {
  t = 1_700_000_000_000
  private seq = 0
  private pending = new Map<number, { at: number; every: number | null; fn: () => void }>()
  now = () => this.t
  every(ms: number, fn: () => void) {
    const id = ++this.seq
    this.pending.set(id, { at: this.t + ms, every: ms, fn })
    return () => void this.pending.delete(id)
  }
  after(ms: number, fn: () => void) {
    const id = ++this.seq
    this.pending.set(id, { at: this.t + ms, every: null, fn })
    return () => void this.pending.delete(id)
  }
  /** Moves to the next due timer (at most `until`), fires it; false when none is due by then. */
  fireNext(until: number): boolean {
    let next: [number, { at: number; every: number | null; fn: () => void }] | undefined
    for (const e of this.pending) if (e[1].at <= until && (!next || e[1].at < next[1].at)) next = e
    if (!next) return false
    const [id, tm] = next
    this.t = Math.max(this.t, tm.at)
    if (tm.every === null) this.pending.delete(id)
    else tm.at += tm.every
    tm.fn()
    return true
  }
  get count() {
    return this.pending.size
  }
}

/** The control server as the agent sees it; the test plays the server through `emit` and the fields below. */
export class FakeControl implements ControlPlane {
  peerId: string | undefined
  readonly events = new Emitter<ControlEvents>()
  /** The party as the server knows it; create/join add `self`. */
  party: PartyInfo
  signals: { to: string; type: string; data: unknown }[] = []
  relayRequests: string[] = []
  joins = 0
  /** The peer_info of every create and join, as the agent sent it. */
  peerInfos: PeerEndpointInfo[] = []
  left: string[] = []
  closed = false
  /** Answers to the next joinParty calls (an Error is thrown); empty = the normal answer. */
  joinAnswers: (Error | PartyInfo)[] = []
  relayAnswer: (peerId: string) => Promise<RelayOffer> = () => Promise.reject(new Error('no relay in this test'))
  peersAnswer: () => Promise<Record<string, PeerInfo>> = async () => structuredClone(this.party.peers)

  constructor(readonly self: Member) {
    this.party = { party_id: PARTY_ID, name: 'friday', host_id: self.peerId, created_at: new Date(0).toISOString(), subnet: SUBNET, max_peers: 16, peers: {} }
  }
  async register() {
    this.peerId = this.self.peerId
    return this.self.peerId
  }
  private withSelf(info: PeerEndpointInfo | undefined): PartyInfo {
    this.peerInfos.push(structuredClone(info ?? {}))
    const me = { ...this.self.info, ...(info ?? {}) } as PeerInfo
    this.party.peers[me.peer_id] = me
    return structuredClone(this.party)
  }
  async createParty(name: string, opts?: { peer_info?: PeerEndpointInfo }) {
    this.party.name = name
    return this.withSelf(opts?.peer_info)
  }
  async joinParty(partyId: string, opts?: { peer_info?: PeerEndpointInfo }) {
    this.joins++
    const a = this.joinAnswers.shift()
    if (a instanceof Error) throw a
    if (a) return a
    if (partyId !== this.party.party_id) throw new Error(`no party ${partyId}`)
    return this.withSelf(opts?.peer_info)
  }
  async leaveParty(partyId: string): Promise<LeaveResult> {
    this.left.push(partyId)
    return 'left'
  }
  async updatePeer(): Promise<PeerInfo> {
    return this.self.info
  }
  async getParty() {
    return structuredClone(this.party)
  }
  getPeers() {
    return this.peersAnswer()
  }
  async discoverPeer(_p: string, peerId: string) {
    return this.party.peers[peerId]!
  }
  async heartbeat() {}
  async sendSignal(partyId: string, to: string, type: string, data: unknown): Promise<Signal> {
    this.signals.push({ to, type, data })
    return { id: this.signals.length.toString(16).padStart(16, '0'), party_id: partyId, from_peer_id: this.self.peerId, to_peer_id: to, type, data, created_at: new Date(0).toISOString() }
  }
  async getSignals() {
    return []
  }
  requestRelay(_partyId: string, peerId: string) {
    this.relayRequests.push(peerId)
    return this.relayAnswer(peerId)
  }
  on<K extends ControlEventName>(type: K, fn: (e: ControlEvents[K]) => void) {
    return this.events.on(type, fn)
  }
  emit<K extends ControlEventName>(type: K, e: ControlEvents[K]) {
    this.events.emit(type, e)
  }
  /** A signal from `from` to us, as the live channel delivers it. */
  signal(from: string, type: string, data: unknown, partyId = PARTY_ID) {
    const id = Buffer.from(crypto.getRandomValues(new Uint8Array(8))).toString('hex')
    this.emit('signal', { party_id: partyId, signal: { id, party_id: partyId, from_peer_id: from, to_peer_id: this.self.peerId, type, data, created_at: new Date(0).toISOString() } })
  }
  /** A member joins: the server lists it and tells us. */
  join(m: Member) {
    this.party.peers[m.peerId] = m.info
    this.emit('peer_joined', { party_id: PARTY_ID, peer: structuredClone(m.info) })
  }
  async close() {
    this.closed = true
  }
}

/** A WireGuard interface in memory; setPeer/removePeer check their input like the real one (wg(8) would refuse it). */
export class FakeInterface implements AgentInterface {
  readonly name: string
  peers = new Map<string, WgPeerStatus>()
  address: string | null = null
  isUp = false
  deleted = false
  ops: string[] = []
  /** Makes the next status() calls fail. */
  failStatus = false
  /** setPeer throws when this returns an Error. */
  failSetPeer: (p: WgPeerConfig) => Error | null = () => null
  constructor(name: string) {
    this.name = name
  }
  async setPrivateKey() {}
  async setAddress(cidr: string) {
    this.address = cidr
  }
  async up() {
    this.isUp = true
  }
  async setPeer(p: WgPeerConfig) {
    parsePublicKey(p.publicKey)
    if (p.endpoint) checkEndpoint(p.endpoint)
    p.allowedIps.forEach(checkCidr)
    const err = this.failSetPeer(p)
    if (err) throw err
    const old = this.peers.get(p.publicKey)
    this.peers.set(p.publicKey, {
      publicKey: p.publicKey,
      presharedKey: null,
      endpoint: p.endpoint ?? old?.endpoint ?? null,
      allowedIps: p.allowedIps,
      latestHandshake: old?.latestHandshake ?? null,
      rxBytes: old?.rxBytes ?? 0,
      txBytes: 0,
      persistentKeepalive: p.persistentKeepalive ?? old?.persistentKeepalive ?? 0,
    })
    this.ops.push(`set ${p.publicKey.slice(0, 6)} ${p.endpoint ?? '-'}`)
  }
  async removePeer(publicKey: string) {
    parsePublicKey(publicKey)
    this.peers.delete(publicKey)
    this.ops.push(`remove ${publicKey.slice(0, 6)}`)
  }
  async status(): Promise<WgStatus> {
    if (this.failStatus) throw new Error('wg show failed')
    return { privateKey: '', publicKey: '', listenPort: 51820, fwmark: 0, peers: [...this.peers.values()].map((p) => ({ ...p })) }
  }
  async delete() {
    this.deleted = true
  }
  /** Authenticated packets from the peer arrived (a handshake completed), from `from` (WireGuard roams to it). */
  traffic(publicKey: string, now: number, from?: string) {
    const p = this.peers.get(publicKey)
    if (!p) throw new Error('no such WireGuard peer')
    p.rxBytes += 148
    p.latestHandshake = now
    if (from) p.endpoint = from
  }
  endpointOf(publicKey: string) {
    return this.peers.get(publicKey)?.endpoint ?? null
  }
}

/** The latency echo socket: records what the agent sends; the test delivers datagrams to it. */
export class FakeEcho implements EchoSocket {
  sent: { data: Uint8Array; port: number; address: string }[] = []
  closed = false
  constructor(
    readonly address: string,
    readonly port: number,
    readonly onMessage: (data: Uint8Array, port: number, address: string) => void,
  ) {}
  send(data: Uint8Array, port: number, address: string) {
    if (this.closed) throw new Error('send on a closed echo socket')
    this.sent.push({ data: data.slice(), port, address })
  }
  close() {
    this.closed = true
  }
  deliver(data: Uint8Array, from: string, port = 8666) {
    this.onMessage(data, port, from)
  }
}

/** One agent with every dependency faked; `self` is this machine. */
export class AgentWorld {
  readonly timers = new ManualTimers()
  readonly control: FakeControl
  iface: FakeInterface | null = null
  relays: RelayEndpoint[] = [RELAY]
  nat: NatMapping = { publicEndpoint: '198.51.100.1:51820', natType: 'port_restricted_cone' }
  allocations: { relay: RelayEndpoint; ticket: string }[] = []
  allocateAnswer: (relay: RelayEndpoint, ticket: string) => Promise<number> = async () => 50001
  lines: string[] = []
  /** Every echo socket the agent opened (the last one is the live one). */
  echoes: FakeEcho[] = []
  /** openEcho throws this when set. */
  echoFails: Error | null = null
  /** The fine clock for round trips: moves with the manual clock plus whatever a test adds. */
  hrExtra = 0
  status: AgentStatus | null = null
  logs: string[] = []
  readonly log: Logger
  readonly agent: Agent

  constructor(
    readonly self: Member = member(),
    opts: Partial<AgentOptions> = {},
  ) {
    this.control = new FakeControl(self)
    this.log = createLogger('agent', 'debug', (l) => this.logs.push(l))
    this.agent = new Agent(
      { privateKey: self.privateKey, interfaceName: 'lrtest0', listenPort: 51820, party: { join: PARTY_ID }, timing: DEFAULT_TIMING, ...opts },
      {
        control: this.control,
        listRelays: async () => this.relays,
        detectNat: async () => this.nat,
        allocate: (relay, ticket) => {
          this.allocations.push({ relay, ticket })
          return this.allocateAnswer(relay, ticket)
        },
        createInterface: async (name) => (this.iface = new FakeInterface(name)),
        now: this.timers.now,
        timers: this.timers,
        log: this.log,
        say: (line) => this.lines.push(line),
        writeStatus: (s) => (this.status = s),
        openEcho: async (address, port, onMessage) => {
          if (this.echoFails) throw this.echoFails
          const e = new FakeEcho(address, port, onMessage)
          this.echoes.push(e)
          return e
        },
        hrNow: () => this.timers.t + this.hrExtra,
      },
    )
  }

  get wg(): FakeInterface {
    if (!this.iface) throw new Error('the agent has no interface yet')
    return this.iface
  }
  get now() {
    return this.timers.t
  }

  async start() {
    await this.agent.start()
    await settle()
  }

  /** Lets the agent's background promises (signals, relay requests, ALLOCATE) finish, then runs one poll. */
  async poll() {
    await settle()
    await this.agent.poll()
    await settle()
  }

  /** Moves the clock `ms` forward, firing the poll loop every POLL_MS and any timer that falls due. */
  async advance(ms: number) {
    const end = this.timers.t + ms
    while (this.timers.fireNext(end)) await settle()
    this.timers.t = end
    await settle()
  }

  get echo(): FakeEcho {
    const e = this.echoes.at(-1)
    if (!e) throw new Error('the agent opened no echo socket')
    return e
  }

  /** Path of the peer as the agent publishes it. */
  pathOf(peerId: string) {
    return this.status?.peers.find((p) => p.peer_id === peerId)?.path
  }
}

/** Runs queued microtasks and promise callbacks (several rounds: the agent chains a few). */
export async function settle(rounds = 5) {
  for (let i = 0; i < rounds; i++) await new Promise<void>((r) => setImmediate(r))
}

export { POLL_MS }
