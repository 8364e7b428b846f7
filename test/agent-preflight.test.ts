// `lanrage up` before it creates or joins anything, as real processes against a real control server: run as an
// unprivileged user (setpriv) it stops with one line and the server has no party; with only CAP_NET_ADMIN it
// goes on; without WireGuard it says so; an unreachable control server is retried aloud (attempt k of n).
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { chmodSync, existsSync, mkdtempSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { machineFacts } from '../src/client/wireguard/preflight.ts'
import { freeTcpPort } from './client/helpers.ts'
import { needs } from './needs.ts'

const CLI = join(import.meta.dir, '..', 'src', 'cli.ts')
const skip = needs('root', 'setpriv', 'ip', 'wg', 'wireguard-go')
const NOBODY = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups']

/** Runs `lanrage up` (through `prefix`, e.g. setpriv) without blocking this process; bounded in time. */
async function up(prefix: string[], args: string[], env: Record<string, string>) {
  const p = Bun.spawn([...prefix, process.execPath, CLI, 'up', ...args], { env: { ...process.env, ...env }, stdout: 'pipe', stderr: 'pipe', stdin: 'ignore' })
  const timer = setTimeout(() => p.kill('SIGKILL'), 30_000)
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited])
  clearTimeout(timer)
  return { code, out, err }
}

/** A LANRAGE_HOME the unprivileged user may write (the agent's key goes there once it gets that far). */
function home(): string {
  const dir = mkdtempSync(join(tmpdir(), 'lanrage-preflight-'))
  chmodSync(dir, 0o777)
  return join(dir, 'home')
}

describe.skipIf(!!skip)('lanrage up checks what it needs before creating or joining anything', () => {
  let control: ReturnType<typeof Bun.spawn>
  let url = ''
  const counts = async () => (await (await fetch(url + '/')).json()) as { parties: number; peers: number }

  beforeAll(async () => {
    const port = await freeTcpPort()
    const db = join(mkdtempSync(join(tmpdir(), 'lanrage-preflight-db-')), 'c.db')
    control = Bun.spawn([process.execPath, CLI, 'control', '--host', '127.0.0.1', '--port', String(port), '--db', db, '--log-level', 'warn'], { stdout: 'ignore', stderr: 'ignore' })
    url = `http://127.0.0.1:${port}`
    const deadline = Date.now() + 15_000
    while (Date.now() < deadline && !(await fetch(url + '/health').then((r) => r.ok, () => false))) await Bun.sleep(50)
  }, 20_000)
  afterAll(async () => {
    control.kill('SIGTERM')
    await control.exited
  })

  test('as an unprivileged user: one line saying it needs root or CAP_NET_ADMIN, exit 1, no party, no key', async () => {
    const h = home()
    const r = await up([...NOBODY, '--inh-caps=-all', '--bounding-set=-all', '--'], ['--control', url, '--create', 'lan night'], { LANRAGE_HOME: h })
    expect(r).toEqual({
      code: 1,
      out: '',
      err: 'lanrage up: needs root (or the CAP_NET_ADMIN capability) to create the WireGuard interface lanrage0; run it with sudo (NEEDS_PRIVILEGES)\n',
    })
    expect(await counts()).toMatchObject({ parties: 0, peers: 0 })
    expect(existsSync(join(h, 'private.key'))).toBe(false)
  }, 30_000)

  test('with CAP_NET_ADMIN alone it passes the check (and goes on to the control server)', async () => {
    // The control URL is a closed port: the agent gets as far as registering, which fails; nothing is created.
    const closed = `http://127.0.0.1:${await freeTcpPort()}`
    const caps = ['--inh-caps=+net_admin', '--ambient-caps=+net_admin', '--']
    const r = await up([...NOBODY, ...caps], ['--control', closed, '--create', 'lan', '--log-level', 'info'], { LANRAGE_HOME: home() })
    expect(r.err).not.toContain('NEEDS_PRIVILEGES')
    expect(r.err).toContain(`agent: registering with the control server control=${closed}`)
    expect(r.code).toBe(1)
  }, 30_000)

  test('without wireguard-go on PATH (and no kernel module) it says WireGuard is missing, before the server', async () => {
    const bin = mkdtempSync(join(tmpdir(), 'lanrage-preflight-bin-'))
    for (const cmd of ['ip', 'wg']) symlinkSync(Bun.which(cmd, { PATH: `${process.env.PATH}:/usr/sbin:/sbin` })!, join(bin, cmd))
    const r = await up([], ['--control', url, '--create', 'lan'], { LANRAGE_HOME: home(), PATH: bin })
    if (machineFacts({ PATH: bin }).kernelWireGuard) {
      // This kernel has WireGuard: the check passes and the agent goes on (and is stopped by the missing party).
      expect(r.err).not.toContain('NEEDS_WIREGUARD')
    } else {
      expect(r).toEqual({
        code: 1,
        out: '',
        err: 'lanrage up: needs WireGuard: this kernel has no wireguard module and wireguard-go is not on PATH (Debian: apt-get install wireguard-go) (NEEDS_WIREGUARD)\n',
      })
      expect(await counts()).toMatchObject({ parties: 0, peers: 0 })
    }
  }, 30_000)

  test('an unreachable control server: says what it waits for, attempt k of n and when the next comes', async () => {
    const closed = `http://127.0.0.1:${await freeTcpPort()}`
    const r = await up([], ['--control', closed, '--create', 'lan'], { LANRAGE_HOME: home() })
    expect(r.code).toBe(1)
    const lines = r.err.trim().split('\n')
    expect(lines[0]).toMatch(new RegExp(`INFO  agent: registering with the control server control=${closed.replace(/\./g, '\\.')}$`))
    for (let k = 1; k <= 4; k++)
      expect(lines[k]).toMatch(new RegExp(`WARN  agent/control-client: control server not answering: attempt ${k} of 5 failed, next in \\d+\\.\\d s what=register control=${closed.replace(/\./g, '\\.')} error="ECONNREFUSED`))
    expect(lines.at(-1)).toMatch(/^lanrage up: register: cannot reach http:\/\/127\.0\.0\.1:\d+ after 5 tries: .* \(CONTROL_UNREACHABLE\)$/)
  }, 30_000)
})
