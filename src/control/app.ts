/**
 * The control server's HTTP + WebSocket surface (Elysia). `createApp(deps)` builds the app without listening,
 * so tests and `lanrage serve` decide where it binds. Shapes: CONTRACTS.md "Control server HTTP".
 * Route handlers only validate and translate; the rules live in ControlService.
 */
import { openapi } from '@elysiajs/openapi'
import { Elysia, t } from 'elysia'
import pkg from '../../package.json'
import type { Static } from '@sinclair/typebox'
import { Endpoint, IpAddress, LiveSignalRequest, WS_BEARER_PREFIX, WS_CLOSE, WS_PROTOCOL, NatType, PartyId, PartyName, PeerEndpointInfo, PeerId, Port, Region, RelayId, type LiveMessage } from '../shared/api.ts'
import { ControlError, errorPlugin, methodTable, schemaError } from './errors.ts'
import { Metrics } from './metrics.ts'
import { clientAddress, proxyTrust } from './proxy.ts'
import { ControlService, type ControlDeps } from './service.ts'
import type { LiveSocket } from './hub.ts'

// ---- request schemas (snake_case JSON; the shared ones come from src/shared/api.ts, which clients validate with too)
const Key = t.String({ maxLength: 64, description: 'standard base64 of 32 bytes' })
const PartyParams = t.Object({ party_id: PartyId })
const PeerParams = t.Object({ party_id: PartyId, peer_id: PeerId })
const SignalType = t.String({ minLength: 1, maxLength: 32, pattern: '^[a-z0-9_.-]+$' })

/**
 * Reads a request body as text, within `timeoutMs` (else 408: a body that trickles in would hold the connection
 * and the request for as long as the client likes). A body with a Content-Length was already held to `limit` in
 * onRequest, so it is read in one piece (`request.text()`: no ReadableStream iteration, which cost ~35% of the
 * CPU of a heartbeat). Only a chunked body (no Content-Length) is streamed, and refused (413) as soon as it
 * exceeds `limit` bytes.
 */
async function readBody(request: Request, limit: number, timeoutMs: number): Promise<string> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ControlError('REQUEST_TIMEOUT', `request body not received within ${timeoutMs / 1000} s`, 408)), Math.max(0, timeoutMs))
  })
  const reading = readAll(request, limit)
  reading.catch(() => {}) // after a timeout the read fails when the connection closes; nobody waits for it then
  try {
    return await Promise.race([reading, late])
  } finally {
    clearTimeout(timer)
  }
}

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

const doc = (tag: string, summary: string) => ({ tags: [tag], summary })

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

export interface Control {
  app: ReturnType<typeof buildApp>
  service: ControlService
}

/** Builds the app and returns it with its service (tests drive cleanup and flushes through the service). */
export function createControl(deps: ControlDeps): Control {
  const service = new ControlService(deps)
  return { app: buildApp(deps, service), service }
}

export function createApp(deps: ControlDeps) {
  return createControl(deps).app
}

function buildApp(deps: ControlDeps, svc: ControlService) {
  const { config, logger } = deps
  const metrics = new Metrics()
  const started = new WeakMap<Request, number>()
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
  let methodsFor: (path: string) => string[] = () => []
  // Behind a reverse proxy every request comes from the proxy: the client is what our proxies appended to
  // X-Forwarded-For, read from the right (src/control/proxy.ts); what the client wrote itself is never taken.
  const trust = proxyTrust(config)
  const clientIp = (server: { requestIP(r: Request): { address: string } | null } | null, request: Request) =>
    clientAddress(server?.requestIP(request)?.address, request.headers.get('x-forwarded-for'), trust)

  const app = new Elysia({
    // Bun refuses bodies far above the limit itself; declared lengths (onRequest) and chunked bodies (readBody)
    // over maxBodyBytes get our 413 with the error shape.
    // Bun's own idle timeout (seconds; it also ends a connection whose request is still pending) stays above the
    // body timeout, so a slow body gets our 408 rather than a silent close.
    serve: { maxRequestBodySize: Math.max(1 << 20, config.maxBodyBytes * 16), idleTimeout: Math.min(255, Math.max(10, Math.ceil(config.bodyTimeoutS) + 5)) },
    // A client that stops reading is disconnected once 1 MiB is queued for it (it reconnects and re-reads the
    // party) instead of the server buffering events for it without bound.
    websocket: { idleTimeout: 120, maxPayloadLength: config.maxBodyBytes, backpressureLimit: 1 << 20, closeOnBackpressureLimit: true },
  })
    .use(errorPlugin(logger, (path) => methodsFor(path)))
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
    .onRequest(({ request }) => {
      started.set(request, performance.now())
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
      const text = await readBody(request, config.maxBodyBytes, t0 + config.bodyTimeoutS * 1000 - performance.now())
      if (text === '') return undefined
      try {
        return JSON.parse(text)
      } catch {
        throw new ControlError('INVALID_JSON', 'request body is not valid JSON', 400)
      }
    })
    .onAfterResponse(({ request, route, set }) => {
      const t0 = started.get(request)
      const status = typeof set.status === 'number' ? set.status : 200
      metrics.observe(request.method, route || 'unmatched', status, t0 === undefined ? 0 : (performance.now() - t0) / 1000)
    })
    .use(
      openapi({
        path: '/openapi',
        documentation: {
          info: { title: 'LANrage control server', version: pkg.version, description: 'Errors: {"error": {"code", "message"}} with a 4xx status.' },
          components: {
            securitySchemes: { bearer: { type: 'http', scheme: 'bearer' }, relaySecret: { type: 'apiKey', in: 'header', name: 'X-Relay-Secret' } },
          },
        },
      }),
    )

    // ---- service
    .get('/', () => ({ service: 'lanrage-control', version: pkg.version, status: 'ok', ...svc.stats() }), { detail: doc('service', 'Service status with counts') })
    .get(
      '/health',
      () => {
        svc.repo.countRelays() // touches the database: a broken file answers 500, not "ok"
        return { status: 'ok' }
      },
      { detail: doc('service', 'Liveness (touches the database)') },
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
      { detail: doc('service', 'Prometheus metrics') },
    )

    // ---- auth
    .post(
      '/auth/challenge',
      ({ body, server, request }) => {
        svc.checkRate(clientIp(server, request))
        return svc.challenge(body.public_key)
      },
      { body: t.Object({ public_key: Key }), detail: doc('auth', 'Ask for a registration challenge') },
    )
    .post(
      '/auth/register',
      ({ body, server, request }) => {
        svc.checkRate(clientIp(server, request))
        return svc.register(body)
      },
      {
        body: t.Object({ public_key: Key, challenge: t.String({ maxLength: 64 }), proof: t.String({ maxLength: 64 }) }),
        detail: doc('auth', 'Prove the private key (HMAC over the challenge), get a bearer token'),
      },
    )
    .post('/auth/refresh', ({ request }) => svc.refresh(request.headers.get('authorization')), { bearer: true, detail: doc('auth', 'New token; the presented one is revoked') })
    .post('/auth/revoke', ({ request }) => svc.revoke(request.headers.get('authorization')), { bearer: true, detail: doc('auth', 'Revoke the presented token') })

    // ---- parties
    .post(
      '/parties',
      async ({ body, peerId, set }) => {
        const out = await svc.createParty(peerId, body)
        set.status = 201
        return out
      },
      {
        body: t.Object({
          name: PartyName,
          password: t.Optional(t.String({ minLength: 1, maxLength: 128 })),
          max_peers: t.Optional(t.Integer({ minimum: 2 })),
          host_peer_info: t.Optional(PeerEndpointInfo),
        }),
        bearer: true, detail: doc('parties', 'Create a party; the caller is its host at .0.1'),
      },
    )
    .post('/parties/:party_id/join', ({ body, params, peerId }) => svc.joinParty(peerId, params.party_id, body ?? {}), {
      params: PartyParams,
      body: t.Optional(t.Object({ password: t.Optional(t.String({ maxLength: 128 })), peer_info: t.Optional(PeerEndpointInfo) })),
      bearer: true, detail: doc('parties', 'Join (or rejoin, keeping the address)'),
    })
    .get('/parties/:party_id', ({ params, peerId }) => svc.getParty(peerId, params.party_id), {
      params: PartyParams,
      bearer: true, detail: doc('parties', 'A party with its members (members only)'),
    })
    .get('/parties/:party_id/peers', ({ params, peerId }) => svc.getPeers(peerId, params.party_id), {
      params: PartyParams,
      bearer: true, detail: doc('parties', 'The members (members only)'),
    })
    .get('/parties/:party_id/peers/:peer_id', ({ params, peerId }) => svc.getPeer(peerId, params.party_id, params.peer_id), {
      params: PeerParams,
      bearer: true, detail: doc('parties', 'One member (members only)'),
    })
    .post('/parties/:party_id/peers/:peer_id/heartbeat', ({ params, body, peerId }) => svc.heartbeat(peerId, params.party_id, params.peer_id, body ?? undefined), {
      params: PeerParams,
      body: t.Optional(t.Object({ public_endpoint: t.Optional(t.Union([Endpoint, t.Null()])), nat_type: t.Optional(NatType) })),
      bearer: true, detail: doc('parties', 'Keep one’s own membership alive'),
    })
    .patch('/parties/:party_id/peers/:peer_id', ({ params, body, peerId }) => svc.updatePeer(peerId, params.party_id, params.peer_id, body), {
      params: PeerParams,
      body: PeerEndpointInfo,
      bearer: true, detail: doc('parties', 'Update one’s own endpoints and NAT type'),
    })
    .delete('/parties/:party_id/peers/:peer_id', ({ params, peerId }) => svc.leave(peerId, params.party_id, params.peer_id), {
      params: PeerParams,
      bearer: true, detail: doc('parties', 'Leave, or (host) remove a member'),
    })

    .get('/parties/:party_id/bans', ({ params, peerId }) => svc.listBans(peerId, params.party_id), {
      params: PartyParams,
      bearer: true, detail: doc('parties', 'Peers the host removed (host only)'),
    })
    .delete('/parties/:party_id/bans/:peer_id', ({ params, peerId }) => svc.liftBan(peerId, params.party_id, params.peer_id), {
      params: PeerParams,
      bearer: true, detail: doc('parties', 'Let a removed peer join again (host only)'),
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
        body: t.Object({ to_peer_id: PeerId, type: SignalType, data: t.Optional(t.Unknown()) }),
        bearer: true, detail: doc('signals', 'Send a signal to another member'),
      },
    )
    .get('/parties/:party_id/signals', ({ params, peerId }) => svc.drainSignals(peerId, params.party_id), {
      params: PartyParams,
      bearer: true, detail: doc('signals', 'Drain one’s queued signals'),
    })

    // ---- relay tickets
    .post(
      '/parties/:party_id/relay',
      ({ params, body, peerId }) => svc.relayTickets(peerId, params.party_id, body),
      {
        params: PartyParams,
        body: t.Object({ peer_id: PeerId, region: t.Optional(Region) }),
        bearer: true, detail: doc('relays', 'Relay tickets for a pair of members'),
      },
    )

    // ---- relay registry (relay secret, never a peer token)
    .post(
      '/relays',
      ({ body }) => svc.registerRelay(body),
      {
        body: t.Object({
          relay_id: RelayId,
          // Clients are sent to this address as is: a unicast address, never 0.0.0.0 (nor the request's Host).
          public_ip: IpAddress,
          port: Port,
          stun_alt_port: t.Optional(t.Union([Port, t.Null()])),
          region: Region,
          capacity: t.Integer({ minimum: 0 }),
          load: t.Number({ minimum: 0 }),
          ports: t.String({ pattern: '^\\d{1,5}-\\d{1,5}$' }),
          sessions: t.Optional(t.Integer({ minimum: 0 })),
        }),
        relaySecret: true, detail: doc('relays', 'Register a relay (X-Relay-Secret)'),
      },
    )
    .post(
      '/relays/:relay_id/heartbeat',
      ({ params, body }) => svc.relayHeartbeat(params.relay_id, body),
      {
        params: t.Object({ relay_id: RelayId }),
        body: t.Object({ load: t.Number({ minimum: 0 }), sessions: t.Optional(t.Integer({ minimum: 0 })) }),
        relaySecret: true, detail: doc('relays', 'Relay load report (X-Relay-Secret)'),
      },
    )
    .get(
      '/relays',
      () => svc.listRelays(undefined),
      { bearer: true, detail: doc('relays', 'Registered relays') },
    )
    .get(
      '/relays/:region',
      ({ params }) => svc.listRelays(params.region),
      { params: t.Object({ region: Region }), bearer: true, detail: doc('relays', 'Registered relays in one region') },
    )

    // ---- live updates
    .ws('/ws', {
      query: t.Object({ token: t.Optional(t.String()) }),
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
  methodsFor = methodTable(app.routes)
  return app
}
