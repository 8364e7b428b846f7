/**
 * The control server's behaviour, independent of HTTP: auth, parties, heartbeats, signals, relays, tickets,
 * cleanup. Routes (app.ts) validate shapes and call these methods; every rule about who may do what lives here.
 *
 * State: the database is the truth. Two things are also kept in memory because they are on the hot path:
 * the active memberships with their last_seen (heartbeats update memory and are flushed in batches, so a
 * heartbeat costs no disk write; a crash loses at most heartbeatFlushMs of last_seen, never a membership) and
 * a token cache (hash → peer, expiry). Every change commits first (a synchronous IMMEDIATE transaction) and is
 * pushed to the members' WebSockets right after.
 */
import { ed25519, x25519 } from '@noble/curves/ed25519.js'
import { randomBytes } from 'node:crypto'
import type { Db } from '../db/client.ts'
import { ControlRepo, type MembershipRow, type PartyRow, type RelayRow, type SignalRow } from '../db/control/repo.ts'
import { isUniqueViolation } from '../db/errors.ts'
import type { Static } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import {
  IpAddress,
  MEMBER_SIGNAL_TYPES,
  PunchInput,
  SERVER_SIGNAL_TYPES,
  type LeaveResult,
  type LiveMessage,
  type NatType,
  type PartyDeletedReason,
  type PartyInfo,
  type PeerEndpointInfo,
  type PeerInfo,
  type PeerLeftReason,
  type KnownSignal,
  type PunchData,
  type RelayInfo,
  type RelayOffer,
} from '../shared/api.ts'
import type { Clock } from '../shared/clock.ts'
import type { Logger } from '../shared/log.ts'
import { signTicket, toBase64Url } from '../shared/wire/ticket.ts'
import type { ControlConfig } from './config.ts'
import { b64, decodeKey, hashToken, newToken, peerIdOf, proofChecker, randomHex, sameBytes } from './crypto.ts'
import { ControlError, conflict, forbidden, notFound, RateLimitedError, schemaError, unauthorized } from './errors.ts'
import { Hub } from './hub.ts'
import { FairGate, FixedWindowLimiter, GateFullError } from './limits.ts'
import { allocateIp, parseSubnet, type Subnet } from './ip.ts'

export interface ControlDeps {
  db: Db
  clock: Clock
  logger: Logger
  config: ControlConfig
}

interface Member {
  lastSeen: number
  publicEndpoint: string | null
  natType: NatType
}

/** argon2id at OWASP's minimum (19 MiB, 2 passes): party passwords are short-lived, joins should stay quick. */
const PASSWORD_PARAMS = { algorithm: 'argon2id', memoryCost: 19_456, timeCost: 2 } as const
const iso = (ms: number) => new Date(ms).toISOString()

/** The membership columns a peer reported (absent fields stay as they are). */
function reported(info: PeerEndpointInfo): Partial<Pick<MembershipRow, 'name' | 'publicEndpoint' | 'localEndpoints' | 'natType'>> {
  return {
    ...(info.name !== undefined ? { name: info.name } : {}),
    ...(info.public_endpoint !== undefined ? { publicEndpoint: info.public_endpoint } : {}),
    ...(info.local_endpoints !== undefined ? { localEndpoints: info.local_endpoints } : {}),
    ...(info.nat_type !== undefined ? { natType: info.nat_type } : {}),
  }
}
function newMembership(partyId: string, peerId: string, virtualIp: string, info: PeerEndpointInfo, now: number): MembershipRow {
  return {
    partyId,
    peerId,
    virtualIp,
    name: info.name ?? null,
    publicEndpoint: info.public_endpoint ?? null,
    localEndpoints: info.local_endpoints ?? [],
    natType: info.nat_type ?? 'unknown',
    joinedAt: now,
    lastSeen: now,
    leftAt: null,
  }
}

export class ControlService {
  readonly repo: ControlRepo
  readonly hub: Hub
  readonly clock: Clock
  readonly log: Logger
  readonly config: ControlConfig
  readonly subnet: Subnet
  readonly keys: { x25519Secret: Uint8Array; x25519Public: Uint8Array; ed25519Secret: Uint8Array; ed25519Public: Uint8Array }

  private readonly expectedProof: (clientPublic: Uint8Array, challenge: Uint8Array) => Uint8Array | undefined
  /** partyId → peerId → hot member state. Holds exactly the active memberships. */
  private readonly members = new Map<string, Map<string, Member>>()
  /** `${partyId} ${peerId}` of members whose last_seen changed since the last flush. */
  private readonly dirty = new Set<string>()
  private readonly tokenCache = new Map<string, { peerId: string; expiresAt: number }>()
  private readonly registrations: FixedWindowLimiter
  private readonly wrongByPeer: FixedWindowLimiter
  private readonly wrongByParty: FixedWindowLimiter
  /** Password hashing (argon2id, 19 MiB each) runs at most passwordHashConcurrency at once. */
  readonly passwordGate: FairGate
  /** peerId → its party creates still in progress (hashing a password). */
  private readonly creating = new Map<string, number>()
  /** partyId → joins whose password is being checked. */
  private readonly joining = new Map<string, number>()

  constructor(deps: ControlDeps) {
    this.repo = new ControlRepo(deps.db)
    this.hub = new Hub(deps.config.maxSocketsPerToken)
    this.registrations = new FixedWindowLimiter(deps.config.registerRatePerMin)
    this.wrongByPeer = new FixedWindowLimiter(deps.config.wrongPasswordsPerPeer)
    this.wrongByParty = new FixedWindowLimiter(deps.config.wrongPasswordsPerParty)
    this.passwordGate = new FairGate(deps.config.passwordHashConcurrency)
    this.clock = deps.clock
    this.log = deps.logger
    this.config = deps.config
    const subnet = parseSubnet(deps.config.subnet)
    if (!subnet) throw new ControlError('INVALID_CONFIG', `subnet ${JSON.stringify(deps.config.subnet)} is not an IPv4 CIDR with prefix 8..30`)
    this.subnet = subnet
    this.keys = this.loadKeys()
    this.expectedProof = proofChecker(this.keys.x25519Secret, this.keys.x25519Public)
    for (const m of this.repo.allActiveMemberships())
      this.memberMap(m.partyId, true).set(m.peerId, { lastSeen: m.lastSeen, publicEndpoint: m.publicEndpoint, natType: m.natType })
  }

  /** The server's long-term keys: generated on first start, then always read back from the database. */
  private loadKeys() {
    const now = this.clock.now()
    const get = (name: 'x25519' | 'ed25519', make: () => { secretKey: Uint8Array; publicKey: Uint8Array }) => {
      let row = this.repo.serverKey(name)
      if (!row) {
        const k = make()
        this.repo.insertServerKey({ name, secretKey: b64(k.secretKey), publicKey: b64(k.publicKey), createdAt: now })
        row = this.repo.serverKey(name)!
        this.log.info('generated server key', { name, public_key: row.publicKey })
      }
      return { secret: decodeKey(row.secretKey)!, public: decodeKey(row.publicKey)! }
    }
    const x = get('x25519', () => x25519.keygen())
    const e = get('ed25519', () => ed25519.keygen())
    return { x25519Secret: x.secret, x25519Public: x.public, ed25519Secret: e.secret, ed25519Public: e.public }
  }

  private memberMap(partyId: string, create: true): Map<string, Member>
  private memberMap(partyId: string, create?: false): Map<string, Member> | undefined
  private memberMap(partyId: string, create = false) {
    let m = this.members.get(partyId)
    if (!m && create) this.members.set(partyId, (m = new Map()))
    return m
  }

  // ------------------------------------------------------------------ auth

  /** Fixed one-minute window per source address over challenge + register (429 beyond the limit). */
  checkRate(ip: string | undefined): void {
    const key = ip ?? 'unknown'
    const retry = this.registrations.take(key, this.clock.now())
    if (retry !== undefined) throw new RateLimitedError(`too many registration attempts from ${key}; retry in ${retry} s`, retry)
  }

  /** Hashes or verifies a party password through the gate (bounded concurrency, callers served in turn). */
  private hashing<T>(peerId: string, task: () => Promise<T>): Promise<T> {
    return this.passwordGate.run(peerId, task).catch((e) => {
      if (e instanceof GateFullError) throw new RateLimitedError('the server is busy checking passwords; retry in a second', 1, 'BUSY')
      throw e
    })
  }

  /**
   * Checks a join's password. Wrong guesses are limited per guesser (its attempts in progress count, so parallel
   * guesses cannot all pass a check made before any finished) and per party (wrong ones; attempts in progress on
   * one party are bounded by its size, so a burst of real joiners is never mistaken for guessing): 429 with
   * Retry-After, before any hash is spent. A right password counts against nobody.
   */
  private async checkPassword(peerId: string, party: PartyRow, password: string | undefined): Promise<void> {
    const partyId = party.partyId
    if (!password) throw forbidden('WRONG_PASSWORD', `party ${partyId} needs a password`)
    const now = this.clock.now()
    const mine = this.wrongByPeer.check(peerId, now)
    if (mine !== undefined) throw new RateLimitedError(`too many wrong passwords from you; retry in ${mine} s`, mine)
    const theirs = this.wrongByParty.check(partyId, now)
    if (theirs !== undefined) throw new RateLimitedError(`too many wrong passwords for party ${partyId}; retry in ${theirs} s`, theirs)
    const inFlight = this.joining.get(partyId) ?? 0
    if (inFlight >= party.maxPeers) throw new RateLimitedError(`${inFlight} joins of party ${partyId} are being checked; retry in a second`, 1, 'BUSY')
    this.wrongByPeer.take(peerId, now)
    this.joining.set(partyId, inFlight + 1)
    let ok = false
    try {
      ok = await this.hashing(peerId, () => Bun.password.verify(password, party.passwordHash!))
    } finally {
      const n = this.joining.get(partyId)! - 1
      if (n) this.joining.set(partyId, n)
      else this.joining.delete(partyId)
      if (ok) this.wrongByPeer.refund(peerId)
      else this.wrongByParty.take(partyId, this.clock.now())
    }
    if (!ok) throw forbidden('WRONG_PASSWORD', `wrong password for party ${partyId}`)
  }

  challenge(publicKey: string) {
    const key = decodeKey(publicKey)
    if (!key) throw new ControlError('INVALID_KEY', 'public_key must be standard base64 of 32 bytes', 422)
    const challenge = b64(randomBytes(32))
    const expiresAt = this.clock.now() + this.config.challengeTtlS * 1000
    // Keys are kept in canonical base64, so two spellings of one key (non-zero padding bits) are one identity.
    this.repo.insertChallenge(challenge, b64(key), expiresAt)
    return { challenge, server_public_key: b64(this.keys.x25519Public), expires_at: iso(expiresAt) }
  }

  register(input: { public_key: string; challenge: string; proof: string }) {
    const pub = decodeKey(input.public_key)
    if (!pub) throw new ControlError('INVALID_KEY', 'public_key must be standard base64 of 32 bytes', 422)
    const proof = decodeKey(input.proof)
    if (!proof) throw new ControlError('INVALID_PROOF', 'proof must be standard base64 of 32 bytes (HMAC-SHA256)', 422)
    const now = this.clock.now()
    // Single use: the challenge is deleted by this lookup whether the proof is right or not.
    const ch = this.repo.takeChallenge(input.challenge)
    if (!ch) throw unauthorized('challenge is unknown or was already used', 'INVALID_CHALLENGE')
    if (ch.expiresAt <= now) throw unauthorized('challenge has expired; ask for a new one', 'CHALLENGE_EXPIRED')
    if (ch.publicKey !== b64(pub)) throw unauthorized('challenge was issued for a different public key', 'INVALID_CHALLENGE')
    const want = this.expectedProof(pub, decodeKey(input.challenge)!)
    if (!want || !sameBytes(want, proof)) throw unauthorized('proof does not match: it must be HMAC-SHA256(X25519(client key, server key), challenge)', 'INVALID_PROOF')
    const peerId = peerIdOf(pub)
    return this.repo.tx(() => {
      this.repo.upsertPeer(peerId, b64(pub), now)
      return this.issueToken(peerId, now)
    })
  }

  private issueToken(peerId: string, now: number) {
    const token = newToken()
    const hash = hashToken(token)
    const expiresAt = now + this.config.tokenTtlS * 1000
    this.repo.insertToken(hash, peerId, now, expiresAt)
    this.tokenCache.set(hash, { peerId, expiresAt })
    return { token, peer_id: peerId, expires_at: iso(expiresAt) }
  }

  /** Bearer token → peer_id; 401 for a missing, unknown, revoked or expired token. */
  authenticate(authorization: string | null | undefined, otherToken?: string): string {
    return this.authenticateToken(authorization, otherToken).peerId
  }

  /**
   * Like authenticate, also returning the token's hash and expiry (a WebSocket remembers them, so a revoke,
   * refresh or expiry can close it). `otherToken` is a token passed another way (WebSocket subprotocol, query);
   * an Authorization header wins.
   */
  authenticateToken(authorization: string | null | undefined, otherToken?: string): { peerId: string; tokenHash: string; expiresAt: number } {
    let token = otherToken
    if (authorization) {
      const m = /^Bearer\s+(\S+)$/i.exec(authorization)
      if (!m) throw unauthorized('Authorization header must be "Bearer <token>"')
      token = m[1]
    }
    if (!token) throw unauthorized('missing bearer token (Authorization: Bearer <token>)')
    const tokenHash = hashToken(token)
    return { ...this.tokenEntry(tokenHash), tokenHash }
  }

  /** Whether a token (by hash) is still valid: a WebSocket checks its own before acting on a message. */
  tokenValid(hash: string): boolean {
    try {
      this.tokenEntry(hash)
      return true
    } catch {
      return false
    }
  }

  private tokenEntry(hash: string): { peerId: string; expiresAt: number } {
    let t = this.tokenCache.get(hash)
    if (!t) {
      const row = this.repo.token(hash)
      if (row) this.tokenCache.set(hash, (t = { peerId: row.peerId, expiresAt: row.expiresAt }))
    }
    if (!t) throw unauthorized('token is unknown or revoked', 'INVALID_TOKEN')
    if (t.expiresAt <= this.clock.now()) throw unauthorized('token has expired; refresh it or register again', 'TOKEN_EXPIRED')
    return t
  }

  /** Issues a new token and revokes the presented one, closing the WebSockets opened with it. */
  refresh(authorization: string | null | undefined) {
    const { peerId, tokenHash: old } = this.authenticateToken(authorization)
    const out = this.repo.tx(() => {
      this.repo.deleteToken(old)
      this.tokenCache.delete(old)
      return this.issueToken(peerId, this.clock.now())
    })
    this.hub.closeToken(peerId, old, 'token refreshed')
    return out
  }

  /** Ends a token, and the WebSockets opened with it (close code 4001). */
  revoke(authorization: string | null | undefined) {
    const { peerId, tokenHash } = this.authenticateToken(authorization)
    this.repo.deleteToken(tokenHash)
    this.tokenCache.delete(tokenHash)
    this.hub.closeToken(peerId, tokenHash, 'token revoked')
    return { status: 'revoked' as const }
  }

  // ------------------------------------------------------------------ parties

  private peerInfo(row: MembershipRow & { publicKey: string }): PeerInfo {
    const hot = this.members.get(row.partyId)?.get(row.peerId)
    return {
      peer_id: row.peerId,
      name: row.name,
      public_key: row.publicKey,
      virtual_ip: row.virtualIp,
      public_endpoint: row.publicEndpoint,
      local_endpoints: row.localEndpoints,
      nat_type: row.natType,
      last_seen: iso(Math.max(row.lastSeen, hot?.lastSeen ?? 0)),
      joined_at: iso(row.joinedAt),
    }
  }

  private partyInfo(party: PartyRow): PartyInfo {
    const peers: Record<string, PeerInfo> = {}
    for (const m of this.repo.members(party.partyId)) peers[m.peerId] = this.peerInfo(m)
    return {
      party_id: party.partyId,
      name: party.name,
      host_id: party.hostId,
      created_at: iso(party.createdAt),
      subnet: party.subnet,
      max_peers: party.maxPeers,
      peers,
    }
  }

  private memberInfo(partyId: string, peerId: string): PeerInfo {
    const row = this.repo.membership(partyId, peerId)
    const peer = this.repo.peer(peerId)
    if (!row || !peer || row.leftAt !== null) throw notFound('PEER_NOT_FOUND', `peer ${peerId} is not a member of party ${partyId}`)
    return this.peerInfo({ ...row, publicKey: peer.publicKey })
  }

  /** 404 for an unknown party, 403 when `peerId` is not one of its members. */
  private requireMember(partyId: string, peerId: string): PartyRow {
    const party = this.repo.party(partyId)
    if (!party) throw notFound('PARTY_NOT_FOUND', `party ${partyId} does not exist`)
    if (!this.members.get(partyId)?.has(peerId)) throw forbidden('NOT_A_MEMBER', `you are not a member of party ${partyId}`)
    return party
  }

  private checkMaxPeers(n: number | undefined): number {
    const v = n ?? this.config.defaultMaxPeers
    if (v > this.config.maxPeersLimit) throw new ControlError('VALIDATION', `body.max_peers: must be at most ${this.config.maxPeersLimit}`, 422)
    if (v > this.subnet.size - 2) throw new ControlError('VALIDATION', `body.max_peers: the subnet ${this.config.subnet} holds only ${this.subnet.size - 2} peers`, 422)
    return v
  }

  async createParty(peerId: string, body: { name: string; password?: string; max_peers?: number; host_peer_info?: PeerEndpointInfo }) {
    const maxPeers = this.checkMaxPeers(body.max_peers)
    const checkHosted = (pending: number) => {
      if (this.repo.countHostedParties(peerId) + pending >= this.config.maxPartiesPerHost)
        throw conflict('TOO_MANY_PARTIES', `you already host ${this.config.maxPartiesPerHost} parties; leave one first`)
    }
    // Creates still hashing their password count too, so parallel creates are refused before they cost a hash;
    // the insert transaction checks again against the table itself.
    checkHosted(this.creating.get(peerId) ?? 0)
    this.creating.set(peerId, (this.creating.get(peerId) ?? 0) + 1)
    try {
      return await this.insertParty(peerId, body, maxPeers, () => checkHosted(0))
    } finally {
      const n = this.creating.get(peerId)! - 1
      if (n) this.creating.set(peerId, n)
      else this.creating.delete(peerId)
    }
  }

  private async insertParty(
    peerId: string,
    body: { name: string; password?: string; host_peer_info?: PeerEndpointInfo },
    maxPeers: number,
    checkHosted: () => void,
  ) {
    const password = body.password
    const passwordHash = password ? await this.hashing(peerId, () => Bun.password.hash(password, PASSWORD_PARAMS)) : null
    const now = this.clock.now()
    const info = body.host_peer_info ?? {}
    let party: PartyRow | undefined
    for (let attempt = 0; !party && attempt < 5; attempt++) {
      const candidate: PartyRow = { partyId: randomHex(6), name: body.name, hostId: peerId, passwordHash, maxPeers, subnet: this.config.subnet, createdAt: now }
      try {
        this.repo.tx(() => {
          // Creates that waited for their hash together must not all pass a count read before any inserted.
          checkHosted()
          this.repo.insertParty(candidate)
          this.repo.insertMembership(newMembership(candidate.partyId, peerId, allocateIp(this.subnet, [])!, info, now))
        })
        party = candidate
      } catch (e) {
        if (!isUniqueViolation(e)) throw e // else: a party id collision, try another id
      }
    }
    if (!party) throw new ControlError('INTERNAL', 'could not allocate a party id', 500)
    this.memberMap(party.partyId, true).set(peerId, { lastSeen: now, publicEndpoint: info.public_endpoint ?? null, natType: info.nat_type ?? 'unknown' })
    this.log.info('party created', { party_id: party.partyId, host: peerId })
    return { party_id: party.partyId, party: this.partyInfo(party) }
  }

  async joinParty(peerId: string, partyId: string, body: { password?: string; peer_info?: PeerEndpointInfo }) {
    const before = this.repo.party(partyId)
    if (!before) throw notFound('PARTY_NOT_FOUND', `party ${partyId} does not exist`)
    const alreadyMember = this.members.get(partyId)?.has(peerId) ?? false
    // Before the password: a removed peer learns nothing more and costs no hash.
    if (!alreadyMember) this.checkNotBanned(partyId, peerId)
    if (before.passwordHash && !alreadyMember) await this.checkPassword(peerId, before, body.password)
    const info = body.peer_info ?? {}
    const now = this.clock.now()
    // Everything from the capacity check to the insert happens in one IMMEDIATE transaction: two concurrent joins
    // cannot both see the same free address or the same last free seat (STYLE.md §4.4).
    const outcome = this.repo.tx(() => {
      const party = this.repo.party(partyId)
      if (!party) throw notFound('PARTY_NOT_FOUND', `party ${partyId} does not exist`)
      const existing = this.repo.membership(partyId, peerId)
      const set = reported(info)
      if (existing && existing.leftAt === null) {
        this.repo.updateMembership(partyId, peerId, { ...set, lastSeen: now })
        return { party, kind: Object.keys(set).length ? ('updated' as const) : ('same' as const) }
      }
      this.checkNotBanned(partyId, peerId) // again inside the transaction: a removal may have committed meanwhile
      if (this.repo.countActiveMembers(partyId) >= party.maxPeers) throw conflict('PARTY_FULL', `party ${partyId} is full (${party.maxPeers} peers)`)
      if (existing) {
        // A rejoin: the reserved address comes back with the row.
        this.repo.updateMembership(partyId, peerId, { ...set, leftAt: null, joinedAt: now, lastSeen: now })
      } else {
        let ip = allocateIp(parseSubnet(party.subnet) ?? this.subnet, this.repo.reservedIps(partyId))
        if (!ip) {
          // Every address is held, some by members who left: the one who left longest ago gives its address up
          // (if it comes back, it gets a new one), so departures cannot use up the pool.
          const gone = this.repo.oldestDeparted(partyId)
          if (!gone) throw conflict('SUBNET_FULL', `party ${partyId} has no free virtual address left`)
          this.repo.deleteMembership(partyId, gone.peerId)
          ip = gone.virtualIp
        }
        this.repo.insertMembership(newMembership(partyId, peerId, ip, info, now))
      }
      return { party, kind: 'joined' as const }
    })
    const row = this.repo.membership(partyId, peerId)!
    this.memberMap(partyId, true).set(peerId, { lastSeen: now, publicEndpoint: row.publicEndpoint, natType: row.natType })
    const peer = this.memberInfo(partyId, peerId)
    if (outcome.kind === 'joined') {
      this.log.info('peer joined', { party_id: partyId, peer_id: peerId, virtual_ip: peer.virtual_ip })
      this.publish(partyId, { type: 'peer_joined', party_id: partyId, peer })
    } else if (outcome.kind === 'updated') this.publish(partyId, { type: 'peer_updated', party_id: partyId, peer })
    return { party: this.partyInfo(outcome.party) }
  }

  getParty(peerId: string, partyId: string) {
    return { party: this.partyInfo(this.requireMember(partyId, peerId)) }
  }

  getPeers(peerId: string, partyId: string) {
    return { peers: this.partyInfo(this.requireMember(partyId, peerId)).peers }
  }

  getPeer(peerId: string, partyId: string, target: string) {
    this.requireMember(partyId, peerId)
    return { peer: this.memberInfo(partyId, target) }
  }

  /**
   * For routes on one's own membership (heartbeat, update, leave). Acting on another peer is 403; a caller who is
   * no longer a member (left, removed, timed out) gets 404 PEER_NOT_FOUND so a client knows to join again.
   */
  private requireSelf(peerId: string, partyId: string, target: string, what: string): PartyRow {
    const party = this.repo.party(partyId)
    if (!party) throw notFound('PARTY_NOT_FOUND', `party ${partyId} does not exist`)
    const member = this.members.get(partyId)?.has(peerId) ?? false
    if (peerId !== target) {
      if (!member) throw forbidden('NOT_A_MEMBER', `you are not a member of party ${partyId}`)
      throw forbidden('NOT_YOURSELF', `you may only ${what} yourself (you are ${peerId}, not ${target})`)
    }
    if (!member) throw notFound('PEER_NOT_FOUND', `you (${peerId}) are not a member of party ${partyId} (left, removed or timed out); join again`)
    return party
  }

  heartbeat(peerId: string, partyId: string, target: string, body: { public_endpoint?: string | null; nat_type?: NatType } | undefined) {
    const hot = this.members.get(partyId)?.get(peerId)
    // The hot path checks memory only; anything unusual goes through requireSelf for the precise error.
    if (!hot || peerId !== target) {
      this.requireSelf(peerId, partyId, target, 'heartbeat for')
      throw new ControlError('INTERNAL', 'membership state is inconsistent', 500)
    }
    hot.lastSeen = this.clock.now()
    this.dirty.add(`${partyId} ${peerId}`)
    const changed =
      (body?.public_endpoint !== undefined && body.public_endpoint !== hot.publicEndpoint) || (body?.nat_type !== undefined && body.nat_type !== hot.natType)
    if (changed) this.updatePeer(peerId, partyId, target, { public_endpoint: body!.public_endpoint, nat_type: body!.nat_type })
    return { status: 'ok' as const }
  }

  updatePeer(peerId: string, partyId: string, target: string, body: PeerEndpointInfo) {
    this.requireSelf(peerId, partyId, target, 'update')
    const now = this.clock.now()
    const set = { ...reported(body), lastSeen: now }
    this.repo.updateMembership(partyId, peerId, set)
    const peer = this.memberInfo(partyId, peerId)
    const hot = this.members.get(partyId)?.get(peerId)
    if (hot) Object.assign(hot, { lastSeen: now, publicEndpoint: peer.public_endpoint, natType: peer.nat_type })
    this.publish(partyId, { type: 'peer_updated', party_id: partyId, peer })
    return { peer }
  }

  leave(peerId: string, partyId: string, target: string) {
    if (peerId === target) {
      const party = this.requireSelf(peerId, partyId, target, 'leave as')
      return { status: this.removeMember(party, target, 'left') }
    }
    const party = this.requireMember(partyId, peerId)
    if (party.hostId !== peerId) throw forbidden('NOT_HOST', `only the host of party ${partyId} may remove other members`)
    if (!this.members.get(partyId)?.has(target)) throw notFound('PEER_NOT_FOUND', `peer ${target} is not a member of party ${partyId}`)
    return { status: this.removeMember(party, target, 'removed') }
  }

  private checkNotBanned(partyId: string, peerId: string): void {
    if (this.repo.isBanned(partyId, peerId))
      throw forbidden('BANNED', `you were removed from party ${partyId} by its host and cannot rejoin until the host lifts it (DELETE /parties/${partyId}/bans/${peerId})`)
  }

  /** 404 for an unknown party, 403 unless `peerId` is its host. */
  private requireHost(partyId: string, peerId: string): PartyRow {
    const party = this.requireMember(partyId, peerId)
    if (party.hostId !== peerId) throw forbidden('NOT_HOST', `only the host of party ${partyId} may do this`)
    return party
  }

  /** The peers the host removed (host only). */
  listBans(peerId: string, partyId: string) {
    this.requireHost(partyId, peerId)
    return { bans: this.repo.bans(partyId).map((b) => ({ peer_id: b.peerId, banned_at: iso(b.bannedAt) })) }
  }

  /** Lets a removed peer join again (host only); 404 BAN_NOT_FOUND when it was not banned. */
  liftBan(peerId: string, partyId: string, target: string) {
    this.requireHost(partyId, peerId)
    if (!this.repo.deleteBan(partyId, target)) throw notFound('BAN_NOT_FOUND', `peer ${target} is not banned from party ${partyId}`)
    this.log.info('ban lifted', { party_id: partyId, peer_id: target })
    return { status: 'lifted' as const }
  }

  /**
   * Removes one member. The host leaving (or timing out) ends the party; so does the last member leaving.
   * Returns what happened so the route can answer `left` or `party_deleted`.
   */
  private removeMember(party: PartyRow, peerId: string, reason: PeerLeftReason): LeaveResult {
    const partyId = party.partyId
    const map = this.members.get(partyId)
    const remaining = [...(map?.keys() ?? [])].filter((p) => p !== peerId)
    if (party.hostId === peerId || remaining.length === 0) {
      this.deleteParty(partyId, party.hostId === peerId ? (reason === 'timeout' ? 'timeout' : 'host_left') : 'empty')
      return 'party_deleted'
    }
    const now = this.clock.now()
    this.repo.tx(() => {
      this.repo.updateMembership(partyId, peerId, { leftAt: now })
      this.repo.deleteSignalsOf(partyId, peerId)
      this.repo.deleteSessionsOf(partyId, peerId)
      // Removed by the host: it stays out until the host lifts the ban.
      if (reason === 'removed') this.repo.insertBan({ partyId, peerId, bannedAt: now })
    })
    map?.delete(peerId)
    this.dirty.delete(`${partyId} ${peerId}`)
    this.log.info('peer left', { party_id: partyId, peer_id: peerId, reason })
    // The peer that left hears it too (it may have other sockets open, or was removed by the host).
    this.hub.sendToAll([...remaining, peerId], { type: 'peer_left', party_id: partyId, peer_id: peerId, reason })
    return 'left'
  }

  private deleteParty(partyId: string, reason: PartyDeletedReason) {
    const members = [...(this.members.get(partyId)?.keys() ?? [])]
    this.repo.deleteParty(partyId)
    this.members.delete(partyId)
    for (const p of members) this.dirty.delete(`${partyId} ${p}`)
    this.log.info('party deleted', { party_id: partyId, reason })
    this.hub.sendToAll(members, { type: 'party_deleted', party_id: partyId, reason })
  }

  private publish(partyId: string, msg: LiveMessage) {
    const map = this.members.get(partyId)
    if (map) this.hub.sendToAll(map.keys(), msg)
  }

  /** Party ids the peer is a member of (the WebSocket hello). */
  partiesOf(peerId: string): string[] {
    const out: string[] = []
    for (const [partyId, map] of this.members) if (map.has(peerId)) out.push(partyId)
    return out.sort()
  }

  // ------------------------------------------------------------------ signals

  /** Only this service writes signals (punch data it checked, relay offers it built): each is a KnownSignal. */
  private signalJson(s: SignalRow): KnownSignal {
    return { id: s.id, party_id: s.partyId, from_peer_id: s.fromPeerId, to_peer_id: s.toPeerId, type: s.type, data: s.data, created_at: iso(s.createdAt) } as KnownSignal
  }

  /**
   * Sends a signal to another member. Delivered live to the recipient's WebSockets when it has any; otherwise
   * queued (bounded per recipient, expires after signalTtlS) for `GET /parties/{id}/signals`.
   *
   * Members may send only MEMBER_SIGNAL_TYPES, with data that fits their schema: a `relay_offer` (or any type the
   * server alone sends) from a member would make the recipient send to an address of the sender's choosing. A
   * `punch` names the sender's own public endpoint as this server knows it (filled in when left out; any other
   * address is refused), so a member cannot point another member's WireGuard at a third party.
   * `fields` names the type and data fields in errors (`body.type` over HTTP, `signal_type` on the WebSocket).
   */
  sendSignal(peerId: string, partyId: string, body: { to_peer_id: string; type: string; data?: unknown }, fields = { type: 'body.type', data: 'body.data' }) {
    this.requireMember(partyId, peerId)
    const data = this.memberSignalData(partyId, peerId, body.type, body.data, fields)
    if (!this.members.get(partyId)?.has(body.to_peer_id)) throw notFound('PEER_NOT_FOUND', `peer ${body.to_peer_id} is not a member of party ${partyId}`)
    return { signal: this.deliverSignal(partyId, peerId, body.to_peer_id, body.type, data) }
  }

  /** The data a member's signal carries once checked (see sendSignal); throws 422 naming the field. */
  private memberSignalData(partyId: string, peerId: string, type: string, data: unknown, fields: { type: string; data: string }): unknown {
    if ((SERVER_SIGNAL_TYPES as readonly string[]).includes(type))
      throw new ControlError('VALIDATION', `${fields.type}: ${type} signals come from the server only`, 422)
    if (type !== 'punch') throw new ControlError('VALIDATION', `${fields.type}: must be one of ${MEMBER_SIGNAL_TYPES.join(', ')}`, 422)
    const bad = schemaError(fields.data, PunchInput, data)
    if (bad) throw bad
    const punch = data as Static<typeof PunchInput>
    const own = this.members.get(partyId)?.get(peerId)?.publicEndpoint ?? null
    if (own === null) throw new ControlError('VALIDATION', `${fields.data}.endpoint: the server knows no public endpoint of yours; report it first (join, PATCH or heartbeat)`, 422)
    if (punch.endpoint !== undefined && punch.endpoint !== own)
      throw new ControlError('VALIDATION', `${fields.data}.endpoint: must be your own public endpoint as reported to the server (${own}) or left out`, 422)
    return { at: punch.at, endpoint: own } satisfies PunchData
  }

  private deliverSignal(partyId: string, from: string, to: string, type: string, data: unknown): KnownSignal {
    const now = this.clock.now()
    const row: SignalRow = { id: randomHex(8), partyId, fromPeerId: from, toPeerId: to, type, data, createdAt: now, expiresAt: now + this.config.signalTtlS * 1000 }
    const signal = this.signalJson(row)
    if (this.hub.sendTo(to, { type: 'signal', party_id: partyId, signal }) === 0) {
      this.repo.tx(() => {
        this.repo.insertSignal(row)
        this.repo.trimSignals(to, this.config.signalQueueMax)
      })
    }
    return signal
  }

  drainSignals(peerId: string, partyId: string) {
    this.requireMember(partyId, peerId)
    return { signals: this.repo.drainSignals(partyId, peerId, this.clock.now()).map((s) => this.signalJson(s)) }
  }

  // ------------------------------------------------------------------ relays

  checkRelaySecret(secret: string | null | undefined): void {
    const want = this.config.relaySecret
    if (!want) throw unauthorized('relay registration is disabled on this server (no relay secret configured)', 'RELAY_SECRET_REQUIRED')
    if (!secret) throw unauthorized('missing X-Relay-Secret header', 'RELAY_SECRET_REQUIRED')
    const a = Buffer.from(secret)
    const b = Buffer.from(want)
    if (a.length !== b.length || !sameBytes(a, b)) throw unauthorized('wrong relay secret', 'INVALID_RELAY_SECRET')
  }

  /** A relay as clients see it: its registered public address, never one derived from the request (Host). */
  relayJson(r: RelayRow): RelayInfo {
    return {
      relay_id: r.relayId,
      public_ip: r.publicIp,
      port: r.port,
      stun_alt_port: r.stunAltPort,
      region: r.region,
      capacity: r.capacity,
      load: r.load,
      last_seen: iso(r.lastSeen),
    }
  }

  registerRelay(body: { relay_id: string; public_ip: string; port: number; stun_alt_port?: number | null; region: string; capacity: number; load: number; ports: string; sessions?: number }) {
    const now = this.clock.now()
    const row = this.repo.upsertRelay({
      relayId: body.relay_id,
      publicIp: body.public_ip,
      port: body.port,
      stunAltPort: body.stun_alt_port ?? null,
      region: body.region,
      capacity: body.capacity,
      load: body.load,
      ports: body.ports,
      sessions: body.sessions ?? null,
      registeredAt: now,
      lastSeen: now,
    })
    this.log.info('relay registered', { relay_id: row.relayId, public_ip: row.publicIp, port: row.port, region: row.region })
    return { relay: this.relayJson(row), ticket_public_key: b64(this.keys.ed25519Public), heartbeat_interval_s: this.config.relayHeartbeatS }
  }

  relayHeartbeat(relayId: string, body: { load: number; sessions?: number }) {
    if (!this.repo.relayHeartbeat(relayId, body.load, body.sessions ?? null, this.clock.now()))
      throw notFound('RELAY_NOT_FOUND', `relay ${relayId} is not registered; register again`)
    return { status: 'ok' as const }
  }

  listRelays(region: string | undefined) {
    return { relays: this.repo.relays(region).map((r) => this.relayJson(r)) }
  }

  /**
   * Picks a relay for a pair of members and signs one ticket per side (src/shared/wire/ticket.ts). Live relays
   * with spare capacity only; the requested region first, then the lowest load/capacity.
   */
  relayTickets(peerId: string, partyId: string, body: { peer_id: string; region?: string }): RelayOffer {
    this.requireMember(partyId, peerId)
    if (body.peer_id === peerId) throw new ControlError('VALIDATION', 'body.peer_id: must be the other member, not yourself', 422)
    if (!this.members.get(partyId)?.has(body.peer_id)) throw notFound('PEER_NOT_FOUND', `peer ${body.peer_id} is not a member of party ${partyId}`)
    const now = this.clock.now()
    // A relay that missed three heartbeats is probably gone: offer it no new sessions (cleanup drops it later).
    const freshMs = Math.min(this.config.relayTimeoutS, 3 * this.config.relayHeartbeatS) * 1000
    // A row registered before addresses were validated (0.0.0.0) is never offered: clients could not use it.
    const live = this.repo.relays().filter((r) => r.lastSeen >= now - freshMs && r.load < r.capacity && Value.Check(IpAddress, r.publicIp))
    const score = (r: RelayRow) => (body.region && r.region === body.region ? 0 : 1) + r.load / Math.max(1, r.capacity)
    const relay = live.sort((a, b) => score(a) - score(b) || a.relayId.localeCompare(b.relayId))[0]
    if (!relay) throw new ControlError('NO_RELAY', 'no relay with spare capacity is registered', 503)
    const me = this.repo.peer(peerId)!
    const other = this.repo.peer(body.peer_id)!
    const sessionId = randomBytes(16)
    const notAfter = Math.floor(now / 1000) + this.config.ticketTtlS
    const [peerLo, peerHi] = peerId < body.peer_id ? [peerId, body.peer_id] : [body.peer_id, peerId]
    const replaced = this.repo.tx(() => {
      // One session per pair of members: a new ticket replaces the pair's previous session (the relay can free it
      // when the new one is claimed), so asking again and again holds no more of any relay.
      const old = this.repo.pairSession(partyId, peerLo, peerHi)
      if (old) this.repo.deleteRelaySession(old.sessionId)
      for (const p of [peerId, body.peer_id]) {
        const live = this.repo.liveSessionsOf(p, now)
        if (live.n < this.config.maxRelaySessionsPerPeer) continue
        const retry = Math.max(1, Math.ceil(((live.firstExpiry ?? now) - now) / 1000))
        const who = p === peerId ? 'you are' : `peer ${p} is`
        throw new RateLimitedError(`${who} already part of ${live.n} relay sessions, the most allowed; the oldest ticket expires in ${retry} s`, retry, 'TOO_MANY_RELAY_SESSIONS')
      }
      this.repo.insertRelaySession({ sessionId: Buffer.from(sessionId).toString('hex'), relayId: relay.relayId, partyId, peerLo, peerHi, requestedBy: peerId, createdAt: now, expiresAt: notAfter * 1000 })
      return old
    })
    // Count the session now so back-to-back requests spread (a replacement on the same relay adds nothing); the
    // relay's next heartbeat reports the truth.
    if (replaced?.relayId !== relay.relayId) this.repo.relayHeartbeat(relay.relayId, relay.load + 1, relay.sessions, relay.lastSeen)
    const mk = (side: 'a' | 'b', holder: string, otherKey: string) =>
      toBase64Url(
        signTicket(
          { side, sessionId, relayId: relay.relayId, partyId, holderKey: decodeKey(holder)!, otherKey: decodeKey(otherKey)!, notAfter },
          this.keys.ed25519Secret,
        ),
      )
    const r = this.relayJson(relay)
    const relayOut = { relay_id: r.relay_id, public_ip: r.public_ip, port: r.port, region: r.region }
    const common = { session_id: Buffer.from(sessionId).toString('hex'), expires_at: iso(notAfter * 1000), relay: relayOut }
    const mine: RelayOffer = { ...common, side: 'a', ticket: mk('a', me.publicKey, other.publicKey), peer_id: body.peer_id }
    const theirs: RelayOffer = { ...common, side: 'b', ticket: mk('b', other.publicKey, me.publicKey), peer_id: peerId }
    this.deliverSignal(partyId, peerId, body.peer_id, 'relay_offer', theirs)
    this.log.info('relay session offered', { party_id: partyId, relay_id: relay.relayId, a: peerId, b: body.peer_id })
    return mine
  }

  // ------------------------------------------------------------------ housekeeping

  /** Writes the batched last_seen values. */
  flush(): number {
    if (!this.dirty.size) return 0
    const batch: { partyId: string; peerId: string; lastSeen: number }[] = []
    for (const key of this.dirty) {
      const [partyId, peerId] = key.split(' ') as [string, string]
      const hot = this.members.get(partyId)?.get(peerId)
      if (hot) batch.push({ partyId, peerId, lastSeen: hot.lastSeen })
    }
    this.dirty.clear()
    this.repo.flushLastSeen(batch)
    return batch.length
  }

  /**
   * One cleanup pass at the clock's now: members silent longer than peerTimeoutS are removed (members told,
   * reason "timeout"), parties left empty are deleted, silent relays dropped, expired tokens, challenges and
   * queued signals purged.
   */
  cleanup() {
    const now = this.clock.now()
    this.flush()
    const cutoff = now - this.config.peerTimeoutS * 1000
    let removed = 0
    let deleted = 0
    for (const [partyId, map] of [...this.members]) {
      const stale = [...map].filter(([, m]) => m.lastSeen < cutoff).map(([p]) => p)
      if (!stale.length) continue
      const party = this.repo.party(partyId)
      if (!party) {
        this.members.delete(partyId)
        continue
      }
      // Non-hosts first, so that if the host is also stale its peers hear peer_left before party_deleted.
      stale.sort((a, b) => Number(a === party.hostId) - Number(b === party.hostId))
      for (const p of stale) {
        if (!this.members.has(partyId)) break
        removed++
        if (this.removeMember(party, p, 'timeout') === 'party_deleted') deleted++
      }
    }
    // Parties with no active member at all (e.g. every member's row left before a restart).
    for (const p of this.repo.allParties()) {
      if (!this.members.get(p.partyId)?.size) {
        this.deleteParty(p.partyId, 'empty')
        deleted++
      }
    }
    const purged = this.repo.purgeExpired(now, now - this.config.relayTimeoutS * 1000)
    for (const [h, t] of this.tokenCache) if (t.expiresAt <= now) this.tokenCache.delete(h)
    // Every socket knows its token's expiry, cached or not.
    this.hub.closeExpired(now)
    for (const limiter of [this.registrations, this.wrongByPeer, this.wrongByParty]) limiter.sweep(now)
    const out = { peers_removed: removed, parties_deleted: deleted, ...purged, relays: purged.relays.length }
    if (removed || deleted || purged.relays.length) this.log.info('cleanup', out)
    return out
  }

  stats() {
    let peers = 0
    const seen = new Set<string>()
    for (const map of this.members.values()) for (const p of map.keys()) seen.add(p)
    peers = seen.size
    return { parties: this.members.size, peers, relays: this.repo.countRelays(), ws_clients: this.hub.clients }
  }
}
