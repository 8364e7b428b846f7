// The identity primitives against fixed vectors (RFC 7748 §6.1's Alice key, RFC 4231 test case 2), and what key
// text is accepted.
import { describe, expect, test } from 'bun:test'
import { decodeKey, encodeKey, peerIdOf, registrationMac } from './identity.ts'

const ALICE_PUB = Buffer.from('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a', 'hex')

describe('identity', () => {
  test('peer_id of RFC 7748 Alice: the first 16 hex digits of SHA-256 of the raw key', () => {
    expect(peerIdOf(ALICE_PUB)).toBe('300c9c9603b92a4b')
  })

  test('registrationMac is HMAC-SHA256 (RFC 4231 test case 2)', () => {
    const mac = registrationMac(new TextEncoder().encode('Jefe'), new TextEncoder().encode('what do ya want for nothing?'))
    expect(Buffer.from(mac).toString('hex')).toBe('5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843')
  })

  test('keys round-trip through their text form', () => {
    const text = encodeKey(ALICE_PUB)
    expect(text).toBe('hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=')
    expect(Buffer.from(decodeKey(text)!)).toEqual(ALICE_PUB)
  })

  test('another spelling of the same bytes is the same key, and encodes back to the one canonical text', () => {
    const text = encodeKey(ALICE_PUB)
    const other = text.slice(0, 42) + 'p=' // unused low bits of the last character set
    expect(other).not.toBe(text)
    expect(Buffer.from(decodeKey(other)!)).toEqual(ALICE_PUB)
    expect(encodeKey(decodeKey(other)!)).toBe(text)
  })

  test('anything but base64 of exactly 32 bytes is undefined, never an exception', () => {
    const text = encodeKey(ALICE_PUB)
    for (const bad of ['', text.slice(0, 43), text + '=', text.replace('=', 'A'), text.slice(0, 10) + '-' + text.slice(11), ` ${text}`, encodeKey(new Uint8Array(31)), encodeKey(new Uint8Array(33)), null, 42, {}])
      expect(decodeKey(bad)).toBeUndefined()
  })

  test('other lengths when asked (a 32-byte challenge is the same; 16 bytes is not 32)', () => {
    const sixteen = encodeKey(new Uint8Array(16).fill(7))
    expect(decodeKey(sixteen, 16)).toEqual(new Uint8Array(16).fill(7))
    expect(decodeKey(sixteen)).toBeUndefined()
  })
})
