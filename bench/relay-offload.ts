/**
 * The relay's kernel fast path (--kernel-offload) against its references, in one namespace topology and one run:
 *
 *   plain   kernel IP forwarding from peer a to peer b through the relay namespace: no NAT, no rules, no relay
 *           (the physical reference: what the machine's forwarding path does with nothing in the way)
 *   kernel  the relay with --kernel-offload, every check on: tickets, ALLOCATE with its cookie, a WireGuard
 *           handshake with a valid mac1 per side; then the kernel forwards the locked session (nftables)
 *   relay   the same relay forwarding in user space
 *   c       bench/c/forwarder.c: recvmmsg/sendmmsg between two sockets, no checks (the user-space ceiling)
 *
 * Topology (test/relay/netns-lab.ts, prefix lrb<pid>): peer a 10.201.1.2 → relay namespace 10.201.1.1 |
 * 10.201.2.1 (IPv4 forwarding on) → peer b 10.201.2.2. The load generator bench/c/udpgen.c is one process with its
 * sender socket in a and its receiver socket in b (one clock). CPU: the generator on CPU 0; the relay namespace's
 * receive work steered to CPU 1 (RPS on its ingress veth) and the user-space forwarders pinned to CPU 1, so every
 * path has the same single core for its forwarding work. Needs root, iproute2, nft, gcc, taskset.
 *
 *   node_modules/.bin/bun bench/relay-offload.ts [--duration=1] [--warmup=0.3] [--rounds=3] [--sizes=208,1408]
 *        [--sessions=1000] [--only=plain,kernel,relay,c] [--pin=true] [--quiet-load=1.5] [--quiet-wait=0]
 *
 * Per size, per session count and round, each path gets an offered-load ladder (bench/lib/udpgen.ts
 * maxDelivered); the paths alternate within a round so that other load on the machine hits all of them alike.
 * The best round is the estimate, the median shows the noise. With --sessions=N the kernel and user-space relays
 * carry the same load spread over N sessions (the plain and C references have no sessions and are measured once).
 * Sizes: 208 B and 1408 B are WireGuard transport messages (16-byte header plus a multiple of 16), as elsewhere.
 */
import { join } from 'node:path'
import { BUN, REPO_DIR, compileC, flags, fmt, machine, median, pinned, spawnChild, waitQuiet, type Child } from './lib/common.ts'
import { initiation, response, signSession, ticketKey, transportHeader, type BenchSession } from './lib/relay-session.ts'
import { maxDelivered, runGen, type GenNet, type Plan } from './lib/udpgen.ts'
import { LAB_ADDR, NetnsLab } from '../test/relay/netns-lab.ts'

const opt = flags({
  duration: 1,
  warmup: 0.3,
  rounds: 3,
  sizes: '208,1408',
  sessions: 1000,
  only: 'plain,kernel,relay,c',
  pin: true,
  quietLoad: 1.5,
  quietWait: 0,
})
const sizes = opt.sizes.split(',').map(Number)
const only = new Set(opt.only.split(','))
type Path = 'plain' | 'kernel' | 'relay' | 'c'

if (process.getuid?.() !== 0) {
  console.error('relay-offload: needs root (network namespaces, nftables)')
  process.exit(2)
}
if (opt.quietWait > 0) await waitQuiet(opt.quietLoad, opt.quietWait)
console.log(`# relay kernel fast path — ${machine()}`)

const lab = NetnsLab.up(`lrb${process.pid}`)
const children: Child[] = []
const inR = (cmd: string[]) => ['ip', 'netns', 'exec', lab.ns.r, ...(opt.pin ? pinned('1', cmd) : cmd)]
const net: GenNet = { nsA: lab.ns.a, nsB: lab.ns.b, addrA: LAB_ADDR.a, addrB: LAB_ADDR.b, destA: LAB_ADDR.ra, destB: LAB_ADDR.rb }
const gen = { warmup: opt.warmup, duration: opt.duration, prefix: opt.pin ? pinned('0', []) : [], ports: [40000, 40001] as [number, number], net }
const baselineHeader = Uint8Array.of(4, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)

/** A relay process in the relay namespace with `n` sessions allocated by the two peers; returns its plan. */
async function startRelayWith(kernel: boolean, n: number, firstPort: number) {
  const key = ticketKey()
  const relayId = Buffer.from(crypto.getRandomValues(new Uint8Array(8))).toString('hex')
  const child = spawnChild(inR([BUN, join(REPO_DIR, 'bench', 'relay-host.ts')]), {
    env: {
      BENCH_TICKET_KEY: Buffer.from(key.publicKey).toString('base64'),
      BENCH_RELAY_ID: relayId,
      BENCH_SESSIONS: String(n),
      BENCH_PORTS: String(firstPort),
      BENCH_HOST: '0.0.0.0',
      BENCH_KERNEL_OFFLOAD: kernel ? '1' : '0',
    },
  })
  children.push(child)
  const info = JSON.parse(await child.line(30_000)) as { main_port: number }
  const signed = Array.from({ length: n }, () => signSession({ relayId, key }))
  // Each side is allocated from its own peer's namespace: a side is locked to the address its ALLOCATE came from.
  const allocate = async (ns: string, bind: string, relay: string, tickets: Uint8Array[]) => {
    const p = Bun.spawn(['ip', 'netns', 'exec', ns, BUN, join(REPO_DIR, 'bench', 'lib', 'allocate-in-ns.ts'), bind, relay, String(info.main_port)], {
      stdin: new TextEncoder().encode(tickets.map((t) => Buffer.from(t).toString('hex')).join('\n') + '\n'),
      stdout: 'pipe',
      stderr: 'pipe',
    })
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited])
    if (code !== 0) throw new Error(`allocate in ${ns}: ${err}`)
    return JSON.parse(out) as number[]
  }
  const t0 = performance.now()
  const [portsA, portsB] = await Promise.all([
    allocate(lab.ns.a, LAB_ADDR.a, LAB_ADDR.ra, signed.map((s) => s.ticketA)),
    allocate(lab.ns.b, LAB_ADDR.b, LAB_ADDR.rb, signed.map((s) => s.ticketB)),
  ])
  const sessions: BenchSession[] = signed.map(({ ticketA: _a, ticketB: _b, ...s }, i) => ({ ...s, portA: portsA[i]!, portB: portsB[i]! }))
  console.log(`${kernel ? 'kernel' : 'relay'}: ${n} sessions allocated in ${fmt(performance.now() - t0)} ms`)
  const plan = (k = 1): Plan => {
    const ss = sessions.slice(0, k)
    return {
      template: transportHeader(ss[0]!),
      // b answers first so the relay knows where a's traffic goes as soon as a's handshake arrives.
      hellos: [...ss.map((s) => ({ side: 'b' as const, port: s.portB, bytes: response(s) })), ...ss.map((s) => ({ side: 'a' as const, port: s.portA, bytes: initiation(s) }))],
      targets: ss.map((s) => s.portA),
    }
  }
  // One short run sends every session's handshakes: both relays learn the ports; the kernel one installs them.
  await runGen(genBin, plan(n), { ...gen, size: 208, rate: 20_000, duration: 0.2 })
  if (kernel) await untilKernelHolds(`lanrage_${firstPort}`, 2 * n)
  return { child, plan, firstPort }
}

/** Waits (at most 60 s) until the relay's table holds `n` locked sources. */
async function untilKernelHolds(table: string, n: number) {
  const count = () => {
    const out = lab.exec(lab.ns.r, ['nft', '-j', 'list', 'set', 'ip', table, 'locked']).out
    try {
      const set = (JSON.parse(out) as { nftables: { set?: { elem?: unknown[] } }[] }).nftables.find((x) => x.set)?.set
      return set?.elem?.length ?? 0
    } catch {
      return 0
    }
  }
  const end = Date.now() + 60_000
  while (count() < n && Date.now() < end) await Bun.sleep(200)
  if (count() < n) throw new Error(`the kernel holds ${count()} of ${n} locked sources after 60 s`)
}

const genBin = compileC('udpgen', ['-pthread'])
const fwdBin = compileC('forwarder')
const plans = new Map<Path, (sessions: number) => Plan>()
const relayCounters: string[] = []
try {
  // Receive work of the relay namespace on CPU 1, whatever core sent it (veth would keep it on the sender's).
  lab.must(lab.ns.r, ['sh', '-c', 'echo 2 > /sys/class/net/ra/queues/rx-0/rps_cpus'])
  const n = opt.sessions + 1
  if (only.has('plain')) plans.set('plain', () => ({ template: baselineHeader, hellos: [], targets: ['self'] }))
  if (only.has('c')) {
    const child = spawnChild(inR([fwdBin, '0', '0', '0.0.0.0']))
    children.push(child)
    const [, a, b] = (await child.line()).split(' ').map(Number)
    const hello = Uint8Array.of(0)
    plans.set('c', () => ({ template: baselineHeader, hellos: [{ side: 'b', port: b!, bytes: hello }, { side: 'a', port: a!, bytes: hello }], targets: [a!] }))
  }
  // Two relays, each with its own port range (so its own table): the idle one costs nothing measurable.
  if (only.has('kernel')) plans.set('kernel', (await startRelayWith(true, n, 20_000)).plan)
  if (only.has('relay')) plans.set('relay', (await startRelayWith(false, n, 30_000)).plan)

  const paths = [...plans.keys()]
  const results = new Map<string, number[]>()
  const key = (p: Path, size: number, sessions: number) => `${p}/${size}/${sessions}`
  for (const size of sizes) {
    for (const sessions of opt.sessions > 0 ? [1, n] : [1]) {
      for (let round = 0; round < opt.rounds; round++) {
        for (const p of paths) {
          // The references have no sessions: measured with the single-session runs.
          if (sessions > 1 && (p === 'plain' || p === 'c')) continue
          const k = key(p, size, sessions)
          const prev = results.get(k) ?? []
          const r = await maxDelivered(genBin, () => plans.get(p)!(sessions), { ...gen, size }, 0.75 * Math.max(0, ...prev))
          results.set(k, [...prev, r.top])
          console.log(`  ${size} B ${String(sessions).padStart(4)} session(s) round ${round + 1} ${p.padEnd(6)} ${fmt(r.top).padStart(9)} /s   ${r.steps.join(' ')}`)
        }
      }
    }
  }

  const best = (k: string) => Math.max(...(results.get(k) ?? [NaN]))
  const med = (k: string) => median(results.get(k) ?? [])
  const cell = (k: string) => (results.has(k) ? `${fmt(best(k))} (${fmt(med(k))})` : 'n/a')
  const ratio = (a: string, b: string) => {
    if (!results.has(a) || !results.has(b)) return 'n/a'
    return `${(best(a) / best(b)).toFixed(2)} (${(med(a) / med(b)).toFixed(2)})`
  }
  console.log(`\n## Delivered datagrams/s (best of ${opt.rounds} rounds, median in brackets)\n`)
  console.log('| size | sessions | plain forwarding | kernel (--kernel-offload) | relay (user space) | C forwarder | kernel / C (goal ≥ 2) | kernel / plain (goal ≥ 0.75) | kernel / relay |')
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |')
  for (const size of sizes) {
    for (const sessions of opt.sessions > 0 ? [1, n] : [1]) {
      const [pl, ke, re, c] = (['plain', 'kernel', 'relay', 'c'] as const).map((p) => key(p, size, p === 'plain' || p === 'c' ? 1 : sessions))
      console.log(
        `| ${size} B | ${sessions} | ${cell(pl!)} | ${cell(ke!)} | ${cell(re!)} | ${cell(c!)} | ${ratio(ke!, c!)} | ${ratio(ke!, pl!)} | ${ratio(ke!, re!)} |`,
      )
    }
  }
  console.log(`\n${machine()}`)
} finally {
  for (const c of children) relayCounters.push(await c.stop())
  lab.down()
  const counters = relayCounters.map((out) => out.split('\n').find((l) => l.startsWith('{"'))).filter(Boolean)
  if (counters.length) console.log(`\nrelay counters at exit (kernel, then user space):\n${counters.join('\n')}`)
}
