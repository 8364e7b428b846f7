// The relay's decisions without sockets: the table and decidePacket take `now` and return what to do.
import { describe, expect, test } from 'bun:test'
import { createTicketIssuer, fakeData, fakeInitiation } from './testing.ts'
import { decidePacket, SessionTable, SourceGuard, type Limits } from './session-table.ts'
import { decodeTicket } from '../shared/wire/ticket.ts'

const RELAY = 'a1a1a1a1a1a1a1a1'
const limits: Limits = { pps: 10, bps: 10_000, burstS: 1 }
const T0 = Date.now()
const table = (over: Partial<ConstructorParameters<typeof SessionTable>[0]> = {}) =>
  new SessionTable({ firstPort: 40000, lastPort: 40005, capacity: 3, idleMs: 60_000, limits, ...over })
/** The table takes tickets its caller verified (main-port.ts): decoded, with their bytes. */
const claim = (t: SessionTable, bytes: Uint8Array, ip: string, now: number) => {
  const d = decodeTicket(bytes)
  if (!d.ok) throw new Error(d.error)
  return t.allocate(d.ticket, bytes, ip, now)
}

describe('SessionTable.allocate', () => {
  const issuer = createTicketIssuer(RELAY)
  test('first ticket creates the session with both ports; the other side joins it; retries are idempotent', () => {
    const t = table()
    const s = issuer.session()
    const a = claim(t, s.ticketA, '1.1.1.1', T0)
    if (a.status !== 'ok') throw new Error(a.status)
    expect(a.created).toBe(true)
    expect([a.session.a.port, a.session.b.port]).toEqual([40000, 40001])
    const b = claim(t, s.ticketB, '2.2.2.2', T0)
    const again = claim(t, s.ticketA, '1.1.1.1', T0 + 5)
    expect(b).toMatchObject({ status: 'ok', created: false })
    expect(again).toMatchObject({ status: 'ok', created: false })
    if (b.status === 'ok' && again.status === 'ok') {
      expect(b.side.port).toBe(40001)
      expect(again.side.port).toBe(40000)
    }
    expect(claim(t, s.ticketB, '3.3.3.3', T0)).toMatchObject({ status: 'side_taken', reason: 'side_taken' })
  })
  test('claimedBy finds a side only for the same ticket bytes from the same address', () => {
    const t = table()
    const s = issuer.session()
    const d = decodeTicket(s.ticketA)
    if (!d.ok) throw new Error(d.error)
    expect(t.claimedBy(d.ticket, s.ticketA, '1.1.1.1')).toBeUndefined()
    claim(t, s.ticketA, '1.1.1.1', T0)
    expect(t.claimedBy(d.ticket, s.ticketA, '1.1.1.1')?.side.name).toBe('a')
    expect(t.claimedBy(d.ticket, s.ticketA, '1.1.1.2')).toBeUndefined()
    const other = s.ticketA.slice()
    other[150] = other[150]! ^ 1 // same fields, other signature bytes: would need checking again
    expect(t.claimedBy(d.ticket, other, '1.1.1.1')).toBeUndefined()
  })
  test('capacity and port exhaustion answer no_ports; expiry frees ports for reuse', () => {
    const t = table({ capacity: 10 })
    for (let i = 0; i < 3; i++) expect(claim(t, issuer.session().ticketA, '1.1.1.1', T0).status).toBe('ok')
    expect(claim(t, issuer.session().ticketA, '1.1.1.1', T0)).toMatchObject({ status: 'no_ports' })
    expect(t.usedPorts.size).toBe(6)
    expect(t.expire(T0 + 60_000)).toHaveLength(0) // not idle for longer than 60 s yet
    expect(t.expire(T0 + 60_001)).toHaveLength(3)
    expect(t.usedPorts.size).toBe(0)
    expect(claim(t, issuer.session().ticketA, '1.1.1.1', T0 + 60_002).status).toBe('ok')
  })
  test('unbindable ports are skipped', () => {
    const t = table()
    t.unbindable.add(40000)
    t.unbindable.add(40002)
    const a = claim(t, issuer.session().ticketA, '1.1.1.1', T0)
    expect(a.status === 'ok' && [a.session.a.port, a.session.b.port]).toEqual([40001, 40003])
  })
})

describe('decidePacket', () => {
  const issuer = createTicketIssuer(RELAY)
  function setup() {
    const t = table()
    const s = issuer.session()
    const a = claim(t, s.ticketA, '10.0.0.1', T0)
    const b = claim(t, s.ticketB, '10.0.0.2', T0)
    if (a.status !== 'ok' || b.status !== 'ok') throw new Error('allocate failed')
    return { sess: a.session, keys: s, A: a.session.a, B: a.session.b }
  }
  test('learns from handshakes with a valid mac1, then forwards data from the learned port only', () => {
    const { sess, keys, A, B } = setup()
    expect(decidePacket(sess, A, B, '10.0.0.1', 5000, fakeInitiation(keys.keyB.publicKey), T0, limits)).toBe('peer_unknown')
    expect(A.peerPort).toBe(5000)
    expect(decidePacket(sess, B, A, '10.0.0.2', 6000, fakeInitiation(keys.keyA.publicKey), T0, limits)).toBeNull()
    expect(decidePacket(sess, A, B, '10.0.0.1', 5000, fakeData(64), T0, limits)).toBeNull()
    expect(decidePacket(sess, A, B, '10.0.0.1', 5001, fakeData(64), T0, limits)).toBe('wrong_source')
    expect(decidePacket(sess, A, B, '10.0.0.9', 5000, fakeData(64), T0, limits)).toBe('wrong_source')
    expect(decidePacket(sess, A, B, '10.0.0.1', 5001, fakeInitiation(keys.keyA.publicKey), T0, limits)).toBe('bad_mac1')
    expect(A.peerPort).toBe(5000)
    expect(decidePacket(sess, A, B, '10.0.0.1', 5000, new Uint8Array(10), T0, limits)).toBe('not_wireguard')
    expect(A).toMatchObject({ packetsIn: 6, forwarded: 1, dropped: 5 })
  })
  test('token bucket: a burst of `pps × burst` then refills with time', () => {
    const { sess, keys, A, B } = setup()
    decidePacket(sess, B, A, '10.0.0.2', 6000, fakeInitiation(keys.keyA.publicKey), T0, limits)
    decidePacket(sess, A, B, '10.0.0.1', 5000, fakeInitiation(keys.keyB.publicKey), T0, limits)
    const results = Array.from({ length: 20 }, () => decidePacket(sess, A, B, '10.0.0.1', 5000, fakeData(64), T0, limits))
    expect(results.filter((r) => r === null)).toHaveLength(9) // 10 tokens, one spent on the handshake
    expect(results.filter((r) => r === 'rate_limited')).toHaveLength(11)
    expect(decidePacket(sess, A, B, '10.0.0.1', 5000, fakeData(64), T0 + 100, limits)).toBeNull() // +1 token after 100 ms
    expect(decidePacket(sess, A, B, '10.0.0.1', 5000, fakeData(64), T0 + 100, limits)).toBe('rate_limited')
    // Bytes/s too: a 10 kB/s side cannot pass a 12 kB datagram at all, and a full second refills 10 packets.
    expect(decidePacket(sess, A, B, '10.0.0.1', 5000, fakeData(12_000), T0 + 2000, limits)).toBe('rate_limited')
  })
})

describe('SourceGuard', () => {
  test('deny list (exact and IPv4 CIDR) and auto-block after repeated invalid tickets, lifted after blockMs', () => {
    const g = new SourceGuard(['192.0.2.7', '198.51.100.0/24', '2001:db8::1'], { limit: 3, windowMs: 1000, blockMs: 5000 })
    expect(g.isBlocked('192.0.2.7', T0)).toBe(true)
    expect(g.isBlocked('198.51.100.200', T0)).toBe(true)
    expect(g.isBlocked('198.51.101.1', T0)).toBe(false)
    expect(g.isBlocked('2001:db8::1', T0)).toBe(true)
    expect([g.noteInvalid('7.7.7.7', T0), g.noteInvalid('7.7.7.7', T0 + 1), g.noteInvalid('7.7.7.7', T0 + 2)]).toEqual([false, false, true])
    expect(g.isBlocked('7.7.7.7', T0 + 4999)).toBe(true)
    expect(g.isBlocked('7.7.7.7', T0 + 5002)).toBe(false)
    // Invalid tickets spread out beyond the window never add up to a block.
    for (let i = 0; i < 10; i++) expect(g.noteInvalid('8.8.8.8', T0 + i * 1500)).toBe(false)
  })
})
