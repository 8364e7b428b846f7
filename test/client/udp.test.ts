// The client library's UDP adapter (src/client/net/udp.ts), both implementations over real loopback sockets:
// Bun's socket, and node:dgram (here Bun's node:dgram; the package consumer test runs it under Node itself).
import { describe, expect, test } from 'bun:test'
import { openUdpSocket, udpRuntime, type UdpRuntime } from '../../src/client/net/udp.ts'
import { waitFor } from './helpers.ts'

interface Got {
  data: string
  port: number
  address: string
}

async function open(runtime: UdpRuntime, hostname = '127.0.0.1', port = 0) {
  const got: Got[] = []
  const errors: Error[] = []
  const s = await openUdpSocket(
    { hostname, port, onMessage: (d, p, a) => got.push({ data: new TextDecoder().decode(d), port: p, address: a }), onError: (e) => errors.push(e) },
    runtime,
  )
  return { s, got, errors }
}

/** A loopback port nothing listens on (just freed): the kernel answers datagrams to it with ICMP port unreachable. */
async function closedPort(runtime: UdpRuntime): Promise<number> {
  const gone = await open(runtime)
  gone.s.close()
  return gone.s.port
}

test('on Bun the adapter picks Bun’s socket', () => {
  expect(udpRuntime()).toBe('bun')
})

for (const runtime of ['bun', 'node'] as const) {
  describe(`UDP adapter (${runtime})`, () => {
    test('binds a free port and carries datagrams both ways with their source', async () => {
      const a = await open(runtime)
      const b = await open(runtime)
      try {
        expect(a.s.port).toBeGreaterThan(0)
        expect(a.s.address).toBe('127.0.0.1')
        a.s.send(new TextEncoder().encode('ping'), b.s.port, '127.0.0.1')
        await waitFor('b to receive', () => b.got.length === 1, 2000)
        expect(b.got[0]).toEqual({ data: 'ping', port: a.s.port, address: '127.0.0.1' })
        b.s.send(new TextEncoder().encode('pong'), b.got[0]!.port, b.got[0]!.address)
        await waitFor('a to receive', () => a.got.length === 1, 2000)
        expect(a.got[0]).toEqual({ data: 'pong', port: b.s.port, address: '127.0.0.1' })
      } finally {
        a.s.close()
        b.s.close()
      }
    })

    test('received bytes are a Uint8Array of exactly the datagram', async () => {
      let seen: Uint8Array | undefined
      const r = await openUdpSocket({ hostname: '127.0.0.1', onMessage: (d) => (seen = d) }, runtime)
      const s = await open(runtime)
      try {
        s.s.send(new Uint8Array([1, 2, 3, 0, 255]), r.port, '127.0.0.1')
        await waitFor('a datagram', () => seen, 2000)
        expect(seen).toBeInstanceOf(Uint8Array)
        expect([...seen!]).toEqual([1, 2, 3, 0, 255])
      } finally {
        r.close()
        s.s.close()
      }
    })

    test('a datagram to a closed port (ICMP unreachable) does not throw, and the socket keeps working', async () => {
      const deadPort = await closedPort(runtime)
      const a = await open(runtime)
      const b = await open(runtime)
      try {
        for (let i = 0; i < 5; i++) a.s.send(new Uint8Array([i]), deadPort, '127.0.0.1')
        await Bun.sleep(50)
        a.s.send(new TextEncoder().encode('still here'), b.s.port, '127.0.0.1')
        await waitFor('b to receive after the unreachable sends', () => b.got.length === 1, 2000)
        expect(b.got[0]!.data).toBe('still here')
      } finally {
        a.s.close()
        b.s.close()
      }
    })

    test('a datagram sent right after one to a closed port still leaves (the ICMP error belongs to the first)', async () => {
      const deadPort = await closedPort(runtime)
      const a = await open(runtime)
      const b = await open(runtime)
      try {
        // On loopback the kernel answers the first send with ICMP at once; Bun hands that error to the next send.
        a.s.send(new Uint8Array([1]), deadPort, '127.0.0.1')
        a.s.send(new TextEncoder().encode('right after'), b.s.port, '127.0.0.1')
        await waitFor('b to receive the second datagram', () => b.got.length === 1, 2000)
        expect(b.got[0]!.data).toBe('right after')
      } finally {
        a.s.close()
        b.s.close()
      }
    })

    if (runtime === 'bun')
      test('the ICMP error reaches onError as an Error with its code (ECONNREFUSED)', async () => {
        const deadPort = await closedPort(runtime)
        const a = await open(runtime)
        try {
          a.s.send(new Uint8Array([1]), deadPort, '127.0.0.1')
          await waitFor('the error', () => a.errors.length > 0, 2000)
          expect(a.errors[0]).toBeInstanceOf(Error)
          expect((a.errors[0] as Error & { code?: string }).code).toBe('ECONNREFUSED')
        } finally {
          a.s.close()
        }
      })

    test('send after close reports to onError instead of throwing; close is idempotent', async () => {
      const a = await open(runtime)
      a.s.close()
      a.s.close()
      expect(() => a.s.send(new Uint8Array([1]), 9, '127.0.0.1')).not.toThrow()
      expect(a.errors.map((e) => e.message)).toContain('send on a closed UDP socket')
    })

    test('a port in use rejects the open with EADDRINUSE', async () => {
      const a = await open(runtime)
      try {
        await expect(open(runtime, '127.0.0.1', a.s.port)).rejects.toMatchObject({ code: 'EADDRINUSE' })
      } finally {
        a.s.close()
      }
    })

    test('bound to :: it receives IPv4 too (dual stack), reported as an IPv4-mapped address', async () => {
      const six = await open(runtime, '::')
      const four = await open(runtime)
      try {
        four.s.send(new TextEncoder().encode('v4'), six.s.port, '127.0.0.1')
        await waitFor('the dual-stack socket to receive', () => six.got.length === 1, 2000)
        expect(six.got[0]).toEqual({ data: 'v4', port: four.s.port, address: '::ffff:127.0.0.1' })
        six.s.send(new TextEncoder().encode('back'), four.s.port, '::ffff:127.0.0.1')
        await waitFor('the reply over IPv4', () => four.got.length === 1, 2000)
        expect(four.got[0]!.data).toBe('back')
      } finally {
        six.s.close()
        four.s.close()
      }
    })
  })
}
