/**
 * Every `lanrage` command: its one-line summary and its module, loaded lazily (so `lanrage keygen` does not load
 * the control server). Each module exports `main(argv): Promise<number>` returning the exit code.
 */
export type CommandModule = { main(argv: string[]): Promise<number> }
export interface Entry {
  summary: string
  load: () => Promise<CommandModule>
}

// Add a line here when a command's module lands; `test/cli.test.ts` runs --help on every entry.
export const COMMANDS: Record<string, Entry> = {
  serve: { summary: 'control server and relay in one process, SQLite under ./data/ (npm start)', load: () => import('./serve.ts') },
  control: { summary: 'run the control server alone', load: () => import('./control.ts') },
  relay: { summary: 'run the UDP relay alone (STUN, ticketed sessions, forwarding)', load: () => import('./relay.ts') },
  keygen: { summary: 'print a new WireGuard private key, like `wg genkey`', load: () => import('./keygen.ts') },
  nat: { summary: 'learn the public UDP endpoint and NAT type from two STUN servers', load: () => import('./nat.ts') },
  pubkey: { summary: 'read a private key on stdin, print its public key, like `wg pubkey`', load: () => import('./pubkey.ts') },
  up: { summary: 'create or join a party (here or on its page, 127.0.0.1:8666) and keep this machine on its WireGuard network', load: () => import('./up.ts') },
  down: { summary: 'stop the running agent: leave the party, remove the interface', load: () => import('./down.ts') },
  status: { summary: "show the running agent's party and every peer's path (direct / relay / connecting)", load: () => import('./status.ts') },
  settings: { summary: 'get, set, list or delete values in the settings database', load: () => import('./settings.ts') },
  version: { summary: 'print the version (also --version; --json adds the runtime)', load: () => import('./version.ts') },
}

