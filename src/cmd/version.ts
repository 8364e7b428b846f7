/** `lanrage version` (also `lanrage --version`): the version of this package, and with --json the runtime too. */
import { Type } from '@sinclair/typebox'
import pkg from '../../package.json'
import { runCommand } from '../shared/command.ts'
import type { CommandSpec } from '../shared/config.ts'
import { UsageError } from '../shared/errors.ts'

export const spec = {
  name: 'version',
  summary: 'print the version of lanrage',
  description: 'The same version the servers report in GET / and in the lanrage_build_info metric.',
  settingsFrom: false,
  schema: Type.Object({
    json: Type.Boolean({ default: false, description: 'print {"version", "runtime", "runtime_version"} as JSON', settings: false, env: false }),
  }),
} satisfies CommandSpec<any>

export async function main(argv: string[]): Promise<number> {
  return runCommand(spec, { argv, env: process.env }, (cfg, pos) => {
    if (pos.length) throw new UsageError(`takes no arguments (got ${JSON.stringify(pos[0])})`)
    const bun = (globalThis as { Bun?: { version: string } }).Bun
    if (cfg.json) console.log(JSON.stringify({ version: pkg.version, runtime: bun ? 'bun' : 'node', runtime_version: bun ? bun.version : process.versions.node }))
    else console.log(pkg.version)
  })
}
