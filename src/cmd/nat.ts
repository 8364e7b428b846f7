/** `lanrage nat`: asks STUN servers from one UDP port and prints the public endpoint and NAT type. */
import { Type } from '@sinclair/typebox'
import { runCommand } from '../shared/command.ts'
import type { CommandSpec } from '../shared/config.ts'
import { UsageError } from '../shared/errors.ts'
import { safeJson, safeText } from '../shared/terminal.ts'
import { settingsReader } from '../db/settings.ts'
import { detectNatFromPort, type NatReport } from '../client/nat/detect.ts'
import { parseStunServer } from '../client/stun/client.ts'

export const spec = {
  name: 'nat',
  summary: 'learn this machine\'s public UDP endpoint and NAT type from two STUN servers',
  description: [
    'Every server is asked at once from the same local port: if they see different mappings the NAT is symmetric.',
    'A server the kernel reports unreachable (ICMP port or host unreachable) fails at once; a silent one after',
    'RFC 8489\'s retransmissions (39.5 s). Exit code 1 when no server answered.',
  ].join('\n'),
  schema: Type.Object({
    stun: Type.Array(Type.String(), { minItems: 1, description: 'STUN servers host[:port] (two or more to tell symmetric NATs apart)' }),
    port: Type.Integer({ minimum: 0, maximum: 65535, default: 0, description: 'local UDP port to ask from (0 = any)' }),
    json: Type.Boolean({ default: false, description: 'print the report as JSON (snake_case, like the API)', settings: false, env: false }),
  }),
} satisfies CommandSpec<any>

/** The report as --json prints it: the API's snake_case names. */
export function natReportJson(r: NatReport) {
  return {
    nat_type: r.natType,
    public_endpoint: r.publicEndpoint,
    local_port: r.localPort,
    mapping_varies_by_destination: r.mappingVariesByDestination,
    mappings: r.mappings.map((m) => ({ server: m.server, mapped: m.mapped, rtt_ms: m.rttMs })),
    failures: r.failures.map((f) => ({ server: f.server, code: f.code, error: f.error })),
  }
}

export async function main(argv: string[]): Promise<number> {
  return runCommand(spec, { argv, env: process.env, settings: settingsReader() }, async (cfg) => {
    const servers = cfg.stun.map((s) => {
      try {
        return parseStunServer(s)
      } catch (e) {
        throw new UsageError(`--stun: ${(e as Error).message}`)
      }
    })
    const r = await detectNatFromPort(cfg.port, servers)
    // A STUN error response carries the server's reason phrase (RFC 8489 §14.8): printed escaped like all network text.
    if (cfg.json) console.log(safeJson(natReportJson(r)))
    else {
      console.log(`nat type:        ${r.natType}`)
      console.log(`public endpoint: ${r.publicEndpoint ?? '(no STUN server answered)'}`)
      console.log(`local port:      ${r.localPort}`)
      for (const m of r.mappings) console.log(`  ${m.server} saw ${m.mapped} (${m.rttMs} ms)`)
      for (const f of r.failures) console.log(safeText(`  ${f.server}: ${f.error}`))
    }
    return r.mappings.length ? 0 : 1
  })
}
