// The STUN client against our own relay's STUN responder (what clients use in production instead of a
// third-party STUN server): two relays on loopback, asked from one socket.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { detectNat } from '../../src/client/nat/detect.ts'
import { StunClient } from '../../src/client/stun/client.ts'
import { testRelay } from '../relay/helpers.ts'

describe('STUN against lanrage relays', () => {
  let relays: Awaited<ReturnType<typeof testRelay>>['relay'][] = []
  beforeAll(async () => {
    relays = [(await testRelay()).relay, (await testRelay()).relay]
  })
  afterAll(async () => {
    for (const r of relays) await r.close()
  })

  test('each relay reports our address; together: not symmetric', async () => {
    const c = await StunClient.open({ hostname: '127.0.0.1' })
    try {
      const one = await c.binding({ host: '127.0.0.1', port: relays[0]!.port })
      expect(one.mapped).toEqual({ address: '127.0.0.1', port: c.localPort, family: 'IPv4' })
      const r = await detectNat(
        c,
        relays.map((x) => ({ host: '127.0.0.1', port: x.port })),
      )
      expect(r.failures).toEqual([])
      expect(r).toMatchObject({ publicEndpoint: `127.0.0.1:${c.localPort}`, mappingVariesByDestination: false, natType: 'open' })
      // the relay counted what it answered (one plus one per server in detectNat)
      expect(relays[0]!.stats().stun_responses).toBeGreaterThanOrEqual(2) // more only if a retransmission crossed a slow answer
      expect(relays[1]!.stats().stun_responses).toBeGreaterThanOrEqual(1)
    } finally {
      c.close()
    }
  })
})
