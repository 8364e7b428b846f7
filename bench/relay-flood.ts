/**
 * The relay under a flood of forged ALLOCATEs (issue 9 item 18): STUN answered and session datagrams forwarded
 * while --flood-rate ALLOCATE requests per second arrive from --sources forged addresses, against the same
 * measurement without the flood, in alternating rounds.
 *
 *   sudo node_modules/.bin/bun bench/relay-flood.ts [--duration=5] [--rounds=3] [--flood-rate=40000]
 *        [--sources=5000] [--session-rate=10000] [--stun-rate=10] [--pin=true] [--quiet-wait=0] [--quiet-load=0.5]
 *
 * Needs root (network namespaces, a raw socket for the forged sources) and gcc. Two namespaces of its own,
 * lrf<pid>-r (the relay, 10.77.0.1) and lrf<pid>-c (everything else, 10.77.0.2), joined by a veth pair; the
 * relay's replies to the forged sources (10.99.0.0/16) are routed to the clients' namespace, which drops them.
 * The relay (bench/relay-host.ts, production defaults: --ticket-check-rate 500, --stun-rate 20) runs on CPU 1,
 * and the kernel's receive work for its veth is steered to CPU 1 too (rps_cpus); the flood generator
 * (bench/c/spoofgen.c) and the legitimate clients (bench/lib/flood-client.ts) run on CPU 0.
 *
 * The flood carries a genuine ticket (the attacker's own, for another session), so a relay without a cookie
 * would check its signature and claim its side; each forged address sends a zero cookie. The legitimate clients:
 * one session sending --session-rate datagrams/s of 208 B from a to b through the relay, and STUN Binding
 * requests at --stun-rate per second (below the relay's per-/24 limit) with a 1 s deadline each.
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { createTicketIssuer } from '../src/relay/testing.ts'
import { encodeAllocateRequest } from '../src/shared/wire/allocate.ts'
import { BENCH_DIR, BUN, compileC, flags, fmt, machine, median, pinned, profileFlags, spawnChild, waitQuiet } from './lib/common.ts'

const opt = flags({
  duration: 5,
  rounds: 3,
  floodRate: 40_000,
  sources: 5000,
  sessionRate: 10_000,
  stunRate: 10,
  pin: true,
  quietWait: 0,
  quietLoad: 0.5,
})
if (process.getuid?.() !== 0) {
  console.error('relay-flood: needs root (network namespaces and a raw socket)')
  process.exit(1)
}
if (opt.quietWait > 0) await waitQuiet(opt.quietLoad, opt.quietWait)
console.log(`# relay under a forged ALLOCATE flood — ${machine()}`)

const P = `lrf${process.pid % 100000}`
const R = `${P}-r`
const C = `${P}-c`
const RELAY_IP = '10.77.0.1'
const CLIENT_IP = '10.77.0.2'
const FORGED = '10.99.0.1'
const RELAY_ID = '00000000000000f1'

const sh = (cmd: string[]) => {
  const p = Bun.spawnSync(cmd, { stderr: 'pipe' })
  if (p.exitCode !== 0) throw new Error(`${cmd.join(' ')}: ${p.stderr.toString()}`)
}
const inNs = (ns: string, cpu: string, cmd: string[]) => ['ip', 'netns', 'exec', ns, ...(opt.pin ? pinned(cpu, cmd) : cmd)]

function down() {
  for (const ns of [R, C]) Bun.spawnSync(['ip', 'netns', 'del', ns], { stderr: 'ignore' })
}
function up() {
  down()
  for (const ns of [R, C]) {
    sh(['ip', 'netns', 'add', ns])
    sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up'])
  }
  sh(['ip', 'link', 'add', 'r0', 'netns', R, 'type', 'veth', 'peer', 'name', 'c0', 'netns', C])
  sh(['ip', '-n', R, 'addr', 'add', `${RELAY_IP}/24`, 'dev', 'r0'])
  sh(['ip', '-n', C, 'addr', 'add', `${CLIENT_IP}/24`, 'dev', 'c0'])
  sh(['ip', '-n', R, 'link', 'set', 'r0', 'up'])
  sh(['ip', '-n', C, 'link', 'set', 'c0', 'up'])
  // Answers to the forged sources go back over the veth; the clients' namespace does not forward, so it drops them.
  sh(['ip', '-n', R, 'route', 'add', '10.99.0.0/16', 'via', CLIENT_IP])
  for (const k of ['net.ipv4.conf.all.rp_filter', 'net.ipv4.conf.r0.rp_filter']) sh(['ip', 'netns', 'exec', R, 'sysctl', '-qw', `${k}=0`])
  // The relay's receive work on the relay's CPU (1), not on the sender's (0).
  if (opt.pin) sh(['ip', 'netns', 'exec', R, 'sh', '-c', 'echo 2 > /sys/class/net/r0/queues/rx-0/rps_cpus'])
}

const spoofgen = compileC('spoofgen')
process.on('SIGINT', () => {
  down()
  process.exit(130)
})
up()
const issuer = createTicketIssuer(RELAY_ID)
const relay = spawnChild(inNs(R, '1', [BUN, ...profileFlags('relay-flood'), join(BENCH_DIR, 'relay-host.ts')]), {
  env: { BENCH_HOST: RELAY_IP, BENCH_TICKET_KEY: Buffer.from(issuer.publicKey).toString('base64'), BENCH_RELAY_ID: RELAY_ID, BENCH_SESSIONS: '8' },
})
let client: ReturnType<typeof spawnChild> | undefined
try {
  const { main_port: mainPort } = JSON.parse(await relay.line()) as { main_port: number }
  const s = issuer.session()
  const h = (b: Uint8Array) => Buffer.from(b).toString('hex')
  client = spawnChild(inNs(C, '0', [BUN, join(BENCH_DIR, 'lib', 'flood-client.ts')]), {
    stdin: 'pipe',
    env: {
      FLOOD_RELAY: RELAY_IP,
      FLOOD_PORT: String(mainPort),
      FLOOD_TICKET_A: h(s.ticketA),
      FLOOD_TICKET_B: h(s.ticketB),
      FLOOD_KEY_A: h(s.keyA.publicKey),
      FLOOD_KEY_B: h(s.keyB.publicKey),
      FLOOD_SESSION_RATE: String(opt.sessionRate),
      FLOOD_STUN_RATE: String(opt.stunRate),
    },
  })
  await client.line(30_000) // ready: the session is up
  const attackerTicket = issuer.session().ticketA
  const payload = h(encodeAllocateRequest({ transactionId: crypto.getRandomValues(new Uint8Array(12)), ticket: attackerTicket }))

  interface Result {
    session: { sent: number; received: number; p50_ms: number; p99_ms: number }
    stun: { sent: number; answered: number; p50_ms: number; p99_ms: number }
    flood?: { sent: number; seconds: number; rate: number; short: number }
  }
  const results: Record<'none' | 'flood', Result[]> = { none: [], flood: [] }
  const stdin = client.proc.stdin as import('bun').FileSink
  for (let round = 0; round < opt.rounds; round++) {
    for (const phase of ['none', 'flood'] as const) {
      let gen: Promise<string> | undefined
      if (phase === 'flood') {
        const args = ['--dst', `${RELAY_IP}:${mainPort}`, '--src', FORGED, '--sources', String(opt.sources), '--rate', String(opt.floodRate), '--duration', String(opt.duration + 1.5)]
        const p = Bun.spawn(inNs(C, '0', [spoofgen, ...args]), { stdin: new TextEncoder().encode(payload), stdout: 'pipe', stderr: 'pipe' })
        gen = (async () => {
          const code = await Promise.race([p.exited, Bun.sleep((opt.duration + 10) * 1000).then(() => 'timeout' as const)])
          if (code !== 0) throw new Error(`spoofgen: ${code}: ${await new Response(p.stderr).text()}`)
          return new Response(p.stdout).text()
        })()
        await Bun.sleep(500) // the flood is at full rate before the measurement starts
      }
      stdin.write(`measure ${opt.duration}\n`)
      stdin.flush()
      const r = JSON.parse(await client.line((opt.duration + 10) * 1000)) as Result
      if (gen) r.flood = JSON.parse(await gen) as Result['flood']
      results[phase].push(r)
      const pct = (a: number, b: number) => `${fmt((100 * a) / Math.max(1, b), 1)}%`
      console.log(
        `round ${round + 1} ${phase.padEnd(5)}: STUN ${r.stun.answered}/${r.stun.sent} (${pct(r.stun.answered, r.stun.sent)}) p50 ${r.stun.p50_ms} ms p99 ${r.stun.p99_ms} ms · ` +
          `session ${fmt(r.session.received)}/${fmt(r.session.sent)} (${pct(r.session.received, r.session.sent)}) p50 ${r.session.p50_ms} ms p99 ${r.session.p99_ms} ms` +
          (r.flood ? ` · flood ${fmt(r.flood.rate)}/s (${fmt(r.flood.sent)} sent)` : ''),
      )
    }
  }
  stdin.write('quit\n')
  stdin.flush()
  const stats = await relay.stop()
  console.log(`\nrelay counters at exit: ${stats.split('\n').find((l) => l.startsWith('{')) ?? stats}`)
  console.log('\n| phase | STUN answered (median of rounds) | STUN p50 / p99 ms | session delivered | session p50 / p99 ms | flood rate |')
  console.log('| --- | --- | --- | --- | --- | --- |')
  for (const phase of ['none', 'flood'] as const) {
    const rs = results[phase]
    const m = (f: (r: Result) => number) => median(rs.map(f))
    console.log(
      `| ${phase === 'none' ? 'no flood' : `flood ${fmt(opt.floodRate)}/s from ${fmt(opt.sources)} addresses`} | ` +
        `${fmt(m((r) => (100 * r.stun.answered) / r.stun.sent), 1)}% | ${fmt(m((r) => r.stun.p50_ms), 2)} / ${fmt(m((r) => r.stun.p99_ms), 2)} | ` +
        `${fmt(m((r) => (100 * r.session.received) / r.session.sent), 2)}% | ${fmt(m((r) => r.session.p50_ms), 2)} / ${fmt(m((r) => r.session.p99_ms), 2)} | ` +
        `${phase === 'flood' ? fmt(m((r) => r.flood!.rate)) + '/s' : '-'} |`,
    )
  }
} finally {
  if (client) await client.stop().catch(() => '')
  await relay.stop().catch(() => '')
  down()
  if (existsSync(`/var/run/netns/${R}`)) console.error(`relay-flood: could not remove namespace ${R}`)
}
