/**
 * STUN from the port WireGuard is about to use (DESIGN.md: "STUN from that port before WireGuard binds it"), at
 * up to two relays' main ports, so the mapping learned is the one a peer must send to.
 *
 * Mapping behaviour (RFC 4787 §4.1, RFC 5780 §4.3 test I/II): the same public ip:port towards two different
 * destinations → endpoint-independent (a cone; simultaneous sends punch through a port-restricted filter, so it
 * is reported as `port_restricted_cone`, the strictest cone); different → `symmetric`; public = local →
 * `open`. With a single answering target the mapping behaviour cannot be known: `unknown` (the agent then tries
 * direct and falls back to the relay on timeout).
 */
import { decodeBindingResponse, encodeBindingRequest, newTransactionId } from '../../shared/wire/stun.ts'
import type { NatReport, RelayEndpoint } from './agent.ts'
import { localEndpoints } from './agent.ts'

/** RFC 8489 §6.2.1 retransmission, shortened: RTO 250 ms doubling, 4 sends (~3.75 s worst case). */
const RTO_MS = 250
const SENDS = 4

export async function stunFromPort(localPort: number, targets: RelayEndpoint[], retry = { rtoMs: RTO_MS, sends: SENDS }): Promise<NatReport> {
  const ids = targets.map(() => newTransactionId())
  const mapped: (string | null)[] = targets.map(() => null)
  const sock = await Bun.udpSocket({
    hostname: '0.0.0.0',
    port: localPort,
    binaryType: 'uint8array',
    socket: {
      data(_s, data) {
        const r = decodeBindingResponse(data)
        if (!r.ok) return
        const i = ids.findIndex((id) => id.every((b, k) => b === r.transactionId[k]))
        if (i >= 0) mapped[i] = `${r.mapped.address}:${r.mapped.port}`
      },
      error() {},
    },
  })
  try {
    let rto = retry.rtoMs
    for (let n = 0; n < retry.sends && mapped.some((m) => m === null); n++) {
      targets.forEach((t, i) => mapped[i] === null && sock.send(encodeBindingRequest(ids[i]), t.port, t.host))
      const end = Date.now() + rto
      while (Date.now() < end && mapped.some((m) => m === null)) await Bun.sleep(10)
      rto *= 2
    }
  } finally {
    sock.close()
  }
  const got = mapped.filter((m): m is string => m !== null)
  if (got.length === 0) return { publicEndpoint: null, natType: 'unknown' }
  const publicEndpoint = got[0]!
  if (localEndpoints(localPort).includes(publicEndpoint)) return { publicEndpoint, natType: 'open' }
  if (got.length < 2) return { publicEndpoint, natType: 'unknown' }
  return { publicEndpoint, natType: got.every((m) => m === publicEndpoint) ? 'port_restricted_cone' : 'symmetric' }
}
