// The OpenAPI generator as a pure function: a route table in, a document out.
import { describe, expect, test } from 'bun:test'
import { Type } from '@sinclair/typebox'
import { errorAnswers, openApiDocument, type RouteLike } from './openapi.ts'

const Id = Type.String({ pattern: '^[0-9a-f]{4}$', description: 'four hex digits' })
const Kind = Type.Union([Type.Literal('a'), Type.Literal('b')])
const Thing = Type.Object({ id: Id, kind: Kind, note: Type.Optional(Kind) })
const Input = Type.Object({ kind: Kind })

const opts = (routes: RouteLike[], implicit: Record<number, string[]> = {}) =>
  openApiDocument(routes, {
    info: { title: 't', version: '1', description: 'd' },
    servers: [{ url: '/' }],
    tags: [{ name: 'x', description: 'x' }],
    securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
    components: { Id, Kind, Thing, Input, NotASchema: 42 },
    implicitErrors: () => implicit,
  }) as any

describe('openApiDocument', () => {
  test('named schemas become references wherever they appear, and only the used ones are components', () => {
    const doc = opts([{ method: 'GET', path: '/things/:id', hooks: { params: Type.Object({ id: Id }), response: { 200: Thing } } }])
    const op = doc.paths['/things/{id}'].get
    expect(op.parameters).toEqual([{ name: 'id', in: 'path', required: true, schema: { $ref: '#/components/schemas/Id' }, description: 'four hex digits' }])
    expect(op.responses['200'].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/Thing' })
    expect(Object.keys(doc.components.schemas).sort()).toEqual(['Id', 'Kind', 'Thing'])
    // A union of string literals is an enum; an optional copy of a named schema is still that schema.
    expect(doc.components.schemas.Kind).toEqual({ type: 'string', enum: ['a', 'b'] })
    expect(doc.components.schemas.Thing.properties).toEqual({ id: { $ref: '#/components/schemas/Id' }, kind: { $ref: '#/components/schemas/Kind' }, note: { $ref: '#/components/schemas/Kind' } })
    expect(doc.components.schemas.Thing.required).toEqual(['id', 'kind'])
  })

  test('a body is application/json, required unless the schema is optional; every operation states its security', () => {
    const doc = opts([
      { method: 'POST', path: '/a', hooks: { body: Input, response: { 201: Thing }, detail: { security: [{ bearer: [] }], operationId: 'makeA' } } },
      { method: 'POST', path: '/b', hooks: { body: Type.Optional(Input), response: { 200: Thing } } },
    ])
    expect(doc.paths['/a'].post).toMatchObject({
      operationId: 'makeA',
      security: [{ bearer: [] }],
      requestBody: { required: true, content: { 'application/json': { schema: { $ref: '#/components/schemas/Input' } } } },
    })
    expect(doc.paths['/b'].post).toMatchObject({ operationId: 'postB', security: [], requestBody: { required: false, content: { 'application/json': { schema: { $ref: '#/components/schemas/Input' } } } } })
  })

  test('error answers carry their codes; implicit ones merge with declared ones', () => {
    const doc = opts([{ method: 'GET', path: '/x', hooks: { response: { 200: Thing, ...errorAnswers({ 404: ['X_NOT_FOUND'], 400: ['BAD_X'] }) } } }], { 400: ['VALIDATION'], 500: ['INTERNAL'] })
    const r = doc.paths['/x'].get.responses
    expect(Object.keys(r)).toEqual(['200', '400', '404', '500'])
    expect(r['400']).toEqual({
      description: 'Bad Request: BAD_X, VALIDATION',
      'x-error-codes': ['BAD_X', 'VALIDATION'],
      content: { 'application/json': { schema: { $ref: '#/components/schemas/ApiError' } } },
    })
    expect(r['404']['x-error-codes']).toEqual(['X_NOT_FOUND'])
    expect(doc.components.schemas.ApiError).toMatchObject({ type: 'object', required: ['error'] })
  })

  test('a WebSocket route is a GET answering 101, with its messages; hidden routes are left out; text answers keep their media type', () => {
    const doc = opts([
      { method: 'WS', path: '/live', hooks: { detail: { summary: 'live', websocket: { client: Input, server: [Thing] } } } },
      { method: 'GET', path: '/secret', hooks: { detail: { hide: true } } },
      { method: 'GET', path: '/page', hooks: { response: { 200: Type.String({ contentMediaType: 'text/html' }) } } },
    ])
    expect(Object.keys(doc.paths)).toEqual(['/live', '/page'])
    expect(doc.paths['/live'].get.responses['101'].description).toContain('Switching Protocols')
    expect(doc.paths['/live'].get['x-websocket']).toEqual({ client: { $ref: '#/components/schemas/Input' }, server: { oneOf: [{ $ref: '#/components/schemas/Thing' }] } })
    expect(Object.keys(doc.paths['/page'].get.responses['200'].content)).toEqual(['text/html'])
    expect(JSON.stringify(doc)).not.toContain('"ws"')
  })
})
