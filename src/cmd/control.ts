/**
 * `lanrage control`: the control server alone. Options come from flags, LANRAGE_* env and this server's own
 * database (settings keys `control.*`): the command line is parsed once to find --db, the database is opened,
 * then parsed again with the settings as a source (src/shared/config.ts precedence).
 */
import { controlSchema } from '../control/config.ts'
import { runServerCommand, startControl } from '../control/server.ts'
import type { CommandSpec } from '../shared/config.ts'

export const spec = {
  name: 'control',
  summary: 'run the control server alone (HTTP API, WebSocket, relay registry)',
  description: [
    'Relays register with the relay secret; clients connect to http://HOST:PORT, or https://HOST:PORT with --tls-cert',
    'and --tls-key (SIGHUP re-reads both). Settings keys: control.<option>.',
  ].join('\n'),
  settingsFrom: 'server',
  schema: controlSchema,
} satisfies CommandSpec<typeof controlSchema>

export async function main(argv: string[]): Promise<number> {
  return runServerCommand(spec, argv, (config, open) => startControl(config, { open }))
}
