import { describe, expect, test } from 'bun:test'
import { CAP_NET_ADMIN, preflightProblem, type PreflightFacts } from './preflight.ts'

const facts = (over: Partial<PreflightFacts> & { path?: string[] } = {}): PreflightFacts => {
  const path = new Set(over.path ?? ['ip', 'wg', 'wireguard-go'])
  return { uid: 1000, capEff: 0n, kernelWireGuard: false, onPath: (c) => path.has(c), ...over }
}
const code = (f: PreflightFacts) => preflightProblem(f, 'lanrage0')?.code

describe('what lanrage up needs before it touches anything (pure)', () => {
  test('root or CAP_NET_ADMIN', () => {
    expect(code(facts())).toBe('NEEDS_PRIVILEGES')
    expect(preflightProblem(facts(), 'wg7')?.message).toBe('needs root (or the CAP_NET_ADMIN capability) to create the WireGuard interface wg7; run it with sudo')
    expect(code(facts({ uid: 0 }))).toBeUndefined()
    expect(code(facts({ capEff: 1n << BigInt(CAP_NET_ADMIN) }))).toBeUndefined()
    // CAP_NET_RAW (13) and CAP_NET_BIND_SERVICE (10) are not enough; the full set of a root shell is.
    expect(code(facts({ capEff: (1n << 13n) | (1n << 10n) }))).toBe('NEEDS_PRIVILEGES')
    expect(code(facts({ capEff: 0x1ffffffffffn }))).toBeUndefined()
    expect(code(facts({ uid: undefined, capEff: undefined }))).toBe('NEEDS_PRIVILEGES')
  })
  test('the ip and wg commands', () => {
    expect(preflightProblem(facts({ uid: 0, path: ['wireguard-go'] }), 'x')?.message).toBe('needs `ip` and `wg` on PATH (Debian: apt-get install iproute2 wireguard-tools)')
    expect(preflightProblem(facts({ uid: 0, path: ['ip', 'wireguard-go'] }), 'x')?.message).toBe('needs `wg` on PATH (Debian: apt-get install wireguard-tools)')
  })
  test('WireGuard: the kernel module or wireguard-go', () => {
    expect(code(facts({ uid: 0, path: ['ip', 'wg'] }))).toBe('NEEDS_WIREGUARD')
    expect(code(facts({ uid: 0, path: ['ip', 'wg'], kernelWireGuard: true }))).toBeUndefined()
    expect(code(facts({ uid: 0, path: ['ip', 'wg', 'wireguard-go'] }))).toBeUndefined()
  })
})
