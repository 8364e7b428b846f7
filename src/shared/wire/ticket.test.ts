import { describe, expect, test } from 'bun:test'
import { ed25519 } from '@noble/curves/ed25519.js'
import { checkTicketFields, checkTicketSignature, decodeTicket, fromBase64Url, signTicket, TICKET_LEN, toBase64Url, verifyTicket, type Ticket } from './ticket.ts'

const { secretKey, publicKey } = ed25519.keygen()
const t: Ticket = {
  side: 'b',
  sessionId: new Uint8Array(16).fill(7),
  relayId: '0123456789abcdef',
  partyId: 'a1b2c3d4e5f6',
  holderKey: new Uint8Array(32).fill(1),
  otherKey: new Uint8Array(32).fill(2),
  notAfter: 2_000_000_000,
}
const opts = { relayId: '0123456789abcdef', nowSec: 1_900_000_000 }

describe('relay tickets', () => {
  test('sign → verify round trip keeps every field', () => {
    const b = signTicket(t, secretKey)
    expect(b.length).toBe(TICKET_LEN)
    expect(verifyTicket(b, publicKey, opts)).toEqual({ ok: true, ticket: t })
    expect(fromBase64Url(toBase64Url(b))).toEqual(b)
  })

  test('documented layout offsets', () => {
    const b = signTicket(t, secretKey)
    expect(b[0]).toBe(1)
    expect(b[1]).toBe(1)
    expect(Buffer.from(b.subarray(18, 26)).toString('hex')).toBe(t.relayId)
    expect(Buffer.from(b.subarray(26, 32)).toString('hex')).toBe(t.partyId)
    expect(new DataView(b.buffer).getUint32(96)).toBe(t.notAfter)
  })

  test('refuses forged, tampered, expired, wrong-relay and malformed tickets', () => {
    const b = signTicket(t, secretKey)
    const other = ed25519.keygen()
    expect(verifyTicket(signTicket(t, other.secretKey), publicKey, opts)).toEqual({ ok: false, error: 'bad-signature' })
    const tampered = b.slice()
    tampered[26] = tampered[26]! ^ 1 // another party id
    expect(verifyTicket(tampered, publicKey, opts)).toEqual({ ok: false, error: 'bad-signature' })
    expect(verifyTicket(b, publicKey, { ...opts, nowSec: t.notAfter + 1 })).toEqual({ ok: false, error: 'expired' })
    expect(verifyTicket(b, publicKey, { ...opts, relayId: 'ffffffffffffffff' })).toEqual({ ok: false, error: 'wrong-relay' })
    expect(verifyTicket(b.subarray(0, 100), publicKey, opts)).toEqual({ ok: false, error: 'short' })
    const v2 = b.slice()
    v2[0] = 2
    expect(decodeTicket(v2)).toEqual({ ok: false, error: 'bad-version' })
    const side = b.slice()
    side[1] = 9
    expect(decodeTicket(side)).toEqual({ ok: false, error: 'bad-side' })
    expect(fromBase64Url('not base64!')).toBeUndefined()
  })

  test('decoding random bytes never throws', () => {
    for (let i = 0; i < 2000; i++) {
      const r = crypto.getRandomValues(new Uint8Array(i % 3 === 0 ? TICKET_LEN : i % 200))
      expect(() => verifyTicket(r, publicKey, opts)).not.toThrow()
    }
  })
})

describe('ticket signature check', () => {
  test('agrees with the RFC 8032 reference (noble) on good, tampered and foreign signatures', () => {
    const b = signTicket(t, secretKey)
    const other = ed25519.keygen()
    for (let i = 0; i < 50; i++) {
      const x = b.slice()
      if (i > 0) x[(i * 37) % TICKET_LEN] = x[(i * 37) % TICKET_LEN]! ^ (1 << i % 8)
      const want = ed25519.verify(x.subarray(100), x.subarray(0, 100), publicKey)
      expect(checkTicketSignature(x, publicKey)).toBe(want)
      expect(checkTicketSignature(x, other.publicKey)).toBe(false)
    }
    expect(checkTicketSignature(b, new Uint8Array(32))).toBe(false)
    expect(checkTicketSignature(b.subarray(1), publicKey)).toBe(false)
  })

  test('the field checks come before the signature: an expired or foreign forgery is refused as such', () => {
    const forged = signTicket(t, ed25519.keygen().secretKey)
    expect(checkTicketFields(t, opts)).toBeNull()
    expect(verifyTicket(forged, publicKey, { ...opts, nowSec: t.notAfter + 1 })).toEqual({ ok: false, error: 'expired' })
    expect(verifyTicket(forged, publicKey, { ...opts, relayId: 'ffffffffffffffff' })).toEqual({ ok: false, error: 'wrong-relay' })
  })
})
