/**
 * Authenticated heartbeats per second (issue 2 "Numbers"): the control server (`lanrage control`, SQLite file
 * database, its own process) against a bare Bun.serve endpoint (bench/bare-http.ts) in the same run, both
 * under wrk with the same Lua script (bench/wrk/post-json.lua: POST, bearer token, JSON body). Goal: the control
 * server reaches ≥ 50% of the bare endpoint's rate; p99 latency reported.
 *
 *   node_modules/.bin/bun bench/control-heartbeat.ts [--duration=5] [--rounds=3] [--connections=32] [--peers=100]
 *
 * --peers peers (in parties of 10) each heartbeat their own party with their own token, round robin over
 * pre-built requests, so the server authenticates a mix of tokens as it would in production. Every response
 * must be 2xx: wrk counts any other status, and the run fails if it saw one. Servers run on CPU 1, wrk on
 * CPU 0 (taskset), rounds alternate bare and control. Loopback only; every run is bounded by --duration.
 */
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BUN, flags, fmt, machine, median, pinned, pool, rssMiB, spawnChild, waitQuiet } from './lib/common.ts'
import { call, createParty, joinParty, peerInfo, register, startControlServer, type Peer } from './lib/control-client.ts'

const opt = flags({ duration: 5, rounds: 3, connections: 32, peers: 100, pin: false, quietLoad: 1.5, quietWait: 0 })
if (!Bun.which('wrk')) {
  console.error('wrk is not installed (Debian: apt-get install wrk)')
  process.exit(2)
}
const serverCpu = (cmd: string[]) => (opt.pin ? pinned('1', cmd) : cmd)
const wrkCpu = (cmd: string[]) => (opt.pin ? pinned('0', cmd) : cmd)

interface WrkResult {
  requests: number
  duration_us: number
  errors: { connect: number; read: number; write: number; status: number; timeout: number }
  lat_us: { p50: number; p90: number; p99: number; p999: number; max: number; mean: number }
}

const work = mkdtempSync(join(tmpdir(), 'lanrage-bench-wrk-'))
/** Runs wrk against `url` with requests read from a file of "path token" lines; returns its JSON line. */
async function runWrk(url: string, reqs: { path: string; token: string }[], body: string): Promise<WrkResult & { rps: number }> {
  const reqFile = join(work, 'requests.txt')
  writeFileSync(reqFile, reqs.map((r) => `${r.path} ${r.token}`).join('\n') + '\n')
  const proc = Bun.spawn(
    wrkCpu(['wrk', '-t1', `-c${opt.connections}`, `-d${opt.duration}s`, '--timeout', '5s', '-s', join(import.meta.dir, 'wrk', 'post-json.lua'), url]),
    { env: { ...process.env, WRK_BODY: body, WRK_REQUESTS: reqFile }, stdout: 'pipe', stderr: 'pipe' },
  )
  const done = await Promise.race([proc.exited, Bun.sleep((opt.duration + 15) * 1000).then(() => 'timeout' as const)])
  if (done === 'timeout') {
    proc.kill('SIGKILL')
    throw new Error('wrk did not finish in time')
  }
  const out = await new Response(proc.stdout).text()
  const line = out.split('\n').find((l) => l.startsWith('{'))
  if (done !== 0 || !line) throw new Error(`wrk failed (${done}): ${out} ${await new Response(proc.stderr).text()}`)
  const r = JSON.parse(line) as WrkResult
  return { ...r, rps: r.requests / (r.duration_us / 1e6) }
}

if (opt.quietWait > 0) await waitQuiet(opt.quietLoad, opt.quietWait)
console.log(`# control heartbeat — ${machine()}`)
const bare = spawnChild(serverCpu([BUN, join(import.meta.dir, 'bare-http.ts')]))
const control = await startControlServer(['--register-rate-per-min', '100000'], serverCpu([]))
try {
  const bareUrl = `http://127.0.0.1:${(JSON.parse(await bare.line()) as { port: number }).port}`

  // --peers peers in parties of 10, each with its own token.
  const peers = await pool(Array.from({ length: opt.peers }), 16, () => register(control.url))
  const reqs: { path: string; token: string }[] = []
  for (let i = 0; i < peers.length; i += 10) {
    const group = peers.slice(i, i + 10)
    const partyId = await createParty(control.url, group[0]!, `bench-${i}`, 16, peerInfo(i))
    await pool(group.slice(1), 8, (p: Peer, j) => joinParty(control.url, p, partyId, peerInfo(i + j + 1)))
    for (const p of group) reqs.push({ path: `/parties/${partyId}/peers/${p.peerId}/heartbeat`, token: p.token })
  }
  // What an agent sends every interval: its (unchanged) endpoint and NAT type.
  const body = JSON.stringify({ public_endpoint: '203.0.113.7:51820', nat_type: 'port_restricted_cone' })
  const one = await call<{ status: string }>(control.url, 'POST', reqs[0]!.path, JSON.parse(body), reqs[0]!.token)
  if (one.status !== 'ok') throw new Error(`heartbeat answered ${JSON.stringify(one)}`)

  const runs: Record<'bare' | 'control', (WrkResult & { rps: number })[]> = { bare: [], control: [] }
  for (let round = 0; round < opt.rounds; round++) {
    for (const [name, url] of [
      ['bare', bareUrl],
      ['control', control.url],
    ] as const) {
      const r = await runWrk(url, name === 'bare' ? reqs.map((q) => ({ ...q, path: '/heartbeat' })) : reqs, body)
      const errs = Object.values(r.errors).reduce((a, b) => a + b, 0)
      console.log(`  round ${round + 1} ${name.padEnd(7)} ${fmt(r.rps).padStart(8)} req/s  p50 ${fmt(r.lat_us.p50 / 1000, 2)} ms  p99 ${fmt(r.lat_us.p99 / 1000, 2)} ms  errors ${errs}`)
      if (r.errors.status > 0) throw new Error(`${name}: ${r.errors.status} responses were not 2xx`)
      runs[name].push(r)
    }
  }
  const best = (name: 'bare' | 'control') => runs[name].reduce((a, b) => (b.rps > a.rps ? b : a))
  const med = (name: 'bare' | 'control') => median(runs[name].map((r) => r.rps))
  console.log(`\n## Heartbeats per second (wrk -t1 -c${opt.connections} -d${opt.duration}s; best of ${opt.rounds}, median in brackets)\n`)
  console.log('| endpoint | req/s | p50 | p99 | p99.9 | server RSS |')
  console.log('| --- | --- | --- | --- | --- | --- |')
  for (const [name, pid] of [
    ['bare', bare.proc.pid],
    ['control', control.pid],
  ] as const) {
    const b = best(name)
    console.log(
      `| ${name === 'bare' ? 'bare Bun.serve' : 'control server, SQLite file'} | ${fmt(b.rps)} (${fmt(med(name))}) | ${fmt(b.lat_us.p50 / 1000, 2)} ms | ` +
        `${fmt(b.lat_us.p99 / 1000, 2)} ms | ${fmt(b.lat_us.p999 / 1000, 2)} ms | ${rssMiB(pid).toFixed(0)} MiB |`,
    )
  }
  const ratio = best('control').rps / best('bare').rps
  console.log(`\ncontrol / bare: ${ratio.toFixed(2)} (median ${(med('control') / med('bare')).toFixed(2)}) — goal ≥ 0.50: ${ratio >= 0.5 ? 'met' : 'MISSED'}`)
  console.log(`\n${machine()}`)
} finally {
  await bare.stop()
  await control.stop()
  rmSync(work, { recursive: true, force: true })
}
