/**
 * The kernel fast path's I/O (ruleset.ts says what the table does and why it looks like it does): the one file
 * that runs `nft` and `ip`. It owns one long-lived `nft --interactive` process whose netlink socket owns the
 * relay's table (`flags owner`): every change is one line, so one transaction, written to its stdin; when the
 * relay exits or is killed, its stdin closes, nft exits and the kernel deletes the table with everything in it.
 *
 * Reading back goes through separate `nft -j list set|map` processes: reading an owned table is allowed to
 * anyone with CAP_NET_ADMIN, changing it only to its owner.
 */
import { existsSync, readFileSync } from 'node:fs'
import type { Subprocess } from 'bun'
import { LanrageError } from '../../shared/errors.ts'
import { createLogger, type Logger } from '../../shared/log.ts'
import {
  asIPv4,
  mergeScripts,
  oneLine,
  parseRouteSource,
  parseSetCounters,
  setupScript,
  sideKey,
  tableName,
  transitionScript,
  type CounterValue,
  type KernelSession,
  type OffloadLimits,
} from './ruleset.ts'

/** --kernel-offload cannot work here; the message is one line saying why and what to do. */
export class KernelOffloadUnavailable extends LanrageError {
  constructor(message: string, options?: ErrorOptions) {
    super('KERNEL_OFFLOAD_UNAVAILABLE', `--kernel-offload: ${message}`, 500, options)
  }
}

/** A locked side as the relay's session table holds it (addresses as its sockets report them). */
export interface LockedSide {
  port: number
  ip: string
  peerPort: number
}

/** What moved in the kernel for one side since the last poll. */
export interface SideDelta {
  forwarded: number
  bytesForwarded: number
  /** Datagrams (and bytes) from the locked source dropped by the side's packet or byte limit. */
  limited: number
  bytesLimited: number
}

export interface KernelOffloadOptions {
  /** The first port of the relay's session range: names the table (relays on one host have disjoint ranges). */
  firstPort: number
  /** The relay's bind address: a specific IPv4 is the source of everything it sends; otherwise a route lookup. */
  host: string
  limits: OffloadLimits
  log?: Logger
  /** Prefix for every command this runs, e.g. ['ip', 'netns', 'exec', NS] (tests drive a relay namespace). */
  exec?: string[]
}

/**
 * How long a route lookup's answer (the relay's source address towards a peer) is reused: sessions lock in
 * bursts (a relay restart, a LAN party), and routes change far more rarely than that.
 */
const ROUTE_CACHE_MS = 30_000
/** How long one nft transaction may take before the offload is declared broken (they take well under 1 ms). */
const REPLY_TIMEOUT_MS = 10_000
const EXIT_GRACE_MS = 2000

function findTool(name: string): string | undefined {
  // nft and ip live in /usr/sbin, which is not on every user's PATH.
  return Bun.which(name) ?? ['/usr/sbin', '/sbin'].map((d) => `${d}/${name}`).find((p) => existsSync(p))
}

/**
 * Checks what can be checked without changing anything, then creates the table. Throws KernelOffloadUnavailable
 * with the reason when the kernel path cannot work on this host.
 */
export async function startKernelOffload(o: KernelOffloadOptions): Promise<KernelOffload> {
  if (process.platform !== 'linux') throw new KernelOffloadUnavailable(`needs Linux (nftables); this is ${process.platform}`)
  const nft = o.exec ? 'nft' : findTool('nft')
  if (!nft) throw new KernelOffloadUnavailable('the nft tool is not installed (Debian/Ubuntu package nftables)')
  const ip = o.exec ? 'ip' : (findTool('ip') ?? 'ip')
  const fwd = await readIpForward(o.exec)
  if (fwd !== '1') {
    throw new KernelOffloadUnavailable(
      fwd === undefined ? 'cannot read net.ipv4.ip_forward' : 'IPv4 forwarding is off (net.ipv4.ip_forward = 0); turn it on with sysctl -w net.ipv4.ip_forward=1',
    )
  }
  const shell = NftShell.spawn([...(o.exec ?? []), nft])
  const table = tableName(o.firstPort)
  const r = await shell.run(oneLine(setupScript(table, o.limits)))
  if (!r.ok) {
    await shell.close()
    const why = r.output.includes('Operation not permitted')
      ? `needs CAP_NET_ADMIN (run the relay as root, or with the capability, e.g. systemd AmbientCapabilities=CAP_NET_ADMIN), or table ip ${table} belongs to another running process`
      : `nft refused the table: ${firstErrorLine(r.output)}`
    throw new KernelOffloadUnavailable(why)
  }
  return new KernelOffload(shell, table, o, [...(o.exec ?? []), nft], [...(o.exec ?? []), ip])
}

async function readIpForward(exec: string[] | undefined): Promise<string | undefined> {
  const path = '/proc/sys/net/ipv4/ip_forward'
  if (!exec) {
    try {
      return readFileSync(path, 'utf8').trim()
    } catch {
      return undefined
    }
  }
  const p = Bun.spawn([...exec, 'cat', path], { stdout: 'pipe', stderr: 'ignore', stdin: 'ignore' })
  const out = (await new Response(p.stdout).text()).trim()
  return (await p.exited) === 0 ? out : undefined
}

function firstErrorLine(output: string): string {
  return output.split('\n').find((l) => l.startsWith('Error:')) ?? (output.trim().split('\n')[0] || 'no output')
}

/** A session in the kernel, and the last counter readings of its sides' current elements. */
interface Installed {
  state: KernelSession
  last: Record<'a' | 'b', { fwd: Reading; lim: Reading }>
}
/** A counter of one element: what a side forwarded (@out_saddr of the other side) or had over its limit (@limited). */
interface Reading {
  key: string
  packets: number
  bytes: number
}

export type SessionDelta = Record<'a' | 'b', SideDelta>

type Job =
  | { kind: 'apply'; id: string; sides: { a: LockedSide; b: LockedSide }; queuedAt: number; done: (ok: boolean) => void }
  | { kind: 'remove'; id: string; queuedAt: number; done: (d: SessionDelta | undefined) => void }

export class KernelOffload {
  readonly table: string
  private readonly sessions = new Map<string, Installed>()
  private readonly log: Logger
  private closed = false
  private jobs: Job[] = []
  private working: Promise<void> | undefined
  /** Deltas read but not yet handed out by poll() (read before a move or removal, for every session at once). */
  private carry = new Map<string, SessionDelta>()
  /** Counter reads started, and the latest start among those finished: a queued change needs a read that began after it was queued. */
  private readsStarted = 0
  private latestReadDone = 0
  private readonly routes = new Map<string, { src: string; at: number }>()

  constructor(
    private readonly shell: NftShell,
    table: string,
    private readonly o: KernelOffloadOptions,
    private readonly nftCmd: string[],
    private readonly ipCmd: string[],
  ) {
    this.table = table
    this.log = o.log ?? createLogger('relay/offload')
    shell.onExit = (code) => {
      if (this.closed) return
      // The table went with the process: every session is back on the user-space path, whose sockets never closed.
      this.log.error('nft exited; the kernel table is gone and sessions are forwarded in user space', { code, sessions: this.sessions.size })
      this.sessions.clear()
    }
  }

  /** False once nft has exited (the kernel table is gone): nothing is offloaded any more. */
  get alive(): boolean {
    return this.shell.alive && !this.closed
  }

  /** The process id of the nft that owns the table (its exit deletes the table). */
  get ownerPid(): number {
    return this.shell.pid
  }

  /** How many sessions the kernel forwards now. */
  get size(): number {
    return this.sessions.size
  }

  /** The ports and peers the kernel forwards for a session, as installed; undefined when it does not. */
  installed(id: string): KernelSession | undefined {
    return this.sessions.get(id)?.state
  }

  /**
   * Puts a session in the kernel (both sides locked) or moves it (a side's learned port changed: roaming). Resolves
   * true when the kernel forwards the session as asked; false when it stays in user space (an IPv6 side, no route
   * to a peer, a failed transaction, or the offload is no longer alive). A session that was offloaded and can no
   * longer be is taken out.
   */
  apply(id: string, sides: { a: LockedSide; b: LockedSide }): Promise<boolean> {
    return new Promise((done) => this.push({ kind: 'apply', id, sides, queuedAt: this.readsStarted, done }))
  }

  /**
   * Takes a session out of the kernel (idle expiry, relay closing); its datagrams go to user space from the next
   * one. Resolves with what the kernel forwarded for it since the last poll (undefined if it was not offloaded).
   */
  remove(id: string): Promise<SessionDelta | undefined> {
    return new Promise((done) => this.push({ kind: 'remove', id, queuedAt: this.readsStarted, done }))
  }

  /**
   * Changes are applied in call order. Those queued while a transaction runs go together into the next one (a
   * relay restart or a LAN party locks many sessions at once, and each nft command costs about as much as its
   * table is big), and each stays atomic: if the joint transaction fails, every session is tried on its own.
   */
  private push(job: Job) {
    this.jobs.push(job)
    if (!this.working) this.working = this.work()
  }

  private async work() {
    await null // push() records this run before anything here can end it
    try {
      while (this.jobs.length > 0) await this.runBatch(this.jobs.splice(0))
    } finally {
      this.working = undefined
    }
  }

  private async runBatch(batch: Job[]) {
    // What each session should be at the end of the batch (the last call for an id wins).
    const wanted = new Map<string, { a: LockedSide; b: LockedSide } | null>()
    for (const j of batch) wanted.set(j.id, j.kind === 'apply' ? j.sides : null)
    const next = new Map<string, KernelSession | null>()
    if (this.alive) {
      for (const [id, sides] of wanted) {
        const cur = this.sessions.get(id)
        if (!sides) next.set(id, null)
        else {
          const a = await this.kernelSide(sides.a, cur?.state.a)
          const b = await this.kernelSide(sides.b, cur?.state.b)
          next.set(id, a && b ? { a, b } : null)
        }
      }
      // Elements about to be replaced or deleted take their counts with them: read them first, unless a read
      // began after these changes were queued.
      const replaces = batch.filter((j) => {
        const cur = this.sessions.get(j.id)?.state
        const n = next.get(j.id)
        return cur && (!n || sideKey(n.a) !== sideKey(cur.a) || sideKey(n.b) !== sideKey(cur.b))
      })
      if (replaces.some((j) => this.latestReadDone <= j.queuedAt)) await this.readCounters()
      await this.commit(next)
    }
    for (const j of batch) {
      if (j.kind === 'apply') j.done(this.sessions.has(j.id) && wanted.get(j.id) === j.sides)
      else if (wanted.get(j.id) === null && !this.sessions.has(j.id)) {
        const d = this.carry.get(j.id)
        this.carry.delete(j.id)
        j.done(d)
      } else j.done(undefined)
    }
  }

  /** One transaction for all the changes; if it fails, one per session, so one bad change stops only itself. */
  private async commit(next: Map<string, KernelSession | null>) {
    const script = (id: string, n: KernelSession | null) => transitionScript(this.table, this.sessions.get(id)?.state ?? null, n)
    const scripts = [...next].map(([id, n]) => [id, script(id, n)] as const).filter(([, s]) => s)
    if (scripts.length > 1 && (await this.shell.run(oneLine(mergeScripts(scripts.map(([, s]) => s))))).ok) {
      for (const [id, n] of next) this.record(id, n)
      return
    }
    for (const [id, n] of next) {
      const s = script(id, n)
      if (s) {
        const r = await this.shell.run(oneLine(mergeScripts([s])))
        if (!r.ok) {
          this.log.warn('nft transaction failed; the session stays as it was', { session: id.slice(0, 8), error: firstErrorLine(r.output) })
          continue
        }
      }
      this.record(id, n)
    }
  }

  private record(id: string, n: KernelSession | null) {
    if (!n) {
      this.sessions.delete(id)
      return
    }
    const cur = this.sessions.get(id)
    // A counter whose element stayed keeps its reading; a replaced element starts again from zero.
    const keep = (old: Reading | undefined, key: string): Reading => (old && old.key === key ? old : { key, packets: 0, bytes: 0 })
    const readings = (from: 'a' | 'b', to: 'a' | 'b') => ({ fwd: keep(cur?.last[from].fwd, sideKey(n[to])), lim: keep(cur?.last[from].lim, sideKey(n[from])) })
    this.sessions.set(id, { state: n, last: { a: readings('a', 'b'), b: readings('b', 'a') } })
  }

  private async kernelSide(s: LockedSide, cur: KernelSession['a'] | undefined): Promise<KernelSession['a'] | undefined> {
    const peerIp = asIPv4(s.ip)
    if (!peerIp || s.peerPort <= 0) return undefined
    // The same peer address keeps the source the relay already sends it from (a roaming move changes the port).
    let relayIp = cur && cur.peerIp === peerIp ? cur.relayIp : undefined
    relayIp ??= this.fixedSource() ?? (await this.routeSource(peerIp))
    if (!relayIp) return undefined
    return { port: s.port, peerIp, peerPort: s.peerPort, relayIp }
  }

  private fixedSource(): string | undefined {
    const h = asIPv4(this.o.host)
    return h && h !== '0.0.0.0' ? h : undefined
  }

  /** The address a socket bound to 0.0.0.0 would send to `peer` from: the user-space path's source. */
  private async routeSource(peer: string): Promise<string | undefined> {
    const now = performance.now()
    const hit = this.routes.get(peer)
    if (hit && now - hit.at < ROUTE_CACHE_MS) return hit.src
    const p = Bun.spawn([...this.ipCmd, '-j', 'route', 'get', peer], { stdout: 'pipe', stderr: 'pipe', stdin: 'ignore' })
    const out = await new Response(p.stdout).text()
    if ((await p.exited) !== 0) {
      this.log.warn('no route to a peer; its session stays in user space', { peer, error: (await new Response(p.stderr).text()).trim() })
      return undefined
    }
    const src = parseRouteSource(out)
    if (src) {
      if (this.routes.size >= 4096) this.routes.clear() // bounded: peers are many, lookups cheap enough to redo
      this.routes.set(peer, { src, at: now })
    }
    return src
  }

  /**
   * What the kernel forwarded and rate-limited per offloaded session and side since the last poll. The relay adds
   * these to its own counters (metrics, stats log, idle expiry: a session whose counters stop moving expires).
   */
  async poll(): Promise<Map<string, SessionDelta>> {
    if (this.alive && this.sessions.size > 0) await this.readCounters()
    const out = this.carry
    this.carry = new Map()
    return out
  }

  /** Reads the element counters of @out_saddr (forwarded) and @limited (over a limit); adds what moved to `carry`. */
  private async readCounters(): Promise<void> {
    const started = ++this.readsStarted
    try {
      const [fwdCounts, limCounts] = await Promise.all([this.listCounters('map', 'out_saddr'), this.listCounters('set', 'limited')])
      if (!fwdCounts || !limCounts) return
      // Counters only grow while their element lives: a smaller one belongs to a new element.
      const moved = (r: Reading, now: CounterValue | undefined) => {
        if (!now) return { packets: 0, bytes: 0 }
        const base = now.packets < r.packets ? { packets: 0, bytes: 0 } : r
        const d = { packets: now.packets - base.packets, bytes: now.bytes - base.bytes }
        r.packets = now.packets
        r.bytes = now.bytes
        return d
      }
      for (const [id, s] of this.sessions) {
        const d = this.carry.get(id) ?? { a: zeroDelta(), b: zeroDelta() }
        for (const side of ['a', 'b'] as const) {
          const f = moved(s.last[side].fwd, fwdCounts.get(s.last[side].fwd.key))
          const l = moved(s.last[side].lim, limCounts.get(s.last[side].lim.key))
          d[side].forwarded += f.packets
          d[side].bytesForwarded += f.bytes
          d[side].limited += l.packets
          d[side].bytesLimited += l.bytes
        }
        this.carry.set(id, d)
      }
    } finally {
      this.latestReadDone = Math.max(this.latestReadDone, started)
    }
  }

  private async listCounters(kind: 'set' | 'map', name: string) {
    const p = Bun.spawn([...this.nftCmd, '-j', 'list', kind, 'ip', this.table, name], { stdout: 'pipe', stderr: 'pipe', stdin: 'ignore' })
    const text = await new Response(p.stdout).text()
    if ((await p.exited) !== 0) {
      if (this.alive) this.log.warn('could not read the kernel counters', { [kind]: name, error: (await new Response(p.stderr).text()).trim() })
      return undefined
    }
    return parseSetCounters(text)
  }

  /** Deletes the table and ends nft (which would delete the table anyway). */
  async close(): Promise<void> {
    if (this.closed) return
    await this.working
    this.closed = true
    if (this.shell.alive) await this.shell.run(`delete table ip ${this.table}`)
    this.sessions.clear()
    await this.shell.close()
  }
}

const zeroDelta = (): SideDelta => ({ forwarded: 0, bytesForwarded: 0, limited: 0, bytesLimited: 0 })

/**
 * `nft --interactive` as a request/response channel. Each request is one line (one transaction) followed by a
 * marker line that is a syntax error carrying a sequence number: nft answers every line in order and echoes the
 * offending line in its error message, so the echo of marker N ends the reply to request N. A successful
 * transaction prints nothing; a failed one prints "Error: ...". stderr is folded into stdout to keep the order.
 */
export class NftShell {
  onExit?: (code: number | null) => void
  private buf = ''
  private seq = 0
  private readonly pending = new Map<number, (r: { ok: boolean; output: string }) => void>()
  private exited = false

  private constructor(private readonly proc: Subprocess<'pipe', 'pipe', 'ignore'>) {
    void this.pump()
    void proc.exited.then((code) => {
      this.exited = true
      for (const [, resolve] of this.pending) resolve({ ok: false, output: `Error: nft exited (${code})` })
      this.pending.clear()
      this.onExit?.(code)
    })
  }

  static spawn(nftCmd: string[]): NftShell {
    const [cmd, ...rest] = nftCmd
    // sh folds stderr into stdout; "$@" keeps the exec prefix's arguments intact.
    const proc = Bun.spawn(['sh', '-c', 'exec "$@" --interactive 2>&1', 'sh', cmd!, ...rest], { stdin: 'pipe', stdout: 'pipe', stderr: 'ignore' })
    return new NftShell(proc)
  }

  get alive(): boolean {
    return !this.exited
  }

  /** nft's own pid: sh and the exec prefix replace themselves with it. */
  get pid(): number {
    return this.proc.pid
  }

  run(line: string): Promise<{ ok: boolean; output: string }> {
    if (this.exited) return Promise.resolve({ ok: false, output: 'Error: nft is not running' })
    const n = ++this.seq
    const reply = new Promise<{ ok: boolean; output: string }>((resolve) => this.pending.set(n, resolve))
    this.proc.stdin.write(`${line}\nlanrage-sync-${n}\n`)
    void this.proc.stdin.flush()
    let timer: Timer | undefined
    const timeout = new Promise<{ ok: boolean; output: string }>((resolve) => {
      timer = setTimeout(() => {
        // A reply that never comes means the channel is out of step: stop nft (its table goes with it).
        this.pending.delete(n)
        this.proc.kill()
        resolve({ ok: false, output: `Error: no answer from nft within ${REPLY_TIMEOUT_MS} ms` })
      }, REPLY_TIMEOUT_MS)
    })
    return Promise.race([reply, timeout]).finally(() => clearTimeout(timer))
  }

  private async pump() {
    const dec = new TextDecoder()
    for await (const chunk of this.proc.stdout) {
      this.buf += dec.decode(chunk, { stream: true })
      this.drain()
    }
  }

  private drain() {
    for (;;) {
      const m = /^lanrage-sync-(\d+)\n[^\n]*\n/m.exec(this.buf)
      if (!m) return
      // The marker's own three lines: "Error: syntax error...", the echoed marker, the caret line under it.
      const errAt = this.buf.lastIndexOf('Error:', m.index)
      const output = this.buf.slice(0, errAt >= 0 ? errAt : m.index)
      this.buf = this.buf.slice(m.index + m[0].length)
      const n = Number(m[1])
      const resolve = this.pending.get(n)
      this.pending.delete(n)
      resolve?.({ ok: !output.includes('Error:'), output })
    }
  }

  async close(): Promise<void> {
    if (!this.exited) this.proc.stdin.end()
    const done = await Promise.race([this.proc.exited, Bun.sleep(EXIT_GRACE_MS).then(() => 'timeout' as const)])
    if (done === 'timeout') this.proc.kill('SIGKILL')
    await this.proc.exited
  }
}

