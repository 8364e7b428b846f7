import { describe, expect, test } from 'bun:test'
import { encodeKey, generateKeyPair } from '../wireguard/keys.ts'
import { peerIdOf } from '../control/remote.ts'
import { parseSubnet } from '../../shared/ipv4.ts'
import { checkPeer, checkPunch, checkSignal } from './inbound.ts'

describe('checkPeer', () => {
  const kp = generateKeyPair()
  const info = {
    peer_id: peerIdOf(kp.publicKey),
    name: 'Ana',
    public_key: encodeKey(kp.publicKey),
    virtual_ip: '10.66.255.254',
    public_endpoint: '198.51.100.2:40000',
    local_endpoints: ['192.168.1.2:40000'],
    nat_type: 'full_cone' as const,
    last_seen: '2026-11-29T00:00:00.000Z',
    joined_at: '2026-11-29T00:00:00.000Z',
  }
  const subnet = parseSubnet('10.66.0.0/16')!

  test('a record from the server passes', () => expect(checkPeer(info, subnet)).toEqual({ ok: true, value: info }))

  test.each([
    ['virtual IP just outside the subnet', { virtual_ip: '10.67.0.1' }, 'not an IPv4 address in the party subnet'],
    ['IPv6 virtual IP', { virtual_ip: 'fd00::1' }, 'not an IPv4 address in the party subnet'],
    ['peer id of another key', { peer_id: '0123456789abcdef' }, 'belongs to another peer id'],
    ['endpoint port 0', { public_endpoint: '198.51.100.2:0' }, '/public_endpoint'],
    ['endpoint port 65536', { public_endpoint: '198.51.100.2:65536' }, '/public_endpoint'],
    ['endpoint 999.999.999.999', { public_endpoint: '999.999.999.999:1' }, '/public_endpoint'],
    ['a local endpoint that is not one', { local_endpoints: ['x'] }, '/local_endpoints/0'],
    ['key of 31 bytes', { public_key: Buffer.alloc(31).toString('base64') }, '/public_key'],
  ])('%s', (_name, over, error) => {
    const r = checkPeer({ ...info, ...over }, subnet)
    expect(r.ok).toBe(false)
    expect(!r.ok && r.error).toContain(error)
  })
})

test('checkPunch: only the endpoint the server lists for the sender', () => {
  const from = { peer_id: 'p', public_endpoint: '198.51.100.2:40000' } as Parameters<typeof checkPunch>[1]
  expect(checkPunch('198.51.100.2:40000', from)).toBeNull()
  expect(checkPunch('198.51.100.2:40001', from)).toContain('is not its public endpoint')
  expect(checkPunch('198.51.100.2:40000', { ...from, public_endpoint: null })).toContain('lists no public endpoint')
})

test('checkSignal names the data field that failed, and unknown types', () => {
  const s = { id: '0123456789abcdef', party_id: '0123456789ab', from_peer_id: '0123456789abcdef', to_peer_id: 'fedcba9876543210', created_at: '' }
  expect(checkSignal({ ...s, type: 'punch', data: { at: 1, endpoint: '1.2.3.4:5' } }).ok).toBe(true)
  expect(checkSignal({ ...s, type: 'punch', data: { at: 1, endpoint: '1.2.3.4:0' } })).toMatchObject({ ok: false, error: expect.stringContaining('signal punch: data/endpoint') })
  expect(checkSignal({ ...s, type: 'hug', data: {} })).toMatchObject({ ok: false, error: 'signal: type hug is not one this agent knows' })
  expect(checkSignal({ ...s, type: 'punch', id: 'x', data: {} })).toMatchObject({ ok: false, error: expect.stringContaining('signal/id') })
})
