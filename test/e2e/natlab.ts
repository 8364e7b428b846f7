/**
 * The natlab harness for end-to-end tests: builds the lab of `natlab.sh` (beside this file) with this suite's own
 * namespace prefix (LR_NS=lra<pid>, so the relay's and the client's suites, and other runs of this one, can run at
 * the same time), runs processes inside its namespaces, and tears everything down (processes first, then the
 * namespaces) even when a test failed.
 *
 *   lra<pid>-pub     203.0.113.10, the "internet": control server and relay
 *   lra<pid>-natN    home router N, WAN 203.0.113.(20+N)
 *   lra<pid>-peerN   gamer N at 192.168.N.2 behind natN
 */
import { existsSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { needs, type Need } from '../needs.ts'

/**
 * `lra` plus this process's pid: every helper runs the whole suite before merging, so two runs of these tests
 * may overlap on one machine; each needs its own namespaces and WireGuard interface names.
 */
export const NS_PREFIX = `lra${process.pid}`
export const TOPO = join(import.meta.dir, 'natlab.sh')
export const PUB_IP = '203.0.113.10'
export const natWanIp = (n: number) => `203.0.113.${20 + n}`
export type NatKind = 'cone' | 'symmetric'

/** What natlab.sh and the processes run in it need (the same list as `natlab.sh check`). */
export const NATLAB_NEEDS: Need[] = ['root', 'ip', 'iptables', 'wg', 'wireguard-go', 'ping']

/** Why the natlab tests cannot run here (announced as the calling file's skip), or null when they can. */
export function natlabSkipReason(...more: Need[]): string | null {
  return needs(...NATLAB_NEEDS, ...more)
}

/** A process started inside a namespace; its output is kept for assertions and for failure messages. */
export class NsProcess {
  out = ''
  err = ''
  readonly exited: Promise<number>
  private waiters: (() => void)[] = []
  constructor(
    readonly name: string,
    readonly proc: Bun.Subprocess<'ignore', 'pipe', 'pipe'>,
  ) {
    const pump = async (stream: ReadableStream<Uint8Array>, key: 'out' | 'err') => {
      const dec = new TextDecoder()
      for await (const chunk of stream) {
        this[key] += dec.decode(chunk, { stream: true })
        for (const w of this.waiters.splice(0)) w()
      }
    }
    const done = Promise.all([pump(proc.stdout, 'out'), pump(proc.stderr, 'err')])
    this.exited = proc.exited.then(async (code) => {
      await done.catch(() => {})
      for (const w of this.waiters.splice(0)) w()
      return code
    })
  }
  get pid() {
    return this.proc.pid
  }
  get running() {
    return this.proc.exitCode === null && this.proc.signalCode === null
  }
  /** Waits until stdout+stderr match `re` (bounded by timeoutMs); returns the match. */
  async waitFor(re: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const m = (this.out + '\n' + this.err).match(re)
      if (m) return m
      const left = deadline - Date.now()
      if (left <= 0 || !this.running) throw new Error(`${this.name}: no ${re} within ${timeoutMs} ms (running=${this.running})\n${this.tail()}`)
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 250))
        this.waiters.push(() => {
          clearTimeout(t)
          resolve()
        })
      })
    }
  }
  tail(n = 40): string {
    const lines = (this.out + this.err).trimEnd().split('\n')
    return `--- ${this.name} (last ${Math.min(n, lines.length)} lines) ---\n${lines.slice(-n).join('\n')}`
  }
  /** SIGTERM, then SIGKILL after graceMs; resolves with the exit code (or signal as 128+n). */
  async stop(graceMs = 3000): Promise<number> {
    if (this.running) this.proc.kill('SIGTERM')
    const t = setTimeout(() => this.running && this.proc.kill('SIGKILL'), graceMs)
    const code = await this.exited
    clearTimeout(t)
    return code
  }
}

export interface ExecResult {
  code: number
  out: string
  err: string
}

/** Removes natlabs of earlier runs that were killed before their afterAll (their pid is gone). */
function removeStaleLabs() {
  const names = Bun.spawnSync(['ip', 'netns', 'list']).stdout.toString()
  const pids = new Set([...names.matchAll(/^lra(\d+)-/gm)].map((m) => Number(m[1])))
  for (const pid of pids) {
    if (pid === process.pid || existsSync(`/proc/${pid}`)) continue
    Bun.spawnSync(['bash', TOPO, 'down'], { env: { ...process.env, LR_NS: `lra${pid}` } })
  }
}

export class Natlab {
  private procs: NsProcess[] = []
  private wgNames = new Set<string>()
  private constructor(readonly kinds: NatKind[]) {}

  /** Builds the topology: one gamer behind each NAT kind given (peer1 behind kinds[0], ...). */
  static up(kinds: NatKind[]): Natlab {
    removeStaleLabs()
    const p = Bun.spawnSync(['bash', TOPO, 'up', ...kinds], { env: { ...process.env, LR_NS: NS_PREFIX } })
    if (p.exitCode !== 0) throw new Error(`natlab.sh up ${kinds.join(' ')} failed: ${p.stderr.toString()}${p.stdout.toString()}`)
    return new Natlab(kinds)
  }

  static ns(name: 'pub' | `nat${number}` | `peer${number}`) {
    return `${NS_PREFIX}-${name}`
  }

  /** Runs a command to completion inside a namespace. */
  exec(ns: string, cmd: string[], timeoutMs = 10_000): ExecResult {
    const p = Bun.spawnSync(['ip', 'netns', 'exec', ns, ...cmd], { timeout: timeoutMs })
    return { code: p.exitCode ?? -1, out: p.stdout.toString(), err: p.stderr.toString() }
  }

  /** Starts a long-running process inside a namespace; it is stopped by down() whatever happens. */
  spawn(ns: string, cmd: string[], env: Record<string, string> = {}, name = `${ns}:${cmd.join(' ')}`): NsProcess {
    const proc = Bun.spawn(['ip', 'netns', 'exec', ns, ...cmd], { env: { ...process.env, ...env }, stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' })
    const p = new NsProcess(name, proc)
    this.procs.push(p)
    return p
  }

  /** Remembers a WireGuard interface name so down() removes a socket its wireguard-go left behind. */
  trackInterface(name: string) {
    this.wgNames.add(name)
  }

  /** Pings `ip` from `ns` once a second until it answers; returns the milliseconds it took, or throws after timeoutMs. */
  async waitForPing(ns: string, ip: string, timeoutMs: number): Promise<number> {
    const start = Date.now()
    for (let i = 0; i < 1000 && Date.now() - start < timeoutMs; i++) {
      const p = Bun.spawn(['ip', 'netns', 'exec', ns, 'ping', '-c', '1', '-W', '1', ip], { stdout: 'ignore', stderr: 'ignore' })
      if ((await p.exited) === 0) return Date.now() - start
      await Bun.sleep(100)
    }
    throw new Error(`no ping reply from ${ip} in ${ns} within ${timeoutMs} ms`)
  }

  /** Output of every process started here, for a failure message. */
  logs(): string {
    return this.procs.map((p) => p.tail()).join('\n')
  }

  /** Stops every process, removes the namespaces (natlab.sh kills anything left inside) and stale wg sockets. */
  async down(): Promise<void> {
    await Promise.all(this.procs.map((p) => p.stop().catch(() => -1)))
    Bun.spawnSync(['bash', TOPO, 'down'], { env: { ...process.env, LR_NS: NS_PREFIX } })
    for (const n of this.wgNames) rmSync(`/var/run/wireguard/${n}.sock`, { force: true })
  }
}
