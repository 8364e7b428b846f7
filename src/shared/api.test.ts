// The shared API schemas as pure values: what the server accepts and what a client may act on.
import { describe, expect, test } from 'bun:test'
import { Value } from '@sinclair/typebox/value'
import { Endpoint, IpAddress, Key, KnownSignal, LiveMessage, PartyName } from './api.ts'

describe('Endpoint', () => {
  test.each(['1.2.3.4:5', '203.0.113.9:51820', '127.0.0.1:65535', '[::1]:51820', '[2001:db8::1]:1', '[fe80::1:2:3:4]:443', '[::ffff:1.2.3.4]:5', '[1:2:3:4:5:6:7:8]:9', '[fff::1]:3'])(
    'accepts %j',
    (ep) => expect(Value.Check(Endpoint, ep)).toBe(true),
  )
  test.each([
    '999.999.999.999:99999', '1.2.3.4:0', '1.2.3.4:65536', '1.2.3.4:05', '01.2.3.4:5', '0.0.0.0:5', '224.0.0.1:5', '255.255.255.255:1',
    '1.2.3:5', '1.2.3.4', ' 1.2.3.4:5', '1.2.3.4:5\n', '[::]:5', '[ff02::1]:5', '[1:2:3:4:5:6:7:8:9]:1', '[1::2::3]:4', '[::1%eth0]:5', 'a.b.c.d:1',
  ])('refuses %j', (ep) => expect(Value.Check(Endpoint, ep)).toBe(false))
})

test('IpAddress: unicast only', () => {
  expect(['198.51.100.20', '10.66.0.1', '::1', '2001:db8::7'].map((a) => Value.Check(IpAddress, a))).toEqual([true, true, true, true])
  expect(['0.0.0.0', '::', '239.1.1.1', 'ff02::1', 'example.com', ''].map((a) => Value.Check(IpAddress, a))).toEqual([false, false, false, false, false, false])
})

test('Key: standard base64 of exactly 32 bytes', () => {
  expect(Value.Check(Key, Buffer.alloc(32, 7).toString('base64'))).toBe(true)
  expect(Value.Check(Key, 'A'.repeat(42) + 'B=')).toBe(false) // padding bits set: a second spelling of another key
  expect(Value.Check(Key, Buffer.alloc(31).toString('base64'))).toBe(false)
})

test('PartyName: printable, not blank, at most 64', () => {
  for (const ok of ['friday', 'LAN 🎮 party', 'é', 'x'.repeat(64)]) expect(Value.Check(PartyName, ok)).toBe(true)
  for (const bad of ['a\x1b[2Jb', 'bell\x07', 'tab\t', 'rtl\u202e', '\u009b', '   ', '', 'x'.repeat(65)]) expect(Value.Check(PartyName, bad)).toBe(false)
})

describe('KnownSignal', () => {
  const env = { id: '0123456789abcdef', party_id: '0123456789ab', from_peer_id: '0123456789abcdef', to_peer_id: 'fedcba9876543210', created_at: '2026-01-01T00:00:00.000Z' }
  const offer = {
    session_id: '0'.repeat(32), side: 'b', ticket: 'AAAA', expires_at: '2026-01-01T00:10:00.000Z', peer_id: '0123456789abcdef',
    relay: { relay_id: '0000000000000001', public_ip: '198.51.100.20', port: 51820, region: 'eu' },
  }
  test('a punch with a usable endpoint and a relay offer pass', () => {
    expect(Value.Check(KnownSignal, { ...env, type: 'punch', data: { at: 1_700_000_000_000, endpoint: '203.0.113.9:51820' } })).toBe(true)
    expect(Value.Check(KnownSignal, { ...env, type: 'relay_offer', data: offer })).toBe(true)
  })
  test('bad data, unknown types and offers to unusable addresses do not', () => {
    expect(Value.Check(KnownSignal, { ...env, type: 'punch', data: { at: 1, endpoint: '999.999.999.999:99999' } })).toBe(false)
    expect(Value.Check(KnownSignal, { ...env, type: 'punch', data: { at: -1, endpoint: '1.2.3.4:5' } })).toBe(false)
    expect(Value.Check(KnownSignal, { ...env, type: 'punch', data: { at: 1e300, endpoint: '1.2.3.4:5' } })).toBe(false)
    expect(Value.Check(KnownSignal, { ...env, type: 'relay_offer', data: { ...offer, relay: { ...offer.relay, public_ip: '0.0.0.0' } } })).toBe(false)
    expect(Value.Check(KnownSignal, { ...env, type: 'relay_offer', data: { ...offer, relay: { ...offer.relay, port: 0 } } })).toBe(false)
    expect(Value.Check(KnownSignal, { ...env, type: 'chat', data: {} })).toBe(false)
  })
})

test('LiveMessage: the server events', () => {
  expect(Value.Check(LiveMessage, { type: 'hello', peer_id: '0123456789abcdef', parties: ['0123456789ab'] })).toBe(true)
  expect(Value.Check(LiveMessage, { type: 'peer_left', party_id: '0123456789ab', peer_id: '0123456789abcdef', reason: 'removed' })).toBe(true)
  expect(Value.Check(LiveMessage, { type: 'peer_left', party_id: '0123456789ab', peer_id: '0123456789abcdef', reason: 'evil' })).toBe(false)
  expect(Value.Check(LiveMessage, { type: 'hello', peer_id: 'x', parties: [] })).toBe(false)
})
