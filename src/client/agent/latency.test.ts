// The latency echo's wire format and bookkeeping, without sockets or timers.
import { describe, expect, test } from 'bun:test'
import { decodeEcho, ECHO_BYTES, encodeEcho, LATENCY_FRESH_MS, LatencyTracker, PROBE_TIMEOUT_MS, REPLY_BUDGET_PER_S } from './latency.ts'

const A = '10.66.0.2'
const B = '10.66.0.3'

describe('echo datagrams', () => {
  test('round trip, and the exact bytes of a request', () => {
    const b = encodeEcho({ kind: 'request', seq: 0x01020304, token: 0xa0b0c0d0 })
    expect(Buffer.from(b).toString('hex')).toBe('4c524531' + '01000000' + '01020304' + 'a0b0c0d0')
    expect(decodeEcho(b)).toEqual({ kind: 'request', seq: 0x01020304, token: 0xa0b0c0d0 })
    expect(decodeEcho(encodeEcho({ kind: 'reply', seq: 0, token: 0xffffffff }))).toEqual({ kind: 'reply', seq: 0, token: 0xffffffff })
  })

  test('anything else is not an echo datagram (and never throws)', () => {
    const good = encodeEcho({ kind: 'request', seq: 1, token: 2 })
    const variant = (i: number, v: number) => {
      const c = good.slice()
      c[i] = v
      return c
    }
    for (const b of [
      new Uint8Array(0),
      good.subarray(0, ECHO_BYTES - 1),
      new Uint8Array([...good, 0]),
      variant(0, 0x4d), // magic
      variant(4, 3), // kind
      variant(4, 0),
      variant(6, 1), // reserved
      new Uint8Array(1500),
    ])
      expect(decodeEcho(b)).toBeNull()
    // A view into a larger buffer decodes by its own offset.
    const big = new Uint8Array(64)
    big.set(good, 7)
    expect(decodeEcho(big.subarray(7, 7 + ECHO_BYTES))).toEqual({ kind: 'request', seq: 1, token: 2 })
  })
})

describe('LatencyTracker', () => {
  test('a request is answered with the same bytes as a reply: one datagram of the same size back', () => {
    const t = new LatencyTracker()
    const req = encodeEcho({ kind: 'request', seq: 7, token: 99 })
    const reply = t.receive(req, A, 0)!
    expect(reply.length).toBe(req.length)
    expect(decodeEcho(reply)).toEqual({ kind: 'reply', seq: 7, token: 99 })
  })

  test('replies stop at the budget per second and resume in the next second', () => {
    const t = new LatencyTracker()
    const req = encodeEcho({ kind: 'request', seq: 1, token: 1 })
    let answered = 0
    for (let i = 0; i < REPLY_BUDGET_PER_S * 3; i++) if (t.receive(req, A, 5000 + (i % 900))) answered++
    expect(answered).toBe(REPLY_BUDGET_PER_S)
    expect(t.receive(req, A, 6000)).not.toBeNull()
  })

  test('the answer to a probe gives the round trip; the latency is that of the last answer', () => {
    let r = 0.25
    const t = new LatencyTracker(() => r)
    const reply = (probe: Uint8Array) => encodeEcho({ ...decodeEcho(probe)!, kind: 'reply' })
    const p1 = t.probe(A, 1000)
    expect(t.latency(A, 1000)).toBeNull()
    expect(t.receive(reply(p1), A, 1012.5)).toBeNull()
    expect(t.latency(A, 1013)).toBe(12.5)
    r = 0.75
    const p2 = t.probe(A, 3000)
    t.receive(reply(p2), A, 3040)
    expect(t.latency(A, 3040)).toBe(40)
    // An answer counts once: the same reply again changes nothing.
    t.receive(reply(p2), A, 3500)
    expect(t.latency(A, 3500)).toBe(40)
  })

  test('a reply matches only its own probe: another token, another member or an unknown sequence is ignored', () => {
    const t = new LatencyTracker(() => 0.5)
    const p = decodeEcho(t.probe(A, 0))!
    expect(t.receive(encodeEcho({ ...p, kind: 'reply', token: p.token ^ 1 }), A, 5)).toBeNull()
    expect(t.receive(encodeEcho({ ...p, kind: 'reply', seq: p.seq + 1 }), A, 5)).toBeNull()
    t.receive(encodeEcho({ ...p, kind: 'reply' }), B, 5) // B answering A's probe
    expect([t.latency(A, 5), t.latency(B, 5)]).toEqual([null, null])
    t.receive(encodeEcho({ ...p, kind: 'reply' }), A, 5)
    expect(t.latency(A, 5)).toBe(5)
  })

  test('a late answer is lost; a stale latency is unknown; forget drops the member', () => {
    const t = new LatencyTracker()
    const late = decodeEcho(t.probe(A, 0))!
    t.receive(encodeEcho({ ...late, kind: 'reply' }), A, PROBE_TIMEOUT_MS)
    expect(t.latency(A, PROBE_TIMEOUT_MS)).toBeNull()
    const p = decodeEcho(t.probe(A, 10_000))!
    t.receive(encodeEcho({ ...p, kind: 'reply' }), A, 10_020)
    expect(t.latency(A, 10_020 + LATENCY_FRESH_MS)).toBe(20)
    expect(t.latency(A, 10_021 + LATENCY_FRESH_MS)).toBeNull()
    t.forget(A)
    expect(t.latency(A, 10_021)).toBeNull()
  })

  test('probes waiting for an answer are bounded per member', () => {
    const t = new LatencyTracker()
    const probes = Array.from({ length: 10 }, (_, i) => decodeEcho(t.probe(A, i))!)
    // The oldest were given up: their answers no longer count; the newest still do.
    t.receive(encodeEcho({ ...probes[0]!, kind: 'reply' }), A, 20)
    expect(t.latency(A, 20)).toBeNull()
    t.receive(encodeEcho({ ...probes[9]!, kind: 'reply' }), A, 20)
    expect(t.latency(A, 20)).toBe(11)
  })
})
