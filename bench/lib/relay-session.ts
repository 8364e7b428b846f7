/**
 * A real relay session for the benchmark, made the way a peer makes one: tickets signed with the control
 * server's Ed25519 key (here a test key), one ALLOCATE per side over UDP from 127.0.0.1, then WireGuard
 * handshake messages whose mac1 is valid for the other side's public key (so the relay learns each side's
 * port), then transport data (type 4) between them.
 */
import { ed25519 } from '@noble/curves/ed25519.js'
import { AllocateExchange } from '../../src/shared/wire/allocate.ts'
import { signTicket, type Side } from '../../src/shared/wire/ticket.ts'
import {
  computeMac1,
  mac1Key,
  WG_HANDSHAKE_INITIATION,
  WG_HANDSHAKE_RESPONSE,
  WG_INITIATION_LEN,
  WG_INITIATION_MAC1_AT,
  WG_RESPONSE_LEN,
  WG_RESPONSE_MAC1_AT,
  WG_TRANSPORT_DATA,
} from '../../src/shared/wire/wireguard.ts'

const random = (n: number) => crypto.getRandomValues(new Uint8Array(n))

export interface BenchSession {
  portA: number
  portB: number
  /** WireGuard static public keys of the two peers (random bytes: the relay never sees a private key). */
  keyA: Uint8Array
  keyB: Uint8Array
  /** WireGuard session indices (sender index of each side's handshake message). */
  indexA: number
  indexB: number
}

/**
 * Handshake initiation from a (WireGuard §5.4.2): type, sender index, then ephemeral/static/timestamp fields the
 * relay cannot read (random here), then mac1 keyed with the responder's public key. mac2 stays zero (no cookie).
 */
export function initiation(s: BenchSession): Uint8Array {
  const m = random(WG_INITIATION_LEN)
  m.set([WG_HANDSHAKE_INITIATION, 0, 0, 0], 0)
  new DataView(m.buffer).setUint32(4, s.indexA, true)
  m.fill(0, WG_INITIATION_MAC1_AT)
  m.set(computeMac1(m, mac1Key(s.keyB))!, WG_INITIATION_MAC1_AT)
  return m
}

/** Handshake response from b (WireGuard §5.4.3): sender index b, receiver index a, mac1 keyed with a's public key. */
export function response(s: BenchSession): Uint8Array {
  const m = random(WG_RESPONSE_LEN)
  m.set([WG_HANDSHAKE_RESPONSE, 0, 0, 0], 0)
  const dv = new DataView(m.buffer)
  dv.setUint32(4, s.indexB, true)
  dv.setUint32(8, s.indexA, true)
  m.fill(0, WG_RESPONSE_MAC1_AT)
  m.set(computeMac1(m, mac1Key(s.keyA))!, WG_RESPONSE_MAC1_AT)
  return m
}

/** The first 16 bytes of a transport data message from a to b (§5.4.6): type 4, receiver index b, counter 0. */
export function transportHeader(s: BenchSession): Uint8Array {
  const h = new Uint8Array(16)
  h[0] = WG_TRANSPORT_DATA
  new DataView(h.buffer).setUint32(4, s.indexB, true)
  return h
}

export interface TicketKey {
  secretKey: Uint8Array
  publicKey: Uint8Array
}
export function ticketKey(): TicketKey {
  const secretKey = ed25519.utils.randomSecretKey()
  return { secretKey, publicKey: ed25519.getPublicKey(secretKey) }
}

/** Sends ALLOCATE requests from one socket on 127.0.0.1 and matches answers (cookies, responses) by transaction id. */
export class Allocator {
  private pending = new Map<string, (r: Uint8Array) => void>()
  private constructor(
    private socket: Bun.udp.Socket<'uint8array'>,
    private relay: string,
  ) {}

  /** `bind`: the local address to send from; `relay`: the relay's address (both 127.0.0.1 unless in a namespace). */
  static async open(o: { bind?: string; relay?: string } = {}): Promise<Allocator> {
    let self: Allocator | undefined
    const socket = await Bun.udpSocket({
      hostname: o.bind ?? '127.0.0.1',
      binaryType: 'uint8array',
      socket: {
        // Cookie replies and responses both carry the transaction id at bytes 8..20.
        data(_s, data) {
          if (data.length >= 20) self?.pending.get(Buffer.from(data.subarray(8, 20)).toString('hex'))?.(data)
        },
        error() {}, // ICMP errors while the relay restarts: the retry loop handles it
      },
    })
    self = new Allocator(socket, o.relay ?? '127.0.0.1')
    return self
  }

  /** ALLOCATE one side (with the cookie round trip); returns its session port. Ten tries, 1 s each. */
  async allocate(mainPort: number, ticket: Uint8Array): Promise<number> {
    const x = new AllocateExchange(ticket, random(12))
    const id = Buffer.from(x.transactionId).toString('hex')
    const done = Promise.withResolvers<number>()
    this.pending.set(id, (data) => {
      const e = x.receive(data)
      if (e?.kind === 'resend') this.socket.send(x.request(), mainPort, this.relay)
      else if (e?.kind === 'done') {
        if (e.response.status === 'ok') done.resolve(e.response.sessionPort)
        else done.reject(new Error(`ALLOCATE refused: ${e.response.status}`))
      }
    })
    try {
      for (let attempt = 0; attempt < 10; attempt++) {
        this.socket.send(x.request(), mainPort, this.relay)
        const port = await Promise.race([done.promise, Bun.sleep(1000).then(() => undefined)])
        if (port !== undefined) return port
      }
      throw new Error('ALLOCATE: no response after 10 tries')
    } finally {
      this.pending.delete(id)
    }
  }

  close() {
    this.socket.close()
  }
}

/** Both tickets of a new session (signed with the test control key) and the session's WireGuard identities. */
export interface SessionTickets extends Omit<BenchSession, 'portA' | 'portB'> {
  ticketA: Uint8Array
  ticketB: Uint8Array
}

export function signSession(o: { relayId: string; key: TicketKey; ttlSec?: number }): SessionTickets {
  const sessionId = random(16)
  const partyId = Buffer.from(random(6)).toString('hex')
  const keyA = random(32)
  const keyB = random(32)
  const notAfter = Math.floor(Date.now() / 1000) + (o.ttlSec ?? 3600)
  const ticket = (side: Side) =>
    signTicket(
      { side, sessionId, relayId: o.relayId, partyId, holderKey: side === 'a' ? keyA : keyB, otherKey: side === 'a' ? keyB : keyA, notAfter },
      o.key.secretKey,
    )
  const idx = new DataView(random(8).buffer)
  return { ticketA: ticket('a'), ticketB: ticket('b'), keyA, keyB, indexA: idx.getUint32(0), indexB: idx.getUint32(4) }
}

/** Signs both tickets of a new session and allocates both sides; returns the session with its ports. */
export async function createSession(
  alloc: Allocator,
  o: { mainPort: number; relayId: string; key: TicketKey; ttlSec?: number },
): Promise<BenchSession> {
  const { ticketA, ticketB, ...s } = signSession(o)
  const portA = await alloc.allocate(o.mainPort, ticketA)
  const portB = await alloc.allocate(o.mainPort, ticketB)
  return { portA, portB, ...s }
}
