/**
 * Running the control server: `startControl` listens on an open database and runs the heartbeat flush and
 * cleanup loops (what `lanrage control` and `lanrage serve` start, and what an embedding program calls);
 * `runServerCommand` is the command-line shape both server commands share.
 */
import type { Static, TObject } from '@sinclair/typebox'
import { randomBytes } from 'node:crypto'
import { openDatabase, type OpenDb } from '../db/client.ts'
import { SettingsStore } from '../db/settings.ts'
import { systemClock, type Clock } from '../shared/clock.ts'
import { runCommand } from '../shared/command.ts'
import { parseCommand, type CommandSpec } from '../shared/config.ts'
import { createLogger, type Logger } from '../shared/log.ts'
import { untilSignal } from '../shared/signals.ts'
import { createControl, type Control } from './app.ts'
import type { ControlConfig } from './config.ts'

export interface RunningControl extends Control {
  /** Base URL a local client can use (0.0.0.0 / :: shown as 127.0.0.1). */
  url: string
  hostname: string
  port: number
  /** The Ed25519 key relays verify tickets with (an in-process relay gets it directly). */
  ticketPublicKey: Uint8Array
  /** The relay secret in force (generated when none was configured and `generateRelaySecret` was set). */
  relaySecret: string
  close(): Promise<void>
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
  if (!cfg.relaySecret && deps.generateRelaySecret) cfg.relaySecret = randomBytes(24).toString('base64url')
  const control = createControl({ db: deps.open.db, clock: deps.clock ?? systemClock, logger, config: cfg })
  control.app.listen({ hostname: cfg.host, port: cfg.port })
  const server = control.app.server!
  const hostname = server.hostname ?? cfg.host
  const shown = hostname === '0.0.0.0' || hostname === '::' ? '127.0.0.1' : hostname.includes(':') ? `[${hostname}]` : hostname
  const url = `http://${shown}:${server.port}`
  const flush = setInterval(() => guard(logger, 'heartbeat flush', () => control.service.flush()), cfg.heartbeatFlushMs)
  const cleanup = setInterval(() => guard(logger, 'cleanup', () => control.service.cleanup()), cfg.cleanupIntervalS * 1000)
  logger.info('control server listening', { url, bind: `${hostname}:${server.port}`, db: deps.open.path })
  if (!cfg.relaySecret) logger.warn('no relay secret configured: relays cannot register (set --relay-secret)')
  let closed = false
  return {
    ...control,
    url,
    hostname,
    port: server.port!,
    ticketPublicKey: control.service.keys.ed25519Public,
    relaySecret: cfg.relaySecret,
    async close() {
      if (closed) return
      closed = true
      clearInterval(flush)
      clearInterval(cleanup)
      guard(logger, 'final flush', () => control.service.flush())
      control.service.hub.closeAll()
      await control.app.stop(true)
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

/**
 * The shared shape of the server commands (`control`, `serve`): parse for --db, open the database, parse again
 * with its settings, start, wait for SIGINT/SIGTERM, shut down, close the database.
 */
export async function runServerCommand<T extends TObject>(
  spec: CommandSpec<T>,
  argv: string[],
  start: (config: Static<T>, open: OpenDb) => Promise<{ close(): Promise<void> }> | { close(): Promise<void> },
): Promise<number> {
  return runCommand(spec, { argv, env: process.env }, async (pre) => {
    const open = openDatabase((pre as { db: string }).db)
    try {
      const store = new SettingsStore(open.db)
      const parsed = parseCommand(spec, { argv, env: process.env, settings: (k) => store.get(k) })
      if (parsed.help) return 0
      const server = await start(parsed.config, open)
      const sig = await untilSignal()
      createLogger(spec.name).info('shutting down', { signal: sig })
      await server.close()
      return 0
    } finally {
      open.close()
    }
  })
}
