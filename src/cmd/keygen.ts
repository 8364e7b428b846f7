/** `lanrage keygen`: prints a new WireGuard private key (base64), like `wg genkey`. */
import { Type } from '@sinclair/typebox'
import { runCommand } from '../shared/command.ts'
import type { CommandSpec } from '../shared/config.ts'
import { UsageError } from '../shared/errors.ts'
import { encodeKey, generatePrivateKey } from '../client/wireguard/keys.ts'

export const spec = {
  name: 'keygen',
  summary: 'print a new WireGuard private key (base64), like `wg genkey`',
  description: 'Pipe it into `lanrage pubkey` (or `wg pubkey`) for the public key:\n  lanrage keygen | tee private.key | lanrage pubkey',
  settingsFrom: false,
  schema: Type.Object({}),
} satisfies CommandSpec<any>

export async function main(argv: string[]): Promise<number> {
  return runCommand(spec, { argv, env: process.env }, (_cfg, pos) => {
    if (pos.length) throw new UsageError(`takes no arguments (got ${JSON.stringify(pos[0])})`)
    process.stdout.write(encodeKey(generatePrivateKey()) + '\n')
    return 0
  })
}
