/**
 * The control server's OpenAPI 3.1 document, built from the app's own route table: each route's `params`, `query`,
 * `body` and `response` are the TypeBox schemas Elysia validates with (src/shared/api.ts), so the document cannot
 * drift from what the server accepts and answers. Pure: routes and options in, a JSON value out (no I/O).
 *
 * Why not the OpenAPI plugin's generator: it leaves `requestBody.content` empty for routes whose body goes through
 * a custom parser (app.ts reads bodies itself, for speed), lists WebSocket routes under a `ws` method (not an
 * HTTP method, so validators refuse the document) and knows nothing of the error answers the error plugin gives.
 */
import { Kind, OptionalKind, Type, type TSchema } from '@sinclair/typebox'
import { ApiError } from '../shared/api.ts'

export const OPENAPI_VERSION = '3.1.1'

type Json = null | boolean | number | string | Json[] | { [k: string]: Json }
type JsonObject = { [k: string]: Json }

/** What the generator reads of an Elysia route (`app.routes`). */
export interface RouteLike {
  method: string
  path: string
  hooks: {
    params?: unknown
    query?: unknown
    body?: unknown
    response?: unknown
    detail?: unknown
  }
}

/** A route's OpenAPI extras, given as `detail` in its options. */
export interface RouteDoc {
  summary?: string
  description?: string
  tags?: string[]
  operationId?: string
  security?: Record<string, string[]>[]
  hide?: boolean
  /** For a WebSocket route: the messages each side sends after the upgrade. */
  websocket?: { client: TSchema; server: TSchema[] }
}

const errorCodes = new WeakMap<object, readonly string[]>()

/**
 * The error answer of one status on one route, listing the codes it may carry (the body is always ApiError).
 * The document shows the codes in the response's description and as `x-error-codes`.
 */
export function errorAnswer(...codes: string[]): TSchema {
  const schema = Type.Object(ApiError.properties, { description: codes.join(', ') })
  errorCodes.set(schema, codes)
  return schema
}
/** `{403: errorAnswer(...), 404: errorAnswer(...)}` from `{403: ['NOT_A_MEMBER'], 404: [...]}`. */
export function errorAnswers(by: Record<number, string[]>): Record<number, TSchema> {
  return Object.fromEntries(Object.entries(by).map(([status, codes]) => [status, errorAnswer(...codes)]))
}

export interface OpenApiOptions {
  info: { title: string; version: string; description: string }
  servers: { url: string; description?: string }[]
  tags: { name: string; description: string }[]
  securitySchemes: Record<string, JsonObject>
  /** Named schemas: wherever one of these objects appears, the document says `$ref: #/components/schemas/<name>`. */
  components: Record<string, unknown>
  /** Error answers a route may give beyond those it declares (authentication, parsing, validation), by status. */
  implicitErrors(route: RouteLike): Record<number, string[]>
}

const isSchema = (v: unknown): v is TSchema => typeof v === 'object' && v !== null && Kind in v

const REASONS: Record<string, string> = {
  '101': 'Switching Protocols',
  '200': 'OK',
  '201': 'Created',
  '204': 'No Content',
  '400': 'Bad Request',
  '401': 'Unauthorized',
  '403': 'Forbidden',
  '404': 'Not Found',
  '405': 'Method Not Allowed',
  '409': 'Conflict',
  '413': 'Content Too Large',
  '422': 'Unprocessable Content',
  '426': 'Upgrade Required',
  '429': 'Too Many Requests',
  '500': 'Internal Server Error',
  '503': 'Service Unavailable',
}

/** Builds the document. Every route of `routes` appears unless its detail says `hide`. */
export function openApiDocument(routes: readonly RouteLike[], opts: OpenApiOptions): JsonObject {
  const names = new Map<object, string>()
  for (const [name, value] of Object.entries(opts.components)) if (isSchema(value) && !names.has(value)) names.set(value, name)
  if (!names.has(ApiError)) names.set(ApiError, 'ApiError')
  const used = new Map<string, TSchema>()
  /** `Type.Optional(X)` is a copy of X with one more symbol: the name of X, when X is named. */
  const optionalOf = (schema: object): string | undefined => {
    const keys = Reflect.ownKeys(schema).filter((k) => k !== OptionalKind)
    for (const [named, name] of names) {
      const namedKeys = Reflect.ownKeys(named)
      if (namedKeys.length === keys.length && keys.every((k) => (schema as Record<PropertyKey, unknown>)[k] === (named as Record<PropertyKey, unknown>)[k])) return name
    }
    return undefined
  }

  /**
   * A TypeBox schema as plain JSON Schema 2020-12 (what OpenAPI 3.1 uses): named schemas become references, a
   * union of string literals becomes an `enum`, TypeBox's symbols are dropped.
   */
  const json = (schema: unknown, top = false): Json => {
    if (Array.isArray(schema)) return schema.map((s) => json(s))
    if (typeof schema !== 'object' || schema === null) return schema as Json
    const name = names.get(schema) ?? (OptionalKind in schema ? optionalOf(schema) : undefined)
    if (name !== undefined && !top) {
      if (!used.has(name)) used.set(name, [...names].find(([, n]) => n === name)![0] as TSchema)
      return { $ref: `#/components/schemas/${name}` }
    }
    const s = schema as Record<string, unknown>
    const literals = Array.isArray(s.anyOf) ? (s.anyOf as Record<string, unknown>[]) : undefined
    if (literals?.length && literals.every((m) => typeof m.const === 'string' && Object.keys(m).every((k) => k === 'const' || k === 'type'))) {
      const out: JsonObject = { type: 'string', enum: literals.map((m) => m.const as string) }
      if (typeof s.description === 'string') out.description = s.description
      return out
    }
    const out: JsonObject = {}
    for (const [k, v] of Object.entries(s)) if (v !== undefined && typeof v !== 'function') out[k] = SCHEMA_MAPS.has(k) ? mapValues(v, json) : json(v)
    return out
  }

  const paths: Record<string, JsonObject> = {}
  for (const route of routes) {
    const detail = (route.hooks.detail ?? {}) as RouteDoc
    if (detail.hide) continue
    const ws = route.method === 'WS'
    const method = ws ? 'get' : route.method.toLowerCase()
    const path = route.path.replace(/:([^/]+)/g, '{$1}')
    const op: JsonObject = {}
    if (detail.tags) op.tags = detail.tags
    if (detail.summary) op.summary = detail.summary
    if (detail.description) op.description = detail.description
    op.operationId = detail.operationId ?? operationId(method, route.path)
    const parameters = [...params('path', route.hooks.params, json), ...params('query', route.hooks.query, json)]
    if (parameters.length) op.parameters = parameters
    const body = route.hooks.body
    if (isSchema(body)) {
      op.requestBody = {
        required: body[OptionalKind] !== 'Optional',
        content: { 'application/json': { schema: json(body) } },
      }
    }
    const responses: Record<string, JsonObject> = {}
    if (ws) responses['101'] = { description: 'Switching Protocols: the connection is a WebSocket from here on (RFC 6455)' }
    for (const [status, schema] of Object.entries(responseMap(route.hooks.response))) responses[status] = answer(status, schema, json)
    for (const [status, codes] of Object.entries(opts.implicitErrors(route))) {
      const declared = responses[status]?.['x-error-codes']
      const all = [...new Set([...(Array.isArray(declared) ? (declared as string[]) : []), ...codes])]
      responses[status] = answer(status, errorAnswer(...all), json)
    }
    op.responses = Object.fromEntries(Object.entries(responses).sort(([a], [b]) => Number(a) - Number(b)))
    op.security = detail.security ?? []
    if (detail.websocket) op['x-websocket'] = { client: json(detail.websocket.client), server: { oneOf: detail.websocket.server.map((s) => json(s)) } }
    ;(paths[path] ??= {})[method] = op
  }

  const schemas: Record<string, Json> = {}
  // Emitting a component may reference others: repeat until every referenced one is emitted.
  for (let done = 0; done < used.size; ) {
    for (const [name, schema] of [...used]) if (!(name in schemas)) schemas[name] = json(schema, true)
    done = Object.keys(schemas).length
  }

  return {
    openapi: OPENAPI_VERSION,
    info: opts.info,
    servers: opts.servers,
    tags: opts.tags,
    paths: Object.fromEntries(Object.entries(paths).sort(([a], [b]) => a.localeCompare(b))),
    components: {
      schemas: Object.fromEntries(Object.entries(schemas).sort(([a], [b]) => a.localeCompare(b))),
      securitySchemes: opts.securitySchemes,
    },
  } as JsonObject
}

/** Keys whose value maps names to schemas (not a schema itself). */
const SCHEMA_MAPS = new Set(['properties', 'patternProperties', '$defs', 'dependentSchemas'])
const mapValues = (v: unknown, f: (x: unknown) => Json): Json =>
  Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, f(x)])) as JsonObject

function operationId(method: string, path: string): string {
  const words = path.split('/').filter(Boolean).map((seg) => seg.replace(/^:/, 'by_'))
  return [method, ...words].join('_').replace(/[^A-Za-z0-9]+(.)/g, (_, c: string) => c.toUpperCase())
}

function params(where: 'path' | 'query', schema: unknown, json: (s: unknown) => Json): JsonObject[] {
  if (!isSchema(schema) || !schema.properties) return []
  const required = new Set<string>(schema.required ?? [])
  return Object.entries(schema.properties as Record<string, TSchema>).map(([name, s]) => {
    const p: JsonObject = { name, in: where, required: where === 'path' || required.has(name), schema: json(s) }
    if (typeof s.description === 'string') p.description = s.description
    return p
  })
}

/** Elysia's `response` option: one schema (for 200) or a map of status → schema. */
function responseMap(response: unknown): Record<string, TSchema> {
  if (!response) return {}
  if (isSchema(response)) return { '200': response }
  return response as Record<string, TSchema>
}

function answer(status: string, schema: TSchema, json: (s: unknown) => Json): JsonObject {
  const codes = errorCodes.get(schema)
  if (codes) {
    return {
      description: `${REASONS[status] ?? 'Error'}: ${codes.join(', ')}`,
      'x-error-codes': [...codes],
      content: { 'application/json': { schema: json(ApiError) } },
    }
  }
  // A string answer is text: its media type is the schema's contentMediaType (JSON Schema 2020-12 §8.4), else text/plain.
  const media = schema.type === 'string' ? ((schema.contentMediaType as string | undefined) ?? 'text/plain') : 'application/json'
  const out: JsonObject = { description: REASONS[status] ?? `Status ${status}` }
  if (typeof schema.description === 'string') out.description = `${out.description}: ${schema.description}`
  out.content = { [media]: { schema: json(schema) } }
  return out
}
