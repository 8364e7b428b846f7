// The contract check itself (test/contract.ts) must be able to fail: a fake control server that serves the real
// document but answers wrongly is caught on every kind of mistake, and a right answer passes.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { takeViolations, watchControl } from '../contract.ts'
import { startServer } from './helpers.ts'

let doc: string
let fake: ReturnType<typeof Bun.serve>
const answers = new Map<string, () => Response>()
beforeAll(async () => {
  const real = await startServer()
  doc = await (await fetch(real.base + '/openapi/json')).text()
  await real.stop()
  fake = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    fetch(req, server) {
      const url = new URL(req.url)
      if (url.pathname === '/openapi/json') return new Response(doc, { headers: { 'content-type': 'application/json' } })
      if (url.pathname === '/ws' && server.upgrade(req, { data: undefined })) return undefined
      return answers.get(`${req.method} ${url.pathname}`)?.() ?? new Response('nope', { status: 500 })
    },
    websocket: {
      open(ws) {
        ws.send(JSON.stringify({ type: 'pong' }))
        ws.send(JSON.stringify({ type: 'hello', peer_id: 'not-an-id' }))
      },
      message() {},
    },
  })
  watchControl(`http://127.0.0.1:${fake.port}`)
})
afterAll(() => {
  takeViolations()
  fake.stop(true)
})

const json = (body: unknown, status = 200, headers: Record<string, string> = {}) => () =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } })
const err = (code: string) => ({ error: { code, message: 'x' } })

describe('the contract check', () => {
  test('passes answers that fit the document', async () => {
    answers.set('GET /health', json({ status: 'ok' }))
    answers.set('GET /parties/abcdefabcdef', json(err('NOT_A_MEMBER'), 403))
    answers.set('GET /nowhere', json(err('NOT_FOUND'), 404))
    answers.set('PUT /parties', json(err('METHOD_NOT_ALLOWED'), 405, { allow: 'POST' }))
    for (const [method, path] of [['GET', '/health'], ['GET', '/parties/abcdefabcdef'], ['GET', '/nowhere'], ['PUT', '/parties']])
      expect((await fetch(`http://127.0.0.1:${fake.port}${path}`, { method })).status).toBeLessThan(500)
    expect(takeViolations()).toEqual([])
  })

  test.each([
    ['a body of the wrong shape', 'GET /health', json({ status: 'fine' }), /GET \/health → 200: .*must be equal to constant/],
    ['an undocumented status', 'GET /parties/abcdefabcdef', json(err('TEAPOT'), 418), /status 418 is not documented for GET \/parties\/\{party_id\}/],
    ['an error code the route does not list', 'GET /parties/abcdefabcdef', json(err('BANNED'), 403), /error code BANNED is not one of NOT_A_MEMBER/],
    ['an error that is not the error shape', 'GET /parties/abcdefabcdef', json({ message: 'no' }, 403), /must have required property 'error'/],
    ['an undocumented media type', 'GET /metrics', json({ x: 1 }), /Content-Type application\/json is not documented \(text\/plain\)/],
    ['a success on an unknown path', 'GET /nowhere', json({}), /status 200 for an undocumented path/],
    ['405 without the right Allow', 'PUT /parties', json(err('METHOD_NOT_ALLOWED'), 405, { allow: 'GET' }), /Allow: GET, but the document has POST/],
    ['a missing field deep inside', 'GET /relays', json({ relays: [{ relay_id: '0123456789abcdef' }] }), /body\/relays\/0 must have required property/],
  ])('rejects %s', async (_what, route, answer, message) => {
    const [method, path] = route.split(' ') as [string, string]
    answers.set(route, answer)
    await expect(fetch(`http://127.0.0.1:${fake.port}${path}`, { method })).rejects.toThrow(message)
    const seen = takeViolations()
    expect(seen.length).toBe(1)
    expect(seen[0]).toMatch(message)
  })

  test('checks WebSocket messages from the server: a hello without its fields is recorded, a pong is not', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${fake.port}/ws`)
    const got: string[] = []
    await new Promise<void>((resolve, reject) => {
      ws.onmessage = (e) => void (got.push(String(e.data)) === 2 && resolve())
      ws.onerror = () => reject(new Error('websocket failed'))
    })
    ws.close()
    await Bun.sleep(20)
    const seen = takeViolations()
    expect(seen.length).toBe(1)
    expect(seen[0]).toMatch(/^contract: message on \/ws: /)
  })
})
