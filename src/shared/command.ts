/**
 * Runs one CLI command body with its parsed config: prints --help to stdout (exit 0), configuration problems
 * to stderr (exit 2) and domain errors as `lanrage <cmd>: <message>` (exit 1) — never a stack trace for a
 * user mistake.
 */
import type { Static, TObject } from '@sinclair/typebox'
import { parseCommand, type CommandSpec, type ConfigSources } from './config.ts'
import { ConfigError, LanrageError } from './errors.ts'
import { safeText } from './terminal.ts'

export type CommandBody<T extends TObject> = (config: Static<T>, positionals: string[]) => Promise<number | void> | number | void

export async function runCommand<T extends TObject>(
  spec: CommandSpec<T>,
  src: ConfigSources,
  body: CommandBody<T>,
): Promise<number> {
  try {
    const parsed = parseCommand(spec, src)
    if (parsed.help) {
      console.log(parsed.text)
      return 0
    }
    return (await body(parsed.config, parsed.positionals)) ?? 0
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(`lanrage ${spec.name}: invalid options:\n${e.problems.map((p) => '  ' + safeText(p)).join('\n')}\nSee: lanrage ${spec.name} --help`)
      return 2
    }
    if (e instanceof LanrageError) {
      // The message may quote the network (a server's error text, a relay's answer): escaped for the terminal.
      console.error(`lanrage ${spec.name}: ${safeText(e.message)} (${safeText(e.code)})`)
      return 1
    }
    throw e
  }
}
