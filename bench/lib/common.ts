/**
 * Helpers shared by the benchmarks: flags, machine description, child processes, resident memory, percentiles.
 * Benchmarks are plain scripts (STYLE.md §2.7); every load loop in them is bounded in time and count.
 */
import { cpus, loadavg, release, totalmem } from 'node:os'
import { mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Subprocess } from 'bun'

export const BENCH_DIR = join(import.meta.dir, '..')
export const REPO_DIR = join(BENCH_DIR, '..')
export const BUILD_DIR = join(BENCH_DIR, 'build')
export const BUN = process.execPath

/** `--name=value` flags with defaults; an unknown flag is an error, so a typo never runs the wrong bench. */
export function flags<T extends Record<string, string | number | boolean>>(defaults: T, argv = process.argv.slice(2)): T {
  const out: Record<string, string | number | boolean> = { ...defaults }
  for (const arg of argv) {
    const m = /^--([a-z0-9-]+)(?:=(.*))?$/.exec(arg)
    const key = m?.[1]?.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())
    if (!m || !key || !(key in defaults)) {
      console.error(`unknown argument ${arg}; flags: ${Object.keys(defaults).map((k) => `--${k}=${defaults[k]}`).join(' ')}`)
      process.exit(2)
    }
    const def = defaults[key]
    const raw = m[2] ?? 'true'
    out[key] = typeof def === 'number' ? Number(raw) : typeof def === 'boolean' ? raw !== 'false' : raw
    if (typeof def === 'number' && !Number.isFinite(out[key])) {
      console.error(`--${m[1]} wants a number, got ${raw}`)
      process.exit(2)
    }
  }
  return out as T
}

/** One line describing where the numbers came from; printed with every result. */
export function machine(): string {
  const cpu = cpus()[0]?.model ?? 'unknown cpu'
  const la = loadavg()
  return (
    `${new Date().toISOString()} · nproc ${navigator.hardwareConcurrency} (${cpu}) · ${(totalmem() / 2 ** 30).toFixed(0)} GiB · ` +
    `Linux ${release()} · bun ${Bun.version} · load average ${la.map((x) => x.toFixed(2)).join(' ')}`
  )
}

/**
 * On a shared machine: waits (at most `maxWaitS`) until the 1-minute load average is below `maxLoad`, so a
 * benchmark starts in a quiet moment if there is one. Returns the load average it started at.
 */
export async function waitQuiet(maxLoad: number, maxWaitS: number): Promise<number> {
  const deadline = Date.now() + maxWaitS * 1000
  while (loadavg()[0]! > maxLoad && Date.now() < deadline) await Bun.sleep(2000)
  return loadavg()[0]!
}

/** Resident set size of a process in MiB, from /proc (Linux). */
export function rssMiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) / 1024 : NaN
  } catch {
    return NaN // the process is gone
  }
}

/** Compiles a C file from bench/c into bench/build (gitignored) with gcc -O2; returns the binary's path. */
export function compileC(name: string, extra: string[] = []): string {
  mkdirSync(BUILD_DIR, { recursive: true })
  const out = join(BUILD_DIR, name)
  const r = Bun.spawnSync(['gcc', '-O2', '-Wall', '-o', out, join(BENCH_DIR, 'c', `${name}.c`), ...extra], { stderr: 'pipe' })
  if (r.exitCode !== 0) throw new Error(`gcc ${name}.c failed: ${r.stderr.toString()}`)
  return out
}

export interface Child {
  proc: Subprocess<'pipe' | 'ignore', 'pipe', 'pipe'>
  /** The next line the child prints on stdout (bounded by `timeoutMs`). */
  line(timeoutMs?: number): Promise<string>
  /** SIGTERM, then whatever it printed until it exited (bounded). */
  stop(): Promise<string>
}

/** Spawns a helper process whose stdout is line oriented; stderr is kept for error messages. */
export function spawnChild(cmd: string[], opts: { env?: Record<string, string | undefined>; stdin?: 'pipe' | 'ignore'; cwd?: string } = {}): Child {
  const proc = Bun.spawn(cmd, {
    stdin: opts.stdin ?? 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
    env: { ...process.env, ...opts.env },
    cwd: opts.cwd ?? REPO_DIR,
  }) as Child['proc']
  const reader = proc.stdout.getReader()
  const decoder = new TextDecoder()
  let buf = ''
  let stderr = ''
  void (async () => {
    // Only the tail: a server that logs every request must not grow this process.
    for await (const chunk of proc.stderr) stderr = (stderr + decoder.decode(chunk)).slice(-16_384)
  })()
  const nextLine = async (): Promise<string | undefined> => {
    for (;;) {
      const nl = buf.indexOf('\n')
      if (nl >= 0) {
        const l = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        return l
      }
      const { value, done } = await reader.read()
      if (done) {
        const last = buf
        buf = ''
        return last || undefined
      }
      buf += decoder.decode(value)
    }
  }
  return {
    proc,
    async line(timeoutMs = 15_000) {
      const timeout = Bun.sleep(timeoutMs).then(() => 'timeout' as const)
      const l = await Promise.race([nextLine(), timeout])
      if (l === 'timeout' || l === undefined) {
        throw new Error(`${cmd.join(' ')}: ${l === 'timeout' ? 'no output in time' : `exited (${await proc.exited})`}\n${stderr}`)
      }
      return l
    },
    async stop() {
      proc.kill('SIGTERM')
      const exited = await Promise.race([proc.exited, Bun.sleep(3000).then(() => 'timeout' as const)])
      if (exited === 'timeout') proc.kill('SIGKILL')
      let rest = ''
      for (;;) {
        const l = await Promise.race([nextLine(), Bun.sleep(500).then(() => undefined)])
        if (l === undefined) break
        rest += l + '\n'
      }
      return rest + (stderr ? `\n[stderr] ${stderr.trim()}` : '')
    },
  }
}

/**
 * With BENCH_PROFILE=1 in the environment, a server process writes a CPU profile (markdown, bun --cpu-prof-md)
 * into bench/out/profiles/ when it exits: where its time went during the benchmark.
 */
export function profileFlags(name: string): string[] {
  if (!process.env.BENCH_PROFILE) return []
  return ['--cpu-prof-md', `--cpu-prof-dir=${join(REPO_DIR, 'bench/out/profiles')}`, `--cpu-prof-name=${name}-${Date.now()}.md`]
}

/** Percentile of an ascending sorted array (nearest rank). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))
  return sorted[i]!
}

export const median = (xs: readonly number[]) => percentile([...xs].sort((a, b) => a - b), 0.5)

/** Runs `fn` over `items` with at most `limit` in flight. */
export async function pool<T, R>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length)
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const i = next++
      out[i] = await fn(items[i]!, i)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return out
}

/** `taskset -c CPUS` prefix when the machine has two or more CPUs and taskset exists; otherwise nothing. */
export function pinned(cpus: string, cmd: string[]): string[] {
  if (navigator.hardwareConcurrency < 2 || !Bun.which('taskset')) return cmd
  return ['taskset', '-c', cpus, ...cmd]
}

export const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : 'n/a')
