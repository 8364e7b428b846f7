/**
 * TLS towards the control server, for all of its clients (the client library, the agent, relays). The whole of it
 * is one small options object, `ControlTls`; `tlsInit` maps it onto the `tls` option that Bun's fetch() and
 * WebSocket both take, and an adapter for another runtime maps the same object onto its own (an undici dispatcher,
 * the `ws` options). Certificates are always verified: there is no switch to turn that off.
 */
import { X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { LanrageError } from './errors.ts'

export interface ControlTls {
  /**
   * PEM text of the CA certificate(s) that may sign the control server's certificate (a private CA). It replaces
   * the system's trusted list for connections to the control server; unset, the system's list is used.
   */
  ca?: string
}

/** The `tls` option of Bun's fetch() and WebSocket for `tls` ({} when there is nothing to add). */
export function tlsInit(tls: ControlTls | undefined): { tls?: { ca: string } } {
  return tls?.ca ? { tls: { ca: tls.ca } } : {}
}

/** Reads a CA file (`--ca-file`): one or more PEM certificates, each checked to parse. */
export function readCaFile(path: string, flag = '--ca-file'): ControlTls {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (e) {
    throw new LanrageError('CA_FILE', `${flag} ${path}: cannot read it: ${(e as Error).message}`)
  }
  const pems = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
  if (!pems.length) throw new LanrageError('CA_FILE', `${flag} ${path}: no PEM certificate in it`)
  for (const pem of pems) {
    try {
      new X509Certificate(pem)
    } catch (e) {
      throw new LanrageError('CA_FILE', `${flag} ${path}: a certificate in it does not parse: ${(e as Error).message.split('\n')[0]}`)
    }
  }
  return { ca: pems.join('\n') + '\n' }
}

/**
 * The control server's base URLs from what a user gave: http(s):// or ws(s):// of the same server (a `wss://` URL
 * means `https://` for the API and `wss://` for `/ws`). Anything else is refused with one line.
 */
export function controlUrls(url: string): { http: string; ws: string; secure: boolean } {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    throw new LanrageError('BAD_CONTROL_URL', `control URL ${JSON.stringify(url)} is not a URL (e.g. https://control.example:8667)`)
  }
  const scheme = { 'http:': 'http', 'ws:': 'http', 'https:': 'https', 'wss:': 'https' }[u.protocol]
  if (!scheme || !u.host) throw new LanrageError('BAD_CONTROL_URL', `control URL ${JSON.stringify(url)}: expected http://, https://, ws:// or wss:// and a host`)
  const rest = `${u.host}${u.pathname.replace(/\/+$/, '')}`
  return { http: `${scheme}://${rest}`, ws: `${scheme === 'https' ? 'wss' : 'ws'}://${rest}`, secure: scheme === 'https' }
}

/**
 * Several control URLs from one option (`--control A,B`): instances of one control server sharing one database,
 * which a client uses one at a time, moving to the next when one fails. Each is checked as `controlUrls` checks
 * it; an empty list, or the same server twice, is refused with one line.
 */
export function controlUrlList(text: string | readonly string[]): string[] {
  const list = (typeof text === 'string' ? text.split(',') : [...text]).map((u) => u.trim()).filter(Boolean)
  if (!list.length) throw new LanrageError('BAD_CONTROL_URL', 'no control URL given (e.g. https://control.example:8667)')
  const seen = new Set<string>()
  for (const u of list) {
    const http = controlUrls(u).http
    if (seen.has(http)) throw new LanrageError('BAD_CONTROL_URL', `control URL ${JSON.stringify(u)} is given twice`)
    seen.add(http)
  }
  return list
}

/**
 * Whether `e` is a refused certificate (unknown CA, wrong name, expired): retrying cannot help, unlike a network
 * error. Node's fetch wraps the TLS error ("fetch failed") and keeps its code on `cause`.
 */
export function isCertificateError(e: unknown): boolean {
  const err = e as { code?: unknown; cause?: { code?: unknown } } | null
  const code = err?.code ?? err?.cause?.code
  return typeof code === 'string' && /CERT|SELF_SIGNED|UNABLE_TO_(VERIFY|GET_ISSUER)|ALTNAME|HOSTNAME_MISMATCH/.test(code)
}
