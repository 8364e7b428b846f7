// The relay and a real control server: registration with retry (the relay may start first), tickets from
// POST /parties/{id}/relay accepted by the relay, and re-registration when the control server forgets it.
import { describe, expect, test } from 'bun:test'
import { Value } from '@sinclair/typebox/value'
import { createControl } from '../../src/control/app.ts'
import { defaultControlConfig } from '../../src/control/config.ts'
import { openDatabase } from '../../src/db/client.ts'
import { ManualClock } from '../../src/shared/clock.ts'
import { createLogger, silentLogger } from '../../src/shared/log.ts'
import { relaySchema, type RelayConfig } from '../../src/relay/config.ts'
import { startRelay } from '../../src/relay/index.ts'
import { allocate, fakeData, fakeInitiation } from '../../src/relay/testing.ts'
import { fromBase64Url } from '../../src/shared/wire/ticket.ts'
import { registeredPeers, type TestPeer } from '../control/helpers.ts'
import { unwatchControl, watchControl } from '../contract.ts'
import { peer, portRange, until } from './helpers.ts'

const SECRET = 'relay-test-secret'

function control(port: number) {
  const clock = new ManualClock(Date.now())
  const open = openDatabase(':memory:')
  const c = createControl({ db: open.db, clock, logger: silentLogger, config: defaultControlConfig({ relaySecret: SECRET, relayHeartbeatS: 1 }) })
  c.app.listen({ port, hostname: '127.0.0.1' })
  const base = `http://127.0.0.1:${c.app.server!.port}`
  watchControl(base)
  return {
    ...c,
    base,
    async stop() {
      c.service.hub.closeAll()
      await c.app.stop(true)
      unwatchControl(base)
      open.close()
    },
  }
}

async function freePort(): Promise<number> {
  const s = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response() })
  const port = s.port!
  await s.stop(true)
  return port
}

describe('relay ↔ control server', () => {
  test('registers once the control server is up, accepts its tickets, re-registers after it forgets the relay', async () => {
    const port = await freePort()
    const lines: string[] = []
    const config = Value.Default(relaySchema, {
      host: '127.0.0.1',
      port: 0,
      ports: portRange(),
      publicIp: '127.0.0.1',
      region: 'test',
      control: `http://127.0.0.1:${port}`,
      relaySecret: SECRET,
      statsInterval: 0,
    }) as RelayConfig
    const relay = await startRelay(config, { log: createLogger('relay', 'info', (l) => lines.push(l)), sweepIntervalMs: 0, controlBackoffMs: [50, 200] })
    let c = undefined as ReturnType<typeof control> | undefined
    const peers: Awaited<ReturnType<typeof peer>>[] = []
    try {
      // Nothing listens yet: the relay retries with backoff and serves STUN meanwhile, but takes no tickets.
      expect(await until(() => lines.some((l) => l.includes('registration failed, retrying')), 3000)).toBe(true)
      expect(relay.stats().control_key_known).toBe(false)
      c = control(port)
      await relay.registered
      expect(relay.stats().control_key_known).toBe(true)
      const listed = (await (await fetch(`${c.base}/`)).json()) as { relays: number }
      expect(listed.relays).toBe(1)
      // The STUN alt port travels with the registration (the agents' second STUN target).
      expect(relay.stunAltPort).toBeGreaterThan(0)

      // Real tickets from the control server: host asks for a relay to the guest; the guest gets an offer.
      const [host, guest] = (await registeredPeers(c.base, 2)) as [TestPeer, TestPeer]
      expect((await host.call('GET', '/relays')).body.relays).toEqual([
        expect.objectContaining({ relay_id: relay.relayId, port: relay.port, stun_alt_port: relay.stunAltPort }),
      ])
      const party = await host.createParty()
      expect((await guest.join(party)).status).toBe(200)
      const offer = await host.call('POST', `/parties/${party}/relay`, { peer_id: guest.peerId })
      expect(offer.status).toBe(200)
      expect(offer.body.relay).toMatchObject({ relay_id: relay.relayId, port: relay.port, public_ip: '127.0.0.1' })
      const signals = await guest.call('GET', `/parties/${party}/signals`)
      const theirs = signals.body.signals.find((s: { type: string }) => s.type === 'relay_offer').data
      const mine = offer.body
      const rMine = await allocate({ host: '127.0.0.1', port: relay.port }, fromBase64Url(mine.ticket)!)
      const rTheirs = await allocate({ host: '127.0.0.1', port: relay.port }, fromBase64Url(theirs.ticket)!)
      expect([rMine.status, rTheirs.status]).toEqual(['ok', 'ok'])
      expect(Buffer.from(rMine.sessionId).toString('hex')).toBe(mine.session_id)

      // mac1 is keyed with the peers' registered WireGuard keys: host's handshakes are addressed to the guest.
      const [ph, pg] = [await peer(), await peer()]
      peers.push(ph, pg)
      const key = (p: TestPeer) => new Uint8Array(Buffer.from(p.publicKey, 'base64'))
      ph.send(fakeInitiation(key(guest)), rMine.sessionPort)
      await until(() => relay.sessions()[0]?.sides[mine.side as 'a' | 'b'].learned === true)
      pg.send(fakeInitiation(key(host)), rTheirs.sessionPort)
      expect(await until(() => ph.got.length === 1)).toBe(true)
      ph.send(fakeData(100), rMine.sessionPort)
      expect(await until(() => pg.got.length === 1)).toBe(true)

      // A fresh control server (new database, new ticket key) on the same address: the heartbeat gets 404, the
      // relay registers again and takes the new key.
      await c.stop()
      c = control(port)
      const newKey = c.service.keys.ed25519Public
      expect(await until(() => lines.some((l) => l.includes('registering again')), 5000)).toBe(true)
      expect(await until(() => lines.filter((l) => l.includes('registered with control server')).length >= 2, 5000)).toBe(true)
      const [h2, g2] = (await registeredPeers(c.base, 2)) as [TestPeer, TestPeer]
      const party2 = await h2.createParty()
      await g2.join(party2)
      const offer2 = await h2.call('POST', `/parties/${party2}/relay`, { peer_id: g2.peerId })
      expect(offer2.status).toBe(200)
      expect((await allocate({ host: '127.0.0.1', port: relay.port }, fromBase64Url(offer2.body.ticket)!)).status).toBe('ok')
      expect(newKey).toHaveLength(32)
    } finally {
      for (const p of peers) p.close()
      await relay.close()
      await c?.stop()
    }
  }, 20_000)
})
