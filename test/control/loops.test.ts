// startControl wires the background loops: the heartbeat flush and the cleanup pass run on their own timers
// (the clock is a ManualClock, so expiry is decided by moving it, not by waiting minutes).
import { expect, test } from 'bun:test'
import { join } from 'node:path'
import { defaultControlConfig } from '../../src/control/config.ts'
import { startControl } from '../../src/control/server.ts'
import { openDatabase } from '../../src/db/client.ts'
import { memberships } from '../../src/db/schema/control.ts'
import { ManualClock } from '../../src/shared/clock.ts'
import { silentLogger } from '../../src/shared/log.ts'
import { registeredPeers, tempDir, type TestPeer } from './helpers.ts'

test('the flush writes heartbeats and the cleanup loop removes a silent peer, on their own', async () => {
  const open = openDatabase(join(tempDir(), 'loops.db'))
  const clock = new ManualClock()
  const config = defaultControlConfig({ host: '127.0.0.1', port: 0, cleanupIntervalS: 0.05, heartbeatFlushMs: 20 })
  const server = startControl(config, { open, clock, logger: silentLogger, generateRelaySecret: true })
  try {
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    expect(server.relaySecret).toMatch(/^[A-Za-z0-9_-]{32}$/)
    expect(server.ticketPublicKey).toHaveLength(32)
    const [host, guest] = (await registeredPeers(server.url, 2)) as [TestPeer, TestPeer]
    const id = await host.createParty()
    await guest.join(id)
    const hw = await host.ws()
    await hw.next()
    clock.advance(4 * 60_000)
    await host.call('POST', `/parties/${id}/peers/${host.peerId}/heartbeat`)
    const stored = () => open.db.select().from(memberships).all().find((m) => m.peerId === host.peerId)!.lastSeen
    for (let i = 0; i < 100 && stored() !== clock.now(); i++) await Bun.sleep(10)
    expect(stored()).toBe(clock.now())
    clock.advance(60_001) // guest silent 5 min + 1 ms, host 1 min
    expect(await hw.next(3000)).toEqual({ type: 'peer_left', party_id: id, peer_id: guest.peerId, reason: 'timeout' })
  } finally {
    await server.close()
    open.close()
  }
})
