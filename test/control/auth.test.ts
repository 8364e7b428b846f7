// Registration with an X25519 key proof, bearer tokens (hashed, expiring, refresh, revoke) and the rate limit.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { x25519 } from '@noble/curves/ed25519.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { tokens } from '../../src/db/schema/control.ts'
import { b64, call, proofFor, startServer, TestPeer, type TestServer } from './helpers.ts'

let s: TestServer
beforeAll(async () => {
  s = await startServer({ config: { registerRatePerMin: 1000 } })
})
afterAll(() => s.stop())

const registerBody = (k: { secretKey: Uint8Array; publicKey: Uint8Array }, ch: { challenge: string; server_public_key: string }) => ({
  public_key: b64(k.publicKey),
  challenge: ch.challenge,
  proof: proofFor(k.secretKey, ch.server_public_key, ch.challenge),
})

async function challenge(publicKey: string) {
  const r = await call(s.base, 'POST', '/auth/challenge', { body: { public_key: publicKey } })
  expect(r.status).toBe(200)
  return r.body as { challenge: string; server_public_key: string; expires_at: string }
}

describe('registration', () => {
  test('challenge → register with a valid proof gives a token and the derived peer_id', async () => {
    const k = x25519.keygen()
    const ch = await challenge(b64(k.publicKey))
    expect(Buffer.from(ch.challenge, 'base64')).toHaveLength(32)
    expect(Buffer.from(ch.server_public_key, 'base64')).toHaveLength(32)
    expect(Date.parse(ch.expires_at)).toBe(s.clock.now() + 60_000)
    const r = await call(s.base, 'POST', '/auth/register', { body: registerBody(k, ch) })
    expect(r.status).toBe(200)
    expect(r.body.peer_id).toBe(Buffer.from(sha256(k.publicKey)).toString('hex').slice(0, 16))
    expect(Date.parse(r.body.expires_at)).toBe(s.clock.now() + 86_400_000)
    // Only the hash is stored.
    const stored = s.open.db.select().from(tokens).all()
    expect(stored.some((t) => t.tokenHash === new Bun.CryptoHasher('sha256').update(r.body.token).digest('hex'))).toBe(true)
    expect(stored.some((t) => t.tokenHash === r.body.token)).toBe(false)
    const me = await call(s.base, 'GET', '/relays', { token: r.body.token })
    expect(me.status).toBe(200)
  })

  test('a proof made with another key is refused (401 INVALID_PROOF)', async () => {
    const k = x25519.keygen()
    const other = x25519.keygen()
    const ch = await challenge(b64(k.publicKey))
    const r = await call(s.base, 'POST', '/auth/register', {
      body: { public_key: b64(k.publicKey), challenge: ch.challenge, proof: proofFor(other.secretKey, ch.server_public_key, ch.challenge) },
    })
    expect(r.status).toBe(401)
    expect(r.body.error.code).toBe('INVALID_PROOF')
  })

  test('a challenge is single use, even after a wrong proof', async () => {
    const k = x25519.keygen()
    const ch = await challenge(b64(k.publicKey))
    const body = registerBody(k, ch)
    expect((await call(s.base, 'POST', '/auth/register', { body })).status).toBe(200)
    const again = await call(s.base, 'POST', '/auth/register', { body })
    expect(again.status).toBe(401)
    expect(again.body.error).toMatchObject({ code: 'INVALID_CHALLENGE' })
  })

  test('an expired challenge is refused (401 CHALLENGE_EXPIRED)', async () => {
    const k = x25519.keygen()
    const ch = await challenge(b64(k.publicKey))
    s.clock.advance(61_000)
    const r = await call(s.base, 'POST', '/auth/register', { body: registerBody(k, ch) })
    expect(r.status).toBe(401)
    expect(r.body.error.code).toBe('CHALLENGE_EXPIRED')
  })

  test('a challenge issued for one key cannot register another key', async () => {
    const k = x25519.keygen()
    const thief = x25519.keygen()
    const ch = await challenge(b64(k.publicKey))
    const r = await call(s.base, 'POST', '/auth/register', { body: registerBody(thief, ch) })
    expect(r.status).toBe(401)
    expect(r.body.error.code).toBe('INVALID_CHALLENGE')
  })

  test.each([
    ['not base64', { public_key: 'not a key!' }, 422, 'INVALID_KEY'],
    ['31 bytes', { public_key: b64(new Uint8Array(31)) }, 422, 'INVALID_KEY'],
    ['missing public_key', {}, 422, 'VALIDATION'],
    ['number', { public_key: 5 }, 422, 'VALIDATION'],
  ])('challenge with %s', async (_name, body, status, code) => {
    const r = await call(s.base, 'POST', '/auth/challenge', { body })
    expect(r.status).toBe(status)
    expect(r.body.error.code).toBe(code)
    if (code === 'VALIDATION') expect(r.body.error.message).toContain('public_key')
  })

  test('a low-order public key (all zeros) is refused as a bad proof, not a crash', async () => {
    const zero = b64(new Uint8Array(32))
    const ch = await challenge(zero)
    const r = await call(s.base, 'POST', '/auth/register', { body: { public_key: zero, challenge: ch.challenge, proof: b64(new Uint8Array(32)) } })
    expect(r.status).toBe(401)
    expect(r.body.error.code).toBe('INVALID_PROOF')
  })

  test('a non-canonical base64 spelling of a key is the same identity, stored canonically', async () => {
    const k = x25519.keygen()
    const canonical = b64(k.publicKey)
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
    // The 43rd character carries 2 bits of the last byte and 4 padding bits that decoders ignore.
    const odd = canonical.slice(0, 42) + alphabet[alphabet.indexOf(canonical[42]!) + 1] + '='
    expect(Buffer.from(odd, 'base64')).toEqual(Buffer.from(k.publicKey))
    const ch = await challenge(odd)
    const r = await call(s.base, 'POST', '/auth/register', { body: { ...registerBody(k, ch), public_key: odd } })
    expect(r.status).toBe(200)
    expect(r.body.peer_id).toBe(Buffer.from(sha256(k.publicKey)).toString('hex').slice(0, 16))
    const party = await call(s.base, 'POST', '/parties', { token: r.body.token, body: { name: 'k' } })
    expect(party.body.party.peers[r.body.peer_id].public_key).toBe(canonical)
  })

  test('register with a malformed proof names it (422 INVALID_PROOF)', async () => {
    const k = x25519.keygen()
    const ch = await challenge(b64(k.publicKey))
    const r = await call(s.base, 'POST', '/auth/register', { body: { public_key: b64(k.publicKey), challenge: ch.challenge, proof: 'abc' } })
    expect(r.status).toBe(422)
    expect(r.body.error.code).toBe('INVALID_PROOF')
  })

  test('register without a challenge field → 422 naming it', async () => {
    const r = await call(s.base, 'POST', '/auth/register', { body: { public_key: b64(new Uint8Array(32)), proof: b64(new Uint8Array(32)) } })
    expect(r.status).toBe(422)
    expect(r.body.error).toMatchObject({ code: 'VALIDATION' })
    expect(r.body.error.message).toContain('body.challenge')
  })
})

describe('tokens', () => {
  test('missing, malformed and unknown tokens are 401 with distinct codes', async () => {
    const none = await call(s.base, 'GET', '/relays')
    expect(none.status).toBe(401)
    expect(none.body.error.code).toBe('UNAUTHORIZED')
    const basic = await call(s.base, 'GET', '/relays', { headers: { authorization: 'Basic abc' } })
    expect(basic.status).toBe(401)
    expect(basic.body.error.message).toContain('Bearer')
    const unknown = await call(s.base, 'GET', '/relays', { token: 'nope' })
    expect(unknown.status).toBe(401)
    expect(unknown.body.error.code).toBe('INVALID_TOKEN')
  })

  test('a token expires after 24 h', async () => {
    const p = await new TestPeer(s.base).register()
    s.clock.advance(86_400_000 - 1)
    expect((await p.call('GET', '/relays')).status).toBe(200)
    s.clock.advance(1)
    const r = await p.call('GET', '/relays')
    expect(r.status).toBe(401)
    expect(r.body.error.code).toBe('TOKEN_EXPIRED')
  })

  test('refresh issues a new token and revokes the old one', async () => {
    const p = await new TestPeer(s.base).register()
    const old = p.token
    const r = await p.call('POST', '/auth/refresh')
    expect(r.status).toBe(200)
    expect(r.body.peer_id).toBe(p.peerId)
    expect(r.body.token).not.toBe(old)
    expect((await call(s.base, 'GET', '/relays', { token: old })).status).toBe(401)
    expect((await call(s.base, 'GET', '/relays', { token: r.body.token })).status).toBe(200)
  })

  test('revoke ends a token', async () => {
    const p = await new TestPeer(s.base).register()
    const r = await p.call('POST', '/auth/revoke')
    expect(r.status).toBe(200)
    expect(r.body).toEqual({ status: 'revoked' })
    const after = await p.call('GET', '/relays')
    expect(after.status).toBe(401)
    expect(after.body.error.code).toBe('INVALID_TOKEN')
    expect((await p.call('POST', '/auth/refresh')).status).toBe(401)
  })

  test('registering the same key twice gives the same peer_id and two valid tokens', async () => {
    const keys = x25519.keygen()
    const a = await new TestPeer(s.base, keys).register()
    const b = await new TestPeer(s.base, keys).register()
    expect(a.peerId).toBe(b.peerId)
    expect((await a.call('GET', '/relays')).status).toBe(200)
    expect((await b.call('GET', '/relays')).status).toBe(200)
  })
})

// An anonymous caller used to get 422 "body.name is required" from POST /parties {} (validation ran before the
// token was looked at), which told it what the route accepts. Each request below is invalid in its body, JSON or
// path; with a valid token it is refused for that (checked first, so the case can fail), without one it is a 401.
describe('authentication comes before validation', () => {
  const bad: [method: string, path: string, opts: { body?: unknown; raw?: string }, valid: number][] = [
    ['POST', '/parties', { body: {} }, 422],
    ['POST', '/parties', { body: { name: 42, max_peers: 1 } }, 422],
    ['POST', '/parties', { raw: '{"name": ' }, 400],
    ['POST', '/parties/XYZ/join', { body: { password: 7 } }, 400],
    ['GET', '/parties/XYZ', {}, 400],
    ['GET', '/parties/XYZ/peers', {}, 400],
    ['GET', '/parties/XYZ/peers/nope', {}, 400],
    ['POST', '/parties/000000000000/peers/XYZ/heartbeat', { body: { nat_type: 'weird' } }, 400],
    ['PATCH', '/parties/000000000000/peers/0000000000000000', { body: { local_endpoints: 'x' } }, 422],
    ['DELETE', '/parties/XYZ/peers/0000000000000000', {}, 400],
    ['POST', '/parties/000000000000/signals', { body: { to_peer_id: 'abc' } }, 422],
    ['GET', '/parties/XYZ/signals', {}, 400],
    ['POST', '/parties/000000000000/relay', { body: { peer_id: 1 } }, 422],
    ['GET', '/relays/' + 'r'.repeat(40), {}, 400],
    ['POST', '/auth/refresh', { raw: '{' }, 400],
    ['POST', '/auth/revoke', { raw: '{' }, 400],
  ]
  const anonymous: [name: string, headers: Record<string, string>, code: string][] = [
    ['no token', {}, 'UNAUTHORIZED'],
    ['a Basic header', { authorization: 'Basic abc' }, 'UNAUTHORIZED'],
    ['an unknown token', { authorization: 'Bearer nope' }, 'INVALID_TOKEN'],
  ]
  let p: TestPeer
  beforeAll(async () => {
    p = await new TestPeer(s.base).register()
  })

  test.each(bad)('%s %s %j: invalid with a token, 401 without one', async (method, path, opts, valid) => {
    const withToken = await call(s.base, method, path, { ...opts, token: p.token })
    expect(withToken.status).toBe(valid)
    expect(['VALIDATION', 'INVALID_JSON']).toContain(withToken.body.error.code)
    for (const [, headers, code] of anonymous) {
      const r = await call(s.base, method, path, { ...opts, headers })
      expect(r.status).toBe(401)
      expect(r.body.error.code).toBe(code)
      expect(r.body.error.message).not.toContain('body')
    }
  })

  test('a chunked body (no Content-Length) from an anonymous caller is a 401 too', async () => {
    const stream = new ReadableStream({
      start(c) {
        c.enqueue(new TextEncoder().encode('{"name": 5}'))
        c.close()
      },
    })
    const r = await fetch(s.base + '/parties', { method: 'POST', body: stream, headers: { 'content-type': 'application/json' } })
    expect(r.status).toBe(401)
    expect(((await r.json()) as any).error.code).toBe('UNAUTHORIZED')
  })

  test('routes without a bearer token still validate first (registration, relays use their own checks)', async () => {
    const r = await call(s.base, 'POST', '/auth/challenge', { body: {} })
    expect(r.status).toBe(422)
    expect(r.body.error).toEqual({ code: 'VALIDATION', message: 'body.public_key is required' })
  })
})

describe('rate limit', () => {
  test('registration attempts per source address are limited (429), and the window resets', async () => {
    const t = await startServer({ config: { registerRatePerMin: 3 } })
    try {
      const pk = b64(x25519.keygen().publicKey)
      for (let i = 0; i < 3; i++) expect((await call(t.base, 'POST', '/auth/challenge', { body: { public_key: pk } })).status).toBe(200)
      const r = await call(t.base, 'POST', '/auth/challenge', { body: { public_key: pk } })
      expect(r.status).toBe(429)
      expect(r.body.error.code).toBe('RATE_LIMITED')
      expect(r.body.error.message).toContain('127.0.0.1')
      expect(r.headers.get('retry-after')).toBe('60')
      const reg = await call(t.base, 'POST', '/auth/register', { body: { public_key: pk, challenge: 'x', proof: 'y' } })
      expect(reg.status).toBe(429)
      t.clock.advance(60_000)
      expect((await call(t.base, 'POST', '/auth/challenge', { body: { public_key: pk } })).status).toBe(200)
    } finally {
      await t.stop()
    }
  })

  test('behind a proxy (trustProxy) each X-Forwarded-For client has its own budget; otherwise the header is ignored', async () => {
    const pk = b64(x25519.keygen().publicKey)
    const ask = (base: string, xff: string) => call(base, 'POST', '/auth/challenge', { body: { public_key: pk }, headers: { 'x-forwarded-for': xff } })
    const proxied = await startServer({ config: { registerRatePerMin: 1, trustProxy: true } })
    const direct = await startServer({ config: { registerRatePerMin: 1 } })
    try {
      expect((await ask(proxied.base, '198.51.100.1')).status).toBe(200)
      expect((await ask(proxied.base, '198.51.100.2, 10.0.0.1')).status).toBe(200)
      const third = await ask(proxied.base, '198.51.100.1')
      expect(third.status).toBe(429)
      expect(third.body.error.message).toContain('198.51.100.1')
      expect((await ask(direct.base, '198.51.100.1')).status).toBe(200)
      const spoofed = await ask(direct.base, '198.51.100.2')
      expect(spoofed.status).toBe(429)
      expect(spoofed.body.error.message).toContain('127.0.0.1')
    } finally {
      await proxied.stop()
      await direct.stop()
    }
  })
})
