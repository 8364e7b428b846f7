#!/usr/bin/env bun
/**
 * The one `lanrage` CLI. Each command lives in its own module (loaded lazily, so `lanrage keygen` does not
 * load the control server) and exports `main(argv): Promise<number>` returning the exit code: 0 done,
 * 1 failed while running, 2 the command line is wrong (src/shared/command.ts).
 */
import { didYouMean } from './shared/suggest.ts'

type CommandModule = { main(argv: string[]): Promise<number> }
interface Entry {
  summary: string
  load: () => Promise<CommandModule>
}

// Add a line here when a command's module lands; `test/cli.test.ts` runs --help on every entry.
export const COMMANDS: Record<string, Entry> = {
  serve: { summary: 'control server and relay in one process, SQLite under ./data/ (npm start)', load: () => import('./cmd/serve.ts') },
  control: { summary: 'run the control server alone', load: () => import('./cmd/control.ts') },
  relay: { summary: 'run the UDP relay alone (STUN, ticketed sessions, forwarding)', load: () => import('./cmd/relay.ts') },
  keygen: { summary: 'print a new WireGuard private key, like `wg genkey`', load: () => import('./cmd/keygen.ts') },
  nat: { summary: 'learn the public UDP endpoint and NAT type from two STUN servers', load: () => import('./cmd/nat.ts') },
  pubkey: { summary: 'read a private key on stdin, print its public key, like `wg pubkey`', load: () => import('./cmd/pubkey.ts') },
  up: { summary: 'create or join a party and keep this machine on its WireGuard network', load: () => import('./cmd/up.ts') },
  down: { summary: 'stop the running agent: leave the party, remove the interface', load: () => import('./cmd/down.ts') },
  status: { summary: "show the running agent's party and every peer's path (direct / relay / connecting)", load: () => import('./cmd/status.ts') },
  settings: { summary: 'get, set, list or delete values in the settings database', load: () => import('./cmd/settings.ts') },
  version: { summary: 'print the version (also --version; --json adds the runtime)', load: () => import('./cmd/version.ts') },
}

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
