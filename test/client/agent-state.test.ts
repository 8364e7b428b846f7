// The agent's files (src/client/agent/state.ts) and the status command's text (src/cmd/status.ts formatStatus), in process.
import { describe, expect, test } from 'bun:test'
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { alive, apiKeyPath, keyPath, loadOrCreateApiKey, loadOrCreateKey, readStatusFile, removeStatusFile, statusPath, writeStatusFile, type StatusFile } from '../../src/client/agent/state.ts'
import { formatAge, formatBytes, formatLatency, formatStatus } from '../../src/cmd/status.ts'

const env = () => ({ LANRAGE_HOME: join(mkdtempSync(join(tmpdir(), 'lanrage-state-')), 'home') })
const status = (over: Partial<StatusFile> = {}): StatusFile => ({
  pid: process.pid,
  interface: 'lanrage0',
  listen_port: 51820,
  party: { party_id: '0123456789ab', name: 'friday', host_id: '0011223344556677', subnet: '10.66.0.0/16' },
  self: { peer_id: '0011223344556677', name: 'ana', virtual_ip: '10.66.0.1', public_endpoint: '198.51.100.1:51820', nat_type: 'full_cone' },
  peers: [
    {
      peer_id: '8899aabbccddeeff',
      name: 'bob',
      virtual_ip: '10.66.0.2',
      public_key: 'k',
      nat_type: 'symmetric',
      public_endpoint: null,
      endpoint: '203.0.113.10:50001',
      path: 'relay',
      latest_handshake: '2026-11-29T12:00:00.000Z',
      latency_ms: 12.34,
      rx_bytes: 1234,
      tx_bytes: 5 * 1024 * 1024,
    },
  ],
  updated_at: new Date(0).toISOString(),
  control: 'http://127.0.0.1:8667',
  ...over,
})

describe('agent state files', () => {
  test('the key is created once, 0600 in a 0700 home, and read back unchanged', () => {
    const e = env()
    const k = loadOrCreateKey(e)
    expect(statSync(keyPath(e)).mode & 0o777).toBe(0o600)
    expect(statSync(e.LANRAGE_HOME).mode & 0o777).toBe(0o700)
    expect(loadOrCreateKey(e)).toBe(k)
  })

  test('a corrupt key file is an error, never silently replaced', () => {
    const e = env()
    loadOrCreateKey(e)
    writeFileSync(keyPath(e), 'not a key\n')
    expect(() => loadOrCreateKey(e)).toThrow()
    expect(readFileSync(keyPath(e), 'utf8')).toBe('not a key\n')
  })

  test('the local API key: 64 hex digits, 0600, the same on every start; a file without one is replaced', () => {
    const e = env()
    const k = loadOrCreateApiKey(e)
    expect(k).toMatch(/^[0-9a-f]{64}$/)
    expect(statSync(apiKeyPath(e)).mode & 0o777).toBe(0o600)
    expect(loadOrCreateApiKey(e)).toBe(k)
    writeFileSync(apiKeyPath(e), 'guessable\n', { mode: 0o644 })
    const k2 = loadOrCreateApiKey(e)
    expect(k2).toMatch(/^[0-9a-f]{64}$/)
    expect(k2).not.toBe(k)
    expect(statSync(apiKeyPath(e)).mode & 0o777).toBe(0o600)
  })

  test('the status file round-trips, is replaced whole, and goes away', () => {
    const e = env()
    expect(readStatusFile(e)).toBeNull()
    writeStatusFile(status(), e)
    writeStatusFile(status({ listen_port: 40000 }), e)
    expect(readStatusFile(e)).toEqual(status({ listen_port: 40000 }))
    writeFileSync(statusPath(e), '{"pid": 1, "half')
    expect(readStatusFile(e)).toBeNull()
    removeStatusFile(e)
    removeStatusFile(e)
    expect(readStatusFile(e)).toBeNull()
  })

  test('alive: this process is, a pid above pid_max is not', () => {
    expect(alive(process.pid)).toBe(true)
    expect(alive(4194305)).toBe(false)
  })
})

describe('formatStatus', () => {
  const now = Date.parse('2026-11-29T12:00:04.200Z')
  test('party, interface, this peer and a table of the members with name, path, latency, handshake age and bytes', () => {
    expect(formatStatus(status(), now).split('\n')).toEqual([
      'party:     0123456789ab (friday)',
      'interface: lanrage0 port 51820',
      'this peer: ana (host) 0011223344556677 10.66.0.1 public 198.51.100.1:51820 nat full_cone',
      'peers:     1',
      '  NAME  PEER ID           VIRTUAL IP  PATH   LATENCY  HANDSHAKE  RECEIVED  SENT     ENDPOINT',
      '  bob   8899aabbccddeeff  10.66.0.2   relay  12 ms    4 s ago    1.2 KiB   5.0 MiB  203.0.113.10:50001',
    ])
  })

  test('the host is marked; a member without a name, handshake or counters (an older agent) shows dashes', () => {
    const old = { peer_id: '8899aabbccddeeff', virtual_ip: '10.66.0.2', public_key: 'k', nat_type: 'symmetric', public_endpoint: null, endpoint: null, path: 'connecting', latest_handshake: null }
    const s = status({ peers: [old as unknown as StatusFile['peers'][number]], party: { party_id: '0123456789ab', name: 'friday', host_id: '8899aabbccddeeff', subnet: '10.66.0.0/16' } })
    const lines = formatStatus(s, now).split('\n')
    expect(lines[2]).toBe('this peer: ana 0011223344556677 10.66.0.1 public 198.51.100.1:51820 nat full_cone')
    expect(lines[5]).toBe('  - (host)  8899aabbccddeeff  10.66.0.2   connecting  -        never      -         -     -')
  })

  test('ages and sizes', () => {
    expect(formatAge(null, now)).toBe('never')
    expect(formatAge('2026-11-29T11:57:04.200Z', now)).toBe('3 min ago')
    expect(formatAge('2026-11-29T09:00:00.000Z', now)).toBe('3 h ago')
    expect(formatAge('2026-11-29T12:00:09.000Z', now)).toBe('0 s ago') // a clock a little ahead
    expect([0, 1023, 1024, 1536, 3 * 1024 ** 3].map(formatBytes)).toEqual(['0 B', '1023 B', '1.0 KiB', '1.5 KiB', '3.0 GiB'])
    expect([null, 0.42, 9.96, 10.4, 250].map(formatLatency)).toEqual(['-', '0.4 ms', '10.0 ms', '10 ms', '250 ms'])
  })

  test('before the party and the registration', () => {
    const text = formatStatus(status({ party: null, self: null, peers: [] }))
    expect(text).toContain('party:     (none yet)')
    expect(text).toContain('this peer: (registering)')
  })

  test('an agent waiting for a party on its page says where the page is, and what the last attempt came to', () => {
    const text = formatStatus(status({ party: null, peers: [], state: 'idle', api: 'http://127.0.0.1:8666/', message: 'join party 0123456789ab failed: wrong password' }))
    expect(text.split('\n').slice(0, 2)).toEqual(['party:     (none: create or join one on the page, http://127.0.0.1:8666/)', 'note:      join party 0123456789ab failed: wrong password'])
    expect(formatStatus(status({ party: null, peers: [], state: 'starting' }))).toContain('party:     (starting)')
  })

  test('every line is escaped: a hostile name cannot add a line or clear the screen', () => {
    const evil = 'x\n\x1b[2Jpeers:     0'
    const s = status({ party: { party_id: '0123456789ab', name: evil, host_id: 'h', subnet: '10.66.0.0/16' } })
    s.peers[0]!.name = evil
    const text = formatStatus(s)
    expect(text.split('\n')).toHaveLength(6)
    expect(text).toContain('(x\\x0a\\x1b[2Jpeers:     0)')
    expect(text).toContain('  x\\x0a\\x1b[2Jpeers:     0  8899aabbccddeeff')
  })
})
