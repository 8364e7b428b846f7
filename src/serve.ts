/**
 * `lanrage serve`: the control server and the relay in one process on an embedded SQLite file (what `npm start`
 * runs). The relay registers with the control server through the same HTTP API a remote relay uses, with the
 * ticket public key handed over directly.
 */
import { Type } from '@sinclair/typebox'
import type { CommandSpec } from './shared/config.ts'
import { controlSchema } from './control/config.ts'
import { runServerCommand, startControl } from './control/main.ts'

export const spec = {
  name: 'serve',
  summary: 'control server and relay in one process, SQLite under ./data/ (what npm start runs)',
  description: 'Settings keys: serve.<option>. Without --relay-secret a random one is generated for the in-process relay.',
  schema: Type.Object({
    ...controlSchema.properties,
    // RELAY OPTIONS: the relay's own options (port, port range, public ip, ...) join this schema here.
  }),
} satisfies CommandSpec<any>

export async function main(argv: string[]): Promise<number> {
  return runServerCommand(spec, argv, async (config, open) => {
    const control = startControl(config, { open, generateRelaySecret: true })
    // RELAY: start the in-process relay here, e.g.
    //   const relay = await startRelay({ ...relayOptions, control: control.url, relaySecret: control.relaySecret },
    //                                  { ticketPublicKey: control.ticketPublicKey, ... })
    // and close it before the control server below.
    return {
      async close() {
        await control.close()
      },
    }
  })
}
