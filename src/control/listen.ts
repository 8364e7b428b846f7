/**
 * Where the control server listens: plain HTTP, or HTTPS with a certificate and key read from PEM files and
 * re-read on demand (SIGHUP), so a renewed certificate is served without a restart.
 *
 * A busy port is an error at start (PortInUseError naming the port and the flag), never shared: Elysia asks Bun for
 * SO_REUSEPORT by default, and two servers on one port would split the requests between two databases.
 *
 * Bun cannot swap the certificate of a running listener (`server.reload()` ignores `tls`). So the HTTPS listener
 * holds the port with SO_REUSEPORT, and a reload opens a second listener with the new certificate on the same port,
 * then stops the first from accepting: new connections get the new certificate, open connections and WebSockets on
 * the old listener carry on until they close. That is also why the port is first bound once without SO_REUSEPORT:
 * the kernel refuses that bind if anyone holds the port, with or without the option.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { Server } from 'bun'
import { LanrageError, PortInUseError, isAddrInUse } from '../shared/errors.ts'
import type { Logger } from '../shared/log.ts'
import type { Control } from './app.ts'

export interface TlsFiles {
  cert: string
  key: string
}

/** The PEM text Bun.serve takes, plus what the logs say about it. */
export interface TlsPair {
  cert: string
  key: string
  subject: string
  validTo: string
}

const oneLine = (e: unknown) => (e instanceof Error ? e.message : String(e)).split('\n')[0]

/**
 * Reads and checks a certificate (chain) and its private key: both parse, and the key belongs to the first
 * certificate. Every problem is one line naming the option and the file.
 */
export function loadTlsPair(files: TlsFiles): TlsPair {
  const read = (path: string, flag: string) => {
    try {
      return readFileSync(path, 'utf8')
    } catch (e) {
      throw new LanrageError('TLS_FILE', `${flag} ${path}: cannot read it: ${oneLine(e)}`)
    }
  }
  const cert = read(files.cert, '--tls-cert')
  const key = read(files.key, '--tls-key')
  let x509: X509Certificate
  try {
    x509 = new X509Certificate(cert)
  } catch (e) {
    throw new LanrageError('TLS_FILE', `--tls-cert ${files.cert}: not a PEM certificate: ${oneLine(e)}`)
  }
  let privateKey: ReturnType<typeof createPrivateKey>
  try {
    privateKey = createPrivateKey(key)
  } catch (e) {
    throw new LanrageError('TLS_FILE', `--tls-key ${files.key}: not a PEM private key (an encrypted key is not supported): ${oneLine(e)}`)
  }
  if (!x509.checkPrivateKey(privateKey)) throw new LanrageError('TLS_FILE', `--tls-key ${files.key} is not the key of the certificate in --tls-cert ${files.cert}`)
  return { cert, key, subject: x509.subject.replace(/\n/g, ', '), validTo: x509.validTo }
}

export interface ControlListener {
  readonly protocol: 'http' | 'https'
  /** The address actually bound (port 0 resolved). */
  readonly hostname: string
  readonly port: number
  /**
   * Re-reads the certificate and key and serves them to new connections. A pair that does not load is logged and
   * the current one stays (the server keeps running). Resolves to whether the new pair is in use.
   */
  reloadTls(): boolean
  /** Stops every listener (the current one and any still draining after a reload). */
  stop(): Promise<void>
}

type App = Control['app']

export function listenControl(app: App, o: { hostname: string; port: number; tls?: TlsFiles; log: Logger }): ControlListener {
  const busy = (e: unknown, port: number) => new PortInUseError('control HTTP', port, 'tcp', '--port', { cause: e })
  if (!o.tls) {
    try {
      app.listen({ hostname: o.hostname, port: o.port, reusePort: false })
    } catch (e) {
      if (isAddrInUse(e)) throw busy(e, o.port)
      throw e
    }
    const server = app.server!
    return {
      protocol: 'http',
      hostname: server.hostname ?? o.hostname,
      port: server.port!,
      reloadTls() {
        o.log.info('no --tls-cert: nothing to reload')
        return false
      },
      async stop() {
        await app.stop(true)
      },
    }
  }

  const files = o.tls
  let pair = loadTlsPair(files)
  if (o.port !== 0) {
    // Exclusive bind first: refused if any socket holds the port (see the header); released at once.
    try {
      Bun.serve({ hostname: o.hostname, port: o.port, reusePort: false, fetch: () => new Response(null, { status: 503 }) }).stop(true)
    } catch (e) {
      if (isAddrInUse(e)) throw busy(e, o.port)
      throw e
    }
  }
  const open = (port: number) => {
    try {
      app.listen({ hostname: o.hostname, port, reusePort: true, tls: { cert: pair.cert, key: pair.key } })
    } catch (e) {
      if (isAddrInUse(e)) throw busy(e, port)
      throw e
    }
    return app.server!
  }
  const first = open(o.port)
  const port = first.port!
  const hostname = first.hostname ?? o.hostname
  const draining = new Set<Server<unknown>>()
  o.log.info('TLS certificate loaded', { subject: pair.subject, valid_to: pair.validTo, cert: files.cert })
  return {
    protocol: 'https',
    hostname,
    port,
    reloadTls() {
      let next: TlsPair
      try {
        next = loadTlsPair(files)
      } catch (e) {
        o.log.error('TLS reload failed; still serving the previous certificate', { error: oneLine(e) })
        return false
      }
      const old = app.server!
      const prev = pair
      pair = next
      try {
        open(port)
      } catch (e) {
        pair = prev
        app.server = old
        o.log.error('TLS reload failed; still serving the previous certificate', { error: oneLine(e) })
        return false
      }
      // Not awaited: stop(false) resolves only when the old listener's last connection (maybe a WebSocket) closes.
      draining.add(old)
      void old.stop(false).then(() => draining.delete(old))
      o.log.info('TLS certificate reloaded', { subject: pair.subject, valid_to: pair.validTo, cert: files.cert })
      return true
    },
    async stop() {
      await Promise.all([...draining].map((s) => s.stop(true)))
      draining.clear()
      await app.stop(true)
    },
  }
}
