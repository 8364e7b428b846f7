/**
 * `lanrage relay`: the UDP relay alone. Options come from flags, LANRAGE_* env and the settings keys `relay.*` in
 * $LANRAGE_HOME/settings.db (read once at start; inside `lanrage serve` they are `serve.relay_*` in the server's
 * database). Registers with --control when given; stops cleanly on SIGINT/SIGTERM.
 */
import { runCommand } from '../shared/command.ts'
import { LanrageError } from '../shared/errors.ts'
import type { CommandSpec } from '../shared/config.ts'
import { defaultSettingsPath } from '../shared/home.ts'
import { createLogger } from '../shared/log.ts'
import { relaySecretOf } from '../shared/private-files.ts'
import { stopSignal } from '../shared/signals.ts'
import { relaySchema, type RelayConfig } from '../relay/config.ts'
import { startRelay } from '../relay/index.ts'
import { openSettingsFile } from '../relay/settings-file.ts'
import { controlUrls, readCaFile, tlsInit } from '../shared/tls.ts'

export const spec = {
  name: 'relay',
  summary: 'run the UDP relay alone: STUN, ticketed sessions, forwarding between WireGuard peers',
  description: [
    'The main port answers STUN Binding requests and ALLOCATE requests carrying a control-server ticket;',
    'each session gets one UDP port per side from --ports. With --control and --relay-secret the relay',
    'registers and heartbeats; without --control it serves STUN only (it has no ticket key). An https:// control',
    'server is verified against the system CAs, or against --ca-file for a private CA.',
    'Settings keys relay.<option> are read from $LANRAGE_HOME/settings.db (see lanrage settings).',
  ].join('\n'),
  schema: relaySchema,
} satisfies CommandSpec<typeof relaySchema>

export async function main(argv: string[]): Promise<number> {
  const settings = openSettingsFile(defaultSettingsPath())
  const src = { argv, env: process.env, settings: settings && ((k: string) => settings.get(k)) }
  try {
    // Options are read once: the file is closed before the relay runs (and in finally, for --help and bad options).
    return await runCommand(spec, src, (config) => {
      settings?.close()
      return run(config)
    })
  } finally {
    settings?.close()
  }
}

async function run(options: RelayConfig): Promise<number> {
  const log = createLogger('relay')
  const config = { ...options, relaySecret: relaySecretOf(options, (m) => log.warn(m)) }
  if (config.control) controlUrls(config.control) // a bad URL is one line now, not a registration retried forever
  const tls = config.caFile ? readCaFile(config.caFile) : undefined
  const withCa = tls && (((input: string | Request, init?: RequestInit) => fetch(input, { ...init, ...tlsInit(tls) })) as typeof fetch)
  const stop = stopSignal() // before start-up: a SIGTERM right after "relay listening" still stops it cleanly
  try {
    const relay = await startRelay(config, { log, fetch: withCa }).catch((e: unknown) => {
      if (e instanceof LanrageError) throw e // e.g. a busy port: its message names the flag that moves it
      const why = e instanceof Error ? e.message : String(e)
      throw new LanrageError('RELAY_START_FAILED', `cannot start the relay on ${config.host}:${config.port}: ${why}`, 500)
    })
    const sig = await stop.signalled
    log.info('shutting down', { signal: sig })
    await relay.close()
    return 0
  } finally {
    stop.dispose()
  }
}
