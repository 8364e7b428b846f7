// The servers' logs as an operator gets them: real `lanrage control` and `lanrage serve` processes at
// --log-level debug, driven over HTTP and WebSocket with every kind of credential the API takes (bearer tokens,
// the token in Sec-WebSocket-Protocol and in ?token=, the relay secret, party passwords, key proofs), then
// every line they wrote is read: one access line per request, and no credential anywhere.
import { afterAll, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { BIN } from '../client/helpers.ts'
import { call, proofFor, TestPeer, TestSocket, tempDir } from './helpers.ts'

interface Proc {
  base: string
  lines: string[]
  stop(): Promise<void>
}

const procs: Proc[] = []
afterAll(async () => {
  for (const p of procs) await p.stop()
})

/** Starts a server command and collects its stderr lines; resolves once it logged the URL it listens on. */
async function start(args: string[], env: Record<string, string> = {}): Promise<Proc> {
  const p = Bun.spawn([BIN, ...args], { env: { ...process.env, ...env }, stdout: 'ignore', stderr: 'pipe' })
  const lines: string[] = []
  let base = ''
  const reading = (async () => {
    let rest = ''
    for await (const chunk of p.stderr) {
      const all = (rest + new TextDecoder().decode(chunk)).split('\n')
      rest = all.pop()!
      lines.push(...all)
    }
    if (rest) lines.push(rest)
  })()
  const deadline = Date.now() + 15_000
  while (!base && Date.now() < deadline) {
    for (const l of lines) {
      const m = /control server listening.*?(http:\/\/127\.0\.0\.1:\d+)/.exec(l)
      if (m) base = m[1]!
    }
    if (!base) await Bun.sleep(25)
  }
  if (!base) {
    p.kill('SIGKILL')
    throw new Error(`no listening line: ${lines.join('\n')}`)
  }
  const proc = {
    base,
    lines,
    async stop() {
      p.kill('SIGTERM')
      await p.exited
      await reading
    },
  }
  procs.push(proc)
  return proc
}

/** Every request kind that carries a credential, once; returns the credentials that went over the wire. */
async function drive(base: string, relaySecret: string): Promise<string[]> {
  const a = await new TestPeer(base).register()
  const b = new TestPeer(base)
  const ch = await call(base, 'POST', '/auth/challenge', { body: { public_key: b.publicKey } })
  const proof = proofFor(b.secretKey, ch.body.server_public_key, ch.body.challenge)
  await call(base, 'POST', '/auth/register', { body: { public_key: b.publicKey, challenge: ch.body.challenge, proof } })
  await b.register()
  const password = 'party-pw-Zq81xv'
  const party = await a.createParty({ name: 'lan', password })
  expect((await b.join(party, { password: 'wrong-pw-Yt55kq' })).status).toBe(403)
  expect((await b.join(party, { password })).status).toBe(200)
  // The token three ways on /ws: query, subprotocol, header; and a plain GET of /ws with ?token= (426).
  const q = await a.ws()
  await q.next()
  const wsUrl = base.replace('http', 'ws') + '/ws'
  const sub = new WebSocket(wsUrl, ['lanrage', `bearer.${b.token}`])
  await new Promise((resolve, reject) => ((sub.onmessage = resolve), (sub.onerror = reject)))
  const hdr = await TestSocket.open(wsUrl, { authorization: `Bearer ${a.token}` })
  await hdr.next()
  expect((await call(base, 'GET', `/ws?token=${encodeURIComponent(a.token)}`)).status).toBe(426)
  // A refused upgrade with a wrong token in the query, a wrong bearer header, a token in a path that routes nowhere.
  const bogus = 'BogusToken' + 'x'.repeat(33)
  expect((await call(base, 'GET', `/parties/${party}`, { token: bogus })).status).toBe(401)
  expect((await call(base, 'GET', `/nothing/here/${a.token}`)).status).toBe(404)
  // Relay routes: the secret right and wrong.
  const relay = { relay_id: '0123456789abcdef', public_ip: '198.51.100.7', port: 51820, region: 'eu', capacity: 10, load: 0, ports: '52000-52009' }
  expect((await call(base, 'POST', '/relays', { body: relay, headers: { 'x-relay-secret': 'wrong-secret-Pp09' } })).status).toBe(401)
  expect((await call(base, 'POST', '/relays', { body: relay, headers: { 'x-relay-secret': relaySecret } })).status).toBe(200)
  // A refresh hands out a new token; the old one is then refused.
  const old = a.token
  const fresh = await a.call('POST', '/auth/refresh')
  expect(fresh.status).toBe(200)
  expect((await call(base, 'GET', `/parties/${party}`, { token: old })).status).toBe(401)
  for (const s of [q, hdr]) s.close()
  sub.close()
  await Bun.sleep(200) // access lines are written after the response
  return [a.token, b.token, old, fresh.body.token, bogus, relaySecret, 'wrong-secret-Pp09', password, 'wrong-pw-Yt55kq', proof]
}

function expectNoSecrets(lines: string[], secrets: string[]) {
  for (const secret of secrets)
    for (const form of new Set([secret, encodeURIComponent(secret)])) {
      const leak = lines.find((l) => l.includes(form))
      expect(leak === undefined ? '' : `${secret} leaked in: ${leak}`).toBe('')
    }
}

describe('control server logs', () => {
  test('--log-format json: one object per line; an access line per request; no credential in any line', async () => {
    const relaySecret = 'relay-secret-Kx72mB'
    const s = await start(['control', '--port', '0', '--host', '127.0.0.1', '--db', join(tempDir(), 'c.db'), '--log-level', 'debug', '--log-format', 'json', '--relay-secret', relaySecret])
    const secrets = await drive(s.base, relaySecret)
    await s.stop()
    expect(s.lines.length).toBeGreaterThan(20)
    const objects = s.lines.map((l) => JSON.parse(l))
    for (const o of objects) {
      expect(o.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
      expect(['debug', 'info', 'warn', 'error']).toContain(o.level)
      expect(typeof o.component).toBe('string')
      expect(typeof o.message).toBe('string')
    }
    const access = objects.filter((o) => o.component === 'control/http' && o.message === 'request')
    for (const o of access) {
      expect(Object.keys(o).sort()).toEqual(['client', 'component', 'duration_ms', 'level', 'message', 'method', 'route', 'status', 'time'])
      expect(o).toMatchObject({ level: 'debug', client: '127.0.0.1' })
      expect(o.duration_ms).toBeGreaterThanOrEqual(0)
    }
    const seen = access.map((o) => `${o.method} ${o.route} ${o.status}`)
    for (const want of [
      'POST /auth/challenge 200',
      'POST /auth/register 200',
      'POST /parties 201',
      'POST /parties/:party_id/join 403',
      'POST /parties/:party_id/join 200',
      'GET /ws 101',
      'GET /ws 426',
      'GET /parties/:party_id 401',
      'GET unmatched 404',
      'POST /relays 401',
      'POST /relays 200',
      'POST /auth/refresh 200',
    ])
      expect(seen).toContain(want)
    expect(seen.filter((x) => x === 'GET /ws 101')).toHaveLength(3)
    expectNoSecrets(s.lines, secrets)
  }, 60_000)

  test('lanrage serve, text format: access lines at debug, none at the default level, no credential in any line', async () => {
    const relaySecret = 'relay-secret-Hq31nW'
    const dir = tempDir()
    const serve = (level: string[]) =>
      start(['serve', '--port', '0', '--host', '127.0.0.1', '--relay-port', '0', '--relay-stun-alt-port', '-1', '--relay-ports', '47300-47309', '--db', join(dir, `s${level.length}.db`), '--relay-secret', relaySecret, ...level])
    const s = await serve(['--log-level', 'debug'])
    const secrets = await drive(s.base, relaySecret)
    await s.stop()
    expect(s.lines.some((l) => / DEBUG control\/http: request method=GET route=\/ws status=101 duration_ms=[\d.]+ client=127\.0\.0\.1$/.test(l))).toBe(true)
    expect(s.lines.some((l) => / DEBUG control\/http: request method=POST route=\/relays status=200 /.test(l))).toBe(true) // the in-process relay registering
    expectNoSecrets(s.lines, secrets)

    const quiet = await serve([])
    await new TestPeer(quiet.base).register()
    await Bun.sleep(100)
    await quiet.stop()
    expect(quiet.lines.filter((l) => l.includes('control/http'))).toEqual([])
    expect(quiet.lines.some((l) => l.includes('control server listening'))).toBe(true)
  }, 60_000)
})
