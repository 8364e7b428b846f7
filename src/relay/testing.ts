/**
 * Helpers for tests and benches that drive a relay without a control server: a ticket issuer with its own
 * Ed25519 key (pass `issuer.publicKey` as `deps.ticketPublicKey`), an ALLOCATE client over real UDP, and
 * WireGuard-shaped datagrams (a handshake initiation with a valid mac1 for a given receiver key, data messages).
 */
import { ed25519 } from '@noble/curves/ed25519.js'
import { x25519 } from '@noble/curves/ed25519.js'
import { AllocateExchange, type AllocateResponse } from '../shared/wire/allocate.ts'
import { signTicket, type Side } from '../shared/wire/ticket.ts'
import { computeMac1, mac1Key, WG_INITIATION_LEN, WG_INITIATION_MAC1_AT } from '../shared/wire/wireguard.ts'

export interface TestSession {
  sessionId: Uint8Array
  partyId: string
  /** WireGuard key pairs of the two sides (X25519, usable with `wg`). */
  keyA: { secretKey: Uint8Array; publicKey: Uint8Array }
  keyB: { secretKey: Uint8Array; publicKey: Uint8Array }
  ticketA: Uint8Array
  ticketB: Uint8Array
}

export function createTicketIssuer(relayId: string) {
  const { secretKey, publicKey } = ed25519.keygen()
  return {
    publicKey,
    secretKey,
    /** Signs both tickets of a new session. `notAfter` defaults to an hour from now (unix seconds). */
    session(o: { partyId?: string; notAfter?: number; relayId?: string; keyA?: TestSession['keyA']; keyB?: TestSession['keyB'] } = {}): TestSession {
      const sessionId = crypto.getRandomValues(new Uint8Array(16))
      const partyId = o.partyId ?? Buffer.from(crypto.getRandomValues(new Uint8Array(6))).toString('hex')
      const keyA = o.keyA ?? x25519.keygen()
      const keyB = o.keyB ?? x25519.keygen()
      const notAfter = o.notAfter ?? Math.floor(Date.now() / 1000) + 3600
      const sign = (side: Side, holder: Uint8Array, other: Uint8Array) =>
        signTicket({ side, sessionId, relayId: o.relayId ?? relayId, partyId, holderKey: holder, otherKey: other, notAfter }, secretKey)
      return { sessionId, partyId, keyA, keyB, ticketA: sign('a', keyA.publicKey, keyB.publicKey), ticketB: sign('b', keyB.publicKey, keyA.publicKey) }
    },
  }
}

/**
 * ALLOCATE from a fresh socket (on `localHost`) to the relay's main port, the way a client does it: the cookie the
 * relay answers with is echoed at once; the request is sent again every 200 ms (UDP may drop, a relay may be
 * busy), at most `tries` times. Resolves with the final answer, whatever its status.
 */
export async function allocate(
  relay: { host: string; port: number },
  ticket: Uint8Array,
  o: { tries?: number; localHost?: string } = {},
): Promise<AllocateResponse> {
  const x = new AllocateExchange(ticket)
  const got = Promise.withResolvers<AllocateResponse>()
  let resends = 0
  const sock = await Bun.udpSocket({
    hostname: o.localHost ?? '0.0.0.0',
    socket: {
      data(s, buf) {
        const e = x.receive(buf)
        if (e?.kind === 'resend' && resends++ < 5) s.send(x.request(), relay.port, relay.host)
        else if (e?.kind === 'done') got.resolve(e.response)
      },
      error() {},
    },
  })
  try {
    for (let i = 0; i < (o.tries ?? 15); i++) {
      sock.send(x.request(), relay.port, relay.host)
      const r = await Promise.race([got.promise, Bun.sleep(200).then(() => undefined)])
      if (r) return r
    }
    throw new Error(`no ALLOCATE answer from ${relay.host}:${relay.port}`)
  } finally {
    sock.close()
  }
}

/** A handshake initiation (148 bytes, random body) whose mac1 is valid for `receiverPublicKey` (§5.4.4). */
export function fakeInitiation(receiverPublicKey: Uint8Array): Uint8Array {
  const m = crypto.getRandomValues(new Uint8Array(WG_INITIATION_LEN))
  m.set([1, 0, 0, 0], 0)
  m.fill(0, WG_INITIATION_MAC1_AT + 16) // mac2 zero: no cookie
  m.set(computeMac1(m, mac1Key(receiverPublicKey))!, WG_INITIATION_MAC1_AT)
  return m
}

/** A transport data message of `len` bytes (>= 32): type 4, receiver index, counter, filler. */
export function fakeData(len: number, fill = 0x5a): Uint8Array {
  const m = new Uint8Array(Math.max(32, len)).fill(fill)
  m.set([4, 0, 0, 0], 0)
  return m
}
