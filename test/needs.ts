/**
 * What a test file needs from the machine, and the one way a test skips when the machine lacks it.
 *
 *   const skip = needs('root', 'wg')            // null when everything is there, else the reason
 *   describe.skipIf(!!skip)('...', () => ...)
 *
 * A file that skips prints one line `skip: <reason>` on stderr. `npm test` (test/run.ts) pairs these lines with
 * bun's own `(skip)` lines and ends the run with one line saying how many tests were skipped and why; a skip
 * without such a line makes the run fail, so no test can skip itself silently.
 */

/** Commands the network tests run, with the Debian package that brings each (.ci/run installs them). */
export const TOOLS = {
  ip: 'iproute2',
  iptables: 'iptables',
  wg: 'wireguard-tools',
  'wireguard-go': 'wireguard-go',
  ping: 'iputils-ping',
  turnserver: 'coturn',
  turnutils_stunclient: 'coturn',
  nft: 'nftables',
  conntrack: 'conntrack',
  setpriv: 'util-linux',
  openssl: 'openssl',
  haproxy: 'haproxy',
  node: 'nodejs',
  npm: 'npm',
  promtool: 'prometheus',
  chromium: 'chromium',
} as const
export type Need = 'root' | keyof typeof TOOLS

export const SKIP_PREFIX = 'skip: '

export const isRoot = process.getuid?.() === 0

// A user's PATH often lacks the sbin directories where ip and iptables live; the tests run them as root,
// whose PATH has them, so a command there is not missing.
const SEARCH_PATH = [process.env.PATH ?? '', '/usr/local/sbin', '/usr/sbin', '/sbin'].join(':')

/** Why this machine cannot give `what`, or null; pure apart from looking up PATH and the uid. */
export function missing(what: readonly Need[]): string | null {
  const lacks: string[] = []
  if (what.includes('root') && !isRoot) lacks.push('root (network namespaces, WireGuard interfaces)')
  const tools = what.filter((w): w is keyof typeof TOOLS => w !== 'root' && Bun.which(w, { PATH: SEARCH_PATH }) === null)
  const pkgs = [...new Set(tools.map((t) => TOOLS[t]))]
  if (pkgs.length > 0) lacks.push(`${tools.join(', ')} (apt-get install ${pkgs.join(' ')})`)
  return lacks.length === 0 ? null : `needs ${lacks.join(' and ')}`
}

/** Announces a skip once for the calling file; returns the reason (null: run). */
export function announce(reason: string | null): string | null {
  if (reason !== null) console.warn(SKIP_PREFIX + reason)
  return reason
}

/** `missing` plus the announcement: what a test file calls at its top. */
export function needs(...what: Need[]): string | null {
  return announce(missing(what))
}
