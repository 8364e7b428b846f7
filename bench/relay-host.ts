/**
 * The relay under test for bench/relay-throughput.ts, in its own process: `startRelay` from src/relay with the
 * production defaults, every check on, and the control server's ticket key handed over directly (as
 * `lanrage serve` does). Configured by the bench through the environment:
 *
 *   BENCH_TICKET_KEY   base64 Ed25519 public key the tickets are signed with
 *   BENCH_RELAY_ID     16 hex digits: the relay id the tickets name
 *   BENCH_SESSIONS     how many sessions it must hold (sizes the port range and capacity)
 *   BENCH_PORTS        first session port (default 12000; the range is 2 × sessions + 64 ports from there;
 *                      relay-throughput.ts picks a random start below 20000, where the relay tests begin)
 *   BENCH_HOST         address to bind (default 127.0.0.1; relay-offload.ts and relay-flood.ts run it in a
 *                      namespace of their own)
 *   BENCH_KERNEL_OFFLOAD  1 = --kernel-offload (relay-offload.ts)
 *
 * Three defaults are changed, and only because the bench is not a game: the per-side token bucket (20k packets/s,
 * 25 MB/s) would cap one session below what is being measured, so it is raised to 100M packets/s and 1 TB/s;
 * the bucket is still evaluated on every datagram. Idle expiry is 1 h instead of 5 min, so the 1000 sessions
 * that wait through the throughput runs are still there for the latency run. The stats log stays on (30 s).
 *
 *   prints {"main_port":N,"relay_id":"...","pid":N}, runs until SIGTERM, then prints the relay's counters
 */
import { Value } from '@sinclair/typebox/value'
import { startRelay } from '../src/relay/index.ts'
import { relaySchema, type RelayConfig } from '../src/relay/config.ts'

const env = (k: string) => {
  const v = process.env[k]
  if (!v) throw new Error(`relay-host: ${k} is not set`)
  return v
}
const sessions = Number(process.env.BENCH_SESSIONS ?? '1001')
const first = Number(process.env.BENCH_PORTS ?? '12000')
const config: RelayConfig = {
  ...(Value.Create(relaySchema) as RelayConfig),
  host: process.env.BENCH_HOST ?? '127.0.0.1',
  port: 0,
  ports: `${first}-${first + 2 * sessions + 63}`,
  capacity: sessions + 32,
  relayId: env('BENCH_RELAY_ID'),
  ratePps: 100_000_000,
  rateBps: 1_000_000_000_000,
  // The throughput runs use session 0 for minutes while the other 1000 wait for the latency run; the default 5
  // minutes of idle expiry would free them in between.
  idleTimeout: 3600,
  kernelOffload: process.env.BENCH_KERNEL_OFFLOAD === '1',
}
const relay = await startRelay(config, { ticketPublicKey: new Uint8Array(Buffer.from(env('BENCH_TICKET_KEY'), 'base64')) })
console.log(JSON.stringify({ main_port: relay.port, relay_id: relay.relayId, pid: process.pid }))

for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    const s = relay.stats()
    console.log(JSON.stringify(s))
    void relay.close().then(() => process.exit(0))
  })
}
