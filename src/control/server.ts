/**
 * Running the control server: `startControl` listens on an open database and runs the heartbeat flush and
 * cleanup loops (what `lanrage control` and `lanrage serve` start, and what an embedding program calls);
 * `runServerCommand` is the command-line shape both server commands share.
 */
import type { Static, TObject } from '@sinclair/typebox'
import { randomBytes } from 'node:crypto'
import { resolve } from 'node:path'
import { openDatabase, type OpenDb } from '../db/client.ts'
import { SettingsStore } from '../db/settings.ts'
import { systemClock, type Clock } from '../shared/clock.ts'
import { applyLogging, runCommand } from '../shared/command.ts'
import { parseCommand, type CommandSpec } from '../shared/config.ts'
import { ConfigError, LanrageError } from '../shared/errors.ts'
import { createLogger, type Logger } from '../shared/log.ts'
import { relaySecretOf } from '../shared/private-files.ts'
import { stopSignal } from '../shared/signals.ts'
import { createControl, type Control } from './app.ts'
import type { ControlConfig } from './config.ts'
import { controlSchema } from './config.ts'
import { listenControl } from './listen.ts'

export interface RunningControl extends Control {
  /** Base URL a local client can use (0.0.0.0 / :: shown as 127.0.0.1; https:// with TLS). */
  url: string
  hostname: string
  port: number
  /** The Ed25519 key relays verify tickets with (an in-process relay gets it directly). */
  ticketPublicKey: Uint8Array
  /** The relay secret in force (generated when none was configured and `generateRelaySecret` was set). */
  relaySecret: string
  /** With --tls-cert: re-reads the certificate and key (SIGHUP); false when they did not load (the old pair stays). */
  reloadTls?: () => boolean
  close(): Promise<void>
}

/** What the server commands get back from their start function. */
export interface StartedServer {
  close(): Promise<void>
  reloadTls?: () => boolean
}

/**
 * Starts the control server on an open database: listens, runs the heartbeat flush and cleanup loops.
 * `close()` stops the loops, flushes last_seen, closes WebSockets and the listener (not the database).
 */
export function startControl(
  config: ControlConfig,
  deps: { open: OpenDb; clock?: Clock; logger?: Logger; generateRelaySecret?: boolean },
): RunningControl {
  const logger = deps.logger ?? createLogger('control')
  const cfg = { ...config }
  if (Boolean(cfg.tlsCert) !== Boolean(cfg.tlsKey)) throw new ConfigError(['--tls-cert and --tls-key: give both (HTTPS) or neither (HTTP)'])
  cfg.relaySecret = relaySecretOf(cfg, (m) => logger.warn(m))
  if (!cfg.relaySecret && deps.generateRelaySecret) cfg.relaySecret = randomBytes(24).toString('base64url')
  const control = createControl({ db: deps.open.db, clock: deps.clock ?? systemClock, logger, config: cfg })
  const tls = cfg.tlsCert ? { cert: cfg.tlsCert, key: cfg.tlsKey } : undefined
  const listener = listenControl(control.app, { hostname: cfg.host, port: cfg.port, tls, log: logger })
  const hostname = listener.hostname
  const shown = hostname === '0.0.0.0' || hostname === '::' ? '127.0.0.1' : hostname.includes(':') ? `[${hostname}]` : hostname
  const url = `${listener.protocol}://${shown}:${listener.port}`
  const flush = setInterval(() => guard(logger, 'heartbeat flush', () => control.service.flush()), cfg.heartbeatFlushMs)
  const cleanup = setInterval(() => guard(logger, 'cleanup', () => control.service.cleanup()), cfg.cleanupIntervalS * 1000)
  logger.info('control server listening', { url, bind: `${hostname}:${listener.port}`, db: deps.open.path })
  if (!cfg.relaySecret) logger.warn('no relay secret configured: relays cannot register (set --relay-secret-file or LANRAGE_RELAY_SECRET)')
  let closed = false
  return {
    ...control,
    url,
    hostname,
    port: listener.port,
    ticketPublicKey: control.service.keys.ed25519Public,
    relaySecret: cfg.relaySecret,
    ...(tls ? { reloadTls: () => listener.reloadTls() } : {}),
    async close() {
      if (closed) return
      closed = true
      clearInterval(flush)
      clearInterval(cleanup)
      guard(logger, 'final flush', () => control.service.flush())
      control.service.hub.closeAll()
      await listener.stop()
      logger.info('control server stopped')
    },
  }
}

function guard(logger: Logger, what: string, fn: () => unknown) {
  try {
    fn()
  } catch (e) {
    logger.error(`${what} failed`, { error: e as Error })
  }
}

/** The database file both server commands use unless told otherwise; its directory is LANrage's own. */
const DEFAULT_DB = controlSchema.properties.db.default

/**
 * The shared shape of the server commands (`control`, `serve`): parse for --db, open the database, parse again
 * with its settings, start, wait for SIGINT/SIGTERM (SIGHUP re-reads the TLS certificate), shut down, close the
 * database.
 */
export async function runServerCommand<T extends TObject>(
  spec: CommandSpec<T>,
  argv: string[],
  start: (config: Static<T>, open: OpenDb) => Promise<StartedServer> | StartedServer,
): Promise<number> {
  return runCommand(spec, { argv, env: process.env }, async (pre) => {
    const log = createLogger(spec.name)
    const path = (pre as unknown as { db: string }).db
    let open: OpenDb
    try {
      open = openDatabase(path, { privateDir: resolve(path) === resolve(DEFAULT_DB), log })
    } catch (e) {
      throw new LanrageError('DB_OPEN', `--db ${path}: cannot open it: ${(e as Error).message}`, 500, { cause: e })
    }
    const stop = stopSignal()
    let server: StartedServer | undefined
    const onHup = () => {
      log.info('SIGHUP: reloading the TLS certificate')
      server?.reloadTls?.()
    }
    try {
      const store = new SettingsStore(open.db)
      const parsed = parseCommand(spec, { argv, env: process.env, settings: (k) => store.get(k) })
      if (parsed.help) return 0
      // SIGHUP re-reads the certificate; taken before start-up like SIGTERM, and only with TLS (otherwise SIGHUP
      // keeps its default meaning).
      if ((parsed.config as { tlsCert?: string }).tlsCert) process.on('SIGHUP', onHup)
      // The settings may change the log level or format (serve.log_level): applied again before anything starts.
      applyLogging(parsed.config)
      server = await start(parsed.config, open)
      const sig = await stop.signalled
      log.info('shutting down', { signal: sig })
      await server.close()
      return 0
    } finally {
      process.off('SIGHUP', onHup)
      stop.dispose()
      open.close()
    }
  })
}
