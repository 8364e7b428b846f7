/**
 * A minimal control-server client for the control benchmarks: registration with the X25519 key proof, parties,
 * WebSockets — the shapes of CONTRACTS.md "Control server HTTP". It also starts the real control server
 * (`lanrage control`, file database) as a separate process.
 */
import { x25519 } from '@noble/curves/ed25519.js'
import { hmac } from '@noble/hashes/hmac.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BUN, profileFlags, REPO_DIR, spawnChild, type Child } from './common.ts'

const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64')
const unb64 = (s: string) => new Uint8Array(Buffer.from(s, 'base64'))

export interface PeerInfoInput {
  public_endpoint?: string | null
  local_endpoints?: string[]
  nat_type?: string
}
export interface Peer {
  peerId: string
  token: string
  publicKey: string
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
    what: string,
  ) {
    super(`${what}: HTTP ${status} ${body.slice(0, 300)}`)
  }
}

export async function call<T>(base: string, method: string, path: string, body?: unknown, token?: string): Promise<T> {
  const headers: Record<string, string> = {}
  if (body !== undefined) headers['content-type'] = 'application/json'
  if (token) headers.authorization = `Bearer ${token}`
  const res = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
  const text = await res.text()
  if (!res.ok) throw new HttpError(res.status, text, `${method} ${path}`)
  return JSON.parse(text) as T
}

/** Registers a fresh key pair: challenge, then proof = HMAC-SHA256(X25519(priv, server_pub), challenge). */
export async function register(base: string): Promise<Peer> {
  const priv = x25519.utils.randomSecretKey()
  const publicKey = b64(x25519.getPublicKey(priv))
  const ch = await call<{ challenge: string; server_public_key: string }>(base, 'POST', '/auth/challenge', { public_key: publicKey })
  const shared = x25519.getSharedSecret(priv, unb64(ch.server_public_key))
  const proof = b64(hmac(sha256, shared, unb64(ch.challenge)))
  const r = await call<{ token: string; peer_id: string }>(base, 'POST', '/auth/register', { public_key: publicKey, challenge: ch.challenge, proof })
  return { peerId: r.peer_id, token: r.token, publicKey }
}

export async function createParty(base: string, host: Peer, name: string, maxPeers: number, info?: PeerInfoInput): Promise<string> {
  const r = await call<{ party_id: string }>(base, 'POST', '/parties', { name, max_peers: maxPeers, host_peer_info: info }, host.token)
  return r.party_id
}

export async function joinParty(base: string, peer: Peer, partyId: string, info?: PeerInfoInput): Promise<void> {
  await call(base, 'POST', `/parties/${partyId}/join`, { peer_info: info }, peer.token)
}

export async function leaveParty(base: string, peer: Peer, partyId: string): Promise<void> {
  await call(base, 'DELETE', `/parties/${partyId}/peers/${peer.peerId}`, undefined, peer.token)
}

/** A realistic peer record: one public endpoint, two LAN endpoints, a NAT type. */
export function peerInfo(i: number): PeerInfoInput {
  return {
    public_endpoint: `203.0.${(i >> 8) & 255}.${i & 255}:51820`,
    local_endpoints: [`192.168.${(i >> 8) & 255}.${i & 255}:51820`, `10.0.${(i >> 8) & 255}.${i & 255}:51820`],
    nat_type: 'port_restricted_cone',
  }
}

/** Opens the WebSocket of a peer and resolves once the server's `hello` arrived. */
export function openSocket(base: string, peer: Peer, onMessage: (msg: { type: string; [k: string]: unknown }, at: number) => void): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/ws?token=${encodeURIComponent(peer.token)}`)
    const timer = setTimeout(() => {
      ws.close()
      reject(new Error('WebSocket: no hello within 10 s'))
    }, 10_000)
    ws.onmessage = (ev) => {
      const at = performance.now()
      const msg = JSON.parse(String(ev.data)) as { type: string }
      if (msg.type === 'hello') {
        clearTimeout(timer)
        resolve(ws)
      }
      onMessage(msg, at)
    }
    ws.onerror = () => {
      clearTimeout(timer)
      reject(new Error('WebSocket error'))
    }
  })
}

export interface ControlServer {
  url: string
  pid: number
  dbPath: string
  child: Child
  stop(): Promise<void>
}

async function freePort(): Promise<number> {
  const s = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
  const port = s.port
  s.stop(true)
  return port
}

/**
 * Starts `lanrage control` (the real command, src/cli.ts) on 127.0.0.1 with a fresh SQLite file, as its own
 * process (`prefix` e.g. pins it to a CPU), and waits until `GET /health` answers. `args` are extra flags.
 */
export async function startControlServer(args: string[] = [], prefix: string[] = [], bunFlags = profileFlags('control')): Promise<ControlServer> {
  const dir = mkdtempSync(join(tmpdir(), 'lanrage-bench-'))
  const dbPath = join(dir, 'control.db')
  const port = await freePort()
  const child = spawnChild([...prefix, BUN, ...bunFlags, join(REPO_DIR, 'src/cli.ts'), 'control', '--host', '127.0.0.1', '--port', String(port), '--db', dbPath, ...args])
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 20_000
  for (;;) {
    const ok = await fetch(`${url}/health`).then(
      (r) => r.ok,
      () => false,
    )
    if (ok) break
    if (Date.now() > deadline || child.proc.exitCode !== null) {
      const out = await child.stop()
      rmSync(dir, { recursive: true, force: true })
      throw new Error(`control server did not come up: ${out}`)
    }
    await Bun.sleep(100)
  }
  return {
    url,
    pid: child.proc.pid,
    dbPath,
    child,
    async stop() {
      await child.stop()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
