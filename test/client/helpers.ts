// Helpers for the client tests: run the real CLI, find the natlab script, wait for a condition.
import { join } from 'node:path'
import { unwatchControl, watchControl } from '../contract.ts'

export const REPO = join(import.meta.dir, '..', '..')
export const BIN = join(REPO, 'bin', 'lanrage')

/** Runs `bin/lanrage` as a user would (a real process), with extra env and optional stdin. */
export function runLanrage(args: string[], env: Record<string, string> = {}, stdin?: string) {
  const p = Bun.spawnSync([BIN, ...args], { env: { ...process.env, ...env }, stdin: stdin === undefined ? 'ignore' : Buffer.from(stdin) })
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() }
}


/** Polls `check` every `everyMs` until it returns a truthy value or `timeoutMs` passes (bounded in time). */
export async function waitFor<T>(what: string, check: () => T | Promise<T>, timeoutMs = 5000, everyMs = 25): Promise<NonNullable<Awaited<T>>> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  while (Date.now() < deadline) {
    try {
      const v = await check()
      if (v) return v as NonNullable<Awaited<T>>
    } catch (e) {
      last = e
    }
    await Bun.sleep(everyMs)
  }
  throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`)
}

/** A UDP port that was free a moment ago (bind 0, read, close). */
export async function freeUdpPort(hostname = '127.0.0.1'): Promise<number> {
  const s = await Bun.udpSocket({ hostname, port: 0 })
  const p = s.port
  s.close()
  return p
}


/**
 * coturn's STUN server (a STUN implementation no one here wrote), STUN only, no auth, UDP only. `netns` runs it
 * inside a namespace. The caller kills it (`proc.kill()`) in afterAll.
 */
export function startTurnserver(ip: string, port: number, netns?: string) {
  const argv = [
    'turnserver', '--listening-ip', ip, '--listening-port', String(port), '--stun-only', '--no-auth', '--no-cli',
    '--no-tls', '--no-dtls', '--no-tcp', '--no-rfc5780', '--log-file', 'stdout', '--simple-log', '--no-stdout-log',
    '--pidfile', `/tmp/lrc-turnserver-${process.pid}-${port}.pid`,
  ]
  return Bun.spawn(netns ? ['ip', 'netns', 'exec', netns, ...argv] : argv, { stdout: 'ignore', stderr: 'ignore' })
}

/**
 * Waits until a UDP port listens (in `netns`), as `ss` shows it. Until then the kernel answers ICMP port
 * unreachable, and the STUN client gives up on such a server at once instead of retransmitting.
 */
export async function udpListening(port: number, netns?: string): Promise<void> {
  const argv = ['ss', '-Hlun', `sport = :${port}`]
  await waitFor(`UDP port ${port} to listen${netns ? ` in ${netns}` : ''}`, () => {
    const r = Bun.spawnSync(netns ? ['ip', 'netns', 'exec', netns, ...argv] : argv)
    return r.exitCode === 0 && r.stdout.toString().trim() !== ''
  }, 10_000, 50)
}

export async function freeTcpPort(): Promise<number> {
  const s = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
  const p = s.port
  s.stop(true)
  return p
}

const controlProcs = new Set<ReturnType<typeof Bun.spawn>>()
// Never leave a control server behind, even when a test fails before stopping it.
process.once('exit', () => {
  for (const p of controlProcs) p.kill('SIGKILL')
})

/**
 * `lanrage control` as a real process on 127.0.0.1:port with its own database (`args` added; a flag given there
 * wins over the defaults here); resolves once it answers GET /.
 */
export async function startControlProcess(db: string, port: number, args: string[] = []) {
  const proc = Bun.spawn([BIN, 'control', '--db', db, '--host', '127.0.0.1', '--port', String(port), '--register-rate-per-min', '1000', ...args], {
    stdout: 'ignore',
    stderr: 'ignore',
    env: { ...process.env, LANRAGE_LOG_LEVEL: 'warn' },
  })
  controlProcs.add(proc)
  const url = `http://127.0.0.1:${port}`
  watchControl(url)
  await waitFor('the control server to answer', async () => (await fetch(url + '/').catch(() => undefined))?.ok, 15_000, 50)
  return {
    url,
    proc,
    async stop() {
      proc.kill('SIGTERM')
      await proc.exited
      controlProcs.delete(proc)
      unwatchControl(url)
    },
  }
}
