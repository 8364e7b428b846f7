/**
 * The running agent's local API and page, on 127.0.0.1:8666 by default: the party (status, live updates, create,
 * join, leave) and the settings database (typed settings, server configs, favorite servers, game profiles).
 * A web-standard handler (Request → Response): the command binds it (Bun.serve), tests call it over real HTTP.
 *
 * Only this machine and only its own page may use it, in the ways Syncthing's GUI and `tailscale web` guard theirs:
 *
 * - The listener is bound to 127.0.0.1 (the command offers no other address).
 * - `Host` must name this listener (127.0.0.1, localhost or [::1] with its port): a page on a DNS name that
 *   was made to point at 127.0.0.1 (DNS rebinding) gets 403 for everything, the page included.
 * - Every /api route needs a credential: `Authorization: Bearer <api key>` (the per-install key in
 *   $LANRAGE_HOME/api.key, 0600, for scripts) or `X-LANrage-Token: <page token>` (random per process, written into
 *   the page; another origin cannot read the page, so it cannot learn it). A custom header cannot be sent
 *   cross-origin without a CORS preflight, and this API answers no preflight: no CORS header is ever sent.
 * - A request that says where it comes from must come from here: an `Origin` other than this listener's, or a
 *   `Sec-Fetch-Site` other than same-origin / none, is 403 before anything else is looked at (a form posted by
 *   another page on this machine, even one on another loopback port, which is "same-site").
 * - The page may not be framed (CSP frame-ancestors 'none', X-Frame-Options DENY) and loads nothing from
 *   elsewhere (CSP default-src 'none', scripts and styles from 'self' only).
 *
 * Errors are `{"error": {"code", "message"}}` with a 4xx status naming the field, like the control server's.
 */
import { type Static, type TSchema, Type } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { timingSafeEqual } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { PartyId, PartyName } from '../../shared/api.ts'
import { LanrageError } from '../../shared/errors.ts'
import type { Logger } from '../../shared/log.ts'
import { SETTING_TYPES, type SettingType, type SettingValue } from '../../shared/settings-codec.ts'
import type { SessionStatus } from './session.ts'
import { failureOf } from './session.ts'

/** LANrage's port: the local API and page listen on 127.0.0.1 here unless told otherwise. */
export const DEFAULT_API_PORT = 8666
/** Request bodies larger than this are refused (413): nothing here needs more. */
export const MAX_BODY_BYTES = 64 * 1024
/** Live-update streams open at once; one more is 429. */
export const MAX_STREAMS = 16
/** A comment line on every live-update stream this often, so idle connections stay open. */
export const KEEPALIVE_MS = 5000
/** The page token header. */
export const TOKEN_HEADER = 'x-lanrage-token'

/** What the API needs from the running agent (AgentSession implements it). */
export interface ApiSession {
  status(): SessionStatus
  subscribe(fn: (s: SessionStatus) => void): () => void
  create(name: string, o: { password?: string; maxPeers?: number }): Promise<SessionStatus>
  join(partyId: string, o: { password?: string }): Promise<SessionStatus>
  leave(): Promise<SessionStatus>
}

/** What the API needs from the settings database (the stores of src/db/settings.ts fit). */
export interface ApiSettings {
  settings: {
    list(): { key: string; value: SettingValue; type: SettingType; updatedAt: number }[]
    set(key: string, value: SettingValue, type?: SettingType): { key: string; value: SettingValue; type: SettingType; updatedAt: number }
    delete(key: string): boolean
  }
  /**
   * The value to store for `key`, checked the way `lanrage settings set KEY TEXT` checks it (an option's key against
   * the option, an unknown key refused unless `force`); throws a LanrageError saying what is wrong.
   */
  typed(key: string, text: string, type: SettingType | undefined, force: boolean): Promise<{ value: SettingValue; type: SettingType }>
  serverConfigs: {
    list(): ServerConfigRow[]
    save(input: { name: string; mode: 'control' | 'relay' | 'serve'; config: Record<string, unknown>; enabled?: boolean }): ServerConfigRow
    delete(name: string): boolean
  }
  favorites: {
    list(): FavoriteRow[]
    add(input: { name: string; address: string; game?: string | null }): FavoriteRow
    remove(address: string): boolean
  }
  gameProfiles: {
    list(): GameProfileRow[]
    save(input: { name: string; game: string; profile: Record<string, unknown> }): GameProfileRow
    delete(name: string): boolean
  }
}
interface ServerConfigRow {
  name: string
  mode: string
  enabled: boolean
  config: Record<string, unknown>
  createdAt: number
  updatedAt: number
}
interface FavoriteRow {
  name: string
  address: string
  game: string | null
  addedAt: number
}
interface GameProfileRow {
  name: string
  game: string
  profile: Record<string, unknown>
  createdAt: number
  updatedAt: number
}

export interface Asset {
  type: string
  body: string
}

export interface LocalApiOptions {
  session: ApiSession
  settings: ApiSettings
  /** The per-install key scripts present as `Authorization: Bearer`. */
  apiKey: string
  /** The per-process token written into the page. */
  pageToken: string
  /** The port the listener is bound to (known once bound: 0 asks the OS for one). */
  port(): number
  /** The page's files by path ("/" is the page; its `{{TOKEN}}` is replaced by the page token). */
  assets: Map<string, Asset>
  log: Logger
}

export class ApiError extends LanrageError {}

const iso = (ms: number) => new Date(ms).toISOString()

// ---- request bodies (additional properties refused, so a typo is an error rather than silently ignored)
const Password = Type.String({ minLength: 1, maxLength: 128, description: '1-128 characters' })
const CreateBody = Type.Object(
  { name: PartyName, password: Type.Optional(Password), max_peers: Type.Optional(Type.Integer({ minimum: 2, maximum: 254, description: 'an integer from 2 to 254' })) },
  { additionalProperties: false },
)
const JoinBody = Type.Object({ party_id: PartyId, password: Type.Optional(Password) }, { additionalProperties: false })
const SettingType = Type.Union(
  SETTING_TYPES.map((t) => Type.Literal(t)),
  { description: `one of ${SETTING_TYPES.join(', ')}` },
)
/** `value`: a JSON value, or `text` as typed on the command line; both checked like `lanrage settings set KEY TEXT`. */
const SettingBody = Type.Union(
  [
    Type.Object({ value: Type.Unknown(), type: Type.Optional(SettingType), force: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
    Type.Object({ text: Type.String({ maxLength: 16_384 }), type: Type.Optional(SettingType), force: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
  ],
  { description: 'an object with "value" (JSON) or "text", and optional "type" and "force"' },
)

/** A JSON value as the command line would spell it (a string as is, anything else as JSON). */
const asText = (v: unknown) => (typeof v === 'string' ? v : v === undefined ? '' : JSON.stringify(v))
const JsonObject = Type.Record(Type.String(), Type.Unknown(), { description: 'a JSON object' })
const ServerConfigBody = Type.Object(
  {
    mode: Type.Union([Type.Literal('control'), Type.Literal('relay'), Type.Literal('serve')], { description: 'one of control, relay, serve' }),
    config: JsonObject,
    enabled: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
)
const FavoriteBody = Type.Object(
  { name: Type.String({ maxLength: 64 }), address: Type.String({ maxLength: 300 }), game: Type.Optional(Type.Union([Type.String({ maxLength: 64 }), Type.Null()])) },
  { additionalProperties: false },
)
const GameProfileBody = Type.Object({ game: Type.String({ maxLength: 64 }), profile: JsonObject }, { additionalProperties: false })

/** `schema` checked; otherwise 422 naming the first field that fails (`body.name: must be printable text, 1-64 characters`). */
function parse<S extends TSchema>(schema: S, v: unknown, where = 'body'): Static<S> {
  if (Value.Check(schema, v)) return v as Static<S>
  const e = Value.Errors(schema, v).First()
  const field = [where, ...(e?.path ?? '').split('/').filter(Boolean)].join('.')
  const want = (e?.schema as { description?: string } | undefined)?.description
  const message = e === undefined ? `${field} is invalid` : e.value === undefined ? `${field} is required` : want ? `${field}: must be ${want}` : `${field}: ${e.message}`
  throw new ApiError('VALIDATION', message, 422)
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...headers } })
const fail = (status: number, code: string, message: string) => json(status, { error: { code, message } })

/** Headers for the page and its files: nothing from elsewhere, no framing, no sniffing, no referrer. */
const PAGE_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
  'cross-origin-resource-policy': 'same-origin',
  'cross-origin-opener-policy': 'same-origin',
}

/** Constant-time comparison of a presented credential with the expected one. */
function sameSecret(given: string | null | undefined, expected: string): boolean {
  if (!given || !expected) return false
  const a = Buffer.from(given)
  const b = Buffer.from(expected)
  return a.length === b.length && timingSafeEqual(a, b)
}

/** Reads a body of at most MAX_BODY_BYTES as JSON; an empty body is undefined. */
async function readJson(req: Request): Promise<unknown> {
  const declared = Number(req.headers.get('content-length') ?? 0)
  if (declared > MAX_BODY_BYTES) throw new ApiError('PAYLOAD_TOO_LARGE', `request body exceeds ${MAX_BODY_BYTES} bytes`, 413)
  let text = ''
  if (req.body) {
    const chunks: Uint8Array[] = []
    let size = 0
    for await (const c of req.body) {
      size += c.byteLength
      if (size > MAX_BODY_BYTES) throw new ApiError('PAYLOAD_TOO_LARGE', `request body exceeds ${MAX_BODY_BYTES} bytes`, 413)
      chunks.push(c)
    }
    text = Buffer.concat(chunks).toString('utf8')
  }
  if (text.trim() === '') return undefined
  try {
    return JSON.parse(text)
  } catch {
    throw new ApiError('INVALID_JSON', 'request body is not valid JSON', 400)
  }
}

/**
 * Runs a check of or a write to the settings database (sync or async); its errors (src/db/settings.ts) become API errors: bad values 422, unknown
 * names 404, duplicates 409.
 */
function stored<T>(write: () => T): T {
  const fail = (e: unknown): never => {
    if (!(e instanceof LanrageError)) throw e
    const status = e.code === 'NOT_FOUND' ? 404 : e.code === 'ALREADY_EXISTS' ? 409 : e.code.startsWith('INVALID') || e.code === 'USAGE' ? 422 : e.status
    throw new ApiError(e.code === 'USAGE' ? 'INVALID_SETTING' : e.code, e.message, status)
  }
  try {
    const r = write()
    return (r instanceof Promise ? r.catch(fail) : r) as T
  } catch (e) {
    return fail(e)
  }
}

const settingRow = (r: { key: string; value: SettingValue; type: SettingType; updatedAt: number }) => ({ key: r.key, value: r.value, type: r.type, updated_at: iso(r.updatedAt) })
const serverConfigRow = (r: ServerConfigRow) => ({ name: r.name, mode: r.mode, enabled: r.enabled, config: r.config, created_at: iso(r.createdAt), updated_at: iso(r.updatedAt) })
const favoriteRow = (r: FavoriteRow) => ({ name: r.name, address: r.address, game: r.game, added_at: iso(r.addedAt) })
const profileRow = (r: GameProfileRow) => ({ name: r.name, game: r.game, profile: r.profile, created_at: iso(r.createdAt), updated_at: iso(r.updatedAt) })

type Handler = (req: Request, param: string) => Promise<Response> | Response

export interface LocalApi {
  fetch(req: Request): Promise<Response>
  /** Ends every live-update stream. */
  close(): void
  /** Live-update streams open now. */
  readonly streams: number
}

export function createLocalApi(o: LocalApiOptions): LocalApi {
  const { session, settings: db } = o
  const streams = new Set<() => void>()

  /** The Host values that name this listener. */
  const hostOk = (host: string | null) => {
    const p = o.port()
    return host !== null && (host === `127.0.0.1:${p}` || host === `localhost:${p}` || host === `[::1]:${p}`)
  }
  /** Sec-Fetch-Site and Origin, when sent, must say the request comes from this listener's own page. */
  const fromHere = (req: Request) => {
    const site = req.headers.get('sec-fetch-site')
    if (site !== null && site !== 'same-origin' && site !== 'none') return false
    const origin = req.headers.get('origin')
    return origin === null || hostOk(origin.startsWith('http://') ? origin.slice('http://'.length) : null)
  }
  const authorized = (req: Request) => {
    const bearer = /^Bearer (\S+)$/.exec(req.headers.get('authorization') ?? '')?.[1]
    return sameSecret(bearer, o.apiKey) || sameSecret(req.headers.get(TOKEN_HEADER), o.pageToken)
  }

  const party: Record<string, Handler> = {
    'GET /api/status': () => json(200, session.status()),
    'GET /api/events': (req) => events(req),
    'POST /api/party': async (req) => {
      const b = parse(CreateBody, await readJson(req))
      return json(200, await session.create(b.name, { password: b.password, maxPeers: b.max_peers }))
    },
    'POST /api/party/join': async (req) => {
      const b = parse(JoinBody, await readJson(req))
      return json(200, await session.join(b.party_id, { password: b.password }))
    },
    'POST /api/party/leave': async (req) => {
      const b = await readJson(req)
      if (b !== undefined) parse(Type.Object({}, { additionalProperties: false }), b)
      return json(200, await session.leave())
    },

    'GET /api/settings': () => json(200, { settings: db.settings.list().map(settingRow) }),
    'PUT /api/settings/:': async (req, key) => {
      const b = parse(SettingBody, await readJson(req))
      const typed = await stored(() => db.typed(key, 'text' in b ? b.text : asText(b.value), b.type, b.force ?? false))
      return json(200, { setting: settingRow(stored(() => db.settings.set(key, typed.value, typed.type))) })
    },
    'DELETE /api/settings/:': (_req, key) => (db.settings.delete(key) ? json(200, { deleted: key }) : fail(404, 'NOT_FOUND', `no setting named ${JSON.stringify(key)}`)),

    'GET /api/server-configs': () => json(200, { server_configs: db.serverConfigs.list().map(serverConfigRow) }),
    'PUT /api/server-configs/:': async (req, name) => {
      const b = parse(ServerConfigBody, await readJson(req))
      return json(200, { server_config: serverConfigRow(stored(() => db.serverConfigs.save({ name, ...b }))) })
    },
    'DELETE /api/server-configs/:': (_req, name) =>
      db.serverConfigs.delete(name) ? json(200, { deleted: name }) : fail(404, 'NOT_FOUND', `no server config named ${JSON.stringify(name)}`),

    'GET /api/favorites': () => json(200, { favorites: db.favorites.list().map(favoriteRow) }),
    'POST /api/favorites': async (req) => {
      const b = parse(FavoriteBody, await readJson(req))
      return json(201, { favorite: favoriteRow(stored(() => db.favorites.add(b))) })
    },
    'DELETE /api/favorites/:': (_req, address) => (db.favorites.remove(address) ? json(200, { deleted: address }) : fail(404, 'NOT_FOUND', `no favorite at ${JSON.stringify(address)}`)),

    'GET /api/game-profiles': () => json(200, { game_profiles: db.gameProfiles.list().map(profileRow) }),
    'PUT /api/game-profiles/:': async (req, name) => {
      const b = parse(GameProfileBody, await readJson(req))
      return json(200, { game_profile: profileRow(stored(() => db.gameProfiles.save({ name, ...b }))) })
    },
    'DELETE /api/game-profiles/:': (_req, name) =>
      db.gameProfiles.delete(name) ? json(200, { deleted: name }) : fail(404, 'NOT_FOUND', `no game profile named ${JSON.stringify(name)}`),
  }

  /** Route key and parameter for a path: `/api/settings/up.name` → `/api/settings/:` and "up.name". */
  const match = (method: string, path: string): { handler: Handler; param: string } | { allow: string[] } | null => {
    const exact = party[`${method} ${path}`]
    if (exact) return { handler: exact, param: '' }
    const slash = path.lastIndexOf('/')
    const base = path.slice(0, slash + 1) + ':'
    let param = ''
    try {
      param = decodeURIComponent(path.slice(slash + 1))
    } catch {
      return null
    }
    const withParam = slash > 4 && param !== '' ? party[`${method} ${base}`] : undefined
    if (withParam) return { handler: withParam, param }
    const allow = Object.keys(party)
      .filter((k) => k.endsWith(` ${path}`) || (param !== '' && k.endsWith(` ${base}`)))
      .map((k) => k.split(' ')[0]!)
    return allow.length ? { allow } : null
  }

  /** Server-sent events: the status at once, then every change; a keepalive comment every KEEPALIVE_MS. */
  function events(req: Request): Response {
    if (streams.size >= MAX_STREAMS) return fail(429, 'TOO_MANY_STREAMS', `at most ${MAX_STREAMS} live-update streams at once`)
    const enc = new TextEncoder()
    let end = () => {}
    const body = new ReadableStream<Uint8Array>({
      start(ctrl) {
        const push = (text: string) => {
          // A reader that stopped reading is dropped rather than buffered for without bound.
          if ((ctrl.desiredSize ?? 0) < -64) return end()
          try {
            ctrl.enqueue(enc.encode(text))
          } catch {
            end()
          }
        }
        const send = (s: SessionStatus) => push(`event: status\ndata: ${JSON.stringify(s)}\n\n`)
        const unsubscribe = session.subscribe(send)
        const keepalive = setInterval(() => push(': keepalive\n\n'), KEEPALIVE_MS)
        let ended = false
        end = () => {
          if (ended) return
          ended = true
          unsubscribe()
          clearInterval(keepalive)
          streams.delete(end)
          try {
            ctrl.close()
          } catch {
            // already closed by the reader
          }
        }
        streams.add(end)
        req.signal.addEventListener('abort', () => end())
        push('retry: 1000\n\n')
        send(session.status())
      },
      cancel() {
        end()
      },
    })
    return new Response(body, { headers: { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no' } })
  }

  function asset(path: string): Response | null {
    const a = o.assets.get(path === '/index.html' ? '/' : path)
    if (!a) return null
    const body = path === '/' || path === '/index.html' ? a.body.replaceAll('{{TOKEN}}', o.pageToken) : a.body
    return new Response(body, { headers: { 'content-type': a.type, ...PAGE_HEADERS } })
  }

  async function handle(req: Request): Promise<Response> {
    // Before anything else: a Host that is not this listener is a page on some other name (DNS rebinding).
    if (!hostOk(req.headers.get('host'))) return fail(403, 'BAD_HOST', 'this API answers only requests for 127.0.0.1, localhost or [::1] with its port')
    const url = new URL(req.url)
    const path = url.pathname
    if (!path.startsWith('/api/')) {
      if (req.method !== 'GET' && req.method !== 'HEAD') return fail(405, 'METHOD_NOT_ALLOWED', `${req.method} is not allowed here`)
      return asset(path) ?? fail(404, 'NOT_FOUND', `nothing at ${path}`)
    }
    if (!fromHere(req)) return fail(403, 'CROSS_ORIGIN', 'requests from other pages are refused')
    if (!authorized(req))
      return fail(401, 'UNAUTHORIZED', `send Authorization: Bearer <the key in $LANRAGE_HOME/api.key> (or the page's ${TOKEN_HEADER})`)
    const m = match(req.method, path)
    if (!m) return fail(404, 'NOT_FOUND', `no route ${path}`)
    if ('allow' in m) return json(405, { error: { code: 'METHOD_NOT_ALLOWED', message: `${req.method} is not allowed on ${path}` } }, { allow: m.allow.join(', ') })
    return await m.handler(req, m.param)
  }

  return {
    async fetch(req) {
      try {
        return await handle(req)
      } catch (e) {
        if (e instanceof ApiError) return fail(e.status, e.code, e.message)
        const f = failureOf(e)
        if (f.status >= 500) o.log.warn('local API request failed', { method: req.method, path: new URL(req.url).pathname, error: e })
        return fail(f.status, f.code, f.message)
      }
    },
    close() {
      for (const end of [...streams]) end()
    },
    get streams() {
      return streams.size
    },
  }
}

/** The page's files from a directory (index.html, app.js, style.css), read once at start. */
export function loadAssets(dir: URL): Map<string, Asset> {
  const files: [string, string, string][] = [
    ['/', 'index.html', 'text/html; charset=utf-8'],
    ['/app.js', 'app.js', 'text/javascript; charset=utf-8'],
    ['/style.css', 'style.css', 'text/css; charset=utf-8'],
    ['/favicon.svg', 'favicon.svg', 'image/svg+xml'],
  ]
  return new Map(files.map(([path, file, type]) => [path, { type, body: readFileSync(new URL(file, dir), 'utf8') }]))
}

/** Where the page's files are: `web/` at the package root (from src/client/agent/ here, or dist/client/agent/). */
export const WEB_DIR = new URL('../../../web/', import.meta.url)
