/**
 * Test helpers for the control server: a server on 127.0.0.1 port 0 over a fresh database, and a small client
 * that does the real registration (X25519 key proof) and speaks the HTTP and WebSocket API.
 * (The client library has its own implementation; tests here must not import src/client.)
 */
import { x25519 } from '@noble/curves/ed25519.js'
import { hmac } from '@noble/hashes/hmac.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openDatabase, type OpenDb } from '../../src/db/client.ts'
import { createControl, type Control } from '../../src/control/app.ts'
import { defaultControlConfig, type ControlConfig } from '../../src/control/config.ts'
import { ManualClock } from '../../src/shared/clock.ts'
import { silentLogger } from '../../src/shared/log.ts'
import { unwatchControl, watchControl } from '../contract.ts'

export const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64')
export const unb64 = (s: string) => new Uint8Array(Buffer.from(s, 'base64'))

export interface TestServer extends Control {
  base: string
  clock: ManualClock
  open: OpenDb
  config: ControlConfig
  /** Stops the listener and closes the database (the file stays, for restart tests). */
  stop(): Promise<void>
}

/** A temporary directory removed at process exit. */
export function tempDir(prefix = 'lanrage-control-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }))
  return dir
}

export async function startServer(opts: { config?: Partial<ControlConfig>; dbPath?: string; clock?: ManualClock } = {}): Promise<TestServer> {
  const clock = opts.clock ?? new ManualClock()
  // Tests reuse one host for many parties; the per-host limit has its own test.
  const config = defaultControlConfig({ relaySecret: 'test-relay-secret', maxPartiesPerHost: 1000, ...opts.config })
  const open = openDatabase(opts.dbPath ?? ':memory:')
  const control = createControl({ db: open.db, clock, logger: silentLogger, config })
  control.app.listen({ port: 0, hostname: '127.0.0.1' })
  const base = `http://127.0.0.1:${control.app.server!.port}`
  watchControl(base)
  let stopped = false
  return {
    ...control,
    base,
    clock,
    open,
    config,
    async stop() {
      if (stopped) return
      stopped = true
      control.service.flush()
      control.service.hub.closeAll()
      await control.app.stop(true)
      unwatchControl(base)
      open.close()
    },
  }
}

export interface Res<T = any> {
  status: number
  body: T
  headers: Headers
}

export async function call<T = any>(base: string, method: string, path: string, opts: { token?: string; body?: unknown; raw?: string; headers?: Record<string, string> } = {}): Promise<Res<T>> {
  const headers: Record<string, string> = { ...opts.headers }
  if (opts.token) headers.authorization = `Bearer ${opts.token}`
  let body: string | undefined = opts.raw
  if (opts.body !== undefined) body = JSON.stringify(opts.body)
  if (body !== undefined && !headers['content-type']) headers['content-type'] = 'application/json'
  const res = await fetch(base + path, { method, headers, body })
  const text = await res.text()
  let parsed: unknown = text
  try {
    parsed = JSON.parse(text)
  } catch {
    // not JSON (e.g. /metrics): keep the text
  }
  return { status: res.status, body: parsed as T, headers: res.headers }
}

/** The registration proof as the contract defines it (CONTRACTS.md "Auth"). */
export function proofFor(secretKey: Uint8Array, serverPublicKey: string, challenge: string): string {
  return b64(hmac(sha256, x25519.getSharedSecret(secretKey, unb64(serverPublicKey)), unb64(challenge)))
}

export class TestPeer {
  readonly secretKey: Uint8Array
  readonly publicKey: string
  token = ''
  peerId = ''
  constructor(
    readonly base: string,
    keys = x25519.keygen(),
  ) {
    this.secretKey = keys.secretKey
    this.publicKey = b64(keys.publicKey)
  }

  async register(): Promise<this> {
    const ch = await call(this.base, 'POST', '/auth/challenge', { body: { public_key: this.publicKey } })
    if (ch.status !== 200) throw new Error(`challenge failed: ${ch.status} ${JSON.stringify(ch.body)}`)
    const reg = await call(this.base, 'POST', '/auth/register', {
      body: { public_key: this.publicKey, challenge: ch.body.challenge, proof: proofFor(this.secretKey, ch.body.server_public_key, ch.body.challenge) },
    })
    if (reg.status !== 200) throw new Error(`register failed: ${reg.status} ${JSON.stringify(reg.body)}`)
    this.token = reg.body.token
    this.peerId = reg.body.peer_id
    return this
  }

  call<T = any>(method: string, path: string, body?: unknown) {
    return call<T>(this.base, method, path, { token: this.token, body })
  }

  async createParty(body: Record<string, unknown> = { name: 'lan' }): Promise<string> {
    const r = await this.call('POST', '/parties', body)
    if (r.status !== 201) throw new Error(`create failed: ${r.status} ${JSON.stringify(r.body)}`)
    return r.body.party_id
  }

  async join(partyId: string, body: Record<string, unknown> = {}) {
    return this.call('POST', `/parties/${partyId}/join`, body)
  }

  async ws(): Promise<TestSocket> {
    return TestSocket.open(this.base.replace('http', 'ws') + `/ws?token=${encodeURIComponent(this.token)}`)
  }
}

export async function registeredPeers(base: string, n: number): Promise<TestPeer[]> {
  return Promise.all(Array.from({ length: n }, () => new TestPeer(base).register()))
}

/** A WebSocket that queues every message so tests can await them in order. */
export class TestSocket {
  private readonly queue: any[] = []
  private waiters: ((m: any) => void)[] = []
  closed: { code: number; reason: string } | undefined
  private constructor(readonly ws: WebSocket) {
    ws.onmessage = (e) => {
      const m = JSON.parse(String(e.data))
      const w = this.waiters.shift()
      if (w) w(m)
      else this.queue.push(m)
    }
    ws.onclose = (e) => {
      this.closed = { code: e.code, reason: e.reason }
    }
  }

  static open(url: string, headers?: Record<string, string>): Promise<TestSocket> {
    const ws = new WebSocket(url, headers ? ({ headers } as any) : undefined)
    const s = new TestSocket(ws)
    return new Promise((resolve, reject) => {
      ws.onopen = () => resolve(s)
      ws.onerror = () => reject(new Error('websocket failed to open'))
    })
  }

  /** The next message, failing after `ms` so a missing event fails the test instead of hanging it. */
  next(ms = 2000): Promise<any> {
    const m = this.queue.shift()
    if (m !== undefined) return Promise.resolve(m)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== done)
        reject(new Error(`no websocket message within ${ms} ms`))
      }, ms)
      const done = (msg: any) => {
        clearTimeout(timer)
        resolve(msg)
      }
      this.waiters.push(done)
    })
  }

  /** Messages received so far and not yet consumed (after a short grace period for in-flight frames). */
  async pending(graceMs = 50): Promise<any[]> {
    await Bun.sleep(graceMs)
    return this.queue.splice(0)
  }

  send(m: unknown) {
    this.ws.send(JSON.stringify(m))
  }

  close() {
    this.ws.close()
  }
}
