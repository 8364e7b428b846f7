/**
 * The control server's errors and its one error plugin. Every failure leaves as
 * `{"error": {"code", "message"}}` with a 4xx status naming what is wrong; anything unexpected is logged and
 * answered with a bare 500 INTERNAL (never a stack trace).
 */
import type { TSchema } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { Elysia } from 'elysia'
import { LanrageError } from '../shared/errors.ts'
import type { Logger } from '../shared/log.ts'

export class ControlError extends LanrageError {}

/** 429 with the seconds until the limit frees up (sent as Retry-After, RFC 9110 §10.2.3). */
export class RateLimitedError extends ControlError {
  constructor(
    message: string,
    readonly retryAfterS: number,
    code = 'RATE_LIMITED',
  ) {
    super(code, message, 429)
  }
}

export const badRequest = (code: string, message: string) => new ControlError(code, message, 400)
export const unauthorized = (message: string, code = 'UNAUTHORIZED') => new ControlError(code, message, 401)
export const forbidden = (code: string, message: string) => new ControlError(code, message, 403)
export const notFound = (code: string, message: string) => new ControlError(code, message, 404)
export const conflict = (code: string, message: string) => new ControlError(code, message, 409)

const body = (code: string, message: string) => ({ error: { code, message } })

type SchemaLike = {
  anyOf?: SchemaLike[]
  const?: unknown
  type?: string
  format?: string
  description?: string
  pattern?: string
  minimum?: number
  maximum?: number
}

/** What a schema wants, in words: "an integer ≥ 2", `"ip:port" or null`, "one of open, full_cone, ...". */
function expectation(s: SchemaLike | undefined): string | undefined {
  if (!s) return undefined
  if (s.anyOf) {
    if (s.anyOf.every((m) => m.const !== undefined)) return `one of ${s.anyOf.map((m) => m.const).join(', ')}`
    // Elysia accepts numbers as numeric strings too (a {type: string, format: integer} member): name only the number.
    const members = s.anyOf.filter((m) => !(m.type === 'string' && (m.format === 'integer' || m.format === 'numeric')))
    const parts = members.map((m) => expectation({ minimum: s.minimum, maximum: s.maximum, ...m }))
    return parts.every(Boolean) ? [...new Set(parts)].join(' or ') : undefined
  }
  if (s.type === 'null') return 'null'
  if (s.type === 'integer' || s.type === 'number') {
    const what = s.type === 'integer' ? 'an integer' : 'a number'
    if (s.minimum !== undefined && s.maximum !== undefined) return `${what} from ${s.minimum} to ${s.maximum}`
    if (s.minimum !== undefined) return `${what} ≥ ${s.minimum}`
    if (s.maximum !== undefined) return `${what} ≤ ${s.maximum}`
    return what
  }
  if (s.type === 'string' && s.pattern) return s.description ?? `a string matching ${s.pattern}`
  return undefined
}

/** Turns Elysia's validation error into one sentence naming the field, e.g. `body.max_peers: must be an integer ≥ 2`. */
function validationMessage(error: unknown): string {
  const e = error as { type?: string; valueError?: { path?: string; message?: string; value?: unknown; schema?: SchemaLike } }
  const where = e.type ?? 'body'
  const v = e.valueError
  if (!v) return `${where} is invalid`
  const field = (v.path ?? '').split('/').filter(Boolean).join('.')
  const name = field && where ? `${where}.${field}` : field || where
  if (v.value === undefined) return `${name} is required`
  const want = expectation(v.schema)
  return want ? `${name}: must be ${want}` : `${name}: ${v.message}`
}

/**
 * Checks `value` against `schema` where a route cannot declare it (a signal's data, whose schema depends on its
 * type; a WebSocket message): undefined when it fits, else a 422 VALIDATION naming the field under `where`
 * (e.g. `body.data.endpoint: must be "ip:port" ...`; `where` empty: the field alone), worded like the route
 * validation's errors.
 */
export function schemaError(where: string, schema: TSchema, value: unknown): ControlError | undefined {
  if (Value.Check(schema, value)) return undefined
  const first = Value.Errors(schema, value).First()
  return new ControlError('VALIDATION', validationMessage({ type: where, valueError: first }), 422)
}

/**
 * The methods each path answers, from the app's route list (`:param` segments match one segment; a WebSocket
 * route is listed as WS). For 405's Allow header (RFC 9110 §15.5.6) and 426 on a WebSocket path.
 */
export function methodTable(routes: readonly { method: string; path: string }[]): (path: string) => string[] {
  return routeTable(routes).methodsFor
}

/**
 * The app's routes as patterns: which methods a path answers, and which route template it falls under (for the
 * metrics and access log of a request refused before Elysia routed it: 413 on a declared length, 426 on /ws).
 */
export function routeTable(routes: readonly { method: string; path: string }[]) {
  const table = new Map<string, { re: RegExp; methods: Set<string> }>()
  for (const r of routes) {
    let row = table.get(r.path)
    if (!row) {
      const re = r.path
        .split('/')
        .map((seg) => (seg.startsWith(':') ? '[^/]+' : seg === '*' ? '.*' : seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
        .join('/')
      table.set(r.path, (row = { re: new RegExp(`^${re}/?$`), methods: new Set() }))
    }
    row.methods.add(r.method)
  }
  return {
    methodsFor: (path: string) => [...new Set([...table.values()].filter((row) => row.re.test(path)).flatMap((row) => [...row.methods]))],
    templateFor: (path: string): string | undefined => [...table].find(([, row]) => row.re.test(path))?.[0],
  }
}

/**
 * @param methodsFor what a path answers (see methodTable): an unmatched request to a known path is 405 with Allow
 *   (426 for a plain GET of a WebSocket path) instead of 404.
 */
export function errorPlugin(log: Logger, methodsFor: (path: string) => string[] = () => []) {
  return new Elysia({ name: 'control/errors', seed: log })
    .error({ ControlError })
    .onError({ as: 'global' }, ({ code, error, set, request }) => {
      set.headers['content-type'] = 'application/json'
      if (error instanceof LanrageError) {
        set.status = error.status
        if (error instanceof RateLimitedError) set.headers['retry-after'] = String(error.retryAfterS)
        return body(error.code, error.message)
      }
      switch (code) {
        case 'PARSE': {
          // Elysia wraps whatever the body parser threw (e.g. our 413) in a ParseError.
          const cause = (error as { cause?: unknown }).cause
          if (cause instanceof LanrageError) {
            set.status = cause.status
            return body(cause.code, cause.message)
          }
          set.status = 400
          return body('INVALID_JSON', 'request body is not valid JSON')
        }
        case 'VALIDATION': {
          // Path parameters and queries that do not fit are "bad request"; bodies of the wrong shape are 422.
          const type = (error as { type?: string }).type
          if (type === 'response') {
            // An answer that does not fit its own documented schema is the server's bug, not the client's.
            log.error('response does not match its schema', { path: new URL(request.url).pathname, detail: validationMessage(error) })
            set.status = 500
            return body('INTERNAL', 'internal server error')
          }
          set.status = type === 'body' ? 422 : 400
          return body('VALIDATION', validationMessage(error))
        }
        case 'NOT_FOUND': {
          const path = new URL(request.url).pathname
          const methods = methodsFor(path)
          if (methods.includes('WS') && request.method === 'GET') {
            // RFC 9110 §15.5.22: 426 names the protocol to switch to in Upgrade.
            set.status = 426
            set.headers.upgrade = 'websocket'
            return body('UPGRADE_REQUIRED', `${path} is a WebSocket endpoint: connect with Upgrade: websocket`)
          }
          if (methods.length > 0) {
            const allow = [...new Set(methods.map((m) => (m === 'WS' ? 'GET' : m)))].sort().join(', ')
            set.status = 405
            set.headers.allow = allow
            return body('METHOD_NOT_ALLOWED', `${request.method} is not allowed on ${path} (allowed: ${allow})`)
          }
          set.status = 404
          return body('NOT_FOUND', 'no such route')
        }
        case 'INVALID_COOKIE_SIGNATURE':
          set.status = 400
          return body('BAD_REQUEST', 'bad cookie')
      }
      const status = (error as { status?: unknown }).status
      if (typeof status === 'number' && status >= 400 && status < 500) {
        set.status = status
        return body('BAD_REQUEST', String((error as Error).message ?? 'bad request'))
      }
      log.error('unhandled error', { error: error as Error, stack: (error as Error)?.stack?.split('\n').slice(0, 4).join(' | ') })
      set.status = 500
      return body('INTERNAL', 'internal server error')
    })
}
