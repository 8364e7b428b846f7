/**
 * The API contract, checked on every response the test suite receives from a control server (preloaded by
 * bunfig.toml for every test file).
 *
 * `watchControl(base)` (called by every helper that starts a control server, in-process or as a process) marks an
 * origin. From then on each response of `fetch` from that origin, and each WebSocket message from it, is checked
 * against the OpenAPI document that very server serves at /openapi/json:
 *
 * - the route: method + path must match a documented operation; anything else must be the documented
 *   fallbacks (404 NOT_FOUND for an unknown path, 405 METHOD_NOT_ALLOWED with Allow for a known path, 413 for an
 *   oversized body, 204 for a CORS preflight);
 * - the status must be listed for that operation, the Content-Type must be one it lists for that status, and the
 *   body must validate against its schema (JSON Schema 2020-12, Ajv); an error's code must be one of the
 *   operation's `x-error-codes` for that status;
 * - WebSocket messages from the server must match the `/ws` operation's `x-websocket.server` schemas.
 *
 * A violation makes that `fetch` reject (the test fails where it happened), and is also recorded: a violation
 * swallowed by a test (a polling loop's `.catch`) or seen on a WebSocket fails the run in the global afterAll.
 */
import { afterAll } from 'bun:test'
import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020.js'

type Doc = {
  paths: Record<string, Record<string, Operation>>
}
type Operation = {
  responses: Record<string, { content?: Record<string, { schema: unknown }>; 'x-error-codes'?: string[] }>
  'x-websocket'?: { server: unknown }
}

class Contract {
  private readonly ajv = new Ajv2020({ strict: false, allErrors: false, validateFormats: false })
  private readonly validators = new Map<string, ValidateFunction>()
  private readonly templates: { template: string; re: RegExp; literals: number }[]

  constructor(readonly doc: Doc) {
    this.ajv.addSchema(doc as object, 'openapi')
    this.templates = Object.keys(doc.paths).map((template) => ({
      template,
      re: new RegExp('^' + template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^}/]+\}/g, '[^/]+') + '$'),
      literals: template.split('/').filter((s) => s && !s.startsWith('{')).length,
    }))
  }

  /** The documented path template of a request path (literal segments win over parameters, like the router). */
  template(path: string): string | undefined {
    const p = path.length > 1 ? path.replace(/\/$/, '') : path
    return this.templates.filter((t) => t.re.test(p)).sort((a, b) => b.literals - a.literals)[0]?.template
  }

  /** Validates `value` against the schema at a JSON pointer into the document; undefined when it fits. */
  validate(pointer: string, value: unknown): string | undefined {
    let v = this.validators.get(pointer)
    if (!v) {
      v = this.ajv.getSchema(`openapi#${pointer}`) as ValidateFunction | undefined
      if (!v) return `no schema at ${pointer}`
      this.validators.set(pointer, v)
    }
    if (v(value)) return undefined
    return this.ajv.errorsText(v.errors, { dataVar: 'body' })
  }

  /** What is wrong with one HTTP response, or undefined. */
  checkResponse(method: string, path: string, status: number, contentType: string, allow: string | null, text: string): string | undefined {
    const media = contentType.split(';')[0]!.trim().toLowerCase()
    const json = (): { value?: unknown; error?: string } => {
      try {
        return { value: JSON.parse(text) }
      } catch {
        return { error: `body is not JSON: ${JSON.stringify(text.slice(0, 80))}` }
      }
    }
    const apiError = (codes: string[]) => {
      if (media !== 'application/json') return `error answer has Content-Type ${JSON.stringify(contentType)}`
      const body = json()
      if (body.error) return body.error
      const bad = this.validate('/components/schemas/ApiError', body.value)
      if (bad) return bad
      const code = (body.value as { error: { code: string } }).error.code
      return codes.includes(code) ? undefined : `error code ${code} is not one of ${codes.join(', ')}`
    }
    const template = this.template(path)
    if (!template) return status === 404 || status === 413 ? apiError(['NOT_FOUND', 'PAYLOAD_TOO_LARGE']) : `status ${status} for an undocumented path`
    const ops = this.doc.paths[template]!
    const op = ops[method.toLowerCase()]
    if (!op) {
      if (method === 'OPTIONS' && status === 204) return text === '' ? undefined : 'a preflight answer has a body'
      if (status === 413) return apiError(['PAYLOAD_TOO_LARGE'])
      if (status !== 405) return `status ${status} for ${method} ${template}, which is not documented`
      if (!allow) return '405 without Allow'
      const documented = Object.keys(ops).map((m) => m.toUpperCase()).sort().join(', ')
      if (allow !== documented) return `Allow: ${allow}, but the document has ${documented}`
      return apiError(['METHOD_NOT_ALLOWED'])
    }
    const answer = op.responses[String(status)]
    if (!answer) return `status ${status} is not documented for ${method} ${template} (documented: ${Object.keys(op.responses).join(', ')})`
    const codes = answer['x-error-codes']
    if (codes) return apiError(codes)
    if (!answer.content) return text === '' ? undefined : `status ${status} is documented without a body`
    if (!(media in answer.content)) return `Content-Type ${media} is not documented (${Object.keys(answer.content).join(', ')})`
    const pointer = `/paths/${esc(template)}/${method.toLowerCase()}/responses/${status}/content/${esc(media)}/schema`
    if (media === 'application/json') {
      const body = json()
      return body.error ?? this.validate(pointer, body.value)
    }
    return this.validate(pointer, text)
  }

  /** What is wrong with one message the server sent on a WebSocket, or undefined. */
  checkMessage(path: string, data: unknown): string | undefined {
    const template = this.template(path)
    const ws = template ? this.doc.paths[template]?.get?.['x-websocket'] : undefined
    if (!ws) return `WebSocket message on ${path}, which documents no messages`
    if (typeof data !== 'string') return 'binary WebSocket message (the document describes JSON text messages)'
    let value: unknown
    try {
      value = JSON.parse(data)
    } catch {
      return `WebSocket message is not JSON: ${JSON.stringify(data.slice(0, 80))}`
    }
    return this.validate(`/paths/${esc(template!)}/get/x-websocket/server`, value)
  }
}

/** JSON Pointer escaping of one reference token (RFC 6901 §4). */
const esc = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1')

const realFetch = globalThis.fetch
const RealWebSocket = globalThis.WebSocket
const contracts = new Map<string, Promise<Contract>>()
const violations: string[] = []
let checked = 0

/** Checks every response and WebSocket message from the control server at `base` from now on. */
export function watchControl(base: string): void {
  const origin = new URL(base).origin
  if (!contracts.has(origin)) contracts.set(origin, loadContract(origin))
}

/**
 * Stops checking `base` (its server stopped). Every test file runs in one process, so a port a control server had
 * may later go to a fake server of another test, which must not be held to the old server's document.
 */
export function unwatchControl(base: string): void {
  contracts.delete(new URL(base).origin)
}

// The document is fetched once per origin, when its first response is checked (the server is up by then).
function loadContract(origin: string): Promise<Contract> {
  let loaded: Promise<Contract> | undefined
  const lazy = {
    then<T>(ok: (c: Contract) => T, fail?: (e: unknown) => T) {
      loaded ??= realFetch(`${origin}/openapi/json`)
        .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`GET /openapi/json answered ${r.status}`))))
        .then((doc) => new Contract(doc as Doc))
      return loaded.then(ok, fail)
    },
  }
  return lazy as unknown as Promise<Contract>
}

/** Violations recorded so far, removed from the record (the contract's own tests take the ones they provoked). */
export function takeViolations(): string[] {
  return violations.splice(0)
}
/** How many responses and messages were checked so far. */
export function checkedCount(): number {
  return checked
}

function record(what: string): string {
  const line = `contract: ${what}`
  violations.push(line)
  return line
}

globalThis.fetch = Object.assign(
  async function checkedFetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
    const res = await realFetch(input, init)
    const url = new URL(res.url || (input instanceof Request ? input.url : String(input)))
    const contract = contracts.get(url.origin)
    if (!contract) return res
    const method = (init?.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase()
    const text = await res.clone().text()
    const problem = (await contract).checkResponse(method, url.pathname, res.status, res.headers.get('content-type') ?? '', res.headers.get('allow'), text)
    checked++
    if (problem) throw new Error(record(`${method} ${url.pathname} → ${res.status}: ${problem}`))
    return res
  },
  { preconnect: realFetch.preconnect },
) as typeof fetch

globalThis.WebSocket = class CheckedWebSocket extends RealWebSocket {
  constructor(...args: ConstructorParameters<typeof WebSocket>) {
    super(...args)
    const url = new URL(String(args[0]))
    const origin = `${url.protocol === 'wss:' ? 'https:' : 'http:'}//${url.host}`
    const contract = contracts.get(origin)
    if (!contract) return
    this.addEventListener('message', (e) => {
      void contract.then((c) => {
        const problem = c.checkMessage(url.pathname, e.data)
        checked++
        if (problem) console.error(record(`message on ${url.pathname}: ${problem}`))
      })
    })
  }
} as typeof WebSocket

afterAll(() => {
  if (checked > 0) console.error(`contract: ${checked} responses and WebSocket messages from control servers checked against their /openapi/json`)
  if (violations.length) throw new Error(`${violations.length} responses broke the API contract:\n${violations.join('\n')}`)
})
