/**
 * A relay between two peers in network namespaces, for the kernel fast path's tests and its benchmark
 * (bench/relay-offload.ts uses the same topology):
 *
 *   PREFIX-a  10.201.1.2 ──veth── 10.201.1.1  PREFIX-r  10.201.2.1 ──veth── 10.201.2.2  PREFIX-b
 *   (peer a)                       (the relay: IPv4 forwarding on)                       (peer b)
 *
 * Each peer's default route points at the relay. The prefix carries the test process's pid (`lro<pid>`), so
 * several runs of the suite on one machine never share a namespace; namespaces of runs whose process is gone
 * are removed on the next start. Needs root and iproute2 (test/needs.ts).
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'

export const LAB_ADDR = { a: '10.201.1.2', b: '10.201.2.2', ra: '10.201.1.1', rb: '10.201.2.1' } as const

const run = (cmd: string[], timeoutMs = 15_000) => {
  const p = Bun.spawnSync(cmd, { timeout: timeoutMs, stdin: 'ignore' })
  return { code: p.exitCode ?? -1, out: p.stdout.toString(), err: p.stderr.toString() }
}

export class NetnsLab {
  readonly ns: { r: string; a: string; b: string }
  private agents: UdpAgent[] = []
  private constructor(readonly prefix: string) {
    this.ns = { r: `${prefix}-r`, a: `${prefix}-a`, b: `${prefix}-b` }
  }

  /** Builds the three namespaces (removing this prefix's leftovers and those of dead runs first). */
  static up(prefix: string): NetnsLab {
    removeStaleLabs(prefix)
    const lab = new NetnsLab(prefix)
    lab.down()
    const { r, a, b } = lab.ns
    const steps = [
      ...[r, a, b].flatMap((n) => [
        ['ip', 'netns', 'add', n],
        ['ip', '-n', n, 'link', 'set', 'lo', 'up'],
      ]),
      ['ip', 'link', 'add', 'va', 'netns', a, 'type', 'veth', 'peer', 'name', 'ra', 'netns', r],
      ['ip', 'link', 'add', 'vb', 'netns', b, 'type', 'veth', 'peer', 'name', 'rb', 'netns', r],
      ['ip', '-n', a, 'addr', 'add', `${LAB_ADDR.a}/24`, 'dev', 'va'],
      ['ip', '-n', b, 'addr', 'add', `${LAB_ADDR.b}/24`, 'dev', 'vb'],
      ['ip', '-n', r, 'addr', 'add', `${LAB_ADDR.ra}/24`, 'dev', 'ra'],
      ['ip', '-n', r, 'addr', 'add', `${LAB_ADDR.rb}/24`, 'dev', 'rb'],
      ...[
        [a, 'va'],
        [b, 'vb'],
        [r, 'ra'],
        [r, 'rb'],
      ].map(([n, dev]) => ['ip', '-n', n!, 'link', 'set', dev!, 'up']),
      ['ip', '-n', a, 'route', 'add', 'default', 'via', LAB_ADDR.ra],
      ['ip', '-n', b, 'route', 'add', 'default', 'via', LAB_ADDR.rb],
      ['ip', 'netns', 'exec', r, 'sysctl', '-qw', 'net.ipv4.ip_forward=1'],
    ]
    for (const s of steps) {
      const p = run(s)
      if (p.code !== 0) {
        lab.down()
        throw new Error(`${s.join(' ')} → ${p.code}: ${p.err}`)
      }
    }
    return lab
  }

  /** Runs a command to completion inside a namespace. */
  exec(ns: string, cmd: string[], timeoutMs = 15_000) {
    return run(['ip', 'netns', 'exec', ns, ...cmd], timeoutMs)
  }

  /** Like exec, but throws with the command's output when it fails. */
  must(ns: string, cmd: string[]): string {
    const p = this.exec(ns, cmd)
    if (p.code !== 0) throw new Error(`${ns}: ${cmd.join(' ')} → ${p.code}: ${p.err}${p.out}`)
    return p.out
  }

  /** A UDP endpoint process inside `ns`, stopped by down(). */
  async agent(ns: string): Promise<UdpAgent> {
    const a = new UdpAgent(ns)
    this.agents.push(a)
    return a
  }

  /** Stops the agents, then deletes the namespaces (killing anything still inside). */
  down() {
    for (const a of this.agents.splice(0)) a.stop()
    for (const n of [this.ns.r, this.ns.a, this.ns.b]) {
      for (const pid of run(['ip', 'netns', 'pids', n]).out.split('\n').filter(Boolean)) run(['kill', '-9', pid])
      run(['ip', 'netns', 'del', n])
    }
  }
}

/** Removes labs of earlier runs (same prefix letters, another pid) whose process is gone. */
function removeStaleLabs(prefix: string) {
  const letters = /^[a-z]+/.exec(prefix)?.[0] ?? prefix
  const names = run(['ip', 'netns', 'list']).out
  for (const m of names.matchAll(new RegExp(`^(${letters}(\\d+))-[rab]\\b`, 'gm'))) {
    const pid = Number(m[2])
    if (m[1] === prefix || existsSync(`/proc/${pid}`)) continue
    for (const n of ['r', 'a', 'b']) run(['ip', 'netns', 'del', `${m[1]}-${n}`])
  }
}

export interface Datagram {
  on: number
  from: string
  data: string
}

/** Drives test/relay/fixtures/udp-agent.ts inside a namespace: bind, send, and what arrived. */
export class UdpAgent {
  readonly got: Datagram[] = []
  private readonly proc: Bun.Subprocess<'pipe', 'pipe', 'pipe'>
  private readonly lines: Record<string, unknown>[] = []
  private readonly waiters: (() => void)[] = []

  constructor(readonly ns: string) {
    const proc = Bun.spawn(['ip', 'netns', 'exec', ns, process.execPath, join(import.meta.dir, 'fixtures', 'udp-agent.ts')], {
      stdin: 'pipe',
      stdout: 'pipe',
      stderr: 'pipe',
    })
    this.proc = proc
    void (async () => {
      const dec = new TextDecoder()
      let buf = ''
      for await (const chunk of proc.stdout) {
        buf += dec.decode(chunk, { stream: true })
        for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
          const o = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>
          buf = buf.slice(nl + 1)
          if ('on' in o) this.got.push(o as unknown as Datagram)
          else this.lines.push(o)
          for (const w of this.waiters.splice(0)) w()
        }
      }
    })()
  }

  private command(line: string) {
    this.proc.stdin.write(line + '\n')
    void this.proc.stdin.flush()
  }

  /** Waits (bounded) for the agent's reply to a command. */
  private async reply(key: string, timeoutMs = 5000): Promise<Record<string, unknown>> {
    const end = Date.now() + timeoutMs
    for (;;) {
      const i = this.lines.findIndex((l) => key in l || 'error' in l)
      if (i >= 0) {
        const [l] = this.lines.splice(i, 1)
        if ('error' in l!) throw new Error(`udp agent in ${this.ns}: ${String(l.error)}`)
        return l!
      }
      if (Date.now() > end) throw new Error(`udp agent in ${this.ns}: no ${key} reply within ${timeoutMs} ms`)
      await new Promise<void>((r) => {
        const t = setTimeout(r, 100)
        this.waiters.push(() => {
          clearTimeout(t)
          r()
        })
      })
    }
  }

  /** Binds a socket at `port` (on `addr`, default every address); `send` names it by its port. */
  async bind(port: number, addr = '0.0.0.0'): Promise<void> {
    this.command(`bind ${port} ${addr}`)
    await this.reply('bound')
  }

  /** From now on the socket at `port` sends back whatever it receives. */
  async echo(port: number): Promise<void> {
    this.command(`echo ${port}`)
    await this.reply('echo')
  }

  /** Sends `data` `count` times from the socket bound at `from` (its port, or "ADDR:PORT"). */
  async send(from: number | string, addr: string, port: number, data: string | Uint8Array, count = 1): Promise<void> {
    const hex = typeof data === 'string' ? Buffer.from(data).toString('hex') : Buffer.from(data).toString('hex')
    this.command(`send ${from} ${addr} ${port} ${hex} ${count}`)
    await this.reply('sent')
  }

  /** Datagrams received whose payload is `text`. */
  received(text: string): Datagram[] {
    const hex = Buffer.from(text).toString('hex')
    return this.got.filter((d) => d.data === hex)
  }

  /** Waits until at least `n` datagrams with payload `text` arrived (bounded); returns them. */
  async waitFor(text: string, n = 1, timeoutMs = 3000): Promise<Datagram[]> {
    const end = Date.now() + timeoutMs
    while (this.received(text).length < n && Date.now() < end) await Bun.sleep(10)
    return this.received(text)
  }

  stop() {
    this.proc.stdin.end()
    this.proc.kill()
  }
}
