/**
 * Registration and heartbeat with the control server: `POST /relays` with the relay secret returns the ticket
 * public key and the heartbeat interval; `POST /relays/{id}/heartbeat` reports load, and a 404 there means
 * "register again". Failures retry with exponential backoff and jitter. The URL may be http(s):// or ws(s)://;
 * TLS (a private CA) comes with the `fetch` the caller passes.
 */
import type { RelayInfo } from '../shared/api.ts'
import type { Logger } from '../shared/log.ts'
import { controlUrls } from '../shared/tls.ts'

/** `POST /relays`: the relay's public record (the server keeps `last_seen` itself) plus its session port range. */
export type RegisterBody = Omit<RelayInfo, 'last_seen'> & { ports: string }

export interface ControlLinkOptions {
  url: string
  secret: string
  register: () => RegisterBody
  heartbeat: () => { load: number; sessions: number }
  onKey: (key: Uint8Array) => void
  log: Logger
  fetch?: typeof fetch
  /** Backoff bounds in ms (tests shorten them). */
  minBackoffMs?: number
  maxBackoffMs?: number
}

export interface ControlLink {
  /** Resolves once the first registration succeeded (never rejects; use with a timeout). */
  registered: Promise<void>
  stop(): void
}

export function startControlLink(o: ControlLinkOptions): ControlLink {
  const f = o.fetch ?? fetch
  const base = controlUrls(o.url).http
  const minB = o.minBackoffMs ?? 1000
  const maxB = o.maxBackoffMs ?? 60_000
  let stopped = false
  let timer: ReturnType<typeof setTimeout> | undefined
  let backoff = minB
  let intervalMs = 30_000
  let relayId = ''
  const first = Promise.withResolvers<void>()
  const headers = { 'content-type': 'application/json', 'x-relay-secret': o.secret }
  const later = (ms: number, fn: () => Promise<void>) => {
    if (!stopped) timer = setTimeout(() => void fn(), ms)
  }
  const retry = (what: string, why: string) => {
    const wait = Math.round(backoff * (0.5 + Math.random() / 2))
    o.log.warn(`${what} failed, retrying`, { control: base, error: why, retry_in_ms: wait })
    backoff = Math.min(maxB, backoff * 2)
    later(wait, register)
  }

  async function register(): Promise<void> {
    const body = o.register()
    relayId = body.relay_id
    try {
      const res = await f(`${base}/relays`, { method: 'POST', headers, body: JSON.stringify(body), signal: AbortSignal.timeout(10_000) })
      const text = await res.text()
      if (!res.ok) return retry('registration', `HTTP ${res.status}: ${text.slice(0, 200)}`)
      const json = JSON.parse(text) as { ticket_public_key?: string; heartbeat_interval_s?: number }
      const key = json.ticket_public_key ? new Uint8Array(Buffer.from(json.ticket_public_key, 'base64')) : undefined
      if (!key || key.length !== 32) return retry('registration', 'answer has no 32-byte ticket_public_key')
      o.onKey(key)
      intervalMs = Math.max(1000, (json.heartbeat_interval_s ?? 30) * 1000)
      backoff = minB
      o.log.info('registered with control server', { control: base, relay_id: relayId, heartbeat_s: intervalMs / 1000 })
      first.resolve()
      later(intervalMs, heartbeat)
    } catch (e) {
      const code = (e as { code?: unknown } | null)?.code
      retry('registration', `${e instanceof Error ? e.message : String(e)}${typeof code === 'string' ? ` (${code})` : ''}`)
    }
  }

  async function heartbeat(): Promise<void> {
    try {
      const res = await f(`${base}/relays/${relayId}/heartbeat`, {
        method: 'POST',
        headers,
        body: JSON.stringify(o.heartbeat()),
        signal: AbortSignal.timeout(10_000),
      })
      await res.text()
      if (res.status === 404 || res.status === 401) {
        o.log.warn('control server does not know this relay, registering again', { status: res.status })
        return register()
      }
      if (!res.ok) o.log.warn('heartbeat refused', { status: res.status })
    } catch (e) {
      o.log.warn('heartbeat failed', { error: e instanceof Error ? e.message : String(e) })
    }
    later(intervalMs, heartbeat)
  }

  void register()
  return {
    registered: first.promise,
    stop() {
      stopped = true
      if (timer) clearTimeout(timer)
    },
  }
}
