// ALLOCATE cookies, pure: what a cookie is good for, and for how long.
import { describe, expect, test } from 'bun:test'
import { COOKIE_EPOCH_MS, CookieJar } from './cookie.ts'

const binding = Uint8Array.from({ length: 17 }, (_, i) => i)
const T0 = 1_000 * COOKIE_EPOCH_MS + 5 // just after the start of an epoch

describe('CookieJar', () => {
  test('a cookie is good for its address, port and binding, in its epoch and the next only', () => {
    const jar = new CookieJar(new Uint8Array(32).fill(1))
    const c = jar.make('192.0.2.1', 4000, binding, T0)
    expect(c.length).toBe(16)
    expect(jar.check(c, '192.0.2.1', 4000, binding, T0)).toBe(true)
    expect(jar.check(c, '192.0.2.1', 4000, binding, T0 + 2 * COOKIE_EPOCH_MS - 10)).toBe(true)
    expect(jar.check(c, '192.0.2.1', 4000, binding, T0 + 2 * COOKIE_EPOCH_MS)).toBe(false)
    expect(jar.check(c, '192.0.2.2', 4000, binding, T0)).toBe(false)
    expect(jar.check(c, '192.0.2.1', 4001, binding, T0)).toBe(false)
    const other = binding.slice()
    other[16] = 99
    expect(jar.check(c, '192.0.2.1', 4000, other, T0)).toBe(false)
    expect(jar.check(new Uint8Array(16), '192.0.2.1', 4000, binding, T0)).toBe(false)
    expect(jar.check(c.subarray(0, 15), '192.0.2.1', 4000, binding, T0)).toBe(false)
  })

  test('another secret (a restarted relay) knows none of the old cookies', () => {
    const c = new CookieJar().make('192.0.2.1', 4000, binding, T0)
    expect(new CookieJar().check(c, '192.0.2.1', 4000, binding, T0)).toBe(false)
  })
})
