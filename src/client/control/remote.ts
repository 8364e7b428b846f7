/**
 * RemoteControlPlane: the control server's HTTP API and its `/ws` live channel (README.md, "API").
 *
 * - Registration proves possession of the WireGuard private key: HMAC-SHA256 keyed by X25519(our private,
 *   server public) over the 32 challenge bytes. The token it yields goes in `Authorization: Bearer`.
 * - Every request is retried with exponential backoff + jitter on network errors and 5xx, never on 4xx.
 * - Several URLs (instances of one control server on one database) are used one at a time: a request or a live
 *   channel that fails on one moves to the next at once, and the client stays there; the backoff delay comes only
 *   after every instance failed in turn.
 *   A 401 triggers one re-registration (the token expired, was revoked, or the server lost it) and a retry.
 * - The live channel reconnects with backoff forever (until close()); after a drop that happened before the
 *   server's `hello`, the next attempt registers again first, since a refused upgrade usually means a dead token.
 * - A heartbeat loop keeps every party this client created or joined alive (the server drops silent peers).
 */
import { WS_BEARER_PREFIX, WS_PROTOCOL } from '../../shared/api.ts'
import { peerIdOf, registrationMac } from '../../shared/identity.ts'
import { silentLogger, type Logger } from '../../shared/log.ts'
import { controlUrlList, controlUrls, isCertificateError, tlsInit, type ControlTls } from '../../shared/tls.ts'
import { controlFetch, type FetchLike } from '../net/http.ts'
import { openWebSocket, WS_CLOSED, WS_OPEN, type WebSocketLike } from '../net/websocket.ts'
import { encodeKey, parsePrivateKey, parsePublicKey, publicKeyOf, sharedSecret, type WgPrivateKey } from '../wireguard/keys.ts'
import { backoffDelay, DEFAULT_RECONNECT, DEFAULT_RETRY, isRetryable, type BackoffPolicy } from './backoff.ts'
import { ControlAuthError, ControlPlaneError, ControlProtocolError, ControlUnreachableError, errorFromResponse, ControlMissingError, ControlTlsError } from './errors.ts'
import { Emitter } from './events.ts'
import type {
  ControlEventName,
  ControlEvents,
  ControlPlane,
  CreatePartyOptions,
  JoinPartyOptions,
  LeaveResult,
  PartyInfo,
  PeerEndpointInfo,
  PeerInfo,
  RelayOffer,
  Signal,
} from './types.ts'

/** The server drops peers silent for 5 minutes; 30 s leaves room for several lost heartbeats. */
export const DEFAULT_HEARTBEAT_MS = 30_000
/** WebSocket keepalive: a ping this often, and a connection with no answer for two periods is dead. */
export const DEFAULT_PING_MS = 20_000
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000

export interface RemoteControlPlaneOptions {
  /**
   * Control server base URL, e.g. https://control.example:8667 (http://, https://, ws:// or wss://), or several:
   * instances of one control server that share its database (the client fails over between them, in order),
   * as an array or one comma-separated string.
   */
  url: string | readonly string[]
  /** TLS for an https:// server: a private CA to trust (`readCaFile`). Certificates are always verified. */
  tls?: ControlTls
  /** This peer's WireGuard private key (its identity). */
  privateKey: WgPrivateKey | string
  /** A token from an earlier registration (e.g. saved across restarts); used until the server refuses it. */
  token?: TokenInfo
  retry?: Partial<BackoffPolicy>
  reconnect?: Partial<BackoffPolicy>
  heartbeatIntervalMs?: number
  pingIntervalMs?: number
  requestTimeoutMs?: number
  fetch?: typeof fetch
  random?: () => number
  log?: Logger
}

export interface TokenInfo {
  token: string
  peer_id: string
  expires_at: string
}

interface RequestOptions {
  auth?: boolean
  /** Words for error messages, e.g. "join party abc". */
  what: string
}

export { peerIdOf }

/** The challenge as the server sent it (base64 or hex of 32 bytes) → raw bytes; undefined if neither. */
function challengeBytes(text: unknown): Uint8Array | undefined {
  if (typeof text !== 'string') return undefined
  if (/^[0-9a-f]{64}$/i.test(text)) return new Uint8Array(Buffer.from(text, 'hex'))
  const b = /^[A-Za-z0-9+/_-]+={0,2}$/.test(text) ? new Uint8Array(Buffer.from(text, 'base64')) : undefined
  return b && b.length === 32 ? b : undefined
}

/** The `proof` of POST /auth/register: base64 of `registrationMac` keyed by X25519(our private key, the server's public key). */
export function registrationProof(privateKey: WgPrivateKey, serverPublicKey: string, challenge: Uint8Array): string {
  return encodeKey(registrationMac(sharedSecret(privateKey, parsePublicKey(serverPublicKey)), challenge))
}

function field<T>(body: unknown, key: string, what: string, check: (v: unknown) => boolean = (v) => v !== undefined && v !== null): T {
  const v = (body as Record<string, unknown> | null)?.[key]
  if (!check(v)) throw new ControlProtocolError(`${what}: the server's answer has no valid "${key}"`)
  return v as T
}
const isObj = (v: unknown) => typeof v === 'object' && v !== null
const isStr = (v: unknown) => typeof v === 'string'

export class RemoteControlPlane implements ControlPlane {
  /** The instances given, in order; `current` is the one in use. */
  private readonly servers: { http: string; ws: string }[]
  private current = 0
  readonly publicKey: string
  private readonly privateKey: WgPrivateKey
  private readonly retry: BackoffPolicy
  private readonly reconnectPolicy: BackoffPolicy
  private readonly fetchFn: FetchLike
  private readonly random: () => number
  private readonly log: Logger
  private readonly events = new Emitter<ControlEvents>()
  private tokenInfo: TokenInfo | undefined
  private registering: Promise<TokenInfo> | undefined
  private registrations = 0
  private closed = false
  /** Parties to heartbeat, with what we last reported about ourselves there. */
  private readonly joined = new Map<string, Pick<PeerEndpointInfo, 'public_endpoint' | 'nat_type'>>()
  private heartbeatTimer: ReturnType<typeof setTimeout> | undefined
  private ws: WebSocketLike | undefined
  private wsWanted = false
  private wsAttempt = 0
  private wsEverConnected = false
  /** Whether the latest live-channel connection got as far as the server's hello. */
  private lastWsHelloed = false
  private wsTimer: ReturnType<typeof setTimeout> | undefined
  private pingTimer: ReturnType<typeof setInterval> | undefined
  private readonly sleeping = new Set<{ timer: ReturnType<typeof setTimeout>; resolve: () => void }>()

  constructor(private readonly opts: RemoteControlPlaneOptions) {
    this.servers = controlUrlList(opts.url).map((u) => controlUrls(u))
    this.privateKey = typeof opts.privateKey === 'string' ? parsePrivateKey(opts.privateKey) : opts.privateKey
    this.publicKey = encodeKey(publicKeyOf(this.privateKey))
    this.retry = { ...DEFAULT_RETRY, ...opts.retry }
    this.reconnectPolicy = { ...DEFAULT_RECONNECT, ...opts.reconnect }
    // A fetch of the caller's gets the TLS option as Bun's fetch takes it; ours maps it for the runtime.
    const own = opts.fetch
    this.fetchFn = own ? (url, init) => own(url, { ...init, ...tlsInit(opts.tls) }) : controlFetch(opts.tls)
    this.random = opts.random ?? Math.random
    this.log = (opts.log ?? silentLogger).child('control-client')
    this.tokenInfo = opts.token
  }

  /** The base URL of the instance in use (the one the last request or live channel went to, or will go to). */
  get url(): string {
    return this.servers[this.current]!.http
  }
  /** Every instance given, in order. */
  get urls(): string[] {
    return this.servers.map((s) => s.http)
  }
  private get described(): string {
    return this.servers.length === 1 ? this.url : `any of ${this.urls.join(', ')}`
  }

  /**
   * Moves to the next instance after `from` failed, unless another request or the live channel already moved on
   * (so two failures of one instance move once, and everything converges on one live instance).
   */
  private failover(from: number, why: string): void {
    if (this.servers.length < 2 || this.current !== from) return
    this.current = (from + 1) % this.servers.length
    this.log.warn('control server failed, using the next one', { failed: this.servers[from]!.http, now: this.url, why })
  }

  /**
   * After a failed try at instance `at`: fails over, and says whether to try again — at once while this round
   * has instances left, else after the backoff delay; false once the last round is spent. With one URL this is
   * the plain backoff retry.
   */
  private async retryAfter(at: number, t: { round: number; tried: number }, what: string, why: string): Promise<boolean> {
    this.failover(at, why)
    if (++t.tried < this.servers.length) return true
    t.tried = 0
    if (++t.round >= this.retry.attempts) return false
    const d = backoffDelay(t.round - 1, this.retry, this.random)
    // Said at each try, so a user of `lanrage up` sees what it waits for instead of a silent minute.
    this.log.warn(`control server not answering: attempt ${t.round} of ${this.retry.attempts} failed, next in ${(d / 1000).toFixed(1)} s`, { what, control: this.described, error: why })
    await this.sleep(d)
    return !this.closed
  }

  get peerId(): string | undefined {
    return this.tokenInfo?.peer_id
  }
  /** The current bearer token (undefined before registration). */
  get token(): string | undefined {
    return this.tokenInfo?.token
  }
  /** Parties this client is in, as far as it knows (created or joined, not left or deleted). */
  get parties(): string[] {
    return [...this.joined.keys()]
  }
  /** True while the live channel is open and the server said hello. */
  get connected(): boolean {
    return this.ws?.readyState === WS_OPEN && this.wsEverConnected
  }

  on<K extends ControlEventName>(type: K, fn: (e: ControlEvents[K]) => void): () => void {
    return this.events.on(type, fn)
  }
  /** The next event of a type (optionally matching `pred`), for callers that await one change. */
  next<K extends ControlEventName>(type: K, pred?: (e: ControlEvents[K]) => boolean, timeoutMs?: number): Promise<ControlEvents[K]> {
    return this.events.next(type, pred, timeoutMs)
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const entry = { timer: setTimeout(() => (this.sleeping.delete(entry), resolve()), ms), resolve }
      this.sleeping.add(entry)
    })
  }

  private async request<T>(method: string, path: string, body: unknown, o: RequestOptions): Promise<T> {
    let reauthed = false
    let lastNetwork: unknown
    // `round` counts tries of every instance in turn (of the one, usually): the retry policy's attempts.
    const t = { round: 0, tried: 0 }
    for (;;) {
      if (this.closed) throw new ControlUnreachableError(`${o.what}: the client is closed`)
      const headers: Record<string, string> = { accept: 'application/json' }
      if (body !== undefined) headers['content-type'] = 'application/json'
      if (o.auth !== false) headers.authorization = `Bearer ${(await this.ensureToken()).token}`
      const at = this.current
      let res: Response
      try {
        res = await this.fetchFn(this.servers[at]!.http + path, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(this.opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS),
        })
      } catch (e) {
        // A refused certificate is not a network hiccup: say so now instead of retrying.
        if (isCertificateError(e)) throw new ControlTlsError(`${o.what}: ${this.servers[at]!.http}: ${(e as Error).message} (${(e as { code: string }).code})`, { cause: e })
        lastNetwork = e
        if (await this.retryAfter(at, t, o.what, (e as Error)?.message ?? String(e))) continue
        break
      }
      const text = await res.text().catch(() => '')
      let json: unknown
      try {
        json = text ? JSON.parse(text) : undefined
      } catch {
        json = undefined
      }
      if (res.ok) {
        if (json === undefined) throw new ControlProtocolError(`${o.what}: the server answered ${res.status} without a JSON body`)
        return json as T
      }
      if (res.status === 401 && o.auth !== false && !reauthed) {
        // The token expired, was revoked, or the server forgot it: prove the key again, once, and retry.
        reauthed = true
        this.log.info('token refused, registering again', { what: o.what })
        await this.register(true)
        continue
      }
      if (isRetryable(res.status) && (await this.retryAfter(at, t, o.what, `answered ${res.status}`))) continue
      throw errorFromResponse(res.status, json, o.what)
    }
    throw new ControlUnreachableError(`${o.what}: cannot reach ${this.described} after ${this.retry.attempts} tries: ${(lastNetwork as Error)?.message ?? 'unknown error'}`, {
      cause: lastNetwork,
    })
  }

  private async ensureToken(): Promise<TokenInfo> {
    if (this.tokenInfo) return this.tokenInfo
    return this.register(false).then(() => this.tokenInfo!)
  }

  /** Registers (or, with `force`, registers again) and returns this peer's id. Concurrent calls share one. */
  async register(force = false): Promise<string> {
    if (this.tokenInfo && !force && !this.registering) return this.tokenInfo.peer_id
    this.registering ??= this.doRegister().finally(() => (this.registering = undefined))
    return (await this.registering).peer_id
  }

  private async doRegister(): Promise<TokenInfo> {
    const what = 'register'
    const ch = await this.request<Record<string, unknown>>('POST', '/auth/challenge', { public_key: this.publicKey }, { auth: false, what })
    const challenge = challengeBytes(ch.challenge)
    if (!challenge) throw new ControlProtocolError(`${what}: the challenge is not 32 bytes of base64 or hex`)
    const serverKey = field<string>(ch, 'server_public_key', what, isStr)
    let proof: string
    try {
      proof = registrationProof(this.privateKey, serverKey, challenge)
    } catch (e) {
      throw new ControlProtocolError(`${what}: the server's public key is unusable: ${(e as Error).message}`)
    }
    const r = await this.request<TokenInfo>('POST', '/auth/register', { public_key: this.publicKey, challenge: ch.challenge, proof }, { auth: false, what }).catch(
      (e) => {
        if (e instanceof ControlPlaneError && e.status === 401) throw new ControlAuthError(e.message, e.serverCode)
        throw e
      },
    )
    field<string>(r, 'token', what, isStr)
    const expected = peerIdOf(publicKeyOf(this.privateKey))
    if (field<string>(r, 'peer_id', what, isStr) !== expected) throw new ControlProtocolError(`${what}: the server gave peer id ${r.peer_id}, expected ${expected}`)
    this.tokenInfo = { token: r.token, peer_id: r.peer_id, expires_at: r.expires_at }
    this.events.emit('registered', { peer_id: r.peer_id, reregistered: this.registrations++ > 0 })
    return this.tokenInfo
  }

  /** Exchanges the token for a new one (the old one stops working). */
  async refresh(): Promise<TokenInfo> {
    const r = await this.request<TokenInfo>('POST', '/auth/refresh', undefined, { what: 'refresh token' })
    field<string>(r, 'token', 'refresh token', isStr)
    this.tokenInfo = { token: r.token, peer_id: r.peer_id, expires_at: r.expires_at }
    return this.tokenInfo
  }

  /** Revokes the current token at the server and forgets it (the next call registers again). */
  async revoke(): Promise<void> {
    if (!this.tokenInfo) return
    await this.request('POST', '/auth/revoke', undefined, { what: 'revoke token' })
    this.tokenInfo = undefined
  }

  private party(body: unknown, what: string): PartyInfo {
    const p = field<PartyInfo>(body, 'party', what, isObj)
    field(p, 'party_id', what, isStr)
    field(p, 'peers', what, isObj)
    return p
  }

  async createParty(name: string, o: CreatePartyOptions = {}): Promise<PartyInfo> {
    const body: Record<string, unknown> = { name }
    if (o.password !== undefined) body.password = o.password
    if (o.max_peers !== undefined) body.max_peers = o.max_peers
    if (o.peer_info) body.host_peer_info = o.peer_info
    const r = await this.request('POST', '/parties', body, { what: `create party ${JSON.stringify(name)}` })
    const party = this.party(r, 'create party')
    this.joined.set(party.party_id, pick(o.peer_info))
    return party
  }

  async joinParty(partyId: string, o: JoinPartyOptions = {}): Promise<PartyInfo> {
    const body: Record<string, unknown> = {}
    if (o.password !== undefined) body.password = o.password
    if (o.peer_info) body.peer_info = o.peer_info
    const r = await this.request('POST', `/parties/${enc(partyId)}/join`, body, { what: `join party ${partyId}` })
    const party = this.party(r, 'join party')
    this.joined.set(party.party_id, pick(o.peer_info))
    return party
  }

  async leaveParty(partyId: string): Promise<LeaveResult> {
    const me = await this.register()
    const r = await this.request('DELETE', `/parties/${enc(partyId)}/peers/${enc(me)}`, undefined, { what: `leave party ${partyId}` })
    this.joined.delete(partyId)
    return field<LeaveResult>(r, 'status', 'leave party', (v) => v === 'left' || v === 'party_deleted')
  }

  async updatePeer(partyId: string, info: PeerEndpointInfo): Promise<PeerInfo> {
    const me = await this.register()
    const r = await this.request('PATCH', `/parties/${enc(partyId)}/peers/${enc(me)}`, info, { what: `update peer in party ${partyId}` })
    if (this.joined.has(partyId)) this.joined.set(partyId, { ...this.joined.get(partyId), ...pick(info) })
    return field<PeerInfo>(r, 'peer', 'update peer', isObj)
  }

  async getParty(partyId: string): Promise<PartyInfo> {
    return this.party(await this.request('GET', `/parties/${enc(partyId)}`, undefined, { what: `get party ${partyId}` }), 'get party')
  }

  async getPeers(partyId: string): Promise<Record<string, PeerInfo>> {
    const r = await this.request('GET', `/parties/${enc(partyId)}/peers`, undefined, { what: `get peers of party ${partyId}` })
    return field<Record<string, PeerInfo>>(r, 'peers', 'get peers', isObj)
  }

  async discoverPeer(partyId: string, peerId: string): Promise<PeerInfo> {
    const r = await this.request('GET', `/parties/${enc(partyId)}/peers/${enc(peerId)}`, undefined, { what: `discover peer ${peerId} in party ${partyId}` })
    return field<PeerInfo>(r, 'peer', 'discover peer', isObj)
  }

  async heartbeat(partyId: string, info?: Pick<PeerEndpointInfo, 'public_endpoint' | 'nat_type'>): Promise<void> {
    const me = await this.register()
    const body = info ?? this.joined.get(partyId) ?? {}
    await this.request('POST', `/parties/${enc(partyId)}/peers/${enc(me)}/heartbeat`, body, { what: `heartbeat in party ${partyId}` })
  }

  async sendSignal(partyId: string, toPeerId: string, type: string, data: unknown): Promise<Signal> {
    const r = await this.request('POST', `/parties/${enc(partyId)}/signals`, { to_peer_id: toPeerId, type, data }, { what: `signal ${type} to ${toPeerId}` })
    return field<Signal>(r, 'signal', 'send signal', isObj)
  }

  async getSignals(partyId: string): Promise<Signal[]> {
    const r = await this.request('GET', `/parties/${enc(partyId)}/signals`, undefined, { what: `get signals of party ${partyId}` })
    return field<Signal[]>(r, 'signals', 'get signals', Array.isArray)
  }

  async requestRelay(partyId: string, peerId: string): Promise<RelayOffer> {
    const r = await this.request<RelayOffer>('POST', `/parties/${enc(partyId)}/relay`, { peer_id: peerId }, { what: `relay towards ${peerId}` })
    field(r, 'ticket', 'relay request', isStr)
    field(r, 'relay', 'relay request', isObj)
    return r
  }

  /** Server health `GET /` (no auth). */
  async health(): Promise<Record<string, unknown>> {
    return this.request('GET', '/', undefined, { auth: false, what: 'health' })
  }

  // ---- heartbeat loop

  /** Heartbeats every party this client is in, every `intervalMs`, until stopHeartbeats() or close(). */
  startHeartbeats(intervalMs = this.opts.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_MS): void {
    this.stopHeartbeats()
    const tick = async () => {
      for (const partyId of [...this.joined.keys()]) {
        if (this.closed) return
        try {
          await this.heartbeat(partyId)
        } catch (e) {
          // 404: the server dropped us (timeout) or the party is gone; stop beating for it.
          if (e instanceof ControlMissingError) this.joined.delete(partyId)
          this.events.emit('error', { where: `heartbeat ${partyId}`, error: e as Error })
        }
      }
      if (!this.closed && this.heartbeatTimer !== undefined) this.heartbeatTimer = setTimeout(tick, intervalMs)
    }
    this.heartbeatTimer = setTimeout(tick, intervalMs)
  }

  stopHeartbeats(): void {
    clearTimeout(this.heartbeatTimer)
    this.heartbeatTimer = undefined
  }

  // ---- live channel

  /** Opens the `/ws` live channel and keeps it open (reconnecting with backoff) until close(). */
  /**
   * Resolves once the server said hello. If that takes longer than `timeoutMs`, rejects with
   * CONTROL_UNREACHABLE — and keeps trying in the background (a later `connected` event says it worked).
   */
  async connect(timeoutMs = this.opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS): Promise<void> {
    if (this.connected) return
    const first = this.next('connected', undefined, timeoutMs)
    if (!this.wsWanted) {
      this.wsWanted = true
      void this.openWs()
    }
    await first.catch(() => {
      throw new ControlUnreachableError(`live channel: no hello from ${this.described} within ${timeoutMs}ms (still retrying)`)
    })
  }

  private scheduleReconnect(reason: string): void {
    if (this.closed || !this.wsWanted) return
    const delay = backoffDelay(this.wsAttempt++, this.reconnectPolicy, this.random)
    this.log.info('live channel down, reconnecting', { reason, in_ms: delay })
    this.events.emit('disconnected', { reason, retry_in_ms: delay })
    clearTimeout(this.wsTimer)
    this.wsTimer = setTimeout(() => void this.openWs(), delay)
  }

  private async openWs(): Promise<void> {
    if (this.closed) return
    let token: string
    try {
      // The last attempt never got the server's hello: the upgrade was refused or the server was down.
      // A refused upgrade usually means a dead token, so prove the key again (harmless if it was not that).
      if (this.wsAttempt > 0 && !this.lastWsHelloed) await this.register(true)
      token = (await this.ensureToken()).token
    } catch (e) {
      this.events.emit('error', { where: 'live channel', error: e as Error })
      this.scheduleReconnect(`registration failed: ${(e as Error).message}`)
      return
    }
    if (this.closed) return
    // The token travels as subprotocols ("lanrage", "bearer.<token>"), which every WebSocket implementation can
    // send (Bun, Node, browsers; a header is Bun-only), and stays out of URLs and access logs. The private CA, if
    // any, goes where each runtime takes it (src/client/net/websocket.ts).
    const protocols = [WS_PROTOCOL, WS_BEARER_PREFIX + token]
    const at = this.current
    const wsUrl = this.servers[at]!.ws + '/ws'
    let ws: WebSocketLike
    try {
      ws = await openWebSocket(wsUrl, { protocols, ca: this.opts.tls?.ca })
    } catch (e) {
      this.events.emit('error', { where: 'live channel', error: e as Error })
      this.scheduleReconnect(`cannot open the live channel: ${(e as Error).message}`)
      return
    }
    if (this.closed) return ws.close(1000, 'client closed')
    this.ws = ws
    this.lastWsHelloed = false
    let lastPong = Date.now()
    ws.onmessage = (m) => {
      lastPong = Date.now()
      this.onWsMessage(typeof m.data === 'string' ? m.data : Buffer.from(m.data as ArrayBuffer).toString())
    }
    ws.onerror = () => {
      // a close event always follows; the reconnect happens there
    }
    ws.onclose = (ev) => {
      if (this.ws === ws) this.ws = undefined
      // 4001: the server closed us because our token was revoked or expired; register before reconnecting.
      if (ev.code === 4001) this.lastWsHelloed = false
      clearInterval(this.pingTimer)
      // Whatever ended it (the instance died or went away, refused the upgrade, stopped answering pings), the
      // next connection goes to the next instance when there are several: any of them serves every party.
      if (!this.closed) this.failover(at, `live channel closed (${ev.code})`)
      this.scheduleReconnect(`closed (${ev.code}${ev.reason ? ' ' + ev.reason : ''})`)
    }
    ws.onopen = () => {
      const every = this.opts.pingIntervalMs ?? DEFAULT_PING_MS
      clearInterval(this.pingTimer)
      this.pingTimer = setInterval(() => {
        if (Date.now() - lastPong > 2 * every) return ws.close(4000, 'no pong')
        if (ws.readyState === WS_OPEN) ws.send(JSON.stringify({ type: 'ping' }))
      }, every)
    }
  }

  /** Handles one server message; malformed input is reported as an `error` event, never thrown. */
  private onWsMessage(text: string): void {
    let m: Record<string, unknown>
    try {
      m = JSON.parse(text)
      if (!isObj(m) || !isStr(m.type)) throw new Error('no type')
    } catch {
      this.events.emit('error', { where: 'live channel', error: new ControlProtocolError(`unparseable live message: ${text.slice(0, 80)}`) })
      return
    }
    const pid = m.party_id as string
    switch (m.type) {
      case 'hello': {
        const reconnect = this.wsEverConnected
        this.wsEverConnected = true
        this.lastWsHelloed = true
        this.wsAttempt = 0
        this.events.emit('connected', { peer_id: String(m.peer_id), parties: Array.isArray(m.parties) ? (m.parties as string[]) : [], reconnect })
        return
      }
      case 'pong':
        return
      case 'peer_joined':
      case 'peer_updated':
        if (isStr(pid) && isObj(m.peer)) this.events.emit(m.type, { party_id: pid, peer: m.peer as PeerInfo })
        return
      case 'peer_left':
        if (!isStr(pid) || !isStr(m.peer_id)) return
        if (m.peer_id === this.peerId) this.joined.delete(pid)
        this.events.emit('peer_left', { party_id: pid, peer_id: m.peer_id as string, reason: m.reason as ControlEvents['peer_left']['reason'] })
        return
      case 'party_deleted':
        if (!isStr(pid)) return
        this.joined.delete(pid)
        this.events.emit('party_deleted', { party_id: pid, reason: m.reason as ControlEvents['party_deleted']['reason'] })
        return
      case 'signal':
        if (isStr(pid) && isObj(m.signal)) this.events.emit('signal', { party_id: pid, signal: m.signal as Signal })
        return
      default:
        this.log.debug('ignoring unknown live message', { type: m.type as string })
    }
  }

  /** Stops every loop and closes the live channel. Parties are not left (the server times us out). */
  async close(): Promise<void> {
    this.closed = true
    this.wsWanted = false
    this.stopHeartbeats()
    clearTimeout(this.wsTimer)
    clearInterval(this.pingTimer)
    for (const s of this.sleeping) {
      clearTimeout(s.timer)
      s.resolve()
    }
    this.sleeping.clear()
    const ws = this.ws
    this.ws = undefined
    if (ws && ws.readyState !== WS_CLOSED) ws.close(1000, 'client closed')
  }
}

const enc = encodeURIComponent
function pick(i: PeerEndpointInfo | undefined): Pick<PeerEndpointInfo, 'public_endpoint' | 'nat_type'> {
  const o: Pick<PeerEndpointInfo, 'public_endpoint' | 'nat_type'> = {}
  if (i?.public_endpoint !== undefined) o.public_endpoint = i.public_endpoint
  if (i?.nat_type !== undefined) o.nat_type = i.nat_type
  return o
}
