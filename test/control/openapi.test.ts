// The OpenAPI document the server serves: complete (every route, body, answer, security), accepted by
// @readme/openapi-parser and by @redocly/cli's recommended rules, and the same document the contract check uses.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { validate } from '@readme/openapi-parser'
import { apiDocument } from '../../src/control/app.ts'
import { startServer, type TestServer } from './helpers.ts'

const REPO = join(import.meta.dir, '..', '..')
let s: TestServer
let doc: any
beforeAll(async () => {
  s = await startServer()
  const r = await fetch(s.base + '/openapi/json')
  expect(r.headers.get('content-type')).toBe('application/json')
  doc = await r.json()
})
afterAll(() => s.stop())

const operations = () =>
  Object.entries(doc.paths as Record<string, Record<string, any>>).flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => ({ path, method, op })))

describe('the served document', () => {
  test('is the one generated from the app’s own routes, and lists every route but the page’s assets', () => {
    expect(doc).toEqual(JSON.parse(JSON.stringify(apiDocument(s.app.routes))))
    const listed = new Set(operations().map(({ path, method }) => `${method.toUpperCase()} ${path}`))
    for (const r of s.app.routes) {
      if (r.path.startsWith('/openapi/assets/')) continue
      const method = r.method === 'WS' ? 'GET' : r.method
      expect(listed).toContain(`${method} ${r.path.replace(/:([^/]+)/g, '{$1}')}`)
    }
    expect(listed.size).toBe(s.app.routes.length - 1)
    expect(doc.openapi).toMatch(/^3\.1\./)
    expect(doc.servers).toEqual([{ url: '/', description: expect.any(String) }])
  })

  test('every operation has an id, a tag, a summary, explicit security, a success answer and a schema for each body', () => {
    const tags = new Set(doc.tags.map((t: { name: string }) => t.name))
    for (const { path, method, op } of operations()) {
      const where = `${method} ${path}`
      expect(op.operationId, where).toMatch(/^[a-z][A-Za-z]+$/)
      expect(op.summary, where).toBeString()
      for (const tag of op.tags) expect(tags, where).toContain(tag)
      expect(Array.isArray(op.security), where).toBe(true)
      for (const req of op.security) for (const scheme of Object.keys(req)) expect(Object.keys(doc.components.securitySchemes), where).toContain(scheme)
      const ok = Object.keys(op.responses).filter((st) => st.startsWith('2') || st === '101')
      expect(ok.length, where).toBe(1)
      for (const [status, answer] of Object.entries(op.responses as Record<string, any>)) {
        expect(answer.description, `${where} ${status}`).toBeString()
        if (status !== '101') expect(Object.keys(answer.content ?? {}).length, `${where} ${status} has no content`).toBe(1)
      }
      if (op.requestBody) expect(Object.keys(op.requestBody.content), where).toEqual(['application/json'])
    }
    // The bodies the server validates are in the document, not empty objects.
    const create = doc.paths['/parties'].post
    expect(create.requestBody).toEqual({ required: true, content: { 'application/json': { schema: { $ref: '#/components/schemas/CreatePartyRequest' } } } })
    expect(doc.components.schemas.CreatePartyRequest.required).toEqual(['name'])
    expect(doc.paths['/parties/{party_id}/join'].post.requestBody.required).toBe(false)
  })

  test('security per route: bearer, the relay secret, none on the public routes, three ways for the WebSocket', () => {
    expect(doc.components.securitySchemes.relaySecret).toMatchObject({ type: 'apiKey', in: 'header', name: 'X-Relay-Secret' })
    expect(doc.paths['/parties'].post.security).toEqual([{ bearer: [] }])
    expect(doc.paths['/relays'].post.security).toEqual([{ relaySecret: [] }])
    expect(doc.paths['/relays/{relay_id}/heartbeat'].post.security).toEqual([{ relaySecret: [] }])
    expect(doc.paths['/relays'].get.security).toEqual([{ bearer: [] }])
    for (const p of ['/', '/health', '/metrics', '/auth/challenge', '/auth/register', '/openapi/json']) {
      const op = doc.paths[p].get ?? doc.paths[p].post
      expect(op.security, p).toEqual([])
    }
    expect(doc.paths['/ws'].get.security).toEqual([{ bearer: [] }, { wsProtocol: [] }, { wsQuery: [] }])
  })

  test('errors: each answer names its codes, and they are the codes the server gives', () => {
    const join = doc.paths['/parties/{party_id}/join'].post.responses
    expect(join['403']['x-error-codes']).toEqual(['BANNED', 'WRONG_PASSWORD'])
    expect(join['401']['x-error-codes']).toEqual(['UNAUTHORIZED', 'INVALID_TOKEN', 'TOKEN_EXPIRED'])
    expect(join['400']['x-error-codes']).toEqual(['VALIDATION', 'INVALID_JSON'])
    expect(join['403'].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/ApiError' })
    expect(doc.paths['/relays'].post.responses['401']['x-error-codes']).toEqual(['RELAY_SECRET_REQUIRED', 'INVALID_RELAY_SECRET'])
    expect(doc.paths['/parties/{party_id}/relay'].post.responses['503']['x-error-codes']).toEqual(['NO_RELAY'])
  })

  test('GET /ws: a GET answering 101 (or 401, 426), with the messages of both sides', () => {
    const ws = doc.paths['/ws'].get
    expect(Object.keys(ws.responses)).toEqual(['101', '400', '401', '426', '500'])
    expect(ws['x-websocket']).toEqual({
      client: { $ref: '#/components/schemas/LiveRequest' },
      server: { oneOf: [{ $ref: '#/components/schemas/LiveMessage' }, { $ref: '#/components/schemas/LiveReply' }] },
    })
    const kinds = doc.components.schemas.LiveMessage.anyOf.map((m: any) => m.properties.type.const)
    expect(kinds).toEqual(['hello', 'peer_joined', 'peer_updated', 'peer_left', 'party_deleted', 'signal'])
  })

  test('relay tickets: the answer, the relay_offer signal data and what the relay checks mac1 against', () => {
    expect(doc.paths['/parties/{party_id}/relay'].post.responses['200'].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/RelayOffer' })
    const offer = doc.components.schemas.RelayOffer
    expect(offer.required).toEqual(['session_id', 'side', 'ticket', 'expires_at', 'relay', 'peer_id'])
    expect(offer.properties.side).toMatchObject({ type: 'string', enum: ['a', 'b'] })
    expect(offer.properties.ticket.description).toContain('base64url without padding')
    expect(offer.properties.ticket.description).toContain('mac1')
    expect(offer.properties.ticket.description).toContain('registered')
    expect(offer.properties.relay.required).toEqual(['relay_id', 'public_ip', 'port', 'region'])
    // A relay_offer signal's data is a RelayOffer, a punch's is PunchData.
    const known = doc.components.schemas.KnownSignal.anyOf
    expect(known.map((k: any) => [k.properties.type.const, k.properties.data])).toEqual([
      ['punch', { $ref: '#/components/schemas/PunchData' }],
      ['relay_offer', { $ref: '#/components/schemas/RelayOffer' }],
    ])
  })
})

describe('validators', () => {
  test('@readme/openapi-parser accepts it as OpenAPI 3.1', async () => {
    const result = await validate(structuredClone(doc))
    expect(result).toMatchObject({ valid: true, specification: 'OpenAPI' })
  })

  test('@redocly/cli lint with the recommended rules: 0 errors, and only the warnings this API cannot avoid', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lanrage-openapi-'))
    try {
      const file = join(dir, 'openapi.json')
      writeFileSync(file, JSON.stringify(doc, null, 2))
      const run = Bun.spawnSync(['node', join(REPO, 'node_modules', '@redocly', 'cli', 'bin', 'cli.js'), 'lint', file, '--format=json'], {
        env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NO_COLOR: '1' },
        cwd: dir,
      })
      const out = JSON.parse(run.stdout.toString()) as { totals: { errors: number; warnings: number }; problems: { ruleId: string; severity: string; message: string; location: { pointer: string }[] }[] }
      expect(out.problems.filter((p) => p.severity === 'error')).toEqual([])
      expect(out.totals.errors).toBe(0)
      expect(run.exitCode).toBe(0)
      const warnings = out.problems.map((p) => `${p.ruleId} ${p.location[0]?.pointer}`).sort()
      expect(warnings).toEqual([
        // The project publishes no license to name.
        'info-license #/info',
        // The WebSocket messages are referenced from x-websocket, which the linter does not follow.
        'no-unused-components #/components/schemas/LiveMessage',
        'no-unused-components #/components/schemas/LiveReply',
        'no-unused-components #/components/schemas/LiveRequest',
        // A WebSocket upgrade succeeds with 101, not 2xx.
        'operation-2xx-response #/paths/~1ws/get/responses',
      ])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, 60_000)
})
