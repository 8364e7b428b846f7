// The relay under forged source addresses, over real UDP on loopback: each test reproduces an attack with
// datagrams whose IPv4 source is forged (a raw socket, ./spoof.ts) and asserts that nothing gets through.
// Any 127.0.0.0/8 address is local on Linux: victims bind 127.0.0.x sockets, and forged sources nobody listens
// on are taken from 127.77.0.0/16.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { ALLOCATE_COOKIE_LEN, ALLOCATE_REQUEST_LEN, decodeAllocateCookie, encodeAllocateRequest } from '../../src/shared/wire/allocate.ts'
import { encodeBindingRequest, newTransactionId } from '../../src/shared/wire/stun.ts'
import { signTicket, decodeTicket } from '../../src/shared/wire/ticket.ts'
import { ed25519 } from '@noble/curves/ed25519.js'
import { allocate, fakeData, fakeInitiation } from '../../src/relay/testing.ts'
import { peer, settle, testRelay, until, type Peer } from './helpers.ts'
import { floodInProcess, Spoofer, spoofSkipReason } from './spoof.ts'

const skip = spoofSkipReason()
if (skip) console.warn(`skipping the relay's forged-source tests: ${skip}`)
const LO = '127.0.0.1'

describe.skipIf(!!skip)('relay under forged source addresses', () => {
  let spoof: Spoofer
  const peers: Peer[] = []
  const mk = async (host = LO) => {
    const p = await peer(host)
    peers.push(p)
    return p
  }
  beforeAll(() => {
    spoof = Spoofer.open()
  })
  afterAll(() => {
    spoof.close()
    for (const p of peers) p.close()
  })

  test('a forged ALLOCATE and handshake cannot lock a side to a victim, so the attacker cannot push traffic at it', async () => {
    // The attack: the attacker holds both tickets of a session of its own; it forges side a's ALLOCATE and a
    // handshake with a valid mac1 from the victim's address, claims side b for real, then sends through b.
    const t = await testRelay()
    try {
      const victim = await mk('127.0.0.5')
      const attacker = await mk()
      const s = t.issuer.session()
      const relay = { ip: LO, port: t.relay.port }
      const from = { ip: victim.host, port: victim.port }
      const req = encodeAllocateRequest({ transactionId: newTransactionId(), ticket: s.ticketA })
      for (let i = 0; i < 3; i++) expect(spoof.send(from, relay, req)).toBe(true)
      expect(await until(() => t.relay.stats().allocate_requests >= 3)).toBe(true)
      const rb = await allocate({ host: LO, port: t.relay.port }, s.ticketB)
      expect(rb.status).toBe('ok')
      const portA = t.relay.sessionPorts()[0]!.a
      for (let i = 0; i < 3; i++) spoof.send(from, { ip: LO, port: portA }, fakeInitiation(s.keyB.publicKey))
      attacker.send(fakeInitiation(s.keyA.publicKey), rb.sessionPort)
      for (let i = 0; i < 200; i++) attacker.send(fakeData(1024, i), rb.sessionPort)
      await settle(() => t.relay.stats().packets_in)
      const st = t.relay.stats()
      expect(st.forwarded).toBe(0)
      expect(t.relay.sessions()[0]!.sides.a).toMatchObject({ claimed: false, learned: false, forwarded: 0 })
      // All the victim ever got: one cookie per forged ALLOCATE, each smaller than the request that caused it.
      expect(victim.got.length).toBe(3)
      for (const g of victim.got) {
        expect(g.buf.length).toBe(ALLOCATE_COOKIE_LEN)
        expect(g.buf.length).toBeLessThan(ALLOCATE_REQUEST_LEN)
        expect(decodeAllocateCookie(g.buf).ok).toBe(true)
      }
      expect(st.drops.no_session).toBeGreaterThanOrEqual(3) // the forged handshakes found side a unclaimed
    } finally {
      await t.relay.close()
    }
  })

  test('forged junk and invalid tickets from a victim\'s address do not get it blocked: its STUN and ALLOCATE keep working', async () => {
    const t = await testRelay({ invalidTicketLimit: 20 })
    try {
      const victim = await mk('127.0.0.6')
      const from = { ip: victim.host, port: victim.port }
      const relay = { ip: LO, port: t.relay.port }
      const d = decodeTicket(t.issuer.session().ticketA)
      if (!d.ok) throw new Error(d.error)
      const forged = signTicket(d.ticket, ed25519.keygen().secretKey)
      const expired = t.issuer.session({ notAfter: 1 }).ticketA
      for (let i = 0; i < 20; i++) {
        spoof.send(from, relay, Uint8Array.of(0x4c, 0x52, 0x41, 0x02, 0x01)) // 5 bytes of "ALLOCATE"
        spoof.send(from, relay, encodeAllocateRequest({ transactionId: newTransactionId(), ticket: forged }))
        spoof.send(from, relay, encodeAllocateRequest({ transactionId: newTransactionId(), ticket: expired }))
      }
      await until(() => t.relay.stats().allocate_requests + t.relay.stats().drops.blocked >= 60)
      expect(t.relay.stats()).toMatchObject({ blocked_sources: 0, ticket_checks: 0 })
      expect(t.relay.stats().drops.malformed).toBe(20)
      victim.got.length = 0
      victim.send(encodeBindingRequest(), t.relay.port)
      expect(await until(() => victim.got.length > 0)).toBe(true)
      expect((await allocate({ host: LO, port: t.relay.port }, t.issuer.session().ticketA, { localHost: victim.host })).status).toBe('ok')
    } finally {
      await t.relay.close()
    }
  })

  test('a flood of forged ALLOCATEs from 5000 addresses: no session, no signature work; STUN and a live session keep working', async () => {
    const t = await testRelay({ ratePps: 100_000, answerRate: 1000 })
    try {
      // A live session first: a and b have claimed their sides and learned their ports.
      const s = t.issuer.session()
      const [a, b] = [await mk(), await mk()]
      const ra = await allocate({ host: LO, port: t.relay.port }, s.ticketA)
      const rb = await allocate({ host: LO, port: t.relay.port }, s.ticketB)
      a.send(fakeInitiation(s.keyB.publicKey), ra.sessionPort)
      await until(() => t.relay.sessions()[0]?.sides.a.learned === true)
      b.send(fakeInitiation(s.keyA.publicKey), rb.sessionPort)
      expect(await until(() => a.got.length === 1)).toBe(true)
      const before = t.relay.stats()

      // The flood carries a genuine ticket (the attacker's own), so only the cookie stands between it and a
      // session; it runs in its own process, beside the relay.
      const attackerTicket = t.issuer.session().ticketA
      const flood = floodInProcess({
        dst: { ip: LO, port: t.relay.port },
        firstSource: '127.77.0.1',
        sources: 5000,
        count: 20_000,
        payload: encodeAllocateRequest({ transactionId: newTransactionId(), ticket: attackerTicket }),
      })
      const stunner = await mk()
      let stunAnswered = 0
      let sessionSent = 0
      let rounds = 0
      let done = false
      void flood.finally(() => (done = true))
      // While it lasts (bounded: at most 100 rounds): STUN probes (three tries each) and session traffic.
      for (; rounds < 100 && (!done || rounds < 5); rounds++) {
        await Bun.sleep(10)
        const had = stunner.got.length
        for (let tries = 0; tries < 3 && stunner.got.length === had; tries++) {
          stunner.send(encodeBindingRequest(), t.relay.port)
          await until(() => stunner.got.length > had, 300)
        }
        if (stunner.got.length > had) stunAnswered++
        for (let i = 0; i < 10; i++, sessionSent++) a.send(fakeData(128, sessionSent & 0xff), ra.sessionPort)
      }
      const sent = await flood
      await settle(() => t.relay.stats().allocate_requests)
      const after = t.relay.stats()
      expect(sent).toBe(20_000)
      expect(after.sessions).toBe(1) // the attacker's ticket claimed nothing
      expect(after.allocate_ok - before.allocate_ok).toBe(0)
      expect(after.ticket_checks - before.ticket_checks).toBe(0)
      expect(after.allocate_requests - before.allocate_requests).toBeGreaterThan(1000) // the relay did see the flood
      expect(stunAnswered).toBe(rounds)
      // Every session datagram that reached the relay was forwarded (the kernel may drop some on a busy machine).
      const sess = t.relay.sessions()[0]!
      expect(sess.sides.a.dropped).toBe(1) // the first handshake, sent before b was known
      expect(sess.sides.a.forwarded).toBe(sess.sides.a.packets_in - 1)
      expect(await settle(() => b.got.length)).toBe(sess.sides.a.forwarded)
      expect(b.got.length).toBeGreaterThan(0)
    } finally {
      await t.relay.close()
    }
  }, 40_000)

  test('forged STUN requests cannot make the relay flood a network: answers per source /24 are limited', async () => {
    const t = await testRelay({ answerRate: 20 })
    try {
      const victim = await mk('127.0.7.7')
      const relay = { ip: LO, port: t.relay.port }
      const started = Date.now()
      // 500 requests forged from the victim's address, and 500 from 250 other addresses of its /24, in bursts of
      // 50 that the relay's socket buffer holds.
      for (let i = 0; i < 500; i++) {
        spoof.send({ ip: victim.host, port: victim.port }, relay, encodeBindingRequest(undefined, {}))
        spoof.send({ ip: `127.0.7.${1 + (i % 250)}`, port: 40000 + i }, relay, encodeBindingRequest(undefined, {}))
        if (i % 25 === 24) await Bun.sleep(2)
      }
      await settle(() => t.relay.stats().main_packets_in)
      const elapsedS = (Date.now() - started) / 1000
      const st = t.relay.stats()
      const allowed = 40 + Math.ceil(20 * elapsedS) // two seconds' burst, then 20/s, for the whole /24
      expect(st.main_packets_in).toBeGreaterThan(2 * allowed) // the relay did see them (loopback may drop a few)
      expect(st.stun_responses).toBeLessThanOrEqual(allowed)
      expect(st.stun_responses + st.drops.answer_limited).toBe(st.main_packets_in)
      expect(victim.got.length).toBeLessThanOrEqual(allowed)
      // What the victim got is no larger than what was forged in its name: 32 bytes for 20 (no FINGERPRINT asked).
      for (const g of victim.got) expect(g.buf.length).toBe(32)
      // Another network is unaffected.
      const other = await mk('127.0.8.8')
      other.send(encodeBindingRequest(), t.relay.port)
      expect(await until(() => other.got.length === 1)).toBe(true)
    } finally {
      await t.relay.close()
    }
  })
})
