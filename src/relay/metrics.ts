/** Relay counters: plain numbers bumped on the hot path, rendered as Prometheus text on demand. */
import { DROP_REASONS, type DropReason, type Session } from './session-table.ts'

export class RelayMetrics {
  /** Datagrams and bytes received on session ports. */
  packetsIn = 0
  bytesIn = 0
  /** Datagrams and bytes handed to the kernel towards the other side. */
  forwarded = 0
  bytesForwarded = 0
  mainPacketsIn = 0
  stunResponses = 0
  allocateRequests = 0
  allocateOk = 0
  /** ALLOCATEs answered with a cookie (the source had not proved its address yet). */
  allocateCookies = 0
  /** Ed25519 ticket signatures checked. */
  ticketChecks = 0
  sessionsOpened = 0
  sessionsExpired = 0
  socketErrors = 0
  readonly drops: Record<DropReason, number> = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>

  snapshot() {
    return {
      packets_in: this.packetsIn,
      bytes_in: this.bytesIn,
      forwarded: this.forwarded,
      bytes_forwarded: this.bytesForwarded,
      main_packets_in: this.mainPacketsIn,
      stun_responses: this.stunResponses,
      allocate_requests: this.allocateRequests,
      allocate_ok: this.allocateOk,
      allocate_cookies: this.allocateCookies,
      ticket_checks: this.ticketChecks,
      sessions_opened: this.sessionsOpened,
      sessions_expired: this.sessionsExpired,
      socket_errors: this.socketErrors,
      drops: { ...this.drops },
    }
  }
}

export interface SessionStats {
  session_id: string
  party_id: string
  ports: { a: number; b: number }
  sides: Record<'a' | 'b', { claimed: boolean; learned: boolean; packets_in: number; bytes_in: number; forwarded: number; bytes_forwarded: number; dropped: number }>
  idle_ms: number
}

export function sessionStats(s: Session, now: number): SessionStats {
  const side = (x: Session['a']) => ({
    claimed: x.ip !== null,
    learned: x.peerPort !== 0,
    packets_in: x.packetsIn,
    bytes_in: x.bytesIn,
    forwarded: x.forwarded,
    bytes_forwarded: x.bytesForwarded,
    dropped: x.dropped,
  })
  return { session_id: s.id, party_id: s.partyId, ports: { a: s.a.port, b: s.b.port }, sides: { a: side(s.a), b: side(s.b) }, idle_ms: now - s.lastActive }
}

/** Prometheus text exposition format 0.0.4. */
export function renderPrometheus(m: RelayMetrics, gauges: { sessions: number; capacity: number; blocked: number; controlKnown: boolean }): string {
  const lines: string[] = []
  const counter = (name: string, help: string, v: number) => lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`, `${name} ${v}`)
  const gauge = (name: string, help: string, v: number) => lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, `${name} ${v}`)
  counter('lanrage_relay_packets_in_total', 'Datagrams received on session ports.', m.packetsIn)
  counter('lanrage_relay_bytes_in_total', 'Bytes received on session ports.', m.bytesIn)
  counter('lanrage_relay_forwarded_total', 'Datagrams forwarded to the other side.', m.forwarded)
  counter('lanrage_relay_forwarded_bytes_total', 'Bytes forwarded to the other side.', m.bytesForwarded)
  counter('lanrage_relay_main_packets_in_total', 'Datagrams received on the main port (STUN and ALLOCATE).', m.mainPacketsIn)
  counter('lanrage_relay_stun_responses_total', 'STUN Binding responses sent.', m.stunResponses)
  counter('lanrage_relay_allocate_requests_total', 'ALLOCATE requests received.', m.allocateRequests)
  counter('lanrage_relay_allocate_ok_total', 'ALLOCATE requests answered with a session port.', m.allocateOk)
  counter('lanrage_relay_allocate_cookies_total', 'ALLOCATE requests answered with a cookie (source address not proved yet).', m.allocateCookies)
  counter('lanrage_relay_ticket_checks_total', 'Ed25519 ticket signatures checked.', m.ticketChecks)
  counter('lanrage_relay_sessions_opened_total', 'Sessions created.', m.sessionsOpened)
  counter('lanrage_relay_sessions_expired_total', 'Sessions freed after the idle timeout.', m.sessionsExpired)
  counter('lanrage_relay_socket_errors_total', 'Errors reported by sockets (ICMP unreachable and the like).', m.socketErrors)
  lines.push('# HELP lanrage_relay_dropped_total Datagrams dropped, by reason.', '# TYPE lanrage_relay_dropped_total counter')
  for (const r of DROP_REASONS) lines.push(`lanrage_relay_dropped_total{reason="${r}"} ${m.drops[r]}`)
  gauge('lanrage_relay_sessions', 'Sessions in the table.', gauges.sessions)
  gauge('lanrage_relay_capacity', 'Most sessions at once.', gauges.capacity)
  gauge('lanrage_relay_blocked_sources', 'Sources blocked for flooding invalid tickets.', gauges.blocked)
  gauge('lanrage_relay_control_key_known', '1 when the relay knows a control server ticket key.', gauges.controlKnown ? 1 : 0)
  return lines.join('\n') + '\n'
}
