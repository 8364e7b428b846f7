// Helpers for the operator tests: the real `lanrage` commands as processes (umask 022, as on a stock system),
// their log lines, ports held by other sockets, file modes, and certificates made with openssl.
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export const BIN = join(import.meta.dir, '..', '..', 'bin', 'lanrage')

/** A temporary directory removed when the test process exits. */
export function tempDir(prefix = 'lro-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** The permission bits of a path, e.g. 0o600. */
export const modeOf = (path: string) => statSync(path).mode & 0o777

const procs = new Set<ReturnType<typeof Bun.spawn>>()
// Never leave a server behind, even when a test fails before stopping it.
process.once('exit', () => {
  for (const p of procs) p.kill('SIGKILL')
})

export interface Proc {
  proc: ReturnType<typeof Bun.spawn>
  /** Everything the process wrote to stderr so far. */
  readonly err: string
  readonly out: string
  /** Waits until stderr contains `text` (or matches), bounded by `ms`; returns the match. */
  waitErr(text: string | RegExp, ms?: number): Promise<string>
  /** SIGTERM (or `sig`) and the exit code. */
  stop(sig?: NodeJS.Signals): Promise<number>
  exited: Promise<number>
}

/**
 * Runs `lanrage ARGS` under `umask 022` with extra env and cwd, collecting its output. Killed after `killAfterMs`
 * at the latest, so a test can never hang on it.
 */
export function spawnLanrage(args: string[], o: { env?: Record<string, string>; cwd?: string; killAfterMs?: number } = {}): Proc {
  const proc = Bun.spawn(['sh', '-c', 'umask 022 && exec "$@"', 'sh', BIN, ...args], {
    cwd: o.cwd,
    env: { ...process.env, ...o.env },
    stdout: 'pipe',
    stderr: 'pipe',
  })
  procs.add(proc)
  const killer = setTimeout(() => proc.kill('SIGKILL'), o.killAfterMs ?? 30_000)
  let err = ''
  let out = ''
  const dec = new TextDecoder()
  const pump = async (s: ReadableStream<Uint8Array>, add: (t: string) => void) => {
    for await (const chunk of s) add(dec.decode(chunk))
  }
  const pumps = Promise.all([pump(proc.stderr as ReadableStream<Uint8Array>, (t) => (err += t)), pump(proc.stdout as ReadableStream<Uint8Array>, (t) => (out += t))])
  const exited = proc.exited.then(async (code) => {
    clearTimeout(killer)
    procs.delete(proc)
    await pumps
    return code
  })
  return {
    proc,
    get err() {
      return err
    },
    get out() {
      return out
    },
    async waitErr(text, ms = 15_000) {
      const deadline = Date.now() + ms
      const find = () => (typeof text === 'string' ? (err.includes(text) ? text : null) : (text.exec(err)?.[0] ?? null))
      while (Date.now() < deadline) {
        const m = find()
        if (m !== null) return m
        if (proc.exitCode !== null) break
        await Bun.sleep(20)
      }
      const m = find()
      if (m !== null) return m
      throw new Error(`no ${String(text)} in stderr within ${ms}ms (exit ${proc.exitCode}):\n${err}`)
    },
    async stop(sig = 'SIGTERM') {
      proc.kill(sig)
      return exited
    },
    exited,
  }
}

/** Runs a command to its end (bounded) and returns its exit code and output. */
export async function runLanrage(args: string[], o: { env?: Record<string, string>; cwd?: string; ms?: number } = {}) {
  const p = spawnLanrage(args, { ...o, killAfterMs: o.ms ?? 30_000 })
  const code = await p.exited
  return { code, out: p.out, err: p.err }
}

/** The URL a server process logs when it listens ("control server listening url=..."). */
export async function listeningUrl(p: Proc): Promise<string> {
  const line = await p.waitErr(/control server listening url=\S+/)
  return line.slice(line.indexOf('url=') + 4)
}

/** A TCP listener on 127.0.0.1 (port 0: any free one), as another program would hold it. */
export function holdTcp(port = 0, hostname = '127.0.0.1') {
  return Bun.listen({ hostname, port, socket: { data() {} } })
}

/** A UDP socket on `hostname`:port (0: any free one), as another program would hold it. */
export async function holdUdp(port = 0, hostname = '0.0.0.0') {
  return Bun.udpSocket({ hostname, port })
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
export async function tcpOpen(port: number): Promise<boolean> {
  try {
    const s = await Bun.connect({ hostname: '127.0.0.1', port, socket: { data() {} } })
    s.end()
    return true
  } catch {
    return false
  }
}

// ---- certificates (openssl, as an operator would make them)

function openssl(args: string[], cwd: string) {
  const r = Bun.spawnSync(['openssl', ...args], { cwd, stdout: 'pipe', stderr: 'pipe' })
  if (r.exitCode !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr.toString()}`)
}

export interface Ca {
  dir: string
  name: string
  /** PEM file of the CA certificate. */
  cert: string
  key: string
}

/** A private CA (P-256, valid 2 days) in `dir`. */
export function makeCa(dir: string, name: string): Ca {
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=${name}`], dir)
  return { dir, name, cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) }
}

/** A server certificate signed by `ca` for 127.0.0.1 and localhost, CN=`name`. Returns the PEM file paths. */
export function issueCert(ca: Ca, name: string, san = 'IP:127.0.0.1,DNS:localhost'): { cert: string; key: string } {
  const dir = ca.dir
  writeFileSync(join(dir, `${name}.ext`), `subjectAltName=${san}\n`)
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], dir)
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`], dir)
  return { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) }
}
