/**
 * The control server's HTTP + WebSocket surface (Elysia). `createApp(deps)` builds the app without listening,
 * so tests and `lanrage serve` decide where it binds. Shapes: the schemas of src/shared/api.ts, served as OpenAPI at /openapi/json.
 * Route handlers only validate and translate; the rules live in ControlService.
 */
import { Elysia, t } from 'elysia'
import pkg from '../../package.json'
import type { Static } from '@sinclair/typebox'
import * as api from '../shared/api.ts'
import {
  Bans,
  Challenge,
  ChallengeRequest,
  CreatedParty,
  CreatePartyRequest,
  HeartbeatRequest,
  JoinRequest,
  Lifted,
  LeaveAnswer,
  LiveMessage,
  LiveReply,
  LiveRequest,
  LiveSignalRequest,
  MetricsText,
  PartyAnswer,
  PartyId,
  PeerAnswer,
  PeerEndpointInfo,
  PeerId,
  PeersAnswer,
  RegisterRelayRequest,
  RegisterRequest,
  RelayHeartbeatRequest,
  RelayId,
  RelayOffer,
  RelayRegistration,
  Relays,
  RelayTicketRequest,
  Region,
  Revoked,
  SendSignalRequest,
  ServiceStatus,
  SignalAnswer,
  SignalsAnswer,
  StatusOk,
  Token,
  WS_BEARER_PREFIX,
  WS_CLOSE,
  WS_PROTOCOL,
} from '../shared/api.ts'
import { apiPage } from './api-page.ts'
import { ControlError, errorPlugin, routeTable, schemaError } from './errors.ts'
import { errorAnswers, openApiDocument, type RouteDoc, type RouteLike } from './openapi.ts'
import { Metrics } from './metrics.ts'
import { clientAddress, proxyTrust } from './proxy.ts'
import { ControlService, type ControlDeps } from './service.ts'
import type { LiveSocket } from './hub.ts'

// Path parameters. Bodies and answers are the shared schemas of src/shared/api.ts, which clients validate with too.
const PartyParams = t.Object({ party_id: PartyId })
const PeerParams = t.Object({ party_id: PartyId, peer_id: PeerId })

/**
 * Bodies being read, each with its deadline, checked by one timer while any is pending (a timer per request cost
 * ~2 µs of a heartbeat's time; this costs a fraction of that). A late body is refused with 408: a body that
 * trickles in would hold the connection and the request for as long as the client likes.
 */
class BodyDeadlines {
  private readonly pending = new Set<{ deadline: number; fail: () => void }>()
  private timer: ReturnType<typeof setInterval> | undefined

  constructor(private readonly tickMs = 250) {}

  /** `read` settles with the body, or fails with 408 REQUEST_TIMEOUT at `deadline` (performance.now() time). */
  within(deadline: number, timeoutS: number, read: Promise<string>): Promise<string> {
    return new Promise((resolve, reject) => {
      const entry = { deadline, fail: () => reject(new ControlError('REQUEST_TIMEOUT', `request body not received within ${timeoutS} s`, 408)) }
      this.pending.add(entry)
      if (!this.timer) {
        this.timer = setInterval(() => this.tick(), this.tickMs)
        this.timer.unref?.()
      }
      read.then(
        (text) => (this.pending.delete(entry), resolve(text)),
        (e) => (this.pending.delete(entry), reject(e)),
      )
    })
  }

  private tick(): void {
    const now = performance.now()
    for (const e of this.pending)
      if (e.deadline <= now) {
        this.pending.delete(e)
        e.fail()
      }
    if (!this.pending.size) {
      clearInterval(this.timer)
      this.timer = undefined
    }
  }
}

/**
 * Reads a request body as text. A body with a Content-Length was already held to `limit` in onRequest, so it is
 * read in one piece (`request.text()`: no ReadableStream iteration, which cost ~35% of the CPU of a heartbeat).
 * Only a chunked body (no Content-Length) is streamed, and refused (413) as soon as it exceeds `limit` bytes.
 */
async function readAll(request: Request, limit: number): Promise<string> {
  // Checked before touching request.body: the getter alone makes Bun build the stream.
  if (request.headers.has('content-length')) return request.text()
  if (!request.body) return ''
  const chunks: Uint8Array[] = []
  let size = 0
  for await (const chunk of request.body) {
    size += chunk.byteLength
    if (size > limit) throw new ControlError('PAYLOAD_TOO_LARGE', `request body exceeds the limit of ${limit} bytes`, 413)
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}

const doc = (tag: string, operationId: string, summary: string, description?: string): RouteDoc => ({ tags: [tag], operationId, summary, ...(description ? { description } : {}) })
// Error answers a route gives beyond those every route of its kind gives (see implicitErrors).
const MEMBER = { 403: ['NOT_A_MEMBER'], 404: ['PARTY_NOT_FOUND'] }
const SELF = { 403: ['NOT_A_MEMBER', 'NOT_YOURSELF'], 404: ['PARTY_NOT_FOUND', 'PEER_NOT_FOUND'] }
const HOST = { 403: ['NOT_A_MEMBER', 'NOT_HOST'], 404: ['PARTY_NOT_FOUND'] }

/**
 * The error answers every route of a kind may give, for the document: the credential check (401), path and
 * query validation (400), body parsing (400, for every method that can carry a body) and validation (422), the
 * body size limit (413, any request), and an unexpected failure (500, logged).
 */
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])
function implicitErrors(route: RouteLike): Record<number, string[]> {
  const out: Record<number, string[]> = {}
  const add = (status: number, ...codes: string[]) => void (out[status] = [...(out[status] ?? []), ...codes])
  const security = (route.hooks.detail as RouteDoc | undefined)?.security?.[0]
  if (security && 'relaySecret' in security) add(401, 'RELAY_SECRET_REQUIRED', 'INVALID_RELAY_SECRET')
  else if (security) add(401, 'UNAUTHORIZED', 'INVALID_TOKEN', 'TOKEN_EXPIRED')
  if (route.hooks.params || route.hooks.query) add(400, 'VALIDATION')
  // Any body is parsed as JSON, also on a route that does not read it (onParse runs for every body).
  if (route.hooks.body || BODY_METHODS.has(route.method)) add(400, 'INVALID_JSON')
  if (route.hooks.body) add(422, 'VALIDATION')
  if (route.method === 'WS') add(426, 'UPGRADE_REQUIRED')
  else add(413, 'PAYLOAD_TOO_LARGE')
  add(500, 'INTERNAL')
  return out
}

/**
 * The token a WebSocket client passed as subprotocols (`Sec-WebSocket-Protocol: lanrage, bearer.<token>`): what
 * browsers and Node's WebSocket can send instead of a header, and what stays out of URLs and access logs.
 * Undefined unless both entries are offered.
 */
function protocolToken(header: string | null): string | undefined {
  if (!header) return undefined
  const offered = header.split(',').map((p) => p.trim())
  if (!offered.includes(WS_PROTOCOL)) return undefined
  return offered.find((p) => p.startsWith(WS_BEARER_PREFIX))?.slice(WS_BEARER_PREFIX.length) || undefined
}

const TITLE = 'LANrage control server'

/** The OpenAPI document of the app's routes (served at /openapi/json). */
export function apiDocument(routes: readonly RouteLike[]) {
  return openApiDocument(routes, {
    info: { title: TITLE, version: pkg.version, description: API_DESCRIPTION },
    servers: [{ url: '/', description: 'the server that serves this document' }],
    tags: [
      { name: 'service', description: 'Status, liveness, metrics and this document' },
      { name: 'auth', description: 'Registration by proof of a WireGuard key, bearer tokens' },
      { name: 'parties', description: 'Parties, their members and bans' },
      { name: 'signals', description: 'Hole-punch coordination and relay offers between members' },
      { name: 'relays', description: 'Relay tickets for members, and the relay registry (relays authenticate with X-Relay-Secret)' },
      { name: 'live', description: 'Live updates over a WebSocket' },
    ],
    securitySchemes: {
      bearer: { type: 'http', scheme: 'bearer', description: 'the token from POST /auth/register (or /auth/refresh)' },
      relaySecret: { type: 'apiKey', in: 'header', name: 'X-Relay-Secret', description: 'the secret shared by the control server and its relays (--relay-secret-file)' },
      wsProtocol: {
        type: 'apiKey',
        in: 'header',
        name: 'Sec-WebSocket-Protocol',
        description: `the bearer token as a WebSocket subprotocol: "${WS_PROTOCOL}, ${WS_BEARER_PREFIX}<token>" (browsers can send it; the server answers "${WS_PROTOCOL}")`,
      },
      wsQuery: { type: 'apiKey', in: 'query', name: 'token', description: 'the bearer token in the URL (it then shows in URLs and access logs: prefer the subprotocol)' },
    },
    components: api,
    implicitErrors,
  })
}

const API_DESCRIPTION = `The control plane of LANrage, a zero-config gaming VPN: peers register by proving their WireGuard key, create and
join parties, learn each other's endpoints, coordinate hole punching and get relay tickets.

JSON in snake_case, timestamps ISO 8601, keys standard base64 of 32 bytes (as \`wg\` prints them). Request bodies are
read as JSON whatever their Content-Type.

**Errors** are \`{"error": {"code": "SOME_CODE", "message": "what is wrong"}}\` (ApiError). Each response lists the
codes it may carry (also as \`x-error-codes\`). Any path: 404 \`NOT_FOUND\` for an unknown route, 405
\`METHOD_NOT_ALLOWED\` (with \`Allow\`) for a wrong method on a known path.

**Registration**: POST /auth/challenge with your public key, then POST /auth/register with
proof = base64(HMAC-SHA256(key = X25519(your private key, server_public_key), message = the 32 challenge bytes)).
The token authenticates every other route (\`Authorization: Bearer <token>\`); peer_id = the first 16 hex digits of
SHA-256(public key).

**Relays**: POST /parties/{party_id}/relay answers one side of a relay session (RelayOffer); the other member gets the
other side as a \`relay_offer\` signal. The ticket names both members' WireGuard keys as they registered them: the relay
forwards a side's WireGuard handshakes only when their mac1 is valid for the other side's key.

**Live updates**: GET /ws is a WebSocket (see its operation; the messages are LiveMessage, LiveRequest and LiveReply).`

export interface Control {
  app: ReturnType<typeof buildApp>
  service: ControlService
  /** The /metrics registry: `lanrage serve` adds its relay's metrics to it. */
  metrics: Metrics
}

/** Builds the app and returns it with its service (tests drive cleanup and flushes through the service). */
export function createControl(deps: ControlDeps): Control {
  const service = new ControlService(deps)
  const metrics = new Metrics()
  return { app: buildApp(deps, service, metrics), service, metrics }
}

export function createApp(deps: ControlDeps) {
  return createControl(deps).app
}

function buildApp(deps: ControlDeps, svc: ControlService, metrics: Metrics) {
  const { config, logger } = deps
  // One access line per request at debug (--log-level debug): the route template, never the path or query.
  const accessLog = logger.child('http')
  const started = new WeakMap<Request, number>()
  const deadlines = new BodyDeadlines()
  const clients = new WeakMap<Request, string | undefined>()
  const sockets = new Map<string, { peerId: string; sock: LiveSocket }>()
  // The caller of a bearer route, resolved once per request at the first route-aware stage (parse for a request
  // with a body, else transform): both run before validation, so an anonymous caller gets 401 whatever its body or
  // path parameters are and learns nothing about what the route would accept.
  const callers = new WeakMap<Request, string>()
  const caller = (request: Request) => {
    let peerId = callers.get(request)
    if (peerId === undefined) callers.set(request, (peerId = svc.authenticate(request.headers.get('authorization'))))
    return peerId
  }
  // The credential each authenticated route needs, by "METHOD /path", read from the built app (the bearer and
  // relaySecret macros mark their routes' OpenAPI security). Checked in onParse too, before the body is read.
  let authRoutes: Map<string, 'bearer' | 'relaySecret'> | undefined
  const relayCaller = (request: Request) => svc.checkRelaySecret(request.headers.get('x-relay-secret'))
  let routes = routeTable([])
  let allRoutes: () => readonly RouteLike[] = () => []
  // Behind a reverse proxy every request comes from the proxy: the client is what our proxies appended to
  // X-Forwarded-For, read from the right (src/control/proxy.ts); what the client wrote itself is never taken.
  const trust = proxyTrust(config)
  const clientIp = (server: { requestIP(r: Request): { address: string } | null } | null, request: Request) =>
    clientAddress(server?.requestIP(request)?.address, request.headers.get('x-forwarded-for'), trust)

  const app = new Elysia({
    // Bun refuses bodies far above the limit itself; declared lengths (onRequest) and chunked bodies (readAll)
    // over maxBodyBytes get our 413 with the error shape.
    // Bun's own idle timeout (seconds; it also ends a connection whose request is still pending) stays above the
    // body timeout, so a slow body gets our 408 rather than a silent close.
    serve: { maxRequestBodySize: Math.max(1 << 20, config.maxBodyBytes * 16), idleTimeout: Math.min(255, Math.max(10, Math.ceil(config.bodyTimeoutS) + 5)) },
    // A client that stops reading is disconnected once 1 MiB is queued for it (it reconnects and re-reads the
    // party) instead of the server buffering events for it without bound.
    websocket: { idleTimeout: 120, maxPayloadLength: config.maxBodyBytes, backpressureLimit: 1 << 20, closeOnBackpressureLimit: true },
  })
    .use(errorPlugin(logger, (path) => routes.methodsFor(path)))
    .macro({
      /** The route needs `Authorization: Bearer <token>`; the handler gets the caller as `peerId`. */
      bearer: {
        detail: { security: [{ bearer: [] }] },
        transform: ({ request }) => void caller(request),
        resolve: ({ request }) => ({ peerId: caller(request) }),
      },
      /** The route is for relays: `X-Relay-Secret` must match, checked before the body or path is looked at. */
      relaySecret: {
        detail: { security: [{ relaySecret: [] }] },
        transform: ({ request }) => relayCaller(request),
      },
    })
    .onRequest(({ request, server }) => {
      started.set(request, performance.now())
      // Read now: once the response is sent, Bun no longer knows the peer's address.
      if (accessLog.enabled('debug')) clients.set(request, clientIp(server, request))
      const len = Number(request.headers.get('content-length') ?? 0)
      if (len > config.maxBodyBytes) throw new ControlError('PAYLOAD_TOO_LARGE', `request body of ${len} bytes exceeds the limit of ${config.maxBodyBytes}`, 413)
    })
    // Every body is JSON, whatever Content-Type says (curl -d sends a form type): a body that is not JSON is a
    // clear 400 instead of being read as an empty form and passing validation by accident.
    .onParse({ as: 'global' }, async ({ request, route }) => {
      const auth = authRoutes?.get(`${request.method} ${route}`)
      if (auth === 'bearer') caller(request)
      else if (auth === 'relaySecret') relayCaller(request)
      const t0 = started.get(request) ?? performance.now()
      const text = await deadlines.within(t0 + config.bodyTimeoutS * 1000, config.bodyTimeoutS, readAll(request, config.maxBodyBytes))
      if (text === '') return undefined
      try {
        return JSON.parse(text)
      } catch {
        throw new ControlError('INVALID_JSON', 'request body is not valid JSON', 400)
      }
    })
    .onAfterResponse(({ request, route, set }) => {
      const t0 = started.get(request)
      const seconds = t0 === undefined ? 0 : (performance.now() - t0) / 1000
      // Elysia reports a WebSocket upgrade it made as 200; refused before routing (413, 426), it has no route.
      let status = typeof set.status === 'number' ? set.status : 200
      if (status === 200 && request.headers.get('upgrade')?.toLowerCase() === 'websocket') status = 101
      const template = route || routes.templateFor(new URL(request.url).pathname) || 'unmatched'
      metrics.observe(request.method, template, status, seconds)
      if (accessLog.enabled('debug'))
        accessLog.debug('request', { method: request.method, route: template, status, duration_ms: Math.round(seconds * 1e6) / 1000, client: clients.get(request) })
    })
    .use(apiPage(TITLE, () => apiDocument(allRoutes())))

    // ---- service
    .get('/', () => ({ service: 'lanrage-control' as const, version: pkg.version, status: 'ok' as const, ...svc.stats() }), {
      response: { 200: ServiceStatus },
      detail: doc('service', 'getStatus', 'Service status with counts'),
    })
    .get(
      '/health',
      () => {
        svc.repo.countRelays() // touches the database: a broken file answers 500, not "ok"
        return { status: 'ok' as const }
      },
      { response: { 200: StatusOk }, detail: doc('service', 'getHealth', 'Liveness (touches the database)') },
    )
    .get(
      '/metrics',
      ({ set }) => {
        const s = svc.stats()
        set.headers['content-type'] = 'text/plain; version=0.0.4; charset=utf-8'
        return metrics.render({
          lanrage_parties: { help: 'Parties with at least one member.', value: s.parties },
          lanrage_peers: { help: 'Distinct peers that are members of a party.', value: s.peers },
          lanrage_relays: { help: 'Registered relays.', value: s.relays },
          lanrage_ws_clients: { help: 'Open WebSocket connections.', value: s.ws_clients },
        })
      },
      { response: { 200: MetricsText }, detail: doc('service', 'getMetrics', 'Prometheus metrics') },
    )

    // ---- auth
    .post(
      '/auth/challenge',
      ({ body, server, request }) => {
        svc.checkRate(clientIp(server, request))
        return svc.challenge(body.public_key)
      },
      {
        body: ChallengeRequest,
        response: { 200: Challenge, ...errorAnswers({ 422: ['INVALID_KEY'], 429: ['RATE_LIMITED'] }) },
        detail: doc('auth', 'createChallenge', 'Ask for a registration challenge', 'Rate limited per source address (--register-rate-per-min, with challenges and registrations together).'),
      },
    )
    .post(
      '/auth/register',
      ({ body, server, request }) => {
        svc.checkRate(clientIp(server, request))
        return svc.register(body)
      },
      {
        body: RegisterRequest,
        response: {
          200: Token,
          ...errorAnswers({ 401: ['INVALID_CHALLENGE', 'CHALLENGE_EXPIRED', 'INVALID_PROOF'], 422: ['INVALID_KEY', 'INVALID_PROOF'], 429: ['RATE_LIMITED'] }),
        },
        detail: doc('auth', 'register', 'Prove the private key (HMAC over the challenge), get a bearer token'),
      },
    )
    .post('/auth/refresh', ({ request }) => svc.refresh(request.headers.get('authorization')), {
      bearer: true,
      response: { 200: Token },
      detail: doc('auth', 'refreshToken', 'New token; the presented one is revoked', 'WebSockets opened with the old token are closed (4001 "token refreshed").'),
    })
    .post('/auth/revoke', ({ request }) => svc.revoke(request.headers.get('authorization')), {
      bearer: true,
      response: { 200: Revoked },
      detail: doc('auth', 'revokeToken', 'Revoke the presented token', 'WebSockets opened with it are closed (4001 "token revoked").'),
    })

    // ---- parties
    .post(
      '/parties',
      async ({ body, peerId, set }) => {
        const out = await svc.createParty(peerId, body)
        set.status = 201
        return out
      },
      {
        body: CreatePartyRequest,
        response: { 201: CreatedParty, ...errorAnswers({ 409: ['TOO_MANY_PARTIES'], 422: ['VALIDATION'], 429: ['BUSY'] }) },
        bearer: true,
        detail: doc('parties', 'createParty', 'Create a party; the caller is its host at .0.1'),
      },
    )
    .post('/parties/:party_id/join', ({ body, params, peerId }) => svc.joinParty(peerId, params.party_id, body ?? {}), {
      params: PartyParams,
      body: t.Optional(JoinRequest),
      response: {
        200: PartyAnswer,
        ...errorAnswers({ 403: ['BANNED', 'WRONG_PASSWORD'], 404: ['PARTY_NOT_FOUND'], 409: ['PARTY_FULL', 'SUBNET_FULL'], 429: ['RATE_LIMITED', 'BUSY'] }),
      },
      bearer: true,
      detail: doc('parties', 'joinParty', 'Join (or rejoin, keeping the address)', 'A member joining again updates what it reports (peer_info) and changes nothing else.'),
    })
    .get('/parties/:party_id', ({ params, peerId }) => svc.getParty(peerId, params.party_id), {
      params: PartyParams,
      response: { 200: PartyAnswer, ...errorAnswers(MEMBER) },
      bearer: true,
      detail: doc('parties', 'getParty', 'A party with its members (members only)'),
    })
    .get('/parties/:party_id/peers', ({ params, peerId }) => svc.getPeers(peerId, params.party_id), {
      params: PartyParams,
      response: { 200: PeersAnswer, ...errorAnswers(MEMBER) },
      bearer: true,
      detail: doc('parties', 'listPeers', 'The members (members only)'),
    })
    .get('/parties/:party_id/peers/:peer_id', ({ params, peerId }) => svc.getPeer(peerId, params.party_id, params.peer_id), {
      params: PeerParams,
      response: { 200: PeerAnswer, ...errorAnswers({ 403: ['NOT_A_MEMBER'], 404: ['PARTY_NOT_FOUND', 'PEER_NOT_FOUND'] }) },
      bearer: true,
      detail: doc('parties', 'getPeer', 'One member (members only)'),
    })
    .post('/parties/:party_id/peers/:peer_id/heartbeat', ({ params, body, peerId }) => svc.heartbeat(peerId, params.party_id, params.peer_id, body ?? undefined), {
      params: PeerParams,
      body: t.Optional(HeartbeatRequest),
      response: { 200: StatusOk, ...errorAnswers(SELF) },
      bearer: true,
      detail: doc('parties', 'heartbeat', 'Keep one’s own membership alive', 'Memory only, unless the endpoint or NAT type changed. 404 PEER_NOT_FOUND once the caller left, was removed or timed out: join again.'),
    })
    .patch('/parties/:party_id/peers/:peer_id', ({ params, body, peerId }) => svc.updatePeer(peerId, params.party_id, params.peer_id, body), {
      params: PeerParams,
      body: PeerEndpointInfo,
      response: { 200: PeerAnswer, ...errorAnswers(SELF) },
      bearer: true,
      detail: doc('parties', 'updatePeer', 'Update one’s own endpoints and NAT type'),
    })
    .delete('/parties/:party_id/peers/:peer_id', ({ params, peerId }) => svc.leave(peerId, params.party_id, params.peer_id), {
      params: PeerParams,
      response: { 200: LeaveAnswer, ...errorAnswers({ 403: ['NOT_A_MEMBER', 'NOT_HOST'], 404: ['PARTY_NOT_FOUND', 'PEER_NOT_FOUND'] }) },
      bearer: true,
      detail: doc('parties', 'leaveParty', 'Leave, or (host) remove a member', 'A member the host removes is banned until the host lifts it. The host leaving ends the party.'),
    })

    .get('/parties/:party_id/bans', ({ params, peerId }) => svc.listBans(peerId, params.party_id), {
      params: PartyParams,
      response: { 200: Bans, ...errorAnswers(HOST) },
      bearer: true,
      detail: doc('parties', 'listBans', 'Peers the host removed (host only)'),
    })
    .delete('/parties/:party_id/bans/:peer_id', ({ params, peerId }) => svc.liftBan(peerId, params.party_id, params.peer_id), {
      params: PeerParams,
      response: { 200: Lifted, ...errorAnswers({ 403: ['NOT_A_MEMBER', 'NOT_HOST'], 404: ['PARTY_NOT_FOUND', 'BAN_NOT_FOUND'] }) },
      bearer: true,
      detail: doc('parties', 'liftBan', 'Let a removed peer join again (host only)'),
    })

    // ---- signals
    .post(
      '/parties/:party_id/signals',
      ({ params, body, peerId, set }) => {
        const out = svc.sendSignal(peerId, params.party_id, body)
        set.status = 201
        return out
      },
      {
        params: PartyParams,
        body: SendSignalRequest,
        response: { 201: SignalAnswer, ...errorAnswers({ 403: ['NOT_A_MEMBER'], 404: ['PARTY_NOT_FOUND', 'PEER_NOT_FOUND'] }) },
        bearer: true,
        detail: doc(
          'signals',
          'sendSignal',
          'Send a signal to another member',
          'Pushed over the recipient’s WebSocket, else queued for GET. Members send `punch` only, data `{at, endpoint?}` (PunchInput): ' +
            '`endpoint` is always the sender’s own public endpoint as the server knows it (filled in when left out; any other address is 422).',
        ),
      },
    )
    .get('/parties/:party_id/signals', ({ params, peerId }) => svc.drainSignals(peerId, params.party_id), {
      params: PartyParams,
      response: { 200: SignalsAnswer, ...errorAnswers(MEMBER) },
      bearer: true,
      detail: doc('signals', 'drainSignals', 'Drain one’s queued signals', 'For clients without a WebSocket: the queue is bounded (--signal-queue-max) and expires (--signal-ttl-s).'),
    })

    // ---- relay tickets
    .post('/parties/:party_id/relay', ({ params, body, peerId }) => svc.relayTickets(peerId, params.party_id, body), {
      params: PartyParams,
      body: RelayTicketRequest,
      response: { 200: RelayOffer, ...errorAnswers({ ...MEMBER, 404: ['PARTY_NOT_FOUND', 'PEER_NOT_FOUND'], 422: ['VALIDATION'], 429: ['TOO_MANY_RELAY_SESSIONS'], 503: ['NO_RELAY'] }) },
      bearer: true,
      detail: doc(
        'relays',
        'requestRelay',
        'Relay tickets for a pair of members',
        'Answers side "a" of a relay session with `peer_id`; that member gets side "b" as a `relay_offer` signal (RelayOffer). ' +
          'One session per pair of members: a new one replaces the pair’s previous one.',
      ),
    })

    // ---- relay registry (relay secret, never a peer token)
    .post('/relays', ({ body }) => svc.registerRelay(body), {
      body: RegisterRelayRequest,
      response: { 200: RelayRegistration },
      relaySecret: true,
      detail: doc('relays', 'registerRelay', 'Register a relay (X-Relay-Secret)', 'An upsert by relay_id; answers the key relay tickets are signed with.'),
    })
    .post('/relays/:relay_id/heartbeat', ({ params, body }) => svc.relayHeartbeat(params.relay_id, body), {
      params: t.Object({ relay_id: RelayId }),
      body: RelayHeartbeatRequest,
      response: { 200: StatusOk, ...errorAnswers({ 404: ['RELAY_NOT_FOUND'] }) },
      relaySecret: true,
      detail: doc('relays', 'relayHeartbeat', 'Relay load report (X-Relay-Secret)', '404 RELAY_NOT_FOUND after the relay was dropped: register again.'),
    })
    .get('/relays', () => svc.listRelays(undefined), { response: { 200: Relays }, bearer: true, detail: doc('relays', 'listRelays', 'Registered relays') })
    .get('/relays/:region', ({ params }) => svc.listRelays(params.region), {
      params: t.Object({ region: Region }),
      response: { 200: Relays },
      bearer: true,
      detail: doc('relays', 'listRelaysInRegion', 'Registered relays in one region'),
    })

    // ---- live updates
    .ws('/ws', {
      query: t.Object({ token: t.Optional(t.String({ description: 'the bearer token, when neither the header nor the subprotocol can carry it (it then shows in URLs and logs)' })) }),
      detail: {
        ...doc(
          'live',
          'connectLive',
          'Live updates and signalling (WebSocket)',
          'Upgrade to a WebSocket (RFC 6455) with the bearer token in `Authorization`, in `Sec-WebSocket-Protocol: lanrage, bearer.<token>` ' +
            '(the server answers `lanrage`), or as `?token=`. The server sends `hello`, then `peer_joined`, `peer_updated`, `peer_left`, ' +
            '`party_deleted` and `signal` events for every party of the caller (LiveMessage); the client may send `{"type":"ping"}` and ' +
            '`{"type":"signal", party_id, to_peer_id, signal_type, data}` (LiveRequest), answered with `pong`, `signal_sent` or `error` (LiveReply). ' +
            `Close codes: ${WS_CLOSE.UNAUTHORIZED} (token revoked, refreshed or expired: register or refresh, then reconnect), ` +
            `${WS_CLOSE.TOO_MANY_SOCKETS} (more sockets than --max-sockets-per-token: the oldest is closed). A GET without the upgrade is 426.`,
        ),
        security: [{ bearer: [] }, { wsProtocol: [] }, { wsQuery: [] }],
        websocket: { client: LiveRequest, server: [LiveMessage, LiveReply] },
      } satisfies RouteDoc,
      beforeHandle({ request, query, set }) {
        const offered = protocolToken(request.headers.get('sec-websocket-protocol'))
        svc.authenticate(request.headers.get('authorization'), offered ?? query.token)
        // A client that offered subprotocols must get one back (RFC 6455 §4.2.2), and never the token itself.
        if (offered !== undefined) set.headers['sec-websocket-protocol'] = WS_PROTOCOL
      },
      open(ws) {
        const request = ws.data.request
        let auth: ReturnType<typeof svc.authenticateToken>
        try {
          auth = svc.authenticateToken(request.headers.get('authorization'), protocolToken(request.headers.get('sec-websocket-protocol')) ?? ws.data.query.token)
        } catch {
          ws.close(WS_CLOSE.UNAUTHORIZED, 'unauthorized')
          return
        }
        const { peerId, tokenHash, expiresAt } = auth
        const sock: LiveSocket = { id: ws.id, tokenHash, expiresAt, send: (text) => ws.raw.send(text), close: (code, reason) => ws.raw.close(code, reason) }
        sockets.set(ws.id, { peerId, sock })
        svc.hub.add(peerId, sock)
        const hello: LiveMessage = { type: 'hello', peer_id: peerId, parties: svc.partiesOf(peerId) }
        ws.raw.send(JSON.stringify(hello))
      },
      message(ws, raw) {
        const entry = sockets.get(ws.id)
        if (!entry) return
        // The token may have ended since the socket opened (revoked elsewhere, expired before the cleanup pass).
        if (!svc.tokenValid(entry.sock.tokenHash)) {
          svc.hub.remove(entry.peerId, entry.sock)
          return void ws.raw.close(WS_CLOSE.UNAUTHORIZED, 'token expired or revoked')
        }
        // Returns nothing on purpose: a value returned from an Elysia ws handler is sent as a message.
        const reply = (m: unknown): void => void ws.raw.send(JSON.stringify(m))
        let msg: unknown = raw
        if (typeof raw === 'string') {
          try {
            msg = JSON.parse(raw)
          } catch {
            return reply({ type: 'error', error: { code: 'INVALID_JSON', message: 'message is not valid JSON' } })
          }
        }
        const m = (msg ?? {}) as Record<string, unknown>
        try {
          if (m.type === 'ping') return reply({ type: 'pong' })
          if (m.type === 'signal') {
            const bad = schemaError('', LiveSignalRequest, m)
            if (bad) throw bad
            const s = m as Static<typeof LiveSignalRequest>
            const out = svc.sendSignal(entry.peerId, s.party_id, { to_peer_id: s.to_peer_id, type: s.signal_type, data: s.data }, { type: 'signal_type', data: 'data' })
            return reply({ type: 'signal_sent', signal: out.signal })
          }
          throw new ControlError('UNKNOWN_MESSAGE', `unknown message type ${JSON.stringify(m.type)} (expected ping or signal)`, 400)
        } catch (e) {
          if (e instanceof ControlError) return reply({ type: 'error', error: { code: e.code, message: e.message } })
          logger.error('websocket message failed', { error: e as Error })
          return reply({ type: 'error', error: { code: 'INTERNAL', message: 'internal server error' } })
        }
      },
      close(ws) {
        const entry = sockets.get(ws.id)
        if (!entry) return
        sockets.delete(ws.id)
        svc.hub.remove(entry.peerId, entry.sock)
      },
    })
  authRoutes = new Map()
  for (const r of app.routes) {
    const security = (r.hooks.detail as { security?: Record<string, unknown>[] } | undefined)?.security?.[0]
    if (security) authRoutes.set(`${r.method} ${r.path}`, 'relaySecret' in security ? 'relaySecret' : 'bearer')
  }
  routes = routeTable(app.routes)
  allRoutes = () => app.routes
  return app
}
