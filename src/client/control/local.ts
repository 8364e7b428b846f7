/**
 * LocalControlPlane: the control plane for a LAN with no server, shared by the processes of one machine
 * through a directory (default $LANRAGE_HOME/local).
 *
 *   <dir>/discovery/<party_id>.json   written by the party's host: the party's name, subnet, limits — how
 *                                     another process finds a party to join. Deleted when the host leaves.
 *   <dir>/state/<peer_id>.json        one per process, written only by it: its in-memory registry (the parties
 *                                     it hosts and its own PeerInfo in each party it is in).
 *   <dir>/signals/<peer_id>/<id>.json signals queued for a peer; it drains them.
 *
 * Every file has exactly one writer, so no locks: writes go to a temp file that is fsynced and renamed over
 * the old one (atomic on POSIX), and a process's mutations within `flushDelayMs` are batched into one write,
 * skipped when the bytes equal the last write. Everyone rebuilds the view by reading the directory every
 * `pollIntervalMs` and emits the same events as the control server's `/ws`. A peer whose process is gone or
 * that has not heartbeaten for `staleAfterMs` is cleaned up (its state file removed; if it hosted a party,
 * the party ends). A state file that does not parse is reported and renamed to `*.corrupt-<time>`, never
 * silently dropped or overwritten.
 */
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { Value } from '@sinclair/typebox/value'
import { MAX_PEER_NAME, PeerName } from '../../shared/api.ts'
import { silentLogger, type Logger } from '../../shared/log.ts'
import { systemClock, type Clock } from '../../shared/clock.ts'
import { parsePublicKey } from '../wireguard/keys.ts'
import { ControlConflictError, ControlForbiddenError, ControlMissingError, ControlPlaneError, ControlRequestError } from './errors.ts'
import { Emitter } from './events.ts'
import { peerIdOf } from './remote.ts'
import type {
  ControlEventName,
  ControlEvents,
  ControlPlane,
  CreatePartyOptions,
  JoinPartyOptions,
  LeaveResult,
  PartyInfo,
  PeerEndpointInfo,
  PeerInfo,
  RelayOffer,
  Signal,
} from './types.ts'

/** Same rule as the control server: silent for 5 minutes = gone. */
export const DEFAULT_STALE_MS = 5 * 60_000
export const DEFAULT_POLL_MS = 200
export const DEFAULT_FLUSH_MS = 50
export const LOCAL_SUBNET = '10.66.0.0/16'
export const DEFAULT_MAX_PEERS = 16

/** The party as the control server would describe it, without its members, plus the password check. */
interface DiscoveryFile extends Omit<PartyInfo, 'peers'> {
  version: 1
  /** sha256(party_id + ':' + password), hex; null = open party. */
  password_hash: string | null
}

interface StateFile {
  version: 1
  peer_id: string
  pid: number
  /** ISO time of the last write: a process alive but stuck shows here. */
  updated_at: string
  /** Parties this peer is in, with its own record there. */
  memberships: Record<string, PeerInfo>
}

/** The rebuilt view of the directory. */
interface View {
  parties: Map<string, PartyInfo>
}

export interface LocalControlPlaneOptions {
  dir: string
  /** base64 WireGuard public key: this peer's identity (peer_id derives from it as on the server). */
  publicKey: string
  pollIntervalMs?: number
  flushDelayMs?: number
  staleAfterMs?: number
  clock?: Clock
  log?: Logger
  /** Is this process alive? Default: signal 0. Injected by tests. */
  isAlive?: (pid: number) => boolean
}

export class LocalStateError extends ControlPlaneError {
  constructor(message: string, options?: ErrorOptions) {
    super('LOCAL_STATE', message, 500, undefined, options)
  }
}

const hashPassword = (partyId: string, password: string) => createHash('sha256').update(`${partyId}:${password}`).digest('hex')

function defaultIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** 10.66.0.0/16 → the n-th host address (n ≥ 1), skipping .0 and .255 in the last octet. */
function nthAddress(n: number): string {
  const third = Math.floor((n - 1) / 254)
  const fourth = ((n - 1) % 254) + 1
  return `10.66.${third}.${fourth}`
}

export class LocalControlPlane implements ControlPlane {
  readonly peerId: string
  private readonly dir: string
  private readonly stateFile: string
  private readonly events = new Emitter<ControlEvents>()
  private readonly clock: Clock
  private readonly log: Logger
  private readonly isAlive: (pid: number) => boolean
  private readonly memberships = new Map<string, PeerInfo>()
  private view: View = { parties: new Map() }
  private flushTimer: ReturnType<typeof setTimeout> | undefined
  private flushing: Promise<void> = Promise.resolve()
  private lastWritten = ''
  private pollTimer: ReturnType<typeof setInterval> | undefined
  private polling: Promise<void> | undefined
  private closed = false
  private tmpCounter = 0
  /** Writes that actually reached the disk (batched and deduplicated), for tests and metrics. */
  writes = 0
  /** Corrupt files moved aside during this process's life: [original, moved-to]. */
  readonly corrupt: [string, string][] = []

  private constructor(private readonly opts: LocalControlPlaneOptions) {
    parsePublicKey(opts.publicKey)
    this.peerId = peerIdOf(new Uint8Array(Buffer.from(opts.publicKey.trim(), 'base64')))
    this.dir = opts.dir
    this.stateFile = join(opts.dir, 'state', `${this.peerId}.json`)
    this.clock = opts.clock ?? systemClock
    this.log = (opts.log ?? silentLogger).child('local-control')
    this.isAlive = opts.isAlive ?? defaultIsAlive
  }

  /**
   * Opens the directory, reloads this peer's previous memberships from its state file (a restart keeps
   * them), and starts following the other processes.
   */
  static async open(opts: LocalControlPlaneOptions): Promise<LocalControlPlane> {
    const c = new LocalControlPlane(opts)
    for (const d of ['discovery', 'state', 'signals']) await mkdir(join(c.dir, d), { recursive: true })
    const own = await c.readJson<StateFile>(c.stateFile)
    if (own && own.peer_id === c.peerId) for (const [pid, info] of Object.entries(own.memberships ?? {})) c.memberships.set(pid, info)
    if (c.memberships.size) c.scheduleFlush()
    await c.poll()
    // A failing background poll (directory gone, permissions) is reported, never an unhandled rejection.
    c.pollTimer = setInterval(() => c.poll().catch((e) => c.events.emit('error', { where: 'local poll', error: e as Error })), opts.pollIntervalMs ?? DEFAULT_POLL_MS)
    return c
  }

  on<K extends ControlEventName>(type: K, fn: (e: ControlEvents[K]) => void): () => void {
    return this.events.on(type, fn)
  }
  next<K extends ControlEventName>(type: K, pred?: (e: ControlEvents[K]) => boolean, timeoutMs?: number): Promise<ControlEvents[K]> {
    return this.events.next(type, pred, timeoutMs)
  }

  // ---- files

  /** Reads a JSON file; undefined if absent. A file that does not parse is reported and moved aside. */
  private async readJson<T>(path: string): Promise<T | undefined> {
    let text: string
    try {
      text = await readFile(path, 'utf8')
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw new LocalStateError(`cannot read ${path}: ${(e as Error).message}`, { cause: e })
    }
    try {
      const v = JSON.parse(text)
      if (typeof v !== 'object' || v === null || v.version !== 1) throw new Error('not a version 1 LANrage state object')
      return v as T
    } catch (e) {
      const aside = `${path}.corrupt-${this.clock.now()}`
      await rename(path, aside).catch(() => {})
      this.corrupt.push([path, aside])
      const err = new LocalStateError(`state file ${path} is corrupt (${(e as Error).message}); moved it to ${aside}`)
      this.log.warn('corrupt state file moved aside', { path, aside, error: e as Error })
      this.events.emit('error', { where: 'local state', error: err })
      return undefined
    }
  }

  /** temp file + fsync + rename: readers see the old or the new file, never half of one. */
  private async writeAtomic(path: string, text: string): Promise<void> {
    const tmp = `${path}.tmp-${process.pid}-${++this.tmpCounter}`
    const fh = await open(tmp, 'w', 0o600)
    try {
      await fh.writeFile(text)
      await fh.sync()
    } finally {
      await fh.close()
    }
    await rename(tmp, path).catch(async (e) => {
      await rm(tmp, { force: true })
      throw e
    })
  }

  private stateText(): string {
    const s: StateFile = {
      version: 1,
      peer_id: this.peerId,
      pid: process.pid,
      updated_at: '',
      memberships: Object.fromEntries(this.memberships),
    }
    return JSON.stringify(s)
  }

  /** Batches mutations: one write per `flushDelayMs`, however many changes happened in it. */
  private scheduleFlush(): void {
    if (this.flushTimer || this.closed) return
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined
      this.flush().catch((e) => this.events.emit('error', { where: 'local state write', error: e as Error }))
    }, this.opts.flushDelayMs ?? DEFAULT_FLUSH_MS)
  }

  /** Writes the state file now if it changed since the last write (serialized: one write at a time). */
  flush(): Promise<void> {
    clearTimeout(this.flushTimer)
    this.flushTimer = undefined
    // One failed write must not poison the chain: the next flush tries again with the current state.
    this.flushing = this.flushing.catch(() => {}).then(async () => {
      const body = this.stateText()
      if (body === this.lastWritten) return
      const withTime = body.replace('"updated_at":""', `"updated_at":${JSON.stringify(new Date(this.clock.now()).toISOString())}`)
      await this.writeAtomic(this.stateFile, withTime)
      this.lastWritten = body
      this.writes++
    })
    return this.flushing
  }

  // ---- the shared view

  /** Rebuilds the view from the directory, cleans up stale peers, emits what changed. */
  poll(): Promise<void> {
    this.polling ??= this.doPoll().finally(() => (this.polling = undefined))
    return this.polling
  }

  private async doPoll(): Promise<void> {
    if (this.closed) return
    const now = this.clock.now()
    const stale = this.opts.staleAfterMs ?? DEFAULT_STALE_MS
    const parties = new Map<string, PartyInfo>()
    /** Peers removed for silence here, or whose state file is gone (another process cleaned up after it). */
    const timedOut = new Set<string>()
    const present = new Set<string>()
    const discoveryDir = join(this.dir, 'discovery')
    for (const f of await readdir(discoveryDir).catch(() => [] as string[])) {
      if (!f.endsWith('.json')) continue
      const d = await this.readJson<DiscoveryFile>(join(discoveryDir, f))
      if (!d) continue
      parties.set(d.party_id, { party_id: d.party_id, name: d.name, host_id: d.host_id, created_at: d.created_at, subnet: d.subnet, max_peers: d.max_peers, peers: {} })
    }
    const stateDir = join(this.dir, 'state')
    for (const f of await readdir(stateDir).catch(() => [] as string[])) {
      if (!f.endsWith('.json')) continue
      const path = join(stateDir, f)
      const s = f === `${this.peerId}.json` ? this.ownState() : await this.readJson<StateFile>(path)
      if (!s) continue
      const dead = s.peer_id !== this.peerId && (!this.isAlive(s.pid) || now - Date.parse(s.updated_at) > stale)
      if (dead) {
        // Its writer is gone: clean up after it, including parties it hosted.
        this.log.info('removing stale peer', { peer_id: s.peer_id, pid: s.pid })
        await rm(path, { force: true })
        timedOut.add(s.peer_id)
        for (const [pid, p] of parties) if (p.host_id === s.peer_id) await rm(join(discoveryDir, `${pid}.json`), { force: true }).then(() => parties.delete(pid))
        continue
      }
      present.add(s.peer_id)
      for (const [pid, info] of Object.entries(s.memberships ?? {})) {
        const party = parties.get(pid)
        if (!party) continue
        if (now - Date.parse(info.last_seen) > stale && s.peer_id !== this.peerId) {
          timedOut.add(s.peer_id)
          continue
        }
        // Files written before members had names carry none.
        party.peers[s.peer_id] = { ...info, name: info.name ?? null }
      }
    }
    // A party whose host is no longer a member has ended (the seed's rule). The host removes the discovery
    // file itself right after leaving; if it never does (it stopped heartbeating), the file goes once stale.
    for (const [pid, p] of parties) {
      if (p.peers[p.host_id]) continue
      parties.delete(pid)
      if (now - Date.parse(p.created_at) > stale) await rm(join(discoveryDir, `${pid}.json`), { force: true })
    }
    this.resolveAddressClashes(parties)
    for (const p of this.view.parties.values()) for (const id of Object.keys(p.peers)) if (!present.has(id)) timedOut.add(id)
    this.diff(this.view, { parties }, timedOut)
    this.view = { parties }
    await this.deliverSignals()
  }

  private ownState(): StateFile {
    return { version: 1, peer_id: this.peerId, pid: process.pid, updated_at: new Date(this.clock.now()).toISOString(), memberships: Object.fromEntries(this.memberships) }
  }

  /**
   * Two processes that joined at the same moment may have picked the same address. The later joiner
   * (ties: the larger peer id) moves to the lowest free one; only it writes, so the others just follow.
   */
  private resolveAddressClashes(parties: Map<string, PartyInfo>): void {
    for (const [pid, party] of parties) {
      const mine = party.peers[this.peerId]
      if (!mine) continue
      const clash = Object.values(party.peers).find(
        (p) => p.peer_id !== this.peerId && p.virtual_ip === mine.virtual_ip && (p.joined_at < mine.joined_at || (p.joined_at === mine.joined_at && p.peer_id < this.peerId)),
      )
      if (!clash) continue
      const moved = { ...mine, virtual_ip: this.freeAddress(party) }
      this.log.info('virtual address clash, moving', { party_id: pid, from: mine.virtual_ip, to: moved.virtual_ip })
      party.peers[this.peerId] = moved
      this.memberships.set(pid, moved)
      this.scheduleFlush()
    }
  }

  private freeAddress(party: PartyInfo): string {
    const used = new Set(Object.values(party.peers).map((p) => p.virtual_ip))
    for (let n = 1; n <= 65_000; n++) if (!used.has(nthAddress(n))) return nthAddress(n)
    throw new ControlConflictError(`party ${party.party_id} has no free address`, 'PARTY_FULL')
  }

  private diff(before: View, after: View, timedOut: Set<string>): void {
    for (const [pid, old] of before.parties) {
      const now = after.parties.get(pid)
      if (!now) {
        if (old.peers[this.peerId] || this.memberships.has(pid)) this.memberships.delete(pid), this.scheduleFlush()
        this.events.emit('party_deleted', { party_id: pid, reason: timedOut.has(old.host_id) ? 'timeout' : 'host_left' })
        continue
      }
      for (const [peerId, p] of Object.entries(old.peers)) {
        const q = now.peers[peerId]
        if (!q) this.events.emit('peer_left', { party_id: pid, peer_id: peerId, reason: timedOut.has(peerId) ? 'timeout' : 'left' })
        else if (q.name !== p.name || q.virtual_ip !== p.virtual_ip || q.public_endpoint !== p.public_endpoint || q.nat_type !== p.nat_type || q.local_endpoints.join() !== p.local_endpoints.join())
          this.events.emit('peer_updated', { party_id: pid, peer: q })
      }
    }
    for (const [pid, now] of after.parties) {
      const old = before.parties.get(pid)
      for (const [peerId, q] of Object.entries(now.peers)) if (!old?.peers[peerId] && peerId !== this.peerId) this.events.emit('peer_joined', { party_id: pid, peer: q })
    }
  }

  // ---- ControlPlane

  async register(): Promise<string> {
    return this.peerId
  }

  private record(virtualIp: string, info: PeerEndpointInfo | undefined, joinedAt: string): PeerInfo {
    checkPeerName(info, 'peer_info')
    return {
      peer_id: this.peerId,
      name: info?.name ?? null,
      public_key: this.opts.publicKey.trim(),
      virtual_ip: virtualIp,
      public_endpoint: info?.public_endpoint ?? null,
      local_endpoints: info?.local_endpoints ?? [],
      nat_type: info?.nat_type ?? 'unknown',
      last_seen: new Date(this.clock.now()).toISOString(),
      joined_at: joinedAt,
    }
  }

  async createParty(name: string, o: CreatePartyOptions = {}): Promise<PartyInfo> {
    if (typeof name !== 'string' || !name.trim() || name.length > 64) throw new ControlRequestError('create party: name must be 1-64 characters', 400, 'VALIDATION')
    const max = o.max_peers ?? DEFAULT_MAX_PEERS
    if (!Number.isInteger(max) || max < 2 || max > 254) throw new ControlRequestError('create party: max_peers must be 2-254', 400, 'VALIDATION')
    const partyId = randomBytes(6).toString('hex')
    const now = new Date(this.clock.now()).toISOString()
    const d: DiscoveryFile = {
      version: 1,
      party_id: partyId,
      name: name.trim(),
      host_id: this.peerId,
      created_at: now,
      subnet: LOCAL_SUBNET,
      max_peers: max,
      password_hash: o.password ? hashPassword(partyId, o.password) : null,
    }
    this.memberships.set(partyId, this.record(nthAddress(1), o.peer_info, now))
    // Our membership reaches the disk before the party is discoverable, so no one sees a host-less party.
    await this.flush()
    await this.writeAtomic(join(this.dir, 'discovery', `${partyId}.json`), JSON.stringify(d))
    await this.poll()
    return this.getParty(partyId)
  }

  async joinParty(partyId: string, o: JoinPartyOptions = {}): Promise<PartyInfo> {
    await this.poll()
    const d = await this.readJson<DiscoveryFile>(join(this.dir, 'discovery', `${safeId(partyId)}.json`))
    const party = this.view.parties.get(partyId)
    if (!d || !party) throw new ControlMissingError(`join party ${partyId}: no such party in ${this.dir}`, 'PARTY_NOT_FOUND')
    if (d.password_hash && (!o.password || hashPassword(partyId, o.password) !== d.password_hash))
      throw new ControlForbiddenError(`join party ${partyId}: wrong password`, 'WRONG_PASSWORD')
    const existing = this.memberships.get(partyId)
    if (!existing && Object.keys(party.peers).length >= d.max_peers) throw new ControlConflictError(`join party ${partyId}: the party is full (${d.max_peers} peers)`, 'PARTY_FULL')
    // A rejoin keeps its address (as on the server).
    const vip = existing?.virtual_ip ?? this.freeAddress(party)
    this.memberships.set(partyId, this.record(vip, { ...existing, ...o.peer_info }, existing?.joined_at ?? new Date(this.clock.now()).toISOString()))
    await this.flush()
    await this.poll()
    return this.getParty(partyId)
  }

  async leaveParty(partyId: string): Promise<LeaveResult> {
    const party = this.view.parties.get(partyId)
    if (!this.memberships.has(partyId)) throw new ControlMissingError(`leave party ${partyId}: not a member`, 'NOT_A_MEMBER')
    this.memberships.delete(partyId)
    await this.flush()
    if (party?.host_id === this.peerId) {
      await rm(join(this.dir, 'discovery', `${safeId(partyId)}.json`), { force: true })
      await this.poll()
      return 'party_deleted'
    }
    await this.poll()
    return 'left'
  }

  private mine(partyId: string, what: string): PeerInfo {
    const m = this.memberships.get(partyId)
    if (!m) throw new ControlMissingError(`${what}: not a member of party ${partyId}`, 'NOT_A_MEMBER')
    return m
  }

  async updatePeer(partyId: string, info: PeerEndpointInfo): Promise<PeerInfo> {
    const m = this.mine(partyId, 'update peer')
    checkPeerName(info, 'update peer')
    const next: PeerInfo = { ...m, ...definedOnly(info), last_seen: new Date(this.clock.now()).toISOString() }
    this.memberships.set(partyId, next)
    this.scheduleFlush()
    return next
  }

  async heartbeat(partyId: string, info?: Pick<PeerEndpointInfo, 'public_endpoint' | 'nat_type'>): Promise<void> {
    await this.updatePeer(partyId, info ?? {})
  }

  async getParty(partyId: string): Promise<PartyInfo> {
    const p = this.view.parties.get(partyId)
    if (!p) throw new ControlMissingError(`get party ${partyId}: no such party`, 'PARTY_NOT_FOUND')
    if (!this.memberships.has(partyId)) throw new ControlForbiddenError(`get party ${partyId}: not a member`, 'NOT_A_MEMBER')
    const peers = { ...p.peers }
    peers[this.peerId] = this.memberships.get(partyId)!
    return structuredClone({ ...p, peers })
  }

  async getPeers(partyId: string): Promise<Record<string, PeerInfo>> {
    return (await this.getParty(partyId)).peers
  }

  async discoverPeer(partyId: string, peerId: string): Promise<PeerInfo> {
    const p = (await this.getParty(partyId)).peers[peerId]
    if (!p) throw new ControlMissingError(`discover peer ${peerId}: not in party ${partyId}`, 'PEER_NOT_FOUND')
    return p
  }

  /** Parties other processes on this machine have published (what a launcher lists to offer "join"). */
  async discoverParties(): Promise<Omit<PartyInfo, 'peers'>[]> {
    await this.poll()
    return [...this.view.parties.values()].map(({ peers: _p, ...rest }) => rest)
  }

  async sendSignal(partyId: string, toPeerId: string, type: string, data: unknown): Promise<Signal> {
    this.mine(partyId, 'send signal')
    if (!this.view.parties.get(partyId)?.peers[toPeerId]) throw new ControlMissingError(`send signal: peer ${toPeerId} is not in party ${partyId}`, 'PEER_NOT_FOUND')
    const s: Signal = { id: randomBytes(8).toString('hex'), party_id: partyId, from_peer_id: this.peerId, to_peer_id: toPeerId, type, data, created_at: new Date(this.clock.now()).toISOString() }
    const dir = join(this.dir, 'signals', safeId(toPeerId))
    await mkdir(dir, { recursive: true })
    await this.writeAtomic(join(dir, `${this.clock.now()}-${s.id}.json`), JSON.stringify({ version: 1, ...s }))
    return s
  }

  private async drain(): Promise<Signal[]> {
    const dir = join(this.dir, 'signals', this.peerId)
    const out: Signal[] = []
    for (const f of (await readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith('.json')).sort()) {
      const s = await this.readJson<Signal & { version: 1 }>(join(dir, f))
      await rm(join(dir, f), { force: true })
      if (s) {
        const { version: _v, ...signal } = s
        out.push(signal)
      }
    }
    return out
  }

  private async deliverSignals(): Promise<void> {
    if (!this.pollTimer) return // before open() finished; getSignals() drains on demand
    for (const s of await this.drain()) this.events.emit('signal', { party_id: s.party_id, signal: s })
  }

  async getSignals(partyId: string): Promise<Signal[]> {
    this.mine(partyId, 'get signals')
    return (await this.drain()).filter((s) => s.party_id === partyId)
  }

  async requestRelay(partyId: string, _peerId: string): Promise<RelayOffer> {
    throw new ControlRequestError(`relay for party ${partyId}: a local control plane has no relays (peers on one LAN connect directly)`, 501, 'NO_RELAY')
  }

  /** Stops following, writes pending state. Memberships stay on disk (a restart resumes them) until left. */
  async close(): Promise<void> {
    if (this.closed) return
    clearInterval(this.pollTimer)
    await this.polling
    await this.flush()
    this.closed = true
  }
}

/** The same rule as the control server's: a display name is printable text of at most MAX_PEER_NAME characters. */
function checkPeerName(info: PeerEndpointInfo | undefined, what: string): void {
  const name = info?.name
  if (name !== undefined && name !== null && !Value.Check(PeerName, name))
    throw new ControlRequestError(`${what}: name must be 1-${MAX_PEER_NAME} printable characters, not blank`, 422, 'VALIDATION')
}

function definedOnly(i: PeerEndpointInfo): PeerEndpointInfo {
  return Object.fromEntries(Object.entries(i).filter(([, v]) => v !== undefined)) as PeerEndpointInfo
}

/** Party and peer ids become file names: only hex passes. */
function safeId(id: string): string {
  if (!/^[0-9a-f]{1,32}$/.test(id)) throw new ControlRequestError(`${JSON.stringify(id)} is not a party or peer id (hex)`, 400, 'VALIDATION')
  return id
}
