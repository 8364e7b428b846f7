// The agent's local API (src/client/agent/local-api.ts) over real HTTP on 127.0.0.1: who may use it (Host, Origin,
// Sec-Fetch-Site, the key and the page token), what it validates, the settings database behind it, live updates.
// The browser's side of the same guards (a page on another origin, DNS rebinding) runs in Chromium in
// test/e2e/page.test.ts.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { connect } from 'node:net'
import { createLocalApi, loadAssets, MAX_BODY_BYTES, MAX_STREAMS, TOKEN_HEADER, WEB_DIR, type ApiSession, type LocalApi } from '../../src/client/agent/local-api.ts'
import type { SessionStatus } from '../../src/client/agent/session.ts'
import { SessionBusyError } from '../../src/client/agent/session.ts'
import { ControlForbiddenError } from '../../src/client/control/errors.ts'
import { openSettingsDatabase, type OpenDb, type SettingsDb } from '../../src/db/client.ts'
import { FavoriteServerStore, GameProfileStore, ServerConfigStore, SettingsStore } from '../../src/db/settings.ts'
import { homeSetting } from '../../src/cmd/settings.ts'
import { createLogger } from '../../src/shared/log.ts'

const KEY = 'a'.repeat(64)
const TOKEN = 'b'.repeat(64)

const status = (over: Partial<SessionStatus> = {}): SessionStatus => ({
  pid: 1,
  interface: 'lr0',
  listen_port: 51820,
  party: null,
  self: { peer_id: '0011223344556677', name: 'ana', virtual_ip: null, public_endpoint: null, nat_type: 'unknown' },
  peers: [],
  updated_at: new Date(0).toISOString(),
  state: 'idle',
  message: null,
  ...over,
})

/** The session as the API sees it; the test decides its answers and pushes its changes. */
class FakeSession implements ApiSession {
  current = status()
  calls: string[] = []
  fail: Error | null = null
  private subs = new Set<(s: SessionStatus) => void>()
  status() {
    return this.current
  }
  subscribe(fn: (s: SessionStatus) => void) {
    this.subs.add(fn)
    return () => void this.subs.delete(fn)
  }
  get subscribers() {
    return this.subs.size
  }
  push(s: SessionStatus) {
    this.current = s
    for (const fn of this.subs) fn(s)
  }
  private async answer(call: string, next: Partial<SessionStatus>) {
    this.calls.push(call)
    if (this.fail) throw this.fail
    this.push(status(next))
    return this.current
  }
  create(name: string, o: { password?: string; maxPeers?: number }) {
    return this.answer(`create ${name} ${o.password ?? '-'} ${o.maxPeers ?? '-'}`, { state: 'in_party', party: { party_id: 'abcdefabcdef', name, host_id: '0011223344556677', subnet: '10.66.0.0/16' } })
  }
  join(id: string, o: { password?: string }) {
    return this.answer(`join ${id} ${o.password ?? '-'}`, { state: 'in_party', party: { party_id: id, name: 'lan', host_id: '8899aabbccddeeff', subnet: '10.66.0.0/16' } })
  }
  leave() {
    return this.answer('leave', { state: 'idle', message: 'left party' })
  }
}

let db: OpenDb<SettingsDb>
let session: FakeSession
let api: LocalApi
let server: ReturnType<typeof Bun.serve>
let base = ''
let port = 0

beforeAll(() => {
  db = openSettingsDatabase(':memory:')
  session = new FakeSession()
  api = createLocalApi({
    session,
    settings: {
      settings: new SettingsStore(db.db),
      typed: homeSetting,
      serverConfigs: new ServerConfigStore(db.db),
      favorites: new FavoriteServerStore(db.db),
      gameProfiles: new GameProfileStore(db.db),
    },
    apiKey: KEY,
    pageToken: TOKEN,
    port: () => server.port!,
    assets: loadAssets(WEB_DIR),
    log: createLogger('test', 'silent'),
  })
  server = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: api.fetch })
  port = server.port!
  base = `http://127.0.0.1:${port}`
})
afterAll(() => {
  api.close()
  server.stop(true)
  db.close()
})

const auth = { authorization: `Bearer ${KEY}` }
async function call(method: string, path: string, o: { body?: unknown; raw?: string; headers?: Record<string, string> } = {}) {
  const headers: Record<string, string> = { ...auth, ...o.headers }
  const body = o.raw ?? (o.body === undefined ? undefined : JSON.stringify(o.body))
  if (body !== undefined) headers['content-type'] ??= 'application/json'
  const res = await fetch(base + path, { method, headers, body })
  const text = await res.text()
  let json: any = text
  try {
    json = JSON.parse(text)
  } catch {
    // not JSON
  }
  return { status: res.status, body: json, headers: res.headers }
}

/** One request written by hand, so the Host header is exactly what an attacker's browser would send. */
function rawRequest(head: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1', () => sock.end(head))
    let out = ''
    sock.on('data', (d) => (out += d.toString()))
    sock.on('end', () => resolve(out))
    sock.on('error', reject)
    setTimeout(() => reject(new Error('no answer within 5 s')), 5000).unref()
  })
}

describe('local API: only this machine, only its own page', () => {
  test.each(['evil.example', `evil.example:${0}`, 'attacker.test:8666', '127.0.0.2', '10.66.0.1:PORT', '127.0.0.1', '127.0.0.1:1', 'localhost.evil.example:PORT'])(
    'Host %s (DNS rebinding, another port, another address) is 403 for the page and the API, key or not',
    async (host) => {
      const h = host.replace('PORT', String(port)).replace(':0', `:${port}`)
      for (const path of ['/', '/app.js', '/api/status', '/api/party/leave']) {
        const method = path.endsWith('leave') ? 'POST' : 'GET'
        const res = await rawRequest(`${method} ${path} HTTP/1.1\r\nHost: ${h}\r\nAuthorization: Bearer ${KEY}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`)
        expect(res).toStartWith('HTTP/1.1 403')
        expect(res).toContain('"BAD_HOST"')
        expect(res).not.toContain(TOKEN)
      }
      expect(session.calls).toEqual([])
    },
  )

  test('a request without Host is refused too', async () => {
    const res = await rawRequest('GET /api/status HTTP/1.0\r\n\r\n')
    expect(res).toMatch(/^HTTP\/1\.[01] (400|403)/)
  })

  test('the API needs the key or the page token; a wrong one is 401', async () => {
    for (const headers of <Record<string, string>[]>[{}, { authorization: `Bearer ${'c'.repeat(64)}` }, { authorization: `Basic ${KEY}` }, { [TOKEN_HEADER]: KEY.slice(1) }, { authorization: `Bearer ${TOKEN}` }]) {
      const r = await fetch(`${base}/api/status`, { headers })
      expect(r.status).toBe(401)
      expect(((await r.json()) as any).error.code).toBe('UNAUTHORIZED')
    }
    expect((await fetch(`${base}/api/status`, { headers: auth })).status).toBe(200)
    expect((await fetch(`${base}/api/status`, { headers: { [TOKEN_HEADER]: TOKEN } })).status).toBe(200)
    // The host names this machine may use for itself.
    for (const host of [`localhost:${port}`, `[::1]:${port}`]) {
      const res = await rawRequest(`GET /api/status HTTP/1.1\r\nHost: ${host}\r\n${TOKEN_HEADER}: ${TOKEN}\r\nConnection: close\r\n\r\n`)
      expect(res).toStartWith('HTTP/1.1 200')
    }
  })

  test('the page carries the page token, never the key; it may not be framed and loads nothing from elsewhere', async () => {
    const r = await fetch(`${base}/`)
    expect(r.status).toBe(200)
    const html = await r.text()
    expect(html).toContain(`<meta name="lanrage-token" content="${TOKEN}">`)
    expect(html).not.toContain(KEY)
    expect(r.headers.get('content-security-policy')).toContain("frame-ancestors 'none'")
    expect(r.headers.get('content-security-policy')).toContain("default-src 'none'")
    expect(r.headers.get('x-frame-options')).toBe('DENY')
    expect(r.headers.get('x-content-type-options')).toBe('nosniff')
    expect(r.headers.get('access-control-allow-origin')).toBeNull()
    expect((await fetch(`${base}/app.js`)).headers.get('content-type')).toStartWith('text/javascript')
    expect((await fetch(`${base}/nope.html`)).status).toBe(404)
    expect((await fetch(`${base}/`, { method: 'POST' })).status).toBe(405)
  })

  test('a request from another origin is 403 before anything is done, whatever credential it carries', async () => {
    const hostile: Record<string, string>[] = [
      { origin: 'http://evil.example' },
      { origin: `http://127.0.0.1:${port + 1}` }, // another web server on this machine: same site, another origin
      { origin: `https://127.0.0.1:${port}` },
      { origin: 'null' }, // a sandboxed frame or a file:// page
      { 'sec-fetch-site': 'cross-site' },
      { 'sec-fetch-site': 'same-site' },
    ]
    for (const h of hostile) {
      const r = await call('POST', '/api/party/leave', { headers: { ...h, [TOKEN_HEADER]: TOKEN } })
      expect(r.status).toBe(403)
      expect(r.body.error.code).toBe('CROSS_ORIGIN')
      expect(r.headers.get('access-control-allow-origin')).toBeNull()
    }
    // A form another page posts: no credential can come with it, and it says where it comes from.
    const form = await fetch(`${base}/api/party/leave`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'http://evil.example', 'sec-fetch-site': 'cross-site' },
      body: 'x=1',
    })
    expect(form.status).toBe(403)
    // A CORS preflight gets no permission.
    const pre = await fetch(`${base}/api/party/leave`, {
      method: 'OPTIONS',
      headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST', 'access-control-request-headers': TOKEN_HEADER },
    })
    expect(pre.status).toBe(403)
    expect([...pre.headers.keys()].filter((k) => k.startsWith('access-control-'))).toEqual([])
    expect(session.calls).toEqual([])
    // The page's own requests say same-origin; tools (curl) say nothing.
    for (const h of <Record<string, string>[]>[{ origin: base, 'sec-fetch-site': 'same-origin' }, { 'sec-fetch-site': 'none' }, {}]) expect((await call('GET', '/api/status', { headers: h })).status).toBe(200)
  })
})

describe('local API: the party', () => {
  test('create, join and leave reach the session with what was sent', async () => {
    session.calls = []
    expect((await call('POST', '/api/party', { body: { name: 'lan night', password: 'pw', max_peers: 8 } })).body).toMatchObject({ state: 'in_party', party: { name: 'lan night' } })
    expect((await call('POST', '/api/party/leave')).body).toMatchObject({ state: 'idle' })
    expect((await call('POST', '/api/party/join', { body: { party_id: '0123456789ab' } })).body).toMatchObject({ party: { party_id: '0123456789ab' } })
    expect(session.calls).toEqual(['create lan night pw 8', 'leave', 'join 0123456789ab -'])
    expect((await call('GET', '/api/status')).body).toEqual(session.current)
  })

  test.each([
    ['/api/party', { name: 'x\u001b[2J' }, 'body.name: must be printable text, 1-64 characters'],
    ['/api/party', {}, 'body.name is required'],
    ['/api/party', { name: 'x'.repeat(65) }, 'body.name: must be printable text, 1-64 characters'],
    ['/api/party', { name: 'lan', max_peers: 1 }, 'body.max_peers: must be an integer from 2 to 254'],
    ['/api/party', { name: 'lan', password: '' }, 'body.password: must be 1-128 characters'],
    ['/api/party', { name: 'lan', admin: true }, 'body.admin: Unexpected property'],
    ['/api/party/join', { party_id: 'ABCDEF012345' }, 'body.party_id: must be 12 lowercase hex digits'],
    ['/api/party/join', { party_id: '0123456789ab', password: 'x'.repeat(129) }, 'body.password: must be 1-128 characters'],
  ])('POST %s %j → 422 naming the field', async (path, body, message) => {
    session.calls = []
    const r = await call('POST', path, { body })
    expect(r.status).toBe(422)
    expect(r.body).toEqual({ error: { code: 'VALIDATION', message } })
    expect(session.calls).toEqual([])
  })

  test('bad bodies: not JSON 400, too large 413; unknown routes 404, wrong methods 405 with Allow', async () => {
    expect((await call('POST', '/api/party', { raw: '{"name":' })).body.error.code).toBe('INVALID_JSON')
    const big = await call('POST', '/api/party', { raw: JSON.stringify({ name: 'x'.repeat(MAX_BODY_BYTES) }) })
    expect(big.status).toBe(413)
    expect((await call('GET', '/api/nope')).status).toBe(404)
    const wrong = await call('GET', '/api/party/join')
    expect(wrong.status).toBe(405)
    expect(wrong.headers.get('allow')).toBe('POST')
    expect((await call('POST', '/api/settings/x')).headers.get('allow')).toBe('PUT, DELETE')
  })

  test('what the session refuses keeps its code and status (the control server’s own code for a refused join)', async () => {
    session.fail = new SessionBusyError('ALREADY_IN_PARTY', 'already in party abcdefabcdef; leave it first')
    expect(await call('POST', '/api/party', { body: { name: 'again' } })).toMatchObject({ status: 409, body: { error: { code: 'ALREADY_IN_PARTY' } } })
    session.fail = new ControlForbiddenError('join party 0123456789ab: wrong password (WRONG_PASSWORD)', 'WRONG_PASSWORD')
    expect(await call('POST', '/api/party/join', { body: { party_id: '0123456789ab', password: 'nope' } })).toMatchObject({
      status: 403,
      body: { error: { code: 'WRONG_PASSWORD', message: 'join party 0123456789ab: wrong password (WRONG_PASSWORD)' } },
    })
    session.fail = new TypeError('bug')
    expect(await call('POST', '/api/party/leave')).toMatchObject({ status: 500, body: { error: { code: 'INTERNAL', message: 'the agent failed; see its log' } } })
    session.fail = null
  })
})

describe('local API: live updates', () => {
  /** Reads server-sent events from a stream until `n` status events arrived (bounded by time). */
  async function readEvents(res: Response, n: number, ms = 3000): Promise<SessionStatus[]> {
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader()
    const out: SessionStatus[] = []
    let buf = ''
    const deadline = Date.now() + ms
    while (out.length < n && Date.now() < deadline) {
      const r = await Promise.race([reader.read(), Bun.sleep(deadline - Date.now()).then(() => null)])
      if (!r || r.done) break
      buf += r.value
      let i: number
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i)
        buf = buf.slice(i + 2)
        const data = /^data: (.*)$/m.exec(block)
        if (/^event: status$/m.test(block) && data) out.push(JSON.parse(data[1]!))
      }
    }
    reader.releaseLock()
    return out
  }

  test('the status at once, then every change', async () => {
    session.push(status({ state: 'idle', message: 'hello' }))
    const ac = new AbortController()
    const res = await fetch(`${base}/api/events`, { headers: { [TOKEN_HEADER]: TOKEN }, signal: ac.signal })
    expect(res.headers.get('content-type')).toStartWith('text/event-stream')
    setTimeout(() => session.push(status({ state: 'starting' })), 50)
    setTimeout(() => session.push(status({ state: 'in_party', peers: [] })), 100)
    const got = await readEvents(res, 3)
    expect(got.map((s) => s.state)).toEqual(['idle', 'starting', 'in_party'])
    expect(got[0]!.message).toBe('hello')
    ac.abort()
    for (let i = 0; i < 50 && session.subscribers > 0; i++) await Bun.sleep(20)
    expect(session.subscribers).toBe(0)
  })

  test('at most MAX_STREAMS at once (429 beyond); close() ends them all', async () => {
    const open: AbortController[] = []
    for (let i = 0; i < MAX_STREAMS; i++) {
      const ac = new AbortController()
      const r = await fetch(`${base}/api/events`, { headers: auth, signal: ac.signal })
      expect(r.status).toBe(200)
      open.push(ac)
    }
    const more = await call('GET', '/api/events')
    expect(more.status).toBe(429)
    expect(more.body.error.code).toBe('TOO_MANY_STREAMS')
    expect(api.streams).toBe(MAX_STREAMS)
    api.close()
    expect(api.streams).toBe(0)
    for (const ac of open) ac.abort()
  })

  test('live updates need the credential like every route', async () => {
    expect((await fetch(`${base}/api/events`)).status).toBe(401)
  })
})

describe('local API: the settings database', () => {
  test('settings a command reads are checked like its flags and stored with its type; others need force', async () => {
    expect((await call('PUT', '/api/settings/up.direct_retry', { body: { value: 90 } })).body.setting).toMatchObject({ key: 'up.direct_retry', value: 90, type: 'float' })
    expect((await call('PUT', '/api/settings/up.name', { body: { text: 'Ana 🎮' } })).body.setting).toMatchObject({ value: 'Ana 🎮', type: 'string' })
    expect((await call('PUT', '/api/settings/up.listen_port', { body: { text: '51820' } })).body.setting).toMatchObject({ value: 51820, type: 'int' })
    expect((await call('PUT', '/api/settings/x.ratio', { body: { text: '1.5', type: 'float', force: true } })).body.setting).toMatchObject({ value: 1.5, type: 'float' })
    expect((await call('PUT', '/api/settings/x.flag', { body: { text: 'on', type: 'bool', force: true } })).body.setting).toMatchObject({ value: true, type: 'bool' })
    expect((await call('PUT', '/api/settings/x.list', { body: { value: [1, 'a'], force: true } })).body.setting).toMatchObject({ value: [1, 'a'], type: 'json' })
    const list = (await call('GET', '/api/settings')).body.settings
    expect(list.map((r: any) => [r.key, r.type])).toEqual([
      ['up.direct_retry', 'float'],
      ['up.listen_port', 'int'],
      ['up.name', 'string'],
      ['x.flag', 'bool'],
      ['x.list', 'json'],
      ['x.ratio', 'float'],
    ])
    expect(Date.parse(list[0].updated_at)).toBeGreaterThan(0)
    expect((await call('DELETE', '/api/settings/x.flag')).body).toEqual({ deleted: 'x.flag' })
    expect((await call('DELETE', '/api/settings/x.flag')).status).toBe(404)
  })

  test('a value `lanrage up` could not start with is refused, 422 saying why (nothing stored)', async () => {
    for (const [key, body, message] of [
      ['up.listen_port', { text: 'abc' }, /^up\.listen_port .*integer/],
      ['up.listen_port', { value: 70000 }, /^up\.listen_port .*65535/],
      ['up.name', { text: 'ana\u001b[2J' }, /^up\.name /],
      ['up.nmae', { text: 'ana' }, /no option "nmae" \(did you mean up\.name\?\)/],
      ['control.port', { text: '8667' }, /read by lanrage control from its own database/],
      ['x.n', { text: '1' }, /no command reads "x\.n"/],
      ['x.n', { text: 'abc', type: 'int', force: true }, /x\.n: value "abc" is not an integer/],
      ['Bad Key', { value: 1, force: true }, /setting key "Bad Key" must match/],
    ] as const) {
      const r = await call('PUT', `/api/settings/${encodeURIComponent(key)}`, { body })
      expect(r.status).toBe(422)
      expect(r.body.error.message).toMatch(message)
    }
    for (const body of [{ text: '1', type: 'decimal' }, { value: 1, text: '1' }]) {
      const r = await call('PUT', '/api/settings/up.listen_port', { body })
      expect(r.status).toBe(422)
      expect(r.body.error.code).toBe('VALIDATION')
    }
    expect((await call('GET', '/api/settings')).body.settings.find((r: any) => r.key === 'up.listen_port').value).toBe(51820)
  })

  test('server configs, favorite servers and game profiles: save, list, delete; bad input 422, a duplicate 409', async () => {
    const sc = await call('PUT', '/api/server-configs/home', { body: { mode: 'relay', config: { port: 3478 }, enabled: false } })
    expect(sc.body.server_config).toMatchObject({ name: 'home', mode: 'relay', enabled: false, config: { port: 3478 } })
    expect((await call('PUT', '/api/server-configs/home', { body: { mode: 'tunnel', config: {} } })).body.error.message).toBe('body.mode: must be one of control, relay, serve')
    expect((await call('PUT', '/api/server-configs/bad%0Aname', { body: { mode: 'relay', config: {} } })).status).toBe(422)
    expect((await call('GET', '/api/server-configs')).body.server_configs.map((r: any) => r.name)).toEqual(['home'])

    expect((await call('POST', '/api/favorites', { body: { name: 'cs', address: '10.66.0.1:27015', game: 'cs2' } })).status).toBe(201)
    expect((await call('POST', '/api/favorites', { body: { name: 'cs again', address: '10.66.0.1:27015' } })).status).toBe(409)
    expect((await call('POST', '/api/favorites', { body: { name: 'bad', address: '10.66.0.1' } })).status).toBe(422)
    expect((await call('GET', '/api/favorites')).body.favorites).toMatchObject([{ name: 'cs', address: '10.66.0.1:27015', game: 'cs2' }])
    expect((await call('DELETE', `/api/favorites/${encodeURIComponent('10.66.0.1:27015')}`)).status).toBe(200)

    expect((await call('PUT', '/api/game-profiles/cs', { body: { game: 'cs2', profile: { mtu: 1380 } } })).body.game_profile).toMatchObject({ name: 'cs', game: 'cs2', profile: { mtu: 1380 } })
    expect((await call('PUT', '/api/game-profiles/cs', { body: { game: 'cs2', profile: [1] } })).status).toBe(422)
    expect((await call('DELETE', '/api/game-profiles/cs')).status).toBe(200)
    expect((await call('DELETE', '/api/game-profiles/cs')).status).toBe(404)
    expect((await call('DELETE', '/api/server-configs/home')).status).toBe(200)
  })
})
