// The main port's decisions without sockets: datagram in, answer bytes (or a session to bind) out, at a given time.
import { describe, expect, test } from 'bun:test'
import { ed25519 } from '@noble/curves/ed25519.js'
import { silentLogger } from '../shared/log.ts'
import {
  ALLOCATE_REQUEST_LEN,
  decodeAllocateCookie,
  decodeAllocateResponse,
  encodeAllocateRequest,
  type AllocateResponse,
} from '../shared/wire/allocate.ts'
import { decodeBindingResponse, decodeStun, encodeBindingRequest } from '../shared/wire/stun.ts'
import { decodeTicket, signTicket } from '../shared/wire/ticket.ts'
import { COOKIE_EPOCH_MS, CookieJar } from './cookie.ts'
import { PrefixLimiter, TokenBucket } from './limits.ts'
import { MainPort, type MainResult } from './main-port.ts'
import { RelayMetrics } from './metrics.ts'
import { SessionTable, SourceGuard } from './session-table.ts'
import { createTicketIssuer } from './testing.ts'

const RELAY = 'b2b2b2b2b2b2b2b2'
const T0 = Date.now() // tickets from the issuer expire an hour from now
const issuer = createTicketIssuer(RELAY)

function setup(o: { checksPerS?: number; answerRate?: number; invalidLimit?: number } = {}) {
  const metrics = new RelayMetrics()
  const table = new SessionTable({ firstPort: 41000, lastPort: 41099, capacity: 50, idleMs: 60_000, limits: { pps: 100, bps: 1e6, burstS: 1 } })
  const guard = new SourceGuard([], { limit: o.invalidLimit ?? 3, windowMs: 10_000, blockMs: 300_000 })
  const main = new MainPort({
    table,
    guard,
    cookies: new CookieJar(new Uint8Array(32).fill(3)),
    answers: {
      stun: new PrefixLimiter({ rate: o.answerRate ?? 50, burst: 2 * (o.answerRate ?? 50) }),
      allocate: new PrefixLimiter({ rate: o.answerRate ?? 50, burst: 2 * (o.answerRate ?? 50) }),
    },
    ticketChecks: new TokenBucket(o.checksPerS ?? 100, o.checksPerS ?? 100, T0),
    metrics,
    log: silentLogger,
    idleTimeoutSec: 300,
    blockSeconds: 300,
  })
  main.controlKey = issuer.publicKey
  main.relayId = RELAY
  return { main, table, guard, metrics }
}

const bytes = (r: MainResult): Uint8Array => {
  if (!(r instanceof Uint8Array)) throw new Error(`expected bytes, got ${r === null ? 'null' : 'a session to bind'}`)
  return r
}
const response = (r: MainResult): AllocateResponse => {
  const d = decodeAllocateResponse(bytes(r))
  if (!d.ok) throw new Error(d.error)
  return d.value
}
const txid = () => crypto.getRandomValues(new Uint8Array(12))

/** The cookie exchange a client makes: ask without one, then send the request again with what came back. */
function proved(main: MainPort, ticket: Uint8Array, ip: string, port: number, now: number): Uint8Array {
  const id = txid()
  const c = decodeAllocateCookie(bytes(main.datagram(encodeAllocateRequest({ transactionId: id, ticket }), port, ip, true, now)))
  if (!c.ok) throw new Error(c.error)
  return encodeAllocateRequest({ transactionId: id, ticket, cookie: c.value.cookie })
}

describe('ALLOCATE: return routability first', () => {
  test('an unproved source gets only a cookie, smaller than its request: no session, no signature check', () => {
    const { main, table, metrics } = setup()
    const req = encodeAllocateRequest({ transactionId: txid(), ticket: issuer.session().ticketA })
    const r = bytes(main.datagram(req, 5000, '198.51.100.7', true, T0))
    expect(r.length).toBe(36)
    expect(r.length).toBeLessThan(req.length)
    expect(decodeAllocateCookie(r).ok).toBe(true)
    expect(table.size).toBe(0)
    expect(metrics).toMatchObject({ allocateCookies: 1, ticketChecks: 0, allocateOk: 0 })
  })

  test('echoing the cookie from the same address and port claims the side', () => {
    const { main, table, metrics } = setup()
    const s = issuer.session()
    const p = main.datagram(proved(main, s.ticketA, '198.51.100.7', 5000, T0), 5000, '198.51.100.7', true, T0 + 10)
    if (p === null || p instanceof Uint8Array) throw new Error('expected a session to bind')
    expect(p.side).toMatchObject({ name: 'a', ip: '198.51.100.7' })
    expect(table.size).toBe(1)
    expect(response(main.bound(p, true, T0 + 11))).toMatchObject({ status: 'ok', side: 'a', sessionPort: p.side.port, observed: { address: '198.51.100.7', port: 5000 } })
    expect(metrics).toMatchObject({ allocateCookies: 1, ticketChecks: 1, allocateOk: 1 })
  })

  test.each([
    ['another source port', '198.51.100.7', 5001],
    ['another address', '198.51.100.8', 5000],
  ])('the cookie is no good from %s: asked again, nothing claimed', (_n, ip, port) => {
    const { main, table } = setup()
    const req = proved(main, issuer.session().ticketA, '198.51.100.7', 5000, T0)
    expect(decodeAllocateCookie(bytes(main.datagram(req, port, ip, true, T0))).ok).toBe(true)
    expect(table.size).toBe(0)
  })

  test('the cookie is bound to the ticket\'s session and side, and to its time', () => {
    const { main, table } = setup()
    const s = issuer.session()
    const req = proved(main, s.ticketA, '198.51.100.7', 5000, T0)
    const cookie = req.subarray(20, 36)
    const forB = encodeAllocateRequest({ transactionId: txid(), ticket: s.ticketB, cookie })
    const forOther = encodeAllocateRequest({ transactionId: txid(), ticket: issuer.session().ticketA, cookie })
    for (const r of [forB, forOther]) expect(decodeAllocateCookie(bytes(main.datagram(r, 5000, '198.51.100.7', true, T0))).ok).toBe(true)
    // Valid in its epoch and the next, not after.
    const late = Math.floor(T0 / COOKIE_EPOCH_MS) * COOKIE_EPOCH_MS + 2 * COOKIE_EPOCH_MS
    expect(decodeAllocateCookie(bytes(main.datagram(req, 5000, '198.51.100.7', true, late))).ok).toBe(true)
    expect(table.size).toBe(0)
    expect(main.datagram(req, 5000, '198.51.100.7', true, late - 1)).not.toBeNull() // still good just before
    expect(table.size).toBe(1)
  })
})

describe('ALLOCATE: malformed, invalid, blocking, and the signature budget', () => {
  test('malformed requests are counted as malformed, answered (status 7) only when at least 60 bytes, never towards blocking', () => {
    const { main, guard, metrics } = setup({ invalidLimit: 2 })
    for (let i = 0; i < 50; i++) expect(main.datagram(Uint8Array.of(0x4c, 0x52, 0x41, 0x02, 0x01), 5000, '203.0.113.5', true, T0)).toBeNull()
    const v1 = new Uint8Array(184)
    v1.set([0x4c, 0x52, 0x41, 0x01, 0x01])
    v1.set(txid(), 8)
    const r = bytes(main.datagram(v1, 5000, '203.0.113.5', true, T0))
    expect(r.length).toBeLessThanOrEqual(v1.length)
    expect(response(r)).toMatchObject({ status: 'malformed', side: null, sessionPort: 0 })
    expect(response(r).transactionId).toEqual(v1.subarray(8, 20))
    expect(metrics.drops).toMatchObject({ malformed: 51, bad_ticket: 0 })
    expect(guard.isBlocked('203.0.113.5', T0)).toBe(false)
  })

  test('invalid tickets from an unproved source get cookies and count for nothing; from a proved one they block it', () => {
    const { main, guard, metrics } = setup({ invalidLimit: 3 })
    const expired = issuer.session({ notAfter: T0 / 1000 - 1 }).ticketA
    for (let i = 0; i < 20; i++) main.datagram(encodeAllocateRequest({ transactionId: txid(), ticket: expired }), 5000 + i, '203.0.113.6', true, T0)
    expect(guard.isBlocked('203.0.113.6', T0)).toBe(false)
    expect(metrics.allocateCookies).toBe(20)
    const statuses = [0, 1, 2].map((i) => response(main.datagram(proved(main, expired, '203.0.113.6', 6000 + i, T0), 6000 + i, '203.0.113.6', true, T0)).status)
    expect(statuses).toEqual(['expired_ticket', 'expired_ticket', 'expired_ticket'])
    expect(guard.isBlocked('203.0.113.6', T0)).toBe(true)
    expect(main.datagram(encodeBindingRequest(), 7000, '203.0.113.6', true, T0)).toBeNull()
  })

  test('cheap checks come before the signature: expired and foreign forgeries cost no Ed25519 work', () => {
    const { main, metrics } = setup({ invalidLimit: 100 })
    const d = decodeTicket(issuer.session().ticketA)
    if (!d.ok) throw new Error(d.error)
    const forger = ed25519.keygen().secretKey
    const expiredForgery = signTicket({ ...d.ticket, notAfter: T0 / 1000 - 1 }, forger)
    const foreignForgery = signTicket({ ...d.ticket, relayId: 'ffffffffffffffff' }, forger)
    const got = [expiredForgery, foreignForgery].map((t) => response(main.datagram(proved(main, t, '203.0.113.7', 5000, T0), 5000, '203.0.113.7', true, T0)).status)
    expect(got).toEqual(['expired_ticket', 'wrong_relay'])
    expect(metrics.ticketChecks).toBe(0)
    expect(response(main.datagram(proved(main, signTicket(d.ticket, forger), '203.0.113.7', 5000, T0), 5000, '203.0.113.7', true, T0)).status).toBe('bad_ticket')
    expect(metrics.ticketChecks).toBe(1)
  })

  test('signature checks are bounded per second for all sources together; beyond, busy (not counted towards blocking)', () => {
    const { main, guard, metrics } = setup({ checksPerS: 3, invalidLimit: 100 })
    const forger = ed25519.keygen().secretKey
    const forged = () => {
      const d = decodeTicket(issuer.session().ticketA)
      if (!d.ok) throw new Error(d.error)
      return signTicket(d.ticket, forger)
    }
    const run = (n: number, now: number) =>
      Array.from({ length: n }, (_, i) => response(main.datagram(proved(main, forged(), `203.0.113.${10 + i}`, 5000, now), 5000, `203.0.113.${10 + i}`, true, now)).status)
    expect(run(5, T0)).toEqual(['bad_ticket', 'bad_ticket', 'bad_ticket', 'busy', 'busy'])
    expect(metrics.ticketChecks).toBe(3)
    expect(metrics.drops.busy).toBe(2)
    expect(run(2, T0 + 334)).toEqual(['bad_ticket', 'busy']) // a third of a second refills one check
    expect(metrics.ticketChecks).toBe(4)
    for (let i = 10; i < 15; i++) expect(guard.isBlocked(`203.0.113.${i}`, T0 + 334)).toBe(false)
  })

  test('a retry with the same ticket from the same address is answered ok without a second signature check', () => {
    const { main, metrics } = setup({ checksPerS: 1 })
    const s = issuer.session()
    const p = main.datagram(proved(main, s.ticketA, '198.51.100.9', 5000, T0), 5000, '198.51.100.9', true, T0)
    if (p === null || p instanceof Uint8Array) throw new Error('expected a session to bind')
    main.bound(p, true, T0)
    p.session.ready = true // what the sockets layer does once both ports are bound
    for (let i = 0; i < 3; i++) {
      const port = 5100 + i // a fresh socket per try, as the agent uses
      expect(response(main.datagram(proved(main, s.ticketA, '198.51.100.9', port, T0), port, '198.51.100.9', true, T0))).toMatchObject({ status: 'ok', sessionPort: p.side.port })
    }
    expect(metrics.ticketChecks).toBe(1)
    // The other side, from elsewhere: the budget of 1/s is spent, so it is asked to come back.
    expect(response(main.datagram(proved(main, s.ticketB, '198.51.100.10', 5000, T0), 5000, '198.51.100.10', true, T0)).status).toBe('busy')
  })

  test('without a control key: no_control_key, after the cookie', () => {
    const { main } = setup()
    main.controlKey = null
    const t = issuer.session().ticketA
    expect(decodeAllocateCookie(bytes(main.datagram(encodeAllocateRequest({ transactionId: txid(), ticket: t }), 5000, '198.51.100.1', true, T0))).ok).toBe(true)
    expect(response(main.datagram(proved(main, t, '198.51.100.1', 5000, T0), 5000, '198.51.100.1', true, T0)).status).toBe('no_control_key')
  })

  test('ALLOCATE on the STUN alt port is not answered', () => {
    const { main, metrics } = setup()
    expect(main.datagram(encodeAllocateRequest({ transactionId: txid(), ticket: issuer.session().ticketA }), 5000, '198.51.100.1', false, T0)).toBeNull()
    expect(metrics.drops.unknown_message).toBe(1)
    expect(ALLOCATE_REQUEST_LEN).toBe(200)
  })
})

describe('STUN on the main port', () => {
  test('FINGERPRINT only when the request carried one (RFC 8489 §14.7): 20 bytes in, 32 out', () => {
    const { main } = setup()
    const bare = encodeBindingRequest(undefined, {})
    expect(bare.length).toBe(20)
    const plain = bytes(main.datagram(bare, 5000, '198.51.100.1', true, T0))
    expect(plain.length).toBe(32)
    const p = decodeStun(plain)
    expect(p.ok && p.message.fingerprint).toBe(false)
    const withFp = bytes(main.datagram(encodeBindingRequest(), 5000, '198.51.100.1', true, T0))
    expect(withFp.length).toBe(40)
    const f = decodeStun(withFp)
    expect(f.ok && f.message.fingerprint).toBe(true)
    expect(decodeBindingResponse(plain)).toMatchObject({ ok: true, mapped: { address: '198.51.100.1', port: 5000 } })
  })

  test('answers per source /24 are limited (two seconds of the rate, then the rate); other prefixes are not affected', () => {
    const { main, metrics } = setup({ answerRate: 5 })
    const ask = (ip: string, now: number) => main.datagram(encodeBindingRequest(), 5000, ip, true, now) !== null
    // 30 requests from 30 forged addresses of one /24: ten answered (the burst), the rest dropped.
    const answered = Array.from({ length: 30 }, (_, i) => ask(`192.0.2.${i + 1}`, T0)).filter(Boolean).length
    expect(answered).toBe(10)
    expect(metrics.drops.answer_limited).toBe(20)
    expect(ask('192.0.3.1', T0)).toBe(true)
    expect(ask('192.0.2.99', T0 + 200)).toBe(true) // 5/s: one more after 200 ms
    expect(ask('192.0.2.99', T0 + 200)).toBe(false)
    expect(ask('2001:db8:0:1::5', T0)).toBe(true)
  })

  test('cookie replies are limited per prefix too: a forged ALLOCATE flood from one /24 costs no sends', () => {
    const { main, metrics } = setup({ answerRate: 5 })
    const ticket = issuer.session().ticketA
    const replies = Array.from({ length: 100 }, (_, i) => main.datagram(encodeAllocateRequest({ transactionId: txid(), ticket }), 5000 + i, `192.0.2.${i}`, true, T0))
    expect(replies.filter((r) => r !== null)).toHaveLength(10)
    expect(metrics).toMatchObject({ allocateCookies: 10, drops: expect.objectContaining({ answer_limited: 90 }) })
    // STUN has its own budget: forging ALLOCATEs at a network does not cost it its STUN answers.
    expect(main.datagram(encodeBindingRequest(), 5000, '192.0.2.200', true, T0)).not.toBeNull()
    // A proved source is not limited: its cookie was made while there was budget.
    const { main: m2 } = setup({ answerRate: 1 })
    const req = proved(m2, ticket, '192.0.2.1', 5000, T0)
    for (let i = 0; i < 5; i++) m2.datagram(encodeAllocateRequest({ transactionId: txid(), ticket }), 5000, '192.0.2.2', true, T0)
    expect(m2.datagram(req, 5000, '192.0.2.1', true, T0)).not.toBeNull()
  })
})

describe('PrefixLimiter', () => {
  test('one bucket per /24 or /64, whatever the spelling; a fixed table however many prefixes a flood forges', () => {
    const lim = new PrefixLimiter({ rate: 1, burst: 3 }, 12345)
    expect(lim.bucket('198.51.100.1')).toBe(lim.bucket('198.51.100.254'))
    expect(lim.bucket('2001:db8:0:1::1')).toBe(lim.bucket('2001:0db8:0000:0001:ffff::9'))
    // 20,000 forged /24s each sending one request: a legitimate network's requests still get through.
    for (let i = 0; i < 20_000; i++) lim.take(`10.${i >> 8}.${i & 255}.1`, T0)
    expect([1, 2, 3].map(() => lim.take('203.0.113.5', T0))).toEqual([true, true, true])
    expect(lim.take('203.0.113.6', T0)).toBe(false)
    // Another seed puts prefixes elsewhere: where a bucket is cannot be known without it.
    const spread = new Set(Array.from({ length: 8 }, (_, s) => new PrefixLimiter({ rate: 1, burst: 1 }, s).bucket('198.51.100.1')))
    expect(spread.size).toBeGreaterThan(4)
  })
})
