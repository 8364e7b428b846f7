// Shared helpers for the relay tests: a loopback peer socket that records what it receives, and bounded waits.
import { ManualClock } from '../../src/shared/clock.ts'
import { silentLogger } from '../../src/shared/log.ts'
import { Value } from '@sinclair/typebox/value'
import { relaySchema, type RelayConfig } from '../../src/relay/config.ts'
import { startRelay, type Relay } from '../../src/relay/index.ts'
import { createTicketIssuer } from '../../src/relay/testing.ts'

export interface Peer {
  sock: Bun.udp.Socket<'buffer'>
  port: number
  host: string
  got: { buf: Buffer; port: number; address: string }[]
  send(buf: Uint8Array, port: number, host?: string): boolean
  close(): void
}

export async function peer(host = '127.0.0.1'): Promise<Peer> {
  const got: Peer['got'] = []
  const sock = await Bun.udpSocket({
    hostname: host,
    socket: {
      data(_s, buf, port, address) {
        got.push({ buf, port, address })
      },
      error() {},
    },
  })
  return { sock, port: sock.port, host, got, send: (b, port, h = '127.0.0.1') => sock.send(b, port, h), close: () => sock.close() }
}

/** Polls until `cond()` holds, at most `ms` (bounded: every wait in these tests ends). */
export async function until(cond: () => boolean, ms = 2000): Promise<boolean> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (cond()) return true
    await Bun.sleep(5)
  }
  return cond()
}

/** A random 40-port range in 20000-29999, so parallel test runs on one machine rarely collide. */
export function portRange(): string {
  const base = 20000 + Math.floor(Math.random() * 240) * 40
  return `${base}-${base + 39}`
}

export const RELAY_ID = '00112233445566aa'

export async function testRelay(over: Partial<RelayConfig> = {}, o: { clock?: ManualClock; withKey?: boolean } = {}) {
  const issuer = createTicketIssuer(RELAY_ID)
  const config = Value.Default(relaySchema, {
    host: '127.0.0.1',
    port: 0,
    ports: portRange(),
    publicIp: '127.0.0.1',
    relayId: RELAY_ID,
    statsInterval: 0,
    kernelOffload: process.env.LANRAGE_TEST_KERNEL_OFFLOAD === '1',
    ...over,
  }) as RelayConfig
  const relay: Relay = await startRelay(config, {
    log: silentLogger,
    clock: o.clock,
    ticketPublicKey: o.withKey === false ? undefined : issuer.publicKey,
    sweepIntervalMs: 0,
  })
  return { relay, issuer, config }
}

/** Waits until `value()` stops changing for 100 ms (at most `ms`): for counts of datagrams the kernel may drop. */
export async function settle(value: () => number, ms = 2000): Promise<number> {
  const end = Date.now() + ms
  let last = value()
  let stableSince = Date.now()
  while (Date.now() < end) {
    await Bun.sleep(10)
    const v = value()
    if (v !== last) [last, stableSince] = [v, Date.now()]
    else if (Date.now() - stableSince >= 100) break
  }
  return last
}
