/**
 * `lanrage relay`: the UDP relay alone. Options come from flags and LANRAGE_* env (the relay has no database;
 * inside `lanrage serve` its options are also settings keys `serve.relay_*`). Registers with --control when
 * given; stops cleanly on SIGINT/SIGTERM.
 */
import { runCommand } from '../shared/command.ts'
import { LanrageError } from '../shared/errors.ts'
import type { CommandSpec } from '../shared/config.ts'
import { createLogger } from '../shared/log.ts'
import { untilSignal } from '../shared/signals.ts'
import { relaySchema } from './config.ts'
import { startRelay } from './index.ts'

export const spec = {
  name: 'relay',
  summary: 'run the UDP relay alone: STUN, ticketed sessions, forwarding between WireGuard peers',
  description: [
    'The main port answers STUN Binding requests and ALLOCATE requests carrying a control-server ticket;',
    'each session gets one UDP port per side from --ports. With --control and --relay-secret the relay',
    'registers and heartbeats; without --control it serves STUN only (it has no ticket key).',
  ].join('\n'),
  schema: relaySchema,
} satisfies CommandSpec<typeof relaySchema>

export async function main(argv: string[]): Promise<number> {
  return runCommand(spec, { argv, env: process.env }, async (config) => {
    const log = createLogger('relay')
    const relay = await startRelay(config, { log }).catch((e: unknown) => {
      const why = e instanceof Error ? e.message : String(e)
      throw new LanrageError('RELAY_START_FAILED', `cannot start the relay on ${config.host}:${config.port}: ${why}`, 500)
    })
    const sig = await untilSignal()
    log.info('shutting down', { signal: sig })
    await relay.close()
    return 0
  })
}
