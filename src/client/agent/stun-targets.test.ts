// Which two destinations the agent asks for its public mapping (NAT detection needs two, RFC 5780 §4.3).
import { describe, expect, test } from 'bun:test'
import { stunTargets } from './agent.ts'

describe('stunTargets', () => {
  const r1 = { host: '203.0.113.10', port: 51820, stunAltPort: 40001 }
  const r2 = { host: '203.0.113.11', port: 3479, stunAltPort: 40002 }
  test('two relays: their main ports', () => {
    expect(stunTargets([r1, r2, { host: '203.0.113.12', port: 1 }])).toEqual([r1, r2])
  })
  test('one relay: its main port and its STUN alt port', () => {
    expect(stunTargets([r1])).toEqual([r1, { host: '203.0.113.10', port: 40001 }])
  })
  test('one relay without an alt port, or none: what there is', () => {
    expect(stunTargets([{ host: '203.0.113.10', port: 51820 }])).toEqual([{ host: '203.0.113.10', port: 51820 }])
    expect(stunTargets([])).toEqual([])
  })
})
