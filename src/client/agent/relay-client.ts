/**
 * The agent's two conversations with a relay's main UDP port: ALLOCATE (claim our side of a relay session with
 * the ticket the control server signed, src/shared/wire/allocate.ts) and the relay list from the control server.
 * Requests are retransmitted like STUN's (RFC 8489 §6.2.1: RTO doubling from 250 ms), a bounded number of times.
 */
import { LanrageError } from '../../shared/errors.ts'
import type { ControlTls } from '../../shared/tls.ts'
import { AllocateExchange } from '../../shared/wire/allocate.ts'
import { TICKET_LEN } from '../../shared/wire/ticket.ts'
import { controlFetch } from '../net/http.ts'
import { openUdpSocket, type UdpSocket } from '../net/udp.ts'
import type { RelayEndpoint } from './agent.ts'
import { setTimeout as sleep } from 'node:timers/promises'

export class RelayError extends LanrageError {
  constructor(code: 'RELAY_TIMEOUT' | 'RELAY_REFUSED' | 'BAD_TICKET', message: string) {
    super(code, message, 502)
  }
}

const RTO_MS = 250
const ATTEMPTS = 5

/** base64url without padding (the ticket's JSON form in the API) → bytes; null when it is not a ticket. */
export function ticketBytes(b64url: string): Uint8Array | null {
  if (!/^[A-Za-z0-9_-]+$/.test(b64url)) return null
  const bytes = Buffer.from(b64url, 'base64url')
  return bytes.length === TICKET_LEN ? new Uint8Array(bytes) : null
}

/**
 * Sends ALLOCATE with `ticket` to the relay's main port and resolves with this side's session port. The relay
 * first answers with a cookie (proof that we receive at our address); the request goes out again at once with it.
 * A `busy` relay is retried on the same schedule.
 */
export async function allocate(relay: RelayEndpoint, ticket: string, retry = { rtoMs: RTO_MS, attempts: ATTEMPTS }): Promise<number> {
  const t = ticketBytes(ticket)
  if (!t) throw new RelayError('BAD_TICKET', `the relay ticket is not ${TICKET_LEN} bytes of base64url`)
  const x = new AllocateExchange(t)
  // (not Promise.withResolvers: the library runs on Node 20)
  let resolve!: (port: number) => void
  let reject!: (e: Error) => void
  const promise = new Promise<number>((res, rej) => ((resolve = res), (reject = rej)))
  let cookieResends = 0
  let busy = false
  const sock: UdpSocket = await openUdpSocket({
    onMessage(data, port, address) {
      if (port !== relay.port || address !== relay.host) return
      const e = x.receive(data)
      if (!e) return
      if (e.kind === 'busy') busy = true
      // Bounded: a relay that keeps asking (a restart, or the cookie's epoch ran out) gets one resend per try.
      else if (e.kind === 'resend') cookieResends++ < retry.attempts && sock.send(x.request(), relay.port, relay.host)
      else if (e.response.status === 'ok') resolve(e.response.sessionPort)
      else reject(new RelayError('RELAY_REFUSED', `relay ${relay.host}:${relay.port} refused the allocation: ${e.response.status}`))
    },
    // ICMP unreachable and the like are ignored: the retransmissions carry on.
  })
  try {
    let rto = retry.rtoMs
    for (let i = 0; i < retry.attempts; i++) {
      sock.send(x.request(), relay.port, relay.host)
      const r = await Promise.race([promise, sleep(rto).then(() => null)])
      if (r !== null) return r
      rto *= 2
    }
    const why = busy ? 'answered busy to every try' : `did not answer ALLOCATE (${retry.attempts} tries)`
    throw new RelayError('RELAY_TIMEOUT', `relay ${relay.host}:${relay.port} ${why}`)
  } finally {
    sock.close()
  }
}

/** `GET /relays` with the peer's bearer token: the relays' main ports (and STUN alt ports), least loaded first. */
export async function listRelays(controlUrl: string, token: string, tls?: ControlTls): Promise<RelayEndpoint[]> {
  const res = await controlFetch(tls)(controlUrl.replace(/\/+$/, '') + '/relays', { headers: { authorization: `Bearer ${token}`, accept: 'application/json' } })
  if (!res.ok) throw new LanrageError('RELAYS_UNAVAILABLE', `GET /relays answered ${res.status}`, 502)
  const body = (await res.json()) as { relays?: { public_ip?: unknown; port?: unknown; stun_alt_port?: unknown; load?: unknown }[] }
  return (body.relays ?? [])
    .filter((r) => typeof r.public_ip === 'string' && typeof r.port === 'number')
    .sort((a, b) => Number(a.load ?? 0) - Number(b.load ?? 0))
    .map((r) => {
      const alt = r.stun_alt_port
      const ok = typeof alt === 'number' && Number.isInteger(alt) && alt > 0 && alt < 65536
      return { host: r.public_ip as string, port: r.port as number, ...(ok ? { stunAltPort: alt } : {}) }
    })
}
