/** `lanrage pubkey`: reads a WireGuard private key on stdin and prints its public key, like `wg pubkey`. */
import { Type } from '@sinclair/typebox'
import { runCommand } from '../shared/command.ts'
import type { CommandSpec } from '../shared/config.ts'
import { UsageError } from '../shared/errors.ts'
import { encodeKey, parsePrivateKey, publicKeyOf } from '../client/wireguard/keys.ts'

export const spec = {
  name: 'pubkey',
  summary: 'read a WireGuard private key on stdin, print its public key, like `wg pubkey`',
  settingsFrom: false,
  schema: Type.Object({}),
} satisfies CommandSpec<any>

export async function main(argv: string[]): Promise<number> {
  return runCommand(spec, { argv, env: process.env }, async (_cfg, pos) => {
    if (pos.length) throw new UsageError('takes no arguments; the private key comes on stdin')
    const text = await Bun.stdin.text()
    process.stdout.write(encodeKey(publicKeyOf(parsePrivateKey(text))) + '\n')
    return 0
  })
}
