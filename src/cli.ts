#!/usr/bin/env bun
/**
 * The one `lanrage` CLI. Each command lives in its own module (loaded lazily, so `lanrage keygen` does not
 * load the control server) and exports `main(argv): Promise<number>` returning the exit code: 0 done,
 * 1 failed while running, 2 the command line is wrong (src/shared/command.ts).
 */
import { didYouMean } from './shared/suggest.ts'

// The command table is its own module: a command may read it (settings checks keys against every command's
// options) while this entry module is still running that command (its top-level await), which it could not import.
export { COMMANDS } from './cmd/commands.ts'
import { COMMANDS } from './cmd/commands.ts'

export function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length))
  return [
    'Usage: lanrage <command> [options]',
    '',
    'LANrage: if it runs on LAN, it runs on LANrage. A zero-config gaming VPN control plane.',
    '',
    'Commands:',
    ...Object.entries(COMMANDS).map(([name, e]) => `  ${name.padEnd(width)}  ${e.summary}`),
    '',
    'Run `lanrage <command> --help` for its options.',
  ].join('\n')
}

export async function run(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv
  if (!cmd || cmd === '-h' || cmd === '--help' || cmd === 'help') {
    console.log(usage())
    return cmd ? 0 : 2
  }
  const entry = COMMANDS[cmd === '--version' ? 'version' : cmd]
  if (!entry) {
    console.error(`lanrage: unknown command "${cmd}"${didYouMean(cmd, Object.keys(COMMANDS))}\n\n${usage()}`)
    return 2
  }
  const mod = await entry.load()
  return mod.main(rest)
}

if (import.meta.main) {
  const code = await run(process.argv.slice(2))
  // Servers keep running (their main resolves only at shutdown); everything else exits with its code.
  process.exitCode = code
}
