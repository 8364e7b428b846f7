/**
 * Control server data access: thin, synchronous queries over the control tables (STYLE.md §4.4: bun:sqlite
 * transactions are synchronous; callers keep network I/O outside them). Nothing above this file sees SQLite
 * errors: unique violations come back as values.
 */
import { and, asc, eq, gt, isNotNull, isNull, lt, lte, or, sql } from 'drizzle-orm'
import type { Db } from '../client.ts'
import { challenges, memberships, parties, partyBans, peers, relays, relaySessions, serverKeys, signals, tokens } from '../schema/control.ts'

export type PeerRow = typeof peers.$inferSelect
export type PartyRow = typeof parties.$inferSelect
export type MembershipRow = typeof memberships.$inferSelect
export type SignalRow = typeof signals.$inferSelect
export type RelayRow = typeof relays.$inferSelect
export type ServerKeyRow = typeof serverKeys.$inferSelect
export type BanRow = typeof partyBans.$inferSelect
export type RelaySessionRow = typeof relaySessions.$inferSelect

const byParty = sql.placeholder('partyId')
const byPeer = sql.placeholder('peerId')

export class ControlRepo {
  // The reads on every request (auth, join, heartbeat, party reads) are prepared once per database: building a
  // drizzle query each time was ~30% of the server's CPU in the join fan-out bench (STYLE.md §4.7).
  readonly #q
  constructor(readonly db: Db) {
    this.#q = {
      peer: db.select().from(peers).where(eq(peers.peerId, byPeer)).prepare(),
      token: db.select().from(tokens).where(eq(tokens.tokenHash, sql.placeholder('tokenHash'))).prepare(),
      party: db.select().from(parties).where(eq(parties.partyId, byParty)).prepare(),
      membership: db.select().from(memberships).where(and(eq(memberships.partyId, byParty), eq(memberships.peerId, byPeer))).prepare(),
      members: db
        .select({ m: memberships, publicKey: peers.publicKey })
        .from(memberships)
        .innerJoin(peers, eq(peers.peerId, memberships.peerId))
        .where(and(eq(memberships.partyId, byParty), isNull(memberships.leftAt)))
        .orderBy(asc(memberships.joinedAt), asc(memberships.virtualIp))
        .prepare(),
      reservedIps: db.select({ ip: memberships.virtualIp }).from(memberships).where(eq(memberships.partyId, byParty)).prepare(),
      countActive: db
        .select({ n: sql<number>`count(*)` })
        .from(memberships)
        .where(and(eq(memberships.partyId, byParty), isNull(memberships.leftAt)))
        .prepare(),
    }
  }

  /** Runs fn in one IMMEDIATE transaction (takes the write lock up front, so read-modify-write is race free). */
  tx<T>(fn: () => T): T {
    return this.db.transaction(() => fn(), { behavior: 'immediate' })
  }

  // ---- server keys
  serverKey(name: 'x25519' | 'ed25519'): ServerKeyRow | undefined {
    return this.db.select().from(serverKeys).where(eq(serverKeys.name, name)).get()
  }
  insertServerKey(row: ServerKeyRow): void {
    this.db.insert(serverKeys).values(row).onConflictDoNothing().run()
  }

  // ---- identities and tokens
  upsertPeer(peerId: string, publicKey: string, now: number): void {
    this.db.insert(peers).values({ peerId, publicKey, createdAt: now }).onConflictDoNothing().run()
  }
  peer(peerId: string): PeerRow | undefined {
    return this.#q.peer.get({ peerId })
  }
  insertChallenge(challenge: string, publicKey: string, expiresAt: number): void {
    this.db.insert(challenges).values({ challenge, publicKey, expiresAt }).run()
  }
  /** Deletes and returns the challenge: a challenge is consumed by its first use, right or wrong. */
  takeChallenge(challenge: string) {
    return this.db.delete(challenges).where(eq(challenges.challenge, challenge)).returning().get()
  }
  insertToken(tokenHash: string, peerId: string, createdAt: number, expiresAt: number): void {
    this.db.insert(tokens).values({ tokenHash, peerId, createdAt, expiresAt }).run()
  }
  token(tokenHash: string) {
    return this.#q.token.get({ tokenHash })
  }
  deleteToken(tokenHash: string): boolean {
    return this.db.delete(tokens).where(eq(tokens.tokenHash, tokenHash)).returning({ h: tokens.tokenHash }).all().length > 0
  }

  // ---- parties and memberships
  insertParty(row: PartyRow): void {
    this.db.insert(parties).values(row).run()
  }
  party(partyId: string): PartyRow | undefined {
    return this.#q.party.get({ partyId })
  }
  allParties(): PartyRow[] {
    return this.db.select().from(parties).all()
  }
  countHostedParties(hostId: string): number {
    return this.db.select({ n: sql<number>`count(*)` }).from(parties).where(eq(parties.hostId, hostId)).get()?.n ?? 0
  }
  deleteParty(partyId: string): boolean {
    return this.db.delete(parties).where(eq(parties.partyId, partyId)).returning({ id: parties.partyId }).all().length > 0
  }

  membership(partyId: string, peerId: string): MembershipRow | undefined {
    return this.#q.membership.get({ partyId, peerId })
  }
  /** Current members (not left), oldest first, with their public keys. */
  members(partyId: string): (MembershipRow & { publicKey: string })[] {
    return this.#q.members.all({ partyId }).map((r) => ({ ...r.m, publicKey: r.publicKey }))
  }
  allActiveMemberships(): Pick<MembershipRow, 'partyId' | 'peerId' | 'lastSeen' | 'publicEndpoint' | 'natType'>[] {
    return this.db
      .select({
        partyId: memberships.partyId,
        peerId: memberships.peerId,
        lastSeen: memberships.lastSeen,
        publicEndpoint: memberships.publicEndpoint,
        natType: memberships.natType,
      })
      .from(memberships)
      .where(isNull(memberships.leftAt))
      .all()
  }
  /** Every address reserved in the party, including those of members who left (a rejoin gets its own back). */
  reservedIps(partyId: string): string[] {
    return this.#q.reservedIps.all({ partyId }).map((r) => r.ip)
  }
  countActiveMembers(partyId: string): number {
    return this.#q.countActive.get({ partyId })?.n ?? 0
  }

  /** The member who left longest ago (its row still reserves its address), for a newcomer when the pool is used up. */
  oldestDeparted(partyId: string): MembershipRow | undefined {
    return this.db
      .select()
      .from(memberships)
      .where(and(eq(memberships.partyId, partyId), isNotNull(memberships.leftAt)))
      .orderBy(asc(memberships.leftAt), asc(memberships.virtualIp))
      .limit(1)
      .get()
  }
  deleteMembership(partyId: string, peerId: string): void {
    this.db
      .delete(memberships)
      .where(and(eq(memberships.partyId, partyId), eq(memberships.peerId, peerId)))
      .run()
  }

  insertMembership(row: MembershipRow): void {
    this.db.insert(memberships).values(row).run()
  }
  updateMembership(partyId: string, peerId: string, set: Partial<Omit<MembershipRow, 'partyId' | 'peerId'>>): void {
    this.db
      .update(memberships)
      .set(set)
      .where(and(eq(memberships.partyId, partyId), eq(memberships.peerId, peerId)))
      .run()
  }
  /** Writes a batch of last_seen values (the heartbeat flush) in one transaction. */
  flushLastSeen(batch: { partyId: string; peerId: string; lastSeen: number }[]): void {
    if (!batch.length) return
    const stmt = this.db
      .update(memberships)
      .set({ lastSeen: sql.placeholder('lastSeen') as unknown as number })
      .where(and(eq(memberships.partyId, sql.placeholder('partyId')), eq(memberships.peerId, sql.placeholder('peerId')), isNull(memberships.leftAt)))
      .prepare()
    this.tx(() => {
      for (const b of batch) stmt.run(b)
    })
  }

  // ---- bans
  isBanned(partyId: string, peerId: string): boolean {
    return (
      this.db
        .select({ p: partyBans.peerId })
        .from(partyBans)
        .where(and(eq(partyBans.partyId, partyId), eq(partyBans.peerId, peerId)))
        .get() !== undefined
    )
  }
  insertBan(row: BanRow): void {
    this.db.insert(partyBans).values(row).onConflictDoNothing().run()
  }
  deleteBan(partyId: string, peerId: string): boolean {
    return (
      this.db
        .delete(partyBans)
        .where(and(eq(partyBans.partyId, partyId), eq(partyBans.peerId, peerId)))
        .returning({ p: partyBans.peerId })
        .all().length > 0
    )
  }
  bans(partyId: string): BanRow[] {
    return this.db.select().from(partyBans).where(eq(partyBans.partyId, partyId)).orderBy(asc(partyBans.bannedAt), asc(partyBans.peerId)).all()
  }

  // ---- relay sessions issued (tickets)
  pairSession(partyId: string, peerLo: string, peerHi: string): RelaySessionRow | undefined {
    return this.db
      .select()
      .from(relaySessions)
      .where(and(eq(relaySessions.partyId, partyId), eq(relaySessions.peerLo, peerLo), eq(relaySessions.peerHi, peerHi)))
      .get()
  }
  deleteRelaySession(sessionId: string): void {
    this.db.delete(relaySessions).where(eq(relaySessions.sessionId, sessionId)).run()
  }
  insertRelaySession(row: RelaySessionRow): void {
    this.db.insert(relaySessions).values(row).run()
  }
  /** The peer's sessions whose tickets are still valid (either side), with the earliest expiry among them. */
  liveSessionsOf(peerId: string, now: number): { n: number; firstExpiry: number | null } {
    const r = this.db
      .select({ n: sql<number>`count(*)`, firstExpiry: sql<number | null>`min(${relaySessions.expiresAt})` })
      .from(relaySessions)
      .where(and(or(eq(relaySessions.peerLo, peerId), eq(relaySessions.peerHi, peerId)), gt(relaySessions.expiresAt, now)))
      .get()
    return { n: r?.n ?? 0, firstExpiry: r?.firstExpiry ?? null }
  }
  /** Forgets the sessions of a member who left the party. */
  deleteSessionsOf(partyId: string, peerId: string): void {
    this.db
      .delete(relaySessions)
      .where(and(eq(relaySessions.partyId, partyId), or(eq(relaySessions.peerLo, peerId), eq(relaySessions.peerHi, peerId))))
      .run()
  }

  // ---- signals
  insertSignal(row: SignalRow): void {
    this.db.insert(signals).values(row).run()
  }
  /** Keeps at most `max` queued signals for a recipient by dropping the oldest. */
  trimSignals(toPeerId: string, max: number): void {
    this.db.run(
      sql`DELETE FROM ${signals} WHERE ${signals.toPeerId} = ${toPeerId} AND ${signals.id} NOT IN (SELECT ${signals.id} FROM ${signals} WHERE ${signals.toPeerId} = ${toPeerId} ORDER BY ${signals.createdAt} DESC, rowid DESC LIMIT ${max})`,
    )
  }
  /** Returns and deletes the recipient's unexpired signals in one party, oldest first. */
  drainSignals(partyId: string, toPeerId: string, now: number): SignalRow[] {
    return this.tx(() => {
      const where = and(eq(signals.partyId, partyId), eq(signals.toPeerId, toPeerId))
      const rows = this.db.select().from(signals).where(and(where, gt(signals.expiresAt, now))).orderBy(asc(signals.createdAt), sql`rowid`).all()
      this.db.delete(signals).where(where).run()
      return rows
    })
  }
  deleteSignalsOf(partyId: string, peerId: string): void {
    this.db
      .delete(signals)
      .where(and(eq(signals.partyId, partyId), eq(signals.toPeerId, peerId)))
      .run()
  }

  // ---- relays
  upsertRelay(row: RelayRow): RelayRow {
    const { relayId: _id, registeredAt: _r, ...set } = row
    return this.db.insert(relays).values(row).onConflictDoUpdate({ target: relays.relayId, set }).returning().get()!
  }

  relays(region?: string): RelayRow[] {
    const q = this.db.select().from(relays)
    return (region ? q.where(eq(relays.region, region)) : q).orderBy(asc(relays.region), asc(relays.relayId)).all()
  }
  relayHeartbeat(relayId: string, load: number, sessions: number | null, now: number): boolean {
    return (
      this.db
        .update(relays)
        .set({ load, sessions, lastSeen: now })
        .where(eq(relays.relayId, relayId))
        .returning({ id: relays.relayId })
        .all().length > 0
    )
  }
  countRelays(): number {
    return this.db.select({ n: sql<number>`count(*)` }).from(relays).get()?.n ?? 0
  }

  // ---- expiry (cleanup loop)
  purgeExpired(now: number, relaySilentBefore: number) {
    return this.tx(() => ({
      tokens: this.db.delete(tokens).where(lte(tokens.expiresAt, now)).returning({ k: tokens.tokenHash }).all().length,
      challenges: this.db.delete(challenges).where(lte(challenges.expiresAt, now)).returning({ k: challenges.challenge }).all().length,
      signals: this.db.delete(signals).where(lte(signals.expiresAt, now)).returning({ k: signals.id }).all().length,
      relay_sessions: this.db.delete(relaySessions).where(lte(relaySessions.expiresAt, now)).returning({ k: relaySessions.sessionId }).all().length,
      relays: this.db
        .delete(relays)
        .where(lt(relays.lastSeen, relaySilentBefore))
        .returning({ k: relays.relayId })
        .all()
        .map((r) => r.k),
    }))
  }
}
