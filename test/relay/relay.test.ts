// The relay over real UDP on loopback: STUN, ALLOCATE, forwarding, and everything it must refuse.
// Addresses other than 127.0.0.1 (127.0.0.2, .3) are still loopback on Linux and stand in for other hosts.
// test/relay/relay-kernel.test.ts runs this file again inside a network namespace with --kernel-offload
// (LANRAGE_TEST_KERNEL_OFFLOAD=1): the same behaviour must hold when locked sessions are forwarded by nftables.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { ed25519 } from '@noble/curves/ed25519.js'
import { ManualClock } from '../../src/shared/clock.ts'
import { signTicket, decodeTicket } from '../../src/shared/wire/ticket.ts'
import { ATTR, BINDING_INDICATION, decodeBindingResponse, decodeStun, encodeBindingRequest, encodeStun, getAttribute, newTransactionId } from '../../src/shared/wire/stun.ts'
import { encodeAllocateRequest } from '../../src/shared/wire/allocate.ts'
import { allocate, fakeData, fakeInitiation, type TestSession } from '../../src/relay/testing.ts'
import type { Relay } from '../../src/relay/index.ts'
import { Value } from '@sinclair/typebox/value'
import { relaySchema, type RelayConfig } from '../../src/relay/config.ts'
import { startRelay } from '../../src/relay/index.ts'
import { silentLogger } from '../../src/shared/log.ts'
import { peer, portRange, settle, testRelay, until, type Peer } from './helpers.ts'

const LO = '127.0.0.1'
const KERNEL = process.env.LANRAGE_TEST_KERNEL_OFFLOAD === '1'

/** With the kernel path: the locked sources (`ip . port . relay port`) in the relay's nftables table. */
function kernelLocked(config: RelayConfig): string {
  const table = `lanrage_${config.ports.split('-')[0]}`
  const out = Bun.spawnSync(['nft', 'list', 'set', 'ip', table, 'locked']).stdout.toString()
  return /elements = \{([^}]*)\}/.exec(out)?.[1]?.replace(/\s+/g, ' ').trim() ?? ''
}

/**
 * relay.stats() for a "before" snapshot. With the kernel path, what the kernel forwarded reaches the relay's
 * totals a moment later (its counters are read in the background): earlier traffic must have arrived first.
 */
async function settledStats(relay: Relay) {
  if (KERNEL) await settle(() => relay.stats().packets_in + relay.stats().forwarded)
  return relay.stats()
}

/** Allocates both sides and learns both peers' ports with valid handshakes; returns the side ports. */
async function connect(relay: Relay, s: TestSession, a: Peer, b: Peer) {
  const ra = await allocate({ host: LO, port: relay.port }, s.ticketA)
  const rb = await allocate({ host: LO, port: relay.port }, s.ticketB)
  expect([ra.status, rb.status]).toEqual(['ok', 'ok'])
  // Each peer's WireGuard sends to its own side's port; mac1 is keyed with the OTHER peer's public key.
  a.send(fakeInitiation(s.keyB.publicKey), ra.sessionPort)
  await until(() => relay.sessions()[0]?.sides.a.learned === true || relay.stats().drops.peer_unknown > 0)
  b.send(fakeInitiation(s.keyA.publicKey), rb.sessionPort)
  expect(await until(() => a.got.length === 1)).toBe(true) // B's initiation reached A (A was learned)
  a.got.length = 0
  return { portA: ra.sessionPort, portB: rb.sessionPort }
}

describe('relay main port', () => {
  let t: Awaited<ReturnType<typeof testRelay>>
  beforeAll(async () => {
    t = await testRelay()
  })
  afterAll(() => t.relay.close())

  test('STUN Binding request → XOR-MAPPED-ADDRESS of the sender', async () => {
    const p = await peer()
    try {
      p.send(encodeBindingRequest(), t.relay.port)
      expect(await until(() => p.got.length > 0)).toBe(true)
      const r = decodeBindingResponse(p.got[0]!.buf)
      expect(r).toMatchObject({ ok: true, mapped: { address: LO, port: p.port, family: 'IPv4' } })
      expect(t.relay.stats().stun_responses).toBeGreaterThanOrEqual(1)
    } finally {
      p.close()
    }
  })

  test('a Binding request with a bad FINGERPRINT, or an indication, gets no answer and is counted', async () => {
    const p = await peer()
    try {
      const before = t.relay.stats().drops.bad_stun
      const bad = encodeBindingRequest()
      bad[bad.length - 1] = bad[bad.length - 1]! ^ 0xff
      // A well-formed Binding indication (RFC 8489 §5): valid, but indications are never answered.
      const indication = encodeStun({ type: BINDING_INDICATION, transactionId: newTransactionId(), attributes: [] }, { fingerprint: true })
      p.send(bad, t.relay.port)
      p.send(indication, t.relay.port)
      expect(await until(() => t.relay.stats().drops.bad_stun - before === 2)).toBe(true)
      await Bun.sleep(50)
      expect(p.got.length).toBe(0)
    } finally {
      p.close()
    }
  })

  test('ALLOCATE gives one port per side, reports the observed source, and is idempotent', async () => {
    const s = t.issuer.session()
    const a1 = await allocate({ host: LO, port: t.relay.port }, s.ticketA)
    const a2 = await allocate({ host: LO, port: t.relay.port }, s.ticketA)
    const b1 = await allocate({ host: LO, port: t.relay.port }, s.ticketB)
    expect(a1).toMatchObject({ status: 'ok', side: 'a', idleTimeoutSec: 300, observed: { address: LO, family: 'IPv4' } })
    expect(a1.sessionId).toEqual(s.sessionId)
    expect(a2.sessionPort).toBe(a1.sessionPort)
    expect(b1).toMatchObject({ status: 'ok', side: 'b' })
    expect(b1.sessionPort).not.toBe(a1.sessionPort)
    const [lo, hi] = t.config.ports.split('-').map(Number)
    for (const p of [a1.sessionPort, b1.sessionPort]) expect(p >= lo! && p <= hi!).toBe(true)
    expect(t.relay.sessionPorts()).toContainEqual({ session_id: Buffer.from(s.sessionId).toString('hex'), party_id: s.partyId, a: a1.sessionPort, b: b1.sessionPort })
  })

  test('forged, expired, wrong-relay and other-party tickets are refused and counted', async () => {
    const before = t.relay.stats().drops
    const s = t.issuer.session()
    const forger = ed25519.keygen()
    const d = decodeTicket(s.ticketA)
    if (!d.ok) throw new Error(d.error)
    const forged = signTicket(d.ticket, forger.secretKey)
    const expired = t.issuer.session({ notAfter: Math.floor(Date.now() / 1000) - 10 })
    const otherRelay = t.issuer.session({ relayId: 'ffffffffffffffff' })
    const r1 = await allocate({ host: LO, port: t.relay.port }, forged)
    const r2 = await allocate({ host: LO, port: t.relay.port }, expired.ticketA)
    const r3 = await allocate({ host: LO, port: t.relay.port }, otherRelay.ticketA)
    expect([r1.status, r2.status, r3.status]).toEqual(['bad_ticket', 'expired_ticket', 'wrong_relay'])
    expect([r1.sessionPort, r2.sessionPort, r3.sessionPort]).toEqual([0, 0, 0])
    // A genuine ticket for the same session id but another party (or other keys) is not one of this session's.
    expect((await allocate({ host: LO, port: t.relay.port }, s.ticketA)).status).toBe('ok')
    const replay = signTicket({ ...d.ticket, side: 'b', partyId: 'abcdefabcdef' }, t.issuer.secretKey)
    expect((await allocate({ host: LO, port: t.relay.port }, replay)).status).toBe('bad_ticket')
    const swapped = signTicket({ ...d.ticket, side: 'b', holderKey: d.ticket.holderKey, otherKey: d.ticket.otherKey }, t.issuer.secretKey)
    expect((await allocate({ host: LO, port: t.relay.port }, swapped)).status).toBe('bad_ticket')
    const after = t.relay.stats().drops
    expect(after.bad_ticket - before.bad_ticket).toBe(3)
    expect(after.expired_ticket - before.expired_ticket).toBe(1)
    expect(after.wrong_relay - before.wrong_relay).toBe(1)
  })

  test('a side is locked to the IP that claimed it', async () => {
    const s = t.issuer.session()
    expect((await allocate({ host: LO, port: t.relay.port }, s.ticketA)).status).toBe('ok')
    const other = await allocate({ host: LO, port: t.relay.port }, s.ticketA, { localHost: '127.0.0.2' })
    expect(other).toMatchObject({ status: 'side_taken', sessionPort: 0, observed: { address: '127.0.0.2' } })
  })

  test('garbage on the main port is dropped and counted, never answered', async () => {
    const p = await peer()
    try {
      const before = t.relay.stats().drops
      p.send(new Uint8Array([1, 2, 3]), t.relay.port)
      p.send(fakeInitiation(new Uint8Array(32)), t.relay.port)
      await until(() => t.relay.stats().drops.unknown_message - before.unknown_message === 2)
      expect(t.relay.stats().drops.unknown_message - before.unknown_message).toBe(2)
      await Bun.sleep(50)
      expect(p.got.length).toBe(0)
    } finally {
      p.close()
    }
  })
})

describe('relay STUN alt port (--stun-alt-port)', () => {
  test('a second port answers STUN Binding with the sender\'s XOR-MAPPED-ADDRESS; ALLOCATE there is dropped', async () => {
    const t = await testRelay()
    const p = await peer()
    try {
      const alt = t.relay.stunAltPort!
      expect(alt).toBeGreaterThan(0)
      expect(alt).not.toBe(t.relay.port)
      const before = t.relay.stats()
      const txid = newTransactionId()
      p.send(encodeBindingRequest(txid), alt)
      expect(await until(() => p.got.length > 0)).toBe(true)
      // The answer comes from the alt port itself: a client compares mappings towards two destinations.
      expect(p.got[0]!.port).toBe(alt)
      const r = decodeBindingResponse(p.got[0]!.buf)
      expect(r).toMatchObject({ ok: true, mapped: { address: LO, port: p.port, family: 'IPv4' } })
      if (!r.ok) throw new Error(r.error)
      expect(Buffer.from(r.transactionId).equals(Buffer.from(txid))).toBe(true)
      const m = decodeStun(p.got[0]!.buf)
      expect(m.ok && getAttribute(m.message, ATTR.XOR_MAPPED_ADDRESS) !== undefined).toBe(true)
      expect(t.relay.stats().stun_responses - before.stun_responses).toBe(1)

      // The alt port is STUN only: a well-formed ALLOCATE with a valid ticket gets no answer and is counted.
      p.got.length = 0
      p.send(encodeAllocateRequest({ transactionId: newTransactionId(), ticket: t.issuer.session().ticketA }), alt)
      expect(await until(() => t.relay.stats().drops.unknown_message - before.drops.unknown_message === 1)).toBe(true)
      await Bun.sleep(50)
      expect(p.got.length).toBe(0)
      expect(t.relay.stats().allocate_requests).toBe(before.allocate_requests)
    } finally {
      p.close()
      await t.relay.close()
    }
  })

  test('-1 turns it off (registered as null); an explicit port is used as given and freed on close', async () => {
    // The registration body as the control server would receive it (POST /relays through deps.fetch).
    const registered = async (stunAltPort: number) => {
      const bodies: Record<string, unknown>[] = []
      const fetch = (async (_url: unknown, init?: RequestInit) => {
        bodies.push(JSON.parse(String(init?.body)))
        return Response.json({ ticket_public_key: Buffer.alloc(32).toString('base64'), heartbeat_interval_s: 60 })
      }) as unknown as typeof globalThis.fetch
      const config = Value.Default(relaySchema, { host: LO, port: 0, ports: portRange(), control: 'http://control.invalid', relaySecret: 's', statsInterval: 0, stunAltPort })
      const relay = await startRelay(config as RelayConfig, { log: silentLogger, fetch, sweepIntervalMs: 0 })
      await relay.registered
      await relay.close()
      return { alt: relay.stunAltPort, body: bodies[0]! }
    }
    const off = await registered(-1)
    expect(off.alt).toBeNull()
    expect(off.body).toMatchObject({ stun_alt_port: null })
    const dflt = await registered(0)
    expect(dflt.alt).toBeGreaterThan(0)
    expect(dflt.body).toMatchObject({ stun_alt_port: dflt.alt })

    const probe = await Bun.udpSocket({ hostname: LO })
    const port = probe.port
    probe.close()
    const on = await testRelay({ stunAltPort: port })
    const p = await peer()
    try {
      expect(on.relay.stunAltPort).toBe(port)
      p.send(encodeBindingRequest(), port)
      expect(await until(() => p.got.length > 0)).toBe(true)
      expect(decodeBindingResponse(p.got[0]!.buf)).toMatchObject({ ok: true, mapped: { address: LO, port: p.port } })
    } finally {
      p.close()
      await on.relay.close()
    }
    // Closed with the relay: the port can be bound again.
    const again = await Bun.udpSocket({ hostname: LO, port })
    again.close()
  })
})

describe('relay forwarding and what it refuses', () => {
  let t: Awaited<ReturnType<typeof testRelay>>
  const clock = new ManualClock(Date.now())
  const peers: Peer[] = []
  const mk = async (host = LO) => {
    const p = await peer(host)
    peers.push(p)
    return p
  }
  beforeAll(async () => {
    t = await testRelay({ ratePps: 100, burstS: 1, idleTimeout: 60 }, { clock })
  })
  afterAll(async () => {
    for (const p of peers) p.close()
    await t.relay.close()
  })

  test('both directions forward the same bytes, and each peer only ever sees the relay', async () => {
    const s = t.issuer.session()
    const [a, b] = [await mk(), await mk()]
    const { portA, portB } = await connect(t.relay, s, a, b)
    const ping = fakeData(200, 0x11)
    const pong = fakeData(1400, 0x22)
    a.send(ping, portA)
    b.send(pong, portB)
    expect(await until(() => a.got.length === 1 && b.got.length >= 1)).toBe(true)
    const atB = b.got.at(-1)!
    const atA = a.got[0]!
    expect(Buffer.from(atB.buf).equals(Buffer.from(ping))).toBe(true)
    expect(Buffer.from(atA.buf).equals(Buffer.from(pong))).toBe(true)
    // B hears from the relay's B port, A from the relay's A port: neither learns the other's address.
    expect([atB.address, atB.port]).toEqual([LO, portB])
    expect([atA.address, atA.port]).toEqual([LO, portA])
    // Counted per side (the kernel's counters reach the sessions a moment later, hence the wait).
    const st = () => t.relay.sessions().find((x) => x.session_id === Buffer.from(s.sessionId).toString('hex'))!
    expect(await until(() => st().sides.a.forwarded >= 1 && st().sides.b.forwarded >= 2)).toBe(true)
    // With the kernel path the locked session is in the kernel's table a moment after both sides learned.
    if (KERNEL) {
      const both = () => kernelLocked(t.config).includes(`127.0.0.1 . ${a.port} . ${portA}`) && kernelLocked(t.config).includes(`127.0.0.1 . ${b.port} . ${portB}`)
      expect(await until(both)).toBe(true)
      a.send(ping, portA)
      expect(await until(() => b.got.length === 2)).toBe(true)
      expect([b.got[1]!.address, b.got[1]!.port]).toEqual([LO, portB])
    }
  })

  test('traffic from an address without a session is never forwarded (0 out, counted by reason)', async () => {
    const s = t.issuer.session()
    const [a, b] = [await mk(), await mk()]
    const { portA, portB } = await connect(t.relay, s, a, b)
    const intruder = await mk('127.0.0.2')
    const before = await settledStats(t.relay)
    for (let i = 0; i < 20; i++) {
      intruder.send(fakeData(100), portA)
      intruder.send(fakeInitiation(s.keyB.publicKey), portA) // even with a valid mac1: wrong IP
      intruder.send(fakeData(100), portB)
    }
    await until(() => t.relay.stats().drops.wrong_source - before.drops.wrong_source >= 60)
    await Bun.sleep(50)
    const after = t.relay.stats()
    expect(after.forwarded - before.forwarded).toBe(0)
    expect(after.drops.wrong_source - before.drops.wrong_source).toBe(60)
    expect(a.got.length + b.got.length + intruder.got.length).toBe(0)
  })

  test('an unclaimed side drops everything as no_session', async () => {
    const s = t.issuer.session()
    const ra = await allocate({ host: LO, port: t.relay.port }, s.ticketA)
    const rb = t.relay.sessionPorts().find((x) => x.session_id === Buffer.from(s.sessionId).toString('hex'))!.b
    const p = await mk()
    const before = await settledStats(t.relay)
    for (let i = 0; i < 5; i++) p.send(fakeInitiation(s.keyA.publicKey), rb)
    await until(() => t.relay.stats().drops.no_session - before.drops.no_session >= 5)
    expect(t.relay.stats().drops.no_session - before.drops.no_session).toBe(5)
    expect(t.relay.stats().forwarded - before.forwarded).toBe(0)
    expect(ra.status).toBe('ok')
  })

  test('bad mac1 from the right IP but another port is dropped and does not move the side', async () => {
    const s = t.issuer.session()
    const [a, b] = [await mk(), await mk()]
    const { portA } = await connect(t.relay, s, a, b)
    const sameIp = await mk()
    const before = await settledStats(t.relay)
    sameIp.send(fakeInitiation(s.keyA.publicKey), portA) // keyed for A itself, not for B: invalid here
    const tampered = fakeInitiation(s.keyB.publicKey)
    tampered[20] = tampered[20]! ^ 1
    sameIp.send(tampered, portA)
    sameIp.send(fakeData(64), portA) // data from an unlearned port
    await until(() => t.relay.stats().drops.bad_mac1 - before.drops.bad_mac1 >= 2 && t.relay.stats().drops.wrong_source > before.drops.wrong_source)
    await Bun.sleep(50)
    expect(t.relay.stats().drops.bad_mac1 - before.drops.bad_mac1).toBe(2)
    expect(t.relay.stats().forwarded - before.forwarded).toBe(0)
    expect(b.got.length).toBe(0)
    // A still owns the side: its data still flows.
    a.send(fakeData(64), portA)
    expect(await until(() => b.got.length === 1)).toBe(true)
  })

  test('a valid handshake from a new port moves the side (roaming)', async () => {
    const s = t.issuer.session()
    const [a, b] = [await mk(), await mk()]
    const { portA, portB } = await connect(t.relay, s, a, b)
    const a2 = await mk()
    a2.send(fakeInitiation(s.keyB.publicKey), portA)
    expect(await until(() => b.got.length === 1)).toBe(true)
    if (KERNEL) {
      // The kernel follows the move with one nft transaction after user space checked the handshake; a datagram
      // b sends within that millisecond still goes to the old port (README: the kernel fast path), so wait for it.
      expect(await until(() => kernelLocked(t.config).includes(`127.0.0.1 . ${a2.port} . ${portA}`))).toBe(true)
      expect(kernelLocked(t.config)).not.toContain(`127.0.0.1 . ${a.port} . ${portA}`)
    }
    b.send(fakeData(48), portB)
    expect(await until(() => a2.got.length === 1)).toBe(true)
    await Bun.sleep(30)
    expect(a.got.length).toBe(0)
  })

  test('a flood of N datagrams produces at most N forwarded, and the rate limit holds', async () => {
    const s = t.issuer.session()
    const [a, b] = [await mk(), await mk()]
    const { portA } = await connect(t.relay, s, a, b)
    clock.advance(2000) // refill A's bucket: 100 packets/s, burst 1 s
    // With the kernel path, the burst is meant for the kernel's bucket: wait until the session is there (a burst
    // across the switch could use the user-space bucket and then the kernel's, one burst more once).
    if (KERNEL) expect(await until(() => kernelLocked(t.config).includes(`. ${portA}`))).toBe(true)
    const before = await settledStats(t.relay)
    const N = 250
    const burst1 = performance.now()
    for (let i = 0; i < N; i++) a.send(fakeData(64), portA)
    const burst1End = performance.now()
    await settle(() => t.relay.stats().packets_in) // loopback may drop some of a burst; count what arrived
    const after = t.relay.stats()
    const inN = after.packets_in - before.packets_in
    const out = after.forwarded - before.forwarded
    const limited = after.drops.rate_limited - before.drops.rate_limited
    expect(inN).toBeLessThanOrEqual(N)
    expect(out).toBeLessThanOrEqual(inN)
    expect(inN).toBeGreaterThan(100) // (a loaded kernel may drop some of the burst, never most of it)
    if (KERNEL) {
      // One bucket's worth, plus what the kernel's clock refilled while the burst was being sent.
      expect(out).toBeGreaterThanOrEqual(100)
      expect(out).toBeLessThanOrEqual(100 + Math.ceil((100 * (burst1End - burst1)) / 1000) + 1)
    } else expect(out).toBe(100) // the clock did not move: exactly one bucket's worth
    expect(limited).toBe(inN - out)
    expect(await settle(() => b.got.length)).toBe(out)
    if (KERNEL) {
      // The kernel's buckets run on the kernel's clock, not the test's: the bucket emptied during the first burst
      // and refills at 100/s of real time until the second, so what passes lies between the refill over the
      // shortest and the longest possible gap (at most the 80 sent).
      await Bun.sleep(500)
      const burst2 = performance.now()
      for (let i = 0; i < 80; i++) a.send(fakeData(64), portA)
      const burst2End = performance.now()
      await settle(() => t.relay.stats().packets_in)
      const got = t.relay.stats().forwarded - after.forwarded
      expect(got).toBeGreaterThanOrEqual(Math.min(80, Math.floor((100 * (burst2 - burst1End)) / 1000) - 1))
      expect(got).toBeLessThanOrEqual(Math.min(80, Math.ceil((100 * (burst2End - burst1)) / 1000) + 1))
      return
    }
    clock.advance(500) // half a second refills 50
    for (let i = 0; i < 80; i++) a.send(fakeData(64), portA)
    await settle(() => t.relay.stats().packets_in)
    const more = t.relay.stats().packets_in - after.packets_in
    expect(t.relay.stats().forwarded - after.forwarded).toBe(Math.min(50, more))
  })

  test('a peer that went away (ICMP port unreachable) is an error counted, not a crash', async () => {
    const s = t.issuer.session()
    const [a, b] = [await mk(), await mk()]
    const { portA } = await connect(t.relay, s, a, b)
    b.close()
    const before = t.relay.stats().socket_errors
    for (let i = 0; i < 3; i++) {
      a.send(fakeData(64), portA)
      await Bun.sleep(20)
    }
    expect(await until(() => t.relay.stats().socket_errors > before)).toBe(true)
    const p = await mk()
    p.send(encodeBindingRequest(), t.relay.port)
    expect(await until(() => p.got.length === 1)).toBe(true) // still serving
  })

  test('idle expiry frees the ports', async () => {
    const s = t.issuer.session()
    const [a, b] = [await mk(), await mk()]
    const { portA, portB } = await connect(t.relay, s, a, b)
    const id = Buffer.from(s.sessionId).toString('hex')
    clock.advance(30_000)
    t.relay.sweep()
    expect(t.relay.sessionPorts().some((x) => x.session_id === id)).toBe(true)
    if (KERNEL) expect(await until(() => kernelLocked(t.config).includes(`. ${portA}`))).toBe(true)
    clock.advance(61_000)
    expect(t.relay.sweep()).toBeGreaterThanOrEqual(1)
    expect(t.relay.sessionPorts().some((x) => x.session_id === id)).toBe(false)
    // Expiry takes the session out of the kernel too: its datagrams would reach the (closed) ports again.
    if (KERNEL) expect(await until(() => !kernelLocked(t.config).includes(`. ${portA}`) && !kernelLocked(t.config).includes(`. ${portB}`))).toBe(true)
    // The ports are really closed: we can bind them ourselves now.
    for (const port of [portA, portB]) {
      const sock = await Bun.udpSocket({ hostname: t.config.host, port })
      expect(sock.port).toBe(port)
      sock.close()
    }
    expect(t.relay.stats().sessions_expired).toBeGreaterThanOrEqual(1)
  })
})

describe('relay bound to :: (dual stack)', () => {
  test('IPv4 peers reach it as IPv4-mapped addresses; ALLOCATE reports plain IPv4 and forwarding works', async () => {
    const t = await testRelay({ host: '::' })
    const [a, b] = [await peer(), await peer()]
    try {
      const s = t.issuer.session()
      const r = await allocate({ host: LO, port: t.relay.port }, s.ticketA)
      expect(r.observed).toMatchObject({ address: LO, family: 'IPv4' })
      const { portA } = await connect(t.relay, s, a, b)
      a.send(fakeData(80), portA)
      expect(await until(() => b.got.length === 1)).toBe(true)
    } finally {
      a.close()
      b.close()
      await t.relay.close()
    }
  })
})

describe('relay abuse controls', () => {
  test('a source flooding invalid tickets gets blocked; the deny list drops from the start', async () => {
    const t = await testRelay({ invalidTicketLimit: 5, deny: ['127.0.0.3', '10.0.0.0/8'] })
    const bad = await peer('127.0.0.2')
    const denied = await peer('127.0.0.3')
    try {
      const junk = t.issuer.session({ notAfter: 1 }).ticketA // expired: invalid
      for (let i = 0; i < 5; i++) expect((await allocate({ host: LO, port: t.relay.port }, junk, { localHost: '127.0.0.2' })).status).toBe('expired_ticket')
      expect(t.relay.stats().blocked_sources).toBe(1)
      bad.send(encodeBindingRequest(), t.relay.port)
      denied.send(encodeBindingRequest(), t.relay.port)
      await until(() => t.relay.stats().drops.blocked >= 2)
      await Bun.sleep(50)
      expect(t.relay.stats().drops.blocked).toBe(2)
      expect(bad.got.length + denied.got.length).toBe(0)
      // Others are unaffected.
      const s = t.issuer.session()
      expect((await allocate({ host: LO, port: t.relay.port }, s.ticketA)).status).toBe('ok')
    } finally {
      bad.close()
      denied.close()
      await t.relay.close()
    }
  })

  test('without a control key ALLOCATE is answered no_control_key, STUN still works', async () => {
    const t = await testRelay({}, { withKey: false })
    try {
      const p = await peer()
      p.send(encodeBindingRequest(), t.relay.port)
      expect(await until(() => p.got.length > 0)).toBe(true)
      expect(decodeBindingResponse(p.got[0]!.buf)).toMatchObject({ ok: true, mapped: { address: LO, port: p.port } })
      p.close()
      const s = t.issuer.session()
      expect((await allocate({ host: LO, port: t.relay.port }, s.ticketA)).status).toBe('no_control_key')
      expect(t.relay.stats().control_key_known).toBe(false)
      t.relay.setTicketPublicKey(t.issuer.publicKey)
      expect((await allocate({ host: LO, port: t.relay.port }, s.ticketA)).status).toBe('ok')
    } finally {
      await t.relay.close()
    }
  })

  test('capacity reached → no_ports', async () => {
    const t = await testRelay({ capacity: 1 })
    try {
      expect((await allocate({ host: LO, port: t.relay.port }, t.issuer.session().ticketA)).status).toBe('ok')
      expect((await allocate({ host: LO, port: t.relay.port }, t.issuer.session().ticketA)).status).toBe('no_ports')
      expect(t.relay.stats().drops.no_ports).toBe(1)
    } finally {
      await t.relay.close()
    }
  })

  test('ports held by another program are skipped, the allocation still succeeds', async () => {
    const base = 20000 + Math.floor(Math.random() * 2000) * 4
    const held = [await Bun.udpSocket({ hostname: LO, port: base }), await Bun.udpSocket({ hostname: LO, port: base + 1 })]
    const t = await testRelay({ ports: `${base}-${base + 3}` })
    try {
      const s = t.issuer.session()
      const ra = await allocate({ host: LO, port: t.relay.port }, s.ticketA)
      const rb = await allocate({ host: LO, port: t.relay.port }, s.ticketB)
      expect([ra.status, rb.status]).toEqual(['ok', 'ok'])
      expect([ra.sessionPort, rb.sessionPort].sort()).toEqual([base + 2, base + 3])
    } finally {
      for (const h of held) h.close()
      await t.relay.close()
    }
  })

  test('GET /metrics serves Prometheus text', async () => {
    const t = await testRelay({ metricsPort: 0 })
    try {
      const res = await fetch(`http://127.0.0.1:${t.relay.metricsPort}/metrics`)
      expect(res.status).toBe(200)
      expect(res.headers.get('content-type')).toContain('text/plain')
      const text = await res.text()
      expect(text).toContain('# TYPE lanrage_relay_forwarded_total counter')
      expect(text).toContain('lanrage_relay_dropped_total{reason="bad_mac1"} 0')
      expect(text).toContain('lanrage_relay_control_key_known 1')
      const nf = await fetch(`http://127.0.0.1:${t.relay.metricsPort}/nope`)
      expect(nf.status).toBe(404)
      expect((await nf.json()) as unknown).toEqual({ error: { code: 'ROUTE_NOT_FOUND', message: 'not found' } })
    } finally {
      await t.relay.close()
    }
  })
})
