import { describe, expect, test } from 'bun:test'
import fixture from '../../../test/relay/fixtures/wg-handshake.json'
import { checkMac1, computeMac1, mac1Key, wgMessageType, WG_INITIATION_MAC1_AT, WG_RESPONSE_MAC1_AT } from './wireguard.ts'

// A real handshake captured from two wireguard-go interfaces (test/relay/fixtures/capture-wg-handshake.ts).
// The initiation is addressed to the responder, so its mac1 is keyed with the responder's public key; the
// response is addressed to the initiator.
const b64 = (s: string) => new Uint8Array(Buffer.from(s, 'base64'))
const hex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'))
const initiation = hex(fixture.initiation)
const response = hex(fixture.response)
const initiatorKey = mac1Key(b64(fixture.initiator_public_key))
const responderKey = mac1Key(b64(fixture.responder_public_key))

describe('WireGuard mac1 (whitepaper §5.4.4) against wireguard-go bytes', () => {
  test('message types and sizes', () => {
    expect(wgMessageType(initiation)).toBe('initiation')
    expect(wgMessageType(response)).toBe('response')
    expect(wgMessageType(new Uint8Array([3, 0, 0, 0, ...new Array(60).fill(0)]))).toBe('cookie')
    expect(wgMessageType(new Uint8Array([4, 0, 0, 0, ...new Array(28).fill(0)]))).toBe('data')
    expect(wgMessageType(new Uint8Array([4, 0, 0, 0, ...new Array(27).fill(0)]))).toBeNull() // shorter than header + tag
    expect(wgMessageType(initiation.subarray(0, 147))).toBeNull()
    expect(wgMessageType(new Uint8Array([1, 0, 0, 1, ...new Array(144).fill(0)]))).toBeNull() // reserved bytes must be zero
    expect(wgMessageType(new Uint8Array([5, 0, 0, 0]))).toBeNull()
    expect(wgMessageType(new Uint8Array(0))).toBeNull()
  })

  test('initiation: mac1 verifies with the responder key only', () => {
    expect(checkMac1(initiation, responderKey)).toBe(true)
    expect(checkMac1(initiation, initiatorKey)).toBe(false)
    expect(computeMac1(initiation, responderKey)).toEqual(initiation.subarray(WG_INITIATION_MAC1_AT, WG_INITIATION_MAC1_AT + 16))
  })

  test('response: mac1 verifies with the initiator key only', () => {
    expect(checkMac1(response, initiatorKey)).toBe(true)
    expect(checkMac1(response, responderKey)).toBe(false)
    expect(computeMac1(response, initiatorKey)).toEqual(response.subarray(WG_RESPONSE_MAC1_AT, WG_RESPONSE_MAC1_AT + 16))
  })

  test('any flipped bit before the end of mac1 breaks it; mac2 is not covered', () => {
    for (let i = 4; i < WG_INITIATION_MAC1_AT + 16; i++) {
      const bad = initiation.slice()
      bad[i] = bad[i]! ^ 0x80
      expect(checkMac1(bad, responderKey)).toBe(false)
    }
    const mac2Changed = initiation.slice()
    mac2Changed[WG_INITIATION_MAC1_AT + 16] = 0xff
    expect(checkMac1(mac2Changed, responderKey)).toBe(true)
  })

  test('data, cookie and garbage never pass a mac1 check', () => {
    expect(checkMac1(new Uint8Array([4, 0, 0, 0, ...new Array(28).fill(0)]), responderKey)).toBe(false)
    expect(checkMac1(new Uint8Array(148), responderKey)).toBe(false)
    expect(computeMac1(new Uint8Array(10), responderKey)).toBeNull()
  })

  test('mac1Key refuses a key of the wrong size', () => {
    expect(() => mac1Key(new Uint8Array(31))).toThrow('a WireGuard public key is 32 bytes')
  })
})
