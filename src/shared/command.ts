/**
 * Runs one CLI command body with its parsed config: prints --help to stdout (exit 0), usage and configuration
 * problems to stderr (exit 2) and failures as `lanrage <cmd>: <message>` (exit 1), never a stack trace.
 * It also applies the options every command has (--log-level, --log-format) before the body runs.
 */
import type { Static, TObject } from '@sinclair/typebox'
import { parseCommand, type CommandSpec, type CommonOptions, type ConfigSources } from './config.ts'
import { ConfigError, LanrageError } from './errors.ts'
import { configureLogging, createLogger } from './log.ts'
import { safeText } from './terminal.ts'

export type CommandBody<T extends TObject> = (config: Static<T> & CommonOptions, positionals: string[]) => Promise<number | void> | number | void

/** Exit codes every command keeps: 0 done, 1 the command failed while running, 2 the command line is wrong. */
export const EXIT = { OK: 0, FAILED: 1, USAGE: 2 } as const

/** Sets the process-wide log level and format from a parsed command config. */
export function applyLogging(config: CommonOptions): void {
  configureLogging({ level: config.logLevel, format: config.logFormat })
}

export async function runCommand<T extends TObject>(
  spec: CommandSpec<T>,
  src: ConfigSources,
  body: CommandBody<T>,
): Promise<number> {
  try {
    const parsed = parseCommand(spec, src)
    if (parsed.help) {
      console.log(parsed.text)
      return EXIT.OK
    }
    applyLogging(parsed.config)
    return (await body(parsed.config, parsed.positionals)) ?? EXIT.OK
  } catch (e) {
    return reportFailure(spec.name, e)
  }
}

/** Prints what went wrong in one line (or one per configuration problem) and returns the exit code. */
export function reportFailure(command: string, e: unknown): number {
  if (e instanceof ConfigError) {
    console.error(`lanrage ${command}: invalid options:\n${e.problems.map((p) => '  ' + safeText(p)).join('\n')}\nSee: lanrage ${command} --help`)
    return EXIT.USAGE
  }
  if (e instanceof LanrageError && e.code === 'USAGE') {
    console.error(`lanrage ${command}: ${safeText(e.message)}\nSee: lanrage ${command} --help`)
    return EXIT.USAGE
  }
  if (e instanceof LanrageError) {
    // The message may quote the network (a server's error text, a relay's answer): escaped for the terminal.
    console.error(`lanrage ${command}: ${safeText(e.message)} (${safeText(e.code)})`)
    return EXIT.FAILED
  }
  // A bug or an error from below (the OS, a library): one line for the user, the stack for --log-level debug.
  const err = e instanceof Error ? e : new Error(String(e))
  createLogger(command).debug('unexpected error', { error: err, stack: err.stack?.split('\n').slice(1, 6).join(' | ') })
  console.error(`lanrage ${command}: ${safeText(err.message)} (INTERNAL; --log-level debug shows where)`)
  return EXIT.FAILED
}
