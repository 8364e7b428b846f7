// The STUN client and NAT detection against coturn's turnserver on loopback (a server no one here wrote),
// plus retransmission counted on a real UDP socket that stays silent.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { classifyNat, detectNat, detectNatFromPort } from '../../src/client/nat/detect.ts'
import { parseStunServer, StunClient } from '../../src/client/stun/client.ts'
import { RFC8489_RETRANSMIT, retransmitSchedule, transactionStep } from '../../src/client/stun/transaction.ts'
import { BINDING_REQUEST, decodeStun, encodeBindingResponse, unmapIp } from '../../src/shared/wire/stun.ts'
import { BIN, freeUdpPort, runLanrage, startTurnserver, udpListening } from './helpers.ts'
import { needs } from '../needs.ts'

const hasTurnserver = needs('turnserver') === null

describe('retransmission schedule (RFC 8489 §6.2.1, pure)', () => {
  test('defaults: 7 sends at 0, 500, 1500, ... 31500 ms, timeout 16·RTO after the last', () => {
    expect(RFC8489_RETRANSMIT).toEqual({ rtoMs: 500, rc: 7, rm: 16 })
    expect(retransmitSchedule()).toEqual({ sends: [0, 500, 1500, 3500, 7500, 15500, 31500], timeoutAt: 39500 })
  })
  test('step: send when due, wait otherwise, timeout after the final wait', () => {
    const s = retransmitSchedule({ rtoMs: 100, rc: 3, rm: 4 })
    expect(s).toEqual({ sends: [0, 100, 300], timeoutAt: 700 })
    expect(transactionStep(s, 1000, 0, 1000)).toEqual({ action: 'send', nextAt: 1100 })
    expect(transactionStep(s, 1000, 1, 1050)).toEqual({ action: 'wait', nextAt: 1100 })
    expect(transactionStep(s, 1000, 1, 1100)).toEqual({ action: 'send', nextAt: 1300 })
    expect(transactionStep(s, 1000, 2, 1300)).toEqual({ action: 'send', nextAt: 1700 })
    expect(transactionStep(s, 1000, 3, 1699)).toEqual({ action: 'wait', nextAt: 1700 })
    expect(transactionStep(s, 1000, 3, 1700)).toEqual({ action: 'timeout', nextAt: 1700 })
  })
})

describe('classifyNat (pure)', () => {
  const v4 = (address: string, port: number) => ({ address, port, family: 'IPv4' as const })
  test.each([
    ['no answers', [], 'unknown', null],
    ['same mapping from two servers, not our address', [v4('198.51.100.1', 4000), v4('198.51.100.1', 4000)], 'port_restricted_cone', false],
    ['port differs by destination', [v4('198.51.100.1', 4000), v4('198.51.100.1', 4001)], 'symmetric', true],
    ['address differs by destination', [v4('198.51.100.1', 4000), v4('198.51.100.2', 4000)], 'symmetric', true],
    ['our own address and port', [v4('192.168.1.2', 5000), v4('192.168.1.2', 5000)], 'open', false],
    ['one answer, behind NAT: cannot tell', [v4('198.51.100.1', 4000)], 'unknown', null],
    ['our address but another port (port-translating NAT on our own IP)', [v4('192.168.1.2', 6000), v4('192.168.1.2', 6000)], 'port_restricted_cone', false],
  ] as const)('%s → %s', (_n, mapped, natType, varies) => {
    expect(classifyNat([...mapped], 5000, ['192.168.1.2'])).toEqual({ natType, mappingVariesByDestination: varies })
  })
  test('server names parse with the default port 3478', () => {
    expect(parseStunServer('stun.example.org')).toEqual({ host: 'stun.example.org', port: 3478 })
    expect(parseStunServer('203.0.113.10:3479')).toEqual({ host: '203.0.113.10', port: 3479 })
    expect(() => parseStunServer('a:b:c')).toThrow(expect.objectContaining({ code: 'INVALID_STUN_SERVER', message: expect.stringContaining('"a:b:c" is not host[:port]') }))
  })
})

describe('retransmission on the wire', () => {
  test('a silent server receives exactly Rc requests (same transaction id), then STUN_TIMEOUT', async () => {
    const got: Uint8Array[] = []
    const silent = await Bun.udpSocket({ hostname: '127.0.0.1', port: 0, binaryType: 'uint8array', socket: { data: (_s, d) => void got.push(d) } })
    const c = await StunClient.open({ hostname: '127.0.0.1', retransmit: { rtoMs: 10, rc: 4, rm: 4 } })
    try {
      const e = await c.binding({ host: '127.0.0.1', port: silent.port }).catch((e) => e)
      expect(e).toMatchObject({ code: 'STUN_TIMEOUT' })
      expect(e.message).toBe(`STUN server 127.0.0.1:${silent.port} did not answer within 110ms`)
      expect(got.length).toBe(4)
      const ids = new Set(got.map((d) => Buffer.from(d.subarray(8, 20)).toString('hex')))
      expect(ids.size).toBe(1)
      expect(decodeStun(got[0]!)).toMatchObject({ ok: true, message: { type: BINDING_REQUEST, fingerprint: true } })
    } finally {
      c.close()
      silent.close()
    }
  })

  test('a lost request is recovered by retransmission (server answers only the third copy)', async () => {
    let n = 0
    const lossy = await Bun.udpSocket({
      hostname: '127.0.0.1',
      port: 0,
      binaryType: 'uint8array',
      socket: {
        data: (s, d, port, address) => {
          if (++n < 3) return
          const r = decodeStun(d)
          if (r.ok) s.send(encodeBindingResponse(r.message.transactionId, { address: unmapIp(address), port, family: 'IPv4' }), port, address)
        },
      },
    })
    const c = await StunClient.open({ hostname: '127.0.0.1', retransmit: { rtoMs: 10, rc: 5, rm: 4 } })
    try {
      const r = await c.binding({ host: '127.0.0.1', port: lossy.port })
      expect(n).toBe(3)
      expect(r.mapped).toEqual({ address: '127.0.0.1', port: c.localPort, family: 'IPv4' })
    } finally {
      c.close()
      lossy.close()
    }
  })
})


describe.skipIf(!hasTurnserver)('against coturn turnserver on loopback', () => {
  let ports: number[] = []
  let procs: ReturnType<typeof startTurnserver>[] = []
  beforeAll(async () => {
    ports = [await freeUdpPort(), await freeUdpPort()]
    procs = ports.map((p) => startTurnserver('127.0.0.1', p))
    for (const p of ports) await udpListening(p)
  }, 15_000)
  afterAll(() => {
    for (const p of procs) p.kill()
  })

  test('Binding returns our own loopback address and port', async () => {
    const c = await StunClient.open({ hostname: '127.0.0.1' })
    try {
      const r = await c.binding(`127.0.0.1:${ports[0]}`)
      expect(r.server).toBe(`127.0.0.1:${ports[0]}`)
      expect(r.mapped).toEqual({ address: '127.0.0.1', port: c.localPort, family: 'IPv4' })
    } finally {
      c.close()
    }
  })

  test('two servers from one socket see the same mapping: not symmetric (open on loopback)', async () => {
    const c = await StunClient.open({ hostname: '127.0.0.1' })
    try {
      const r = await detectNat(c, ports.map((p) => ({ host: '127.0.0.1', port: p })))
      expect(r.failures).toEqual([])
      expect(r.mappings.map((m) => m.mapped)).toEqual([`127.0.0.1:${c.localPort}`, `127.0.0.1:${c.localPort}`])
      expect(r).toMatchObject({ localPort: c.localPort, publicEndpoint: `127.0.0.1:${c.localPort}`, mappingVariesByDestination: false, natType: 'open' })
    } finally {
      c.close()
    }
  })

  test('detectNatFromPort learns the mapping of a given port and frees it afterwards', async () => {
    const port = await freeUdpPort()
    const r = await detectNatFromPort(port, ports.map((p) => `127.0.0.1:${p}`), { hostname: '127.0.0.1' })
    expect(r.localPort).toBe(port)
    expect(r.publicEndpoint).toBe(`127.0.0.1:${port}`)
    const again = await Bun.udpSocket({ hostname: '127.0.0.1', port }) // WireGuard could bind it now
    expect(again.port).toBe(port)
    again.close()
  })

  test('one silent server: the report names it and still gives the endpoint', async () => {
    const silent = await Bun.udpSocket({ hostname: '127.0.0.1', port: 0 })
    const c = await StunClient.open({ hostname: '127.0.0.1', retransmit: { rtoMs: 20, rc: 3, rm: 2 } })
    try {
      const r = await detectNat(c, [`127.0.0.1:${ports[0]}`, `127.0.0.1:${silent.port}`])
      expect(r.publicEndpoint).toBe(`127.0.0.1:${c.localPort}`)
      expect(r.failures).toEqual([{ server: `127.0.0.1:${silent.port}`, code: 'STUN_TIMEOUT', error: `STUN server 127.0.0.1:${silent.port} did not answer within 100ms` }])
      expect(r.mappingVariesByDestination).toBeNull()
    } finally {
      c.close()
      silent.close()
    }
  })

  // The dead server must fail on the kernel's ICMP error, not after the 10 s timeout (RFC 8489's: 39.5 s).
  test('a server the kernel reports unreachable fails at once; asked first, it costs the good one nothing', async () => {
    const dead = await freeUdpPort()
    // One retransmission, 5 s in, and a 10 s timeout: a lost first request shows as an answer 5 s late.
    const c = await StunClient.open({ hostname: '127.0.0.1', retransmit: { rtoMs: 5000, rc: 2, rm: 1 } })
    try {
      const r = await detectNat(c, [`127.0.0.1:${dead}`, `127.0.0.1:${ports[0]}`])
      expect(r.failures).toEqual([
        { server: `127.0.0.1:${dead}`, code: 'STUN_UNREACHABLE', error: `STUN server 127.0.0.1:${dead} is unreachable (ECONNREFUSED: nothing listens on that port)` },
      ])
      expect(r.mappings.map((m) => m.server)).toEqual([`127.0.0.1:${ports[0]}`])
      // The good server's first request left: it answered before the retransmission.
      expect(r.mappings[0]!.rttMs).toBeLessThan(5000)
    } finally {
      c.close()
    }
  }, 15_000)

  test('lanrage nat --stun DEAD,GOOD answers with the good mapping and names the dead server', async () => {
    const dead = await freeUdpPort()
    // Killed after 12 s: before the fix it waited out the dead server's 39.5 s.
    const r = Bun.spawnSync([BIN, 'nat', '--stun', `127.0.0.1:${dead},127.0.0.1:${ports[0]}`, '--json'], { timeout: 12_000 })
    expect(r.exitCode).toBe(0)
    const rep = JSON.parse(r.stdout.toString())
    expect(rep.failures).toEqual([{ server: `127.0.0.1:${dead}`, code: 'STUN_UNREACHABLE', error: `STUN server 127.0.0.1:${dead} is unreachable (ECONNREFUSED: nothing listens on that port)` }])
    expect(rep.mappings).toHaveLength(1)
    expect(rep.public_endpoint).toBe(`127.0.0.1:${rep.local_port}`)
  }, 15_000)

  test('lanrage nat --json prints the report', () => {
    const r = runLanrage(['nat', '--stun', ports.map((p) => `127.0.0.1:${p}`).join(','), '--json'])
    expect(r.code).toBe(0)
    const rep = JSON.parse(r.out)
    expect(rep.mappings).toHaveLength(2)
    expect(rep.mapping_varies_by_destination).toBe(false)
  })

  test('lanrage nat without --stun is a config error', () => {
    const r = runLanrage(['nat'])
    expect(r.code).toBe(2)
    expect(r.err).toContain('--stun')
  })
})
