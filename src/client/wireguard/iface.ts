/**
 * The Linux WireGuard interface manager: the only client file that runs `ip` and `wg` (through an injectable
 * runner). Creates the interface with kernel WireGuard (`ip link add NAME type wireguard`) when the kernel has
 * it, else with wireguard-go (its UAPI socket lives in /var/run/wireguard/NAME.sock, so names must be unique
 * across network namespaces too). `netns` runs every command inside that namespace (`ip netns exec NS ...`),
 * which is how the agent's tests and natlab use it.
 */
import { spawn } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs'
import { access } from 'node:fs/promises'
import { constants, tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { LanrageError } from '../../shared/errors.ts'
import { silentLogger, type Logger } from '../../shared/log.ts'
import { checkCidr, checkEndpoint, parseDump, renderSetconf, type WgInterfaceConfig, type WgPeerConfig, type WgStatus } from './config.ts'
import { parsePrivateKey, parsePublicKey } from './keys.ts'

export interface RunResult {
  code: number
  stdout: string
  stderr: string
}
/** Runs argv (no shell) with optional stdin. */
export type Runner = (argv: string[], stdin?: string) => Promise<RunResult>

/**
 * The real runner (node:child_process, so it works under Node and Bun). Never rejects: a command that cannot
 * be started (not installed) is exit 127 with the reason in stderr, like a shell says it; a signal is 128+n.
 * It resolves once the output is closed, so it has everything the command printed.
 */
export const spawnRunner: Runner = (argv, stdin) =>
  new Promise((resolve) => {
    let stdout = ''
    let stderr = ''
    let done = false
    const finish = (code: number) => {
      if (done) return
      done = true
      resolve({ code, stdout, stderr })
    }
    const [cmd, ...args] = argv
    const input = stdin === undefined ? 'ignore' : stdinFd(stdin)
    try {
      const p = spawn(cmd ?? '', args, { stdio: [input, 'pipe', 'pipe'], env: process.env })
      p.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d))
      p.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d))
      p.on('error', (e) => {
        stderr += `${cmd}: ${e.message}\n`
        finish(127)
      })
      p.on('close', (code, signal) => finish(code ?? 128 + (signal ? constants.signals[signal] : 0)))
    } finally {
      // the child has its own copy of the descriptor
      if (typeof input === 'number') closeSync(input)
    }
  })

/**
 * A child's stdin as a descriptor of an already deleted file holding `text`. `wg` reads keys only from a path,
 * so we pass `/dev/stdin`, which must be openable: the pipes node:child_process makes are socket pairs, and
 * opening /dev/stdin on a socket fails (ENXIO), while a deleted file reopens fine. The file is 0600 in a fresh
 * 0700 directory and is unlinked before the child starts.
 */
function stdinFd(text: string): number {
  const dir = mkdtempSync(join(tmpdir(), 'lanrage-stdin-'))
  try {
    const path = join(dir, 'stdin')
    writeFileSync(path, text, { mode: 0o600, flag: 'wx' })
    return openSync(path, 'r')
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

export class WireGuardError extends LanrageError {
  constructor(message: string, readonly result?: RunResult) {
    super('WIREGUARD_FAILED', message, 500)
  }
}

export type Backend = 'kernel' | 'wireguard-go'
export interface InterfaceOptions {
  /** Interface name, at most 15 characters (IFNAMSIZ). */
  name: string
  netns?: string
  /** 'auto' (default): kernel when `ip link add type wireguard` works, else wireguard-go. */
  backend?: 'auto' | Backend
  runner?: Runner
  log?: Logger
}

/** Kernel interface names: 1-15 characters, no '/', whitespace or ':' (dev_valid_name). */
export const IFNAME_RE = /^[A-Za-z0-9_.-]{1,15}$/

/** How long wireguard-go may take to create its UAPI socket after it daemonizes. */
const USERSPACE_READY_MS = 5000

export class WireGuardInterface {
  private constructor(
    readonly name: string,
    readonly backend: Backend,
    private readonly netns: string | undefined,
    private readonly runner: Runner,
    private readonly log: Logger,
  ) {}

  /** Creates the interface (or adopts an existing one with that name) and returns its manager. */
  static async create(opts: InterfaceOptions): Promise<WireGuardInterface> {
    if (!IFNAME_RE.test(opts.name)) throw new WireGuardError(`interface name ${JSON.stringify(opts.name)} must be 1-15 of [A-Za-z0-9_.-]`)
    const runner = opts.runner ?? spawnRunner
    const log = (opts.log ?? silentLogger).child(`wg:${opts.name}`)
    const want = opts.backend ?? 'auto'
    const iface = (b: Backend) => new WireGuardInterface(opts.name, b, opts.netns, runner, log)
    const probe = iface('kernel')
    if (await probe.exists()) {
      const userspace = await access(`/var/run/wireguard/${opts.name}.sock`).then(
        () => true,
        () => false,
      )
      log.info('adopting existing interface', { backend: userspace ? 'wireguard-go' : 'kernel' })
      return userspace ? iface('wireguard-go') : probe
    }
    if (want !== 'wireguard-go') {
      const r = await probe.run(['ip', 'link', 'add', opts.name, 'type', 'wireguard'], undefined, false)
      if (r.code === 0) {
        log.info('created interface', { backend: 'kernel' })
        return probe
      }
      if (want === 'kernel') throw new WireGuardError(`kernel WireGuard unavailable: ${r.stderr.trim()}`, r)
      log.debug('kernel WireGuard unavailable, using wireguard-go', { why: r.stderr.trim() })
    }
    const ug = iface('wireguard-go')
    const r = await ug.run(['wireguard-go', opts.name], undefined, false)
    if (r.code !== 0) throw new WireGuardError(`wireguard-go ${opts.name} failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`, r)
    // wireguard-go forks; the child opens the UAPI socket shortly after the parent returns.
    const deadline = Date.now() + USERSPACE_READY_MS
    while (!(await ug.tryDump())) {
      if (Date.now() > deadline) throw new WireGuardError(`wireguard-go ${opts.name} did not open its UAPI socket within ${USERSPACE_READY_MS}ms`)
      await sleep(20)
    }
    log.info('created interface', { backend: 'wireguard-go' })
    return ug
  }

  private async run(argv: string[], stdin?: string, check = true): Promise<RunResult> {
    const full = this.netns ? ['ip', 'netns', 'exec', this.netns, ...argv] : argv
    const r = await this.runner(full, stdin)
    if (check && r.code !== 0) throw new WireGuardError(`${argv.slice(0, 4).join(' ')} failed (exit ${r.code}): ${r.stderr.trim()}`, r)
    return r
  }

  async exists(): Promise<boolean> {
    return (await this.run(['ip', 'link', 'show', 'dev', this.name], undefined, false)).code === 0
  }

  /** Replaces the whole WireGuard configuration (keys, port, peers) with `wg setconf`. */
  async setConfig(c: WgInterfaceConfig): Promise<void> {
    await this.run(['wg', 'setconf', this.name, '/dev/stdin'], renderSetconf(c))
  }

  async setPrivateKey(privateKey: string, listenPort?: number): Promise<void> {
    parsePrivateKey(privateKey)
    const args = ['wg', 'set', this.name, 'private-key', '/dev/stdin']
    if (listenPort !== undefined) args.push('listen-port', String(listenPort))
    await this.run(args, privateKey.trim() + '\n')
  }

  async setListenPort(port: number): Promise<void> {
    await this.run(['wg', 'set', this.name, 'listen-port', String(port)])
  }

  /** Replaces the interface's addresses with `cidr` (e.g. "10.66.0.2/16", which also routes the subnet). */
  async setAddress(cidr: string): Promise<void> {
    checkCidr(cidr)
    await this.run(['ip', 'address', 'flush', 'dev', this.name])
    await this.run(['ip', 'address', 'add', cidr, 'dev', this.name])
  }

  async setMtu(mtu: number): Promise<void> {
    if (!Number.isInteger(mtu) || mtu < 576 || mtu > 9000) throw new WireGuardError(`MTU ${mtu} must be 576-9000`)
    await this.run(['ip', 'link', 'set', 'dev', this.name, 'mtu', String(mtu)])
  }

  async up(): Promise<void> {
    await this.run(['ip', 'link', 'set', 'dev', this.name, 'up'])
  }

  /**
   * Adds or updates a peer. allowed-ips is replaced as given; an endpoint of null/absent leaves WireGuard's
   * current (possibly roamed-to) endpoint alone, since `wg set` cannot clear one.
   */
  async setPeer(p: WgPeerConfig): Promise<void> {
    parsePublicKey(p.publicKey)
    const args = ['wg', 'set', this.name, 'peer', p.publicKey.trim()]
    let stdin: string | undefined
    if (p.presharedKey) {
      parsePrivateKey(p.presharedKey)
      args.push('preshared-key', '/dev/stdin')
      stdin = p.presharedKey.trim() + '\n'
    }
    if (p.endpoint) args.push('endpoint', checkEndpoint(p.endpoint))
    args.push('allowed-ips', p.allowedIps.map(checkCidr).join(','))
    if (p.persistentKeepalive !== undefined) args.push('persistent-keepalive', p.persistentKeepalive ? String(p.persistentKeepalive) : 'off')
    await this.run(args, stdin)
  }

  async removePeer(publicKey: string): Promise<void> {
    parsePublicKey(publicKey)
    await this.run(['wg', 'set', this.name, 'peer', publicKey.trim(), 'remove'])
  }

  private async tryDump(): Promise<WgStatus | undefined> {
    const r = await this.run(['wg', 'show', this.name, 'dump'], undefined, false)
    return r.code === 0 ? parseDump(r.stdout) : undefined
  }

  /** Keys, port and per-peer endpoint / latest handshake / transfer, from `wg show NAME dump`. */
  async status(): Promise<WgStatus> {
    const r = await this.run(['wg', 'show', this.name, 'dump'])
    const s = parseDump(r.stdout)
    if (!s) throw new WireGuardError(`could not parse \`wg show ${this.name} dump\` output`, r)
    return s
  }

  /** Unix ms of each peer's latest handshake (null: none yet), keyed by public key. */
  async latestHandshakes(): Promise<Map<string, number | null>> {
    return new Map((await this.status()).peers.map((p) => [p.publicKey, p.latestHandshake]))
  }

  /** Deletes the interface (wireguard-go exits when its tun device goes away). Idempotent. */
  async delete(): Promise<void> {
    if (!(await this.exists())) return
    await this.run(['ip', 'link', 'delete', 'dev', this.name])
    this.log.info('deleted interface')
  }
}
