/**
 * The servers and agents of the natlab end-to-end tests (agent.test.ts drives `lanrage up` from the command line,
 * page.test.ts from its page in Chromium): `lanrage serve` (control server + relay) and a second relay on the
 * "internet" at 203.0.113.10, gamers behind real Linux NATs, and the commands a gamer runs on its machine.
 */
import { afterAll, beforeAll, expect } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Natlab, type NatKind, NS_PREFIX, type NsProcess, PUB_IP } from './natlab.ts'

export const CLI = join(import.meta.dir, '..', '..', 'src', 'cli.ts')
export const CONTROL = `http://${PUB_IP}:8667`
export const RELAY_SECRET = 'natlab-agent-e2e-secret'

export interface AgentHandle {
  n: number
  proc: NsProcess
  home: string
  iface: string
  ns: string
  partyId: string
  vip: string
}

/** An agent started without a party (`idle`): what the page test needs of it. */
export interface IdleAgent {
  n: number
  proc: NsProcess
  home: string
  iface: string
  ns: string
  /** The page, as the gamer opens it on that machine. */
  page: string
}

/** One natlab + server per scenario; every process and namespace goes away in afterAll, pass or fail. */
export function scenario(kinds: NatKind[], stunTargets: 1 | 2 = 2, serverArgs: string[] = []) {
  const ctx = { lab: null as Natlab | null, dir: '', agents: [] as AgentHandle[] }
  const cleanup = async () => {
    await ctx.lab?.down()
    ctx.lab = null
    if (ctx.dir) rmSync(ctx.dir, { recursive: true, force: true })
  }
  beforeAll(async () => {
    ctx.dir = mkdtempSync(join(tmpdir(), 'lra-e2e-'))
    ctx.lab = Natlab.up(kinds)
    try {
      await startServers(ctx.lab, ctx.dir, stunTargets, serverArgs)
    } catch (e) {
      // bun does not run afterAll when beforeAll throws: clean up here.
      console.error(ctx.lab.logs())
      await cleanup()
      throw e
    }
  }, 30_000)
  afterAll(async () => {
    await cleanup()
    expect(Bun.spawnSync(['ip', 'netns', 'list']).stdout.toString()).not.toContain(`${NS_PREFIX}-`)
  }, 30_000)

  /** Starts `lanrage up` for gamer n; resolves once it printed its party id and virtual IP. */
  async function up(n: number, party: { create: string } | { join: string }, extra: string[] = []): Promise<AgentHandle> {
    const lab = ctx.lab!
    const home = join(ctx.dir, `home${n}`)
    const iface = `${NS_PREFIX}w${n}` // unique across concurrent runs: wireguard-go sockets are machine-wide
    lab.trackInterface(iface)
    const ns = Natlab.ns(`peer${n}`)
    const args = 'create' in party ? ['--create', party.create] : ['--join', party.join]
    const proc = lab.spawn(ns, [process.execPath, CLI, 'up', '--control', CONTROL, ...args, '--interface', iface, ...extra], { LANRAGE_HOME: home }, `agent${n}`)
    const partyId = (await proc.waitFor(/^party_id: ([0-9a-f]{12})$/m, 10_000))[1]!
    const vip = (await proc.waitFor(/^virtual_ip: (\S+)$/m, 10_000))[1]!
    const a = { n, proc, home, iface, ns, partyId, vip }
    ctx.agents.push(a)
    return a
  }

  /**
   * Starts `lanrage up` for gamer n without a party: it waits for one chosen on its page, which it serves on
   * 127.0.0.1:8666 of its own machine (namespace). Resolves once it printed the page's address.
   */
  async function idle(n: number, extra: string[] = []): Promise<IdleAgent> {
    const lab = ctx.lab!
    const home = join(ctx.dir, `home${n}`)
    const iface = `${NS_PREFIX}w${n}`
    lab.trackInterface(iface)
    const ns = Natlab.ns(`peer${n}`)
    const proc = lab.spawn(ns, [process.execPath, CLI, 'up', '--control', CONTROL, '--interface', iface, '--api-port', '8666', ...extra], { LANRAGE_HOME: home }, `agent${n}`)
    const page = (await proc.waitFor(/^page: (http:\/\/127\.0\.0\.1:8666\/)$/m, 10_000))[1]!
    return { n, proc, home, iface, ns, page }
  }

  /** WireGuard's endpoint for every peer of `a`, keyed by public key (`wg show NAME endpoints`). */
  function endpoints(a: AgentHandle): Map<string, string> {
    const r = ctx.lab!.exec(a.ns, ['wg', 'show', a.iface, 'endpoints'])
    if (r.code !== 0) throw new Error(`wg show ${a.iface} failed: ${r.err}`)
    return new Map(r.out.trim().split('\n').filter(Boolean).map((l) => l.split('\t') as [string, string]))
  }

  /** Wraps a test body so that a failure prints the output of every process in the lab. */
  const logged = (fn: () => Promise<void>) => async () => {
    try {
      await fn()
    } catch (e) {
      console.error(ctx.lab?.logs() ?? '')
      throw e
    }
  }
  return { ctx, up, idle, endpoints, logged }
}

/**
 * The servers on the "internet" (lra-pub, 203.0.113.10): `lanrage serve` (control server + relay) and, for two
 * STUN targets, a second `lanrage relay`, so the agents can tell a symmetric NAT from a cone.
 */
export async function startServers(lab: Natlab, dir: string, stunTargets: 1 | 2, serverArgs: string[]) {
  const pub = Natlab.ns('pub')
  const serve = lab.spawn(
    pub,
    [process.execPath, CLI, 'serve', '--host', '0.0.0.0', '--port', '8667', '--db', join(dir, 'control.db'), '--relay-secret', RELAY_SECRET, ...serverArgs],
    { LANRAGE_HOME: join(dir, 'server') },
    'serve',
  )
  if (stunTargets === 2) {
    const argv = ['relay', '--port', '3479', '--ports', '53000-53099', '--public-ip', PUB_IP, '--control', 'http://127.0.0.1:8667', '--relay-secret', RELAY_SECRET]
    lab.spawn(pub, [process.execPath, CLI, ...argv], { LANRAGE_HOME: join(dir, 'relay2') }, 'relay2')
  }
  await waitForServer(lab, stunTargets, serve)
}

/** Runs a short `lanrage` command as the gamer would: on its machine (namespace), with its $LANRAGE_HOME. */
export function lanrage(args: string[], a: { home: string; ns: string }) {
  const p = Bun.spawnSync(['ip', 'netns', 'exec', a.ns, process.execPath, CLI, ...args], { env: { ...process.env, LANRAGE_HOME: a.home }, timeout: 20_000 })
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() }
}

export interface StatusJson {
  running: boolean
  state?: string
  party: { party_id: string; name: string } | null
  self: { peer_id: string; name: string | null; virtual_ip: string; nat_type: string; public_endpoint: string | null }
  peers: {
    peer_id: string
    name: string | null
    virtual_ip: string
    public_key: string
    endpoint: string | null
    path: string
    nat_type: string
    latency_ms: number | null
    latest_handshake: string | null
    rx_bytes: number
    tx_bytes: number
  }[]
}
export const status = (a: AgentHandle) => JSON.parse(lanrage(['status', '--json'], a).out) as StatusJson

/** Polls `cond` every 100 ms until it holds (bounded); returns its last value. */
export async function until<T>(what: string, fn: () => T, cond: (v: T) => boolean, timeoutMs: number): Promise<T> {
  const end = Date.now() + timeoutMs
  let v = fn()
  while (!cond(v)) {
    if (Date.now() > end) throw new Error(`${what}: not reached within ${timeoutMs} ms; last: ${JSON.stringify(v)}`)
    await Bun.sleep(100)
    v = fn()
  }
  return v
}

/** Asks the control server's health route from inside lra-pub until it counts `relays` registered relays. */
export async function waitForServer(lab: Natlab, relays: number, serve: NsProcess) {
  const probe = `const r = await fetch('http://127.0.0.1:8667/').then((r) => r.json()).catch(() => ({})); console.log(JSON.stringify(r))`
  await until(
    `lanrage serve with ${relays} relay(s)`,
    () => {
      const r = lab.exec(Natlab.ns('pub'), [process.execPath, '-e', probe])
      try {
        return JSON.parse(r.out) as { relays?: number }
      } catch {
        return {}
      }
    },
    (h) => (h.relays ?? 0) >= relays || !serve.running,
    15_000,
  )
  if (!serve.running) throw new Error(`lanrage serve exited\n${serve.tail()}`)
}

