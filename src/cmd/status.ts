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
  settingsFrom: false,
  schema: Type.Object({
    json: Type.Boolean({ default: false, description: 'print machine-readable JSON', settings: false, env: false }),
  }),
} satisfies CommandSpec<any>

/** Bytes in KiB/MiB/GiB steps (1024), one decimal from KiB up. */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return '-'
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  while (n >= 1024 && i < units.length - 1) (n /= 1024), i++
  return i === 0 ? `${n} B` : `${n.toFixed(1)} ${units[i]}`
}

/** How long ago an ISO time was, in the largest whole unit ("4 s ago", "3 min ago"); "never" for none. */
export function formatAge(iso: string | null | undefined, now: number): string {
  const t = iso ? Date.parse(iso) : NaN
  if (Number.isNaN(t)) return 'never'
  const s = Math.max(0, Math.round((now - t) / 1000))
  return s < 120 ? `${s} s ago` : s < 7200 ? `${Math.floor(s / 60)} min ago` : `${Math.floor(s / 3600)} h ago`
}

export const formatLatency = (ms: number | null | undefined) => (typeof ms === 'number' && Number.isFinite(ms) ? `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms` : '-')

/**
 * The human form of the status file: the party, this peer, then a table of the members (name, id, virtual IP,
 * path, latency through the tunnel, age of the last WireGuard handshake, bytes received and sent, endpoint).
 * Names, ids and endpoints came from the network: every line is escaped. Fields an older agent did not write
 * show as "-".
 */
export function formatStatus(s: StatusFile, now = Date.now()): string {
  const host = s.party?.host_id
  const nameOf = (name: string | null | undefined, id: string) => `${name ?? '-'}${id === host ? ' (host)' : ''}`
  const party = s.party
    ? `${s.party.party_id} (${s.party.name})`
    : s.state === 'starting'
      ? '(starting)'
      : s.state === 'idle' && s.api
        ? `(none: create or join one on the page, ${s.api})`
        : '(none yet)'
  const lines = [
    `party:     ${party}`,
    ...(s.message ? [`note:      ${s.message}`] : []),
    `interface: ${s.interface} port ${s.listen_port}`,
    `this peer: ${s.self ? `${nameOf(s.self.name, s.self.peer_id)} ${s.self.peer_id} ${s.self.virtual_ip ?? ''} public ${s.self.public_endpoint ?? 'unknown'} nat ${s.self.nat_type}` : '(registering)'}`,
    `peers:     ${s.peers.length}`,
  ]
  if (s.peers.length) {
    const rows = s.peers.map((p) => [
      nameOf(p.name, p.peer_id),
      p.peer_id,
      p.virtual_ip,
      p.path,
      formatLatency(p.latency_ms),
      formatAge(p.latest_handshake, now),
      formatBytes(p.rx_bytes ?? NaN),
      formatBytes(p.tx_bytes ?? NaN),
      p.endpoint ?? '-',
    ])
    const head = ['NAME', 'PEER ID', 'VIRTUAL IP', 'PATH', 'LATENCY', 'HANDSHAKE', 'RECEIVED', 'SENT', 'ENDPOINT']
    const width = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)))
    const fmt = (r: string[]) => '  ' + r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(width[i]!))).join('  ')
    lines.push(fmt(head), ...rows.map(fmt))
  }
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
