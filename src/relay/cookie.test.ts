// ALLOCATE cookies, pure: what a cookie is good for, and for how long.
import { describe, expect, test } from 'bun:test'
import { createHmac } from 'node:crypto'
import { decodeAllocateCookie, encodeAllocateRequest } from '../shared/wire/allocate.ts'
import { TICKET_LEN } from '../shared/wire/ticket.ts'
import { COOKIE_EPOCH_MS, CookieJar } from './cookie.ts'

const T0 = 1_000 * COOKIE_EPOCH_MS + 5 // just after the start of an epoch
const ticket = Uint8Array.from({ length: TICKET_LEN }, (_, i) => i)
const txid = new Uint8Array(12).fill(4)
const SECRET = new Uint8Array(32).fill(1)

/** The client's part: the cookie from a reply, put into the same request. */
function echoed(jar: CookieJar, t: Uint8Array, address: string, port: number, now: number) {
  const reply = jar.reply(encodeAllocateRequest({ transactionId: txid, ticket: t }), address, port, now)
  expect(reply.length).toBe(36)
  const c = decodeAllocateCookie(reply)
  if (!c.ok) throw new Error(c.error)
  expect(c.value.transactionId).toEqual(txid)
  return { cookie: c.value.cookie, req: encodeAllocateRequest({ transactionId: txid, ticket: t, cookie: c.value.cookie }) }
}

describe('CookieJar', () => {
  test('a cookie is good for its address, port, side and session id, in its epoch and the next only', () => {
    const jar = new CookieJar(SECRET)
    const { req } = echoed(jar, ticket, '192.0.2.1', 4000, T0)
    expect(jar.check(req, '192.0.2.1', 4000, T0)).toBe(true)
    expect(jar.check(req, '192.0.2.1', 4000, T0 + 2 * COOKIE_EPOCH_MS - 10)).toBe(true)
    expect(jar.check(req, '192.0.2.1', 4000, T0 + 2 * COOKIE_EPOCH_MS)).toBe(false)
    expect(jar.check(req, '192.0.2.2', 4000, T0)).toBe(false)
    expect(jar.check(req, '192.0.2.1', 4001, T0)).toBe(false)
    for (const at of [1, 2, 17]) {
      const other = ticket.slice()
      other[at] = other[at]! ^ 1 // another side, another session id
      const { cookie } = echoed(jar, ticket, '192.0.2.1', 4000, T0)
      expect(jar.check(encodeAllocateRequest({ transactionId: txid, ticket: other, cookie }), '192.0.2.1', 4000, T0)).toBe(false)
    }
    // The rest of the ticket is not bound: the relay checks it after the cookie (and signs nothing with it).
    const later = ticket.slice()
    later[100] = later[100]! ^ 1
    const { cookie } = echoed(jar, ticket, '192.0.2.1', 4000, T0)
    expect(jar.check(encodeAllocateRequest({ transactionId: txid, ticket: later, cookie }), '192.0.2.1', 4000, T0)).toBe(true)
    expect(jar.check(encodeAllocateRequest({ transactionId: txid, ticket }), '192.0.2.1', 4000, T0)).toBe(false) // no cookie
  })

  test('the cookie is HMAC-SHA256 (RFC 2104) of epoch, port, side and session id, and the address, truncated to 16 bytes', () => {
    const { cookie } = echoed(new CookieJar(SECRET), ticket, '2001:db8::7', 65000, T0)
    const input = new Uint8Array(24 + 64)
    const dv = new DataView(input.buffer)
    dv.setUint32(0, Math.floor(T0 / COOKIE_EPOCH_MS))
    dv.setUint16(4, 65000)
    input.set(ticket.subarray(1, 18), 6)
    input[23] = '2001:db8::7'.length
    input.set(new TextEncoder().encode('2001:db8::7'), 24)
    expect(cookie).toEqual(new Uint8Array(createHmac('sha256', SECRET).update(input).digest().subarray(0, 16)))
  })

  test('another secret (a restarted relay) knows none of the old cookies', () => {
    const { req } = echoed(new CookieJar(), ticket, '192.0.2.1', 4000, T0)
    expect(new CookieJar().check(req, '192.0.2.1', 4000, T0)).toBe(false)
  })
})
