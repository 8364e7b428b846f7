/** `lanrage status`: what the running agent sees — its party, this peer, and every peer's path. */
import { Type } from '@sinclair/typebox'
import { runCommand } from '../shared/command.ts'
import type { CommandSpec } from '../shared/config.ts'
import { safeJson, safeText } from '../shared/terminal.ts'
import { alive, readStatusFile, statusPath, type StatusFile } from '../client/agent/state.ts'

export const spec = {
  name: 'status',
  summary: "show the running agent's party, this peer and every peer's virtual IP, endpoint and path",
  description: 'Reads the status file the running `lanrage up` keeps in $LANRAGE_HOME. Exit code 1 when no agent runs.',
  schema: Type.Object({
    json: Type.Boolean({ default: false, description: 'print machine-readable JSON', settings: false, env: false }),
  }),
} satisfies CommandSpec<any>

/** The human form of the status file. Names, ids and endpoints came from the network: every line is escaped. */
export function formatStatus(s: StatusFile): string {
  const lines = [
    `party:     ${s.party ? `${s.party.party_id} (${s.party.name})` : '(none yet)'}`,
    `interface: ${s.interface} port ${s.listen_port}`,
    `this peer: ${s.self ? `${s.self.peer_id} ${s.self.virtual_ip ?? ''} public ${s.self.public_endpoint ?? 'unknown'} nat ${s.self.nat_type}` : '(registering)'}`,
    `peers:     ${s.peers.length}`,
  ]
  for (const p of s.peers) lines.push(`  ${p.peer_id}  ${p.virtual_ip.padEnd(15)} ${p.path.padEnd(10)} ${p.endpoint ?? '-'}`)
  return lines.map(safeText).join('\n')
}

export async function main(argv: string[]): Promise<number> {
  return runCommand(spec, { argv, env: process.env }, (cfg) => {
    const s = readStatusFile()
    if (!s || !alive(s.pid)) {
      const msg = s ? `the agent (pid ${s.pid}) is not running; stale ${statusPath()}` : 'no agent is running'
      if (cfg.json) console.log(safeJson({ running: false, message: msg }))
      else console.error(`lanrage status: ${safeText(msg)}`)
      return 1
    }
    console.log(cfg.json ? safeJson({ running: true, ...s }, 2) : formatStatus(s))
    return 0
  })
}
