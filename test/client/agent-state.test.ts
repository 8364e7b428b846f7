// The agent's files (src/client/agent/state.ts) and the status command's text (src/cmd/status.ts formatStatus), in process.
import { describe, expect, test } from 'bun:test'
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { alive, keyPath, loadOrCreateKey, readStatusFile, removeStatusFile, statusPath, writeStatusFile, type StatusFile } from '../../src/client/agent/state.ts'
import { formatStatus } from '../../src/cmd/status.ts'

const env = () => ({ LANRAGE_HOME: join(mkdtempSync(join(tmpdir(), 'lanrage-state-')), 'home') })
const status = (over: Partial<StatusFile> = {}): StatusFile => ({
  pid: process.pid,
  interface: 'lanrage0',
  listen_port: 51820,
  party: { party_id: '0123456789ab', name: 'friday', host_id: '0011223344556677', subnet: '10.66.0.0/16' },
  self: { peer_id: '0011223344556677', virtual_ip: '10.66.0.1', public_endpoint: '198.51.100.1:51820', nat_type: 'full_cone' },
  peers: [{ peer_id: '8899aabbccddeeff', virtual_ip: '10.66.0.2', public_key: 'k', nat_type: 'symmetric', public_endpoint: null, endpoint: '203.0.113.10:50001', path: 'relay', latest_handshake: null }],
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
  test('party, interface, this peer and one line per peer', () => {
    expect(formatStatus(status()).split('\n')).toEqual([
      'party:     0123456789ab (friday)',
      'interface: lanrage0 port 51820',
      'this peer: 0011223344556677 10.66.0.1 public 198.51.100.1:51820 nat full_cone',
      'peers:     1',
      '  8899aabbccddeeff  10.66.0.2       relay      203.0.113.10:50001',
    ])
  })

  test('before the party and the registration', () => {
    const text = formatStatus(status({ party: null, self: null, peers: [] }))
    expect(text).toContain('party:     (none yet)')
    expect(text).toContain('this peer: (registering)')
  })

  test('every line is escaped: a hostile name cannot add a line or clear the screen', () => {
    const text = formatStatus(status({ party: { party_id: '0123456789ab', name: 'x\n\x1b[2Jpeers:     0', host_id: 'h', subnet: '10.66.0.0/16' } }))
    expect(text.split('\n')).toHaveLength(5)
    expect(text).toContain('(x\\x0a\\x1b[2Jpeers:     0)')
  })
})
