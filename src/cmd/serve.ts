/**
 * `lanrage serve`: the control server and the relay in one process on an embedded SQLite file (what `npm start`
 * runs). The relay registers through the control server's own request handler — the routes and checks a remote
 * relay's HTTP requests go through, without a socket (so it needs no certificate that names 127.0.0.1 when the
 * server runs HTTPS) — with the ticket public key handed over directly.
 */
import { Type } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import type { CommandSpec } from '../shared/config.ts'
import { controlSchema } from '../control/config.ts'
import { runServerCommand, startControl } from '../control/server.ts'
import { relaySchema, type RelayConfig } from '../relay/config.ts'
import { startRelay } from '../relay/index.ts'
import { createLogger } from '../shared/log.ts'
import { PortInUseError } from '../shared/errors.ts'

const r = relaySchema.properties
export const spec = {
  name: 'serve',
  summary: 'control server and relay in one process, SQLite under ./data/ (what npm start runs)',
  description: 'Settings keys: serve.<option>. Without --relay-secret a random one is generated for the in-process relay.',
  settingsFrom: 'server',
  schema: Type.Object({
    ...controlSchema.properties,
    relayPort: Type.Integer({ ...r.port, description: 'relay main UDP port: STUN and ALLOCATE' }),
    relayStunAltPort: Type.Integer({ ...r.stunAltPort, description: 'relay second UDP port, STUN Binding only; 0 = any free port, -1 = off' }),
    relayPorts: Type.String({ ...r.ports, description: 'relay session port range, one port per side of a session' }),
    publicIp: Type.String({
      ...r.publicIp,
      description: 'address clients reach the relay at (default: --host when it names one address, else the first non-loopback IPv4)',
    }),
    region: r.region,
    relayCapacity: Type.Integer({ ...r.capacity, description: 'most relay sessions at once' }),
    relayMetricsPort: Type.Integer({ ...r.metricsPort, description: 'HTTP port serving the relay GET /metrics alone (they are in the control server /metrics anyway); -1 = off' }),
    ratePps: r.ratePps,
    rateBps: r.rateBps,
    idleTimeout: r.idleTimeout,
    deny: r.deny,
    kernelOffload: r.kernelOffload,
  }),
} satisfies CommandSpec<any>

export async function main(argv: string[]): Promise<number> {
  return runServerCommand(spec, argv, async (config, open) => {
    const control = startControl(config, { open, generateRelaySecret: true })
    const relayConfig: RelayConfig = {
      ...defaults(),
      host: config.host,
      port: config.relayPort,
      stunAltPort: config.relayStunAltPort,
      ports: config.relayPorts,
      // Empty: the relay picks --host or this machine's first non-loopback IPv4. Never 0.0.0.0: the address in
      // relay offers must not come from a request's Host header, which any client writes.
      publicIp: config.publicIp,
      region: config.region,
      capacity: config.relayCapacity,
      metricsPort: config.relayMetricsPort,
      ratePps: config.ratePps,
      rateBps: config.rateBps,
      idleTimeout: config.idleTimeout,
      deny: config.deny,
      kernelOffload: config.kernelOffload,
      control: control.url,
      relaySecret: control.relaySecret,
    }
    const inProcess = ((input: string | Request, init?: RequestInit) => control.app.handle(new Request(input as string, init))) as typeof fetch
    let relay
    try {
      relay = await startRelay(relayConfig, { ticketPublicKey: control.ticketPublicKey, log: createLogger('relay'), fetch: inProcess })
    } catch (e) {
      await control.close()
      // startRelay names `lanrage relay`'s flags; here the same ports have serve's names.
      if (e instanceof PortInUseError) throw e.withFlag(RELAY_FLAGS[e.flag] ?? e.flag)
      throw e
    }
    // One /metrics for the process: the relay's figures beside the control server's (its own port stays optional).
    control.metrics.addSource(() => relay.metricsText())
    return {
      reloadTls: control.reloadTls,
      async close() {
        await relay.close()
        await control.close()
      },
    }
  })
}

const defaults = () => Value.Default(relaySchema, {}) as RelayConfig

/** `lanrage relay`'s port flags → the flags of the same ports in `lanrage serve`. */
const RELAY_FLAGS: Record<string, string> = {
  '--port': '--relay-port',
  '--stun-alt-port': '--relay-stun-alt-port',
  '--metrics-port': '--relay-metrics-port',
}
