/**
 * What checking the heartbeat's answer against its response schema costs (issue 11: response schemas must not
 * slow the heartbeat). Two control apps in this one process, the same code but for one thing: the second is built
 * from a copy of src/control/app.ts whose heartbeat route has no `response` option (made at run time next to
 * app.ts, removed at exit). Each serves the same heartbeats through `app.handle` (Elysia's compiled handler,
 * without the socket), rounds alternating A/B so interference hits both alike; CPU time per heartbeat
 * (process.cpuUsage) is reported as the best round and the median.
 *
 *   node_modules/.bin/bun bench/control-response-schema.ts [--rounds=40] [--requests=10000]
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { flags, machine, median, REPO_DIR } from './lib/common.ts'

const opt = flags({ rounds: 40, requests: 10_000 })
const appTs = join(REPO_DIR, 'src', 'control', 'app.ts')
const variantTs = join(REPO_DIR, 'src', 'control', `.app-bench-${process.pid}.ts`)
const source = readFileSync(appTs, 'utf8')
const heartbeatResponse = /(\.post\('\/parties\/:party_id\/peers\/:peer_id\/heartbeat'[\s\S]*?)\n\s*response: \{[^\n]*\},/
if (!heartbeatResponse.test(source)) throw new Error("app.ts changed: the heartbeat route's `response:` line was not found")
writeFileSync(variantTs, source.replace(heartbeatResponse, '$1'))
process.on('exit', () => rmSync(variantTs, { force: true }))

const { createControl: withSchema } = await import('../src/control/app.ts')
const { createControl: withoutSchema } = (await import(variantTs)) as typeof import('../src/control/app.ts')
const { openDatabase } = await import('../src/db/client.ts')
const { defaultControlConfig } = await import('../src/control/config.ts')
const { ManualClock } = await import('../src/shared/clock.ts')
const { silentLogger } = await import('../src/shared/log.ts')
const { register, createParty, joinParty, peerInfo } = await import('./lib/control-client.ts')

/** A control app on loopback with ten members in one party; returns a function that sends n heartbeats. */
async function setup(create: typeof withSchema) {
  const config = defaultControlConfig({ relaySecret: 'bench', maxPartiesPerHost: 1000, registerRatePerMin: 100_000 })
  const open = openDatabase(':memory:')
  const control = create({ db: open.db, clock: new ManualClock(Date.now()), logger: silentLogger, config })
  control.app.listen({ port: 0, hostname: '127.0.0.1' })
  const url = `http://127.0.0.1:${control.app.server!.port}`
  const peers = await Promise.all(Array.from({ length: 10 }, () => register(url)))
  const partyId = await createParty(url, peers[0]!, 'bench', 16, peerInfo(0))
  for (const [i, p] of peers.slice(1).entries()) await joinParty(url, p, partyId, peerInfo(i + 1))
  // What an agent sends every interval: its (unchanged) endpoint and NAT type.
  const body = JSON.stringify({ public_endpoint: '203.0.113.7:51820', nat_type: 'port_restricted_cone' })
  const reqs = peers.map((p) => ({ url: `${url}/parties/${partyId}/peers/${p.peerId}/heartbeat`, auth: `Bearer ${p.token}` }))
  return async (n: number) => {
    for (let i = 0; i < n; i++) {
      const r = reqs[i % reqs.length]!
      const headers = { authorization: r.auth, 'content-type': 'application/json', 'content-length': String(body.length) }
      const res = await control.app.handle(new Request(r.url, { method: 'POST', body, headers }))
      if (res.status !== 200) throw new Error(`heartbeat answered ${res.status}: ${await res.text()}`)
      await res.text()
    }
  }
}

console.log(`# heartbeat with and without its response schema — ${machine()}`)
const variants = { 'with schema': await setup(withSchema), 'without': await setup(withoutSchema) }
for (const run of Object.values(variants)) await run(Math.min(5000, opt.requests)) // JIT warm-up
const us: Record<string, number[]> = { 'with schema': [], without: [] }
for (let round = 0; round < opt.rounds; round++) {
  const order = Object.entries(variants)
  for (const [name, run] of round % 2 ? order : order.reverse()) {
    const c0 = process.cpuUsage()
    await run(opt.requests)
    const c = process.cpuUsage(c0)
    us[name]!.push((c.user + c.system) / opt.requests)
  }
}
for (const [name, xs] of Object.entries(us)) console.log(`${name.padEnd(12)} best ${Math.min(...xs).toFixed(2)} µs, median ${median(xs).toFixed(2)} µs CPU per heartbeat`)
const ratio = median(us['with schema']!) / median(us.without!)
console.log(`with / without (medians): ${ratio.toFixed(3)} — ${opt.rounds} rounds of ${opt.requests}`)
process.exit(0)
