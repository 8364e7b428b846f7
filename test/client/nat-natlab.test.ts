// NAT detection through real Linux NATs (natlab: iptables MASQUERADE in network namespaces), with coturn's
// turnserver on the "internet". A cone NAT must come out as a cone with a stable public endpoint, a symmetric
// one (MASQUERADE --random-fully) as symmetric.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { natlabSkipReason, TOPO } from '../e2e/natlab.ts'
import { BIN, startTurnserver, udpListening } from './helpers.ts'

// Whole-suite runs may overlap (CI, other helpers): a namespace prefix per process, still starting with lrc.
const P = `lrc${(process.pid % 46656).toString(36)}`
const env = { ...process.env, LR_NS: P }
const canRun = natlabSkipReason('turnserver') === null

const SERVERS = '203.0.113.10:3478,203.0.113.10:3479'
let procs: ReturnType<typeof startTurnserver>[] = []

function natIn(ns: string, port: number) {
  const p = Bun.spawnSync(['ip', 'netns', 'exec', ns, BIN, 'nat', '--stun', SERVERS, '--port', String(port), '--json'], { env: process.env })
  if (p.exitCode !== 0) throw new Error(`lanrage nat in ${ns} failed: ${p.stderr.toString()}`)
  return JSON.parse(p.stdout.toString())
}

describe.skipIf(!canRun)('NAT detection in natlab', () => {
  beforeAll(async () => {
    const up = Bun.spawnSync([TOPO, 'up', 'cone', 'symmetric'], { env })
    if (up.exitCode !== 0) throw new Error(`natlab up failed: ${up.stderr.toString()}`)
    procs = [startTurnserver('203.0.113.10', 3478, `${P}-pub`), startTurnserver('203.0.113.10', 3479, `${P}-pub`)]
    for (const port of [3478, 3479]) await udpListening(port, `${P}-pub`)
  }, 30_000)
  afterAll(() => {
    for (const p of procs) p.kill()
    Bun.spawnSync([TOPO, 'down'], { env })
  })

  test('behind a cone NAT: same mapping for both servers, port preserved, reported as a cone', () => {
    const r = natIn(`${P}-peer1`, 51820)
    expect(r.failures).toEqual([])
    expect(r.mapping_varies_by_destination).toBe(false)
    expect(r.nat_type).toBe('port_restricted_cone')
    expect(r.public_endpoint).toBe('203.0.113.21:51820')
  }, 60_000)

  test('behind a symmetric NAT: the mapping varies by destination', () => {
    const r = natIn(`${P}-peer2`, 51820)
    expect(r.failures).toEqual([])
    expect(r.mappings).toHaveLength(2)
    expect(r.mappings[0].mapped).not.toBe(r.mappings[1].mapped)
    expect(r.mappings.every((m: { mapped: string }) => m.mapped.startsWith('203.0.113.22:'))).toBe(true)
    expect(r.mapping_varies_by_destination).toBe(true)
    expect(r.nat_type).toBe('symmetric')
  }, 60_000)
})
