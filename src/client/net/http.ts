/**
 * fetch for the control plane clients, with the private CA of `ControlTls` mapped onto each runtime:
 *
 *   Bun                       the runtime's fetch with { tls: { ca } }
 *   Node, no CA (or http://)  the runtime's fetch
 *   Node, https:// with a CA  node:https, which takes `ca` (Node's fetch takes a CA only through a dispatcher
 *                             from a separate undici install); the answer comes back as a standard Response
 *
 * Certificates are always verified; a refused one fails with its OpenSSL code (e.g. UNABLE_TO_VERIFY_LEAF_SIGNATURE).
 */
import { request as httpsRequest } from 'node:https'
import { tlsInit, type ControlTls } from '../../shared/tls.ts'

export type FetchLike = (url: string, init?: RequestInit) => Promise<Response>
export type FetchImpl = 'bun' | 'runtime' | 'node-https'

/** Which implementation `controlFetch` uses here for this TLS setting. */
export function fetchImpl(tls: ControlTls | undefined): FetchImpl {
  if ((globalThis as { Bun?: unknown }).Bun) return 'bun'
  return tls?.ca ? 'node-https' : 'runtime'
}

/** A fetch that trusts `tls.ca` for https:// URLs (or the system's list without one). */
export function controlFetch(tls: ControlTls | undefined, impl: FetchImpl = fetchImpl(tls)): FetchLike {
  if (impl === 'bun') {
    const extra = tlsInit(tls)
    return (url, init) => fetch(url, { ...init, ...extra })
  }
  const ca = tls?.ca
  if (impl === 'runtime' || !ca) return (url, init) => fetch(url, init)
  return (url, init) => (url.startsWith('https:') ? httpsFetch(url, init ?? {}, ca) : fetch(url, init))
}

// Statuses whose Response must have no body (the Fetch standard's "null body status").
const NULL_BODY = new Set([101, 103, 204, 205, 304])

function httpsFetch(url: string, init: RequestInit, ca: string): Promise<Response> {
  if (init.body != null && typeof init.body !== 'string') return Promise.reject(new TypeError('only string request bodies are supported here'))
  const headers: Record<string, string> = {}
  new Headers(init.headers).forEach((v, k) => (headers[k] = v))
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method: init.method ?? 'GET', headers, ca, signal: init.signal ?? undefined }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('error', reject)
      res.on('end', () => {
        const h = new Headers()
        for (const [k, v] of Object.entries(res.headers)) for (const one of Array.isArray(v) ? v : v === undefined ? [] : [v]) h.append(k, one)
        const status = res.statusCode ?? 502
        resolve(new Response(NULL_BODY.has(status) ? null : Buffer.concat(chunks), { status, statusText: res.statusMessage, headers: h }))
      })
    })
    req.on('error', reject)
    req.end(init.body ?? undefined)
  })
}
