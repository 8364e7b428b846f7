/**
 * Join → `peer_joined` fan-out (issue 2 "Numbers"): one party with --subscribers members, each holding a
 * WebSocket (`GET /ws`); --joins times a new peer joins, and every subscriber's delivery of that join's
 * `peer_joined` is timed from the moment the join request was sent. Goal: p99 < 50 ms.
 *
 *   node_modules/.bin/bun bench/control-ws-fanout.ts [--subscribers=100] [--joins=200] [--joiners=20] [--bursts=10]
 *
 * The control server (`lanrage control`, SQLite file) runs as its own process; the subscribers and the joiner
 * live in this process, on one clock. Joins are sequential: each waits until all subscribers have the event
 * (bounded: 5 s), then the joiner leaves again (its `peer_left` is awaited too, not timed), so the party stays
 * at --subscribers + 1 members. --joiners peers take turns joining, so the server also sees rejoins. Then
 * --bursts times all --joiners join at once (each timed from its own request), and leave again. The
 * baseline is the same fan-out over a bare Bun.serve WebSocket server (server.publish to a topic), timed the
 * same way, in the same run. Every wait is bounded in time.
 */
import { join } from 'node:path'
import { BUN, flags, fmt, machine, percentile, pool, rssMiB, spawnChild } from './lib/common.ts'
import { call, createParty, joinParty, leaveParty, openSocket, peerInfo, register, startControlServer, type Peer } from './lib/control-client.ts'

const opt = flags({ subscribers: 100, joins: 200, joiners: 20, bursts: 10 })

interface Waiter {
  remaining: number
  t0: number
  done: () => void
}

/** Collects per-subscriber delivery latencies for events keyed by `key`. */
class Fanout {
  private waiters = new Map<string, Waiter>()
  latencies: number[] = []
  /** HTTP response time of each join request (how long the server took to answer it). */
  responses: number[] = []
  lastArrivals: number[] = []
  private last = new Map<string, number>()

  arrive(key: string, at: number) {
    const w = this.waiters.get(key)
    if (!w) return
    this.latencies.push(at - w.t0)
    this.last.set(key, at - w.t0)
    if (--w.remaining === 0) {
      this.lastArrivals.push(this.last.get(key)!)
      this.waiters.delete(key)
      w.done()
    }
  }

  /** Starts a timed event and returns a promise for all deliveries (rejects after 5 s). */
  expect(key: string, count: number, t0: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const w = this.waiters.get(key)
        this.waiters.delete(key)
        reject(new Error(`${key}: ${w?.remaining} of ${count} subscribers got nothing within 5 s`))
      }, 5000)
      this.waiters.set(key, {
        remaining: count,
        t0,
        done: () => {
          clearTimeout(timer)
          resolve()
        },
      })
    })
  }
}

function summary(name: string, f: Fanout) {
  const s = [...f.latencies].sort((a, b) => a - b)
  const l = [...f.lastArrivals].sort((a, b) => a - b)
  const ms = (x: number) => fmt(x, 2)
  const r = [...f.responses].sort((a, b) => a - b)
  return (
    `| ${name} | ${fmt(s.length)} | ${ms(percentile(s, 0.5))} | ${ms(percentile(s, 0.99))} | ${ms(s[s.length - 1] ?? NaN)} | ` +
    `${ms(percentile(l, 0.5))} | ${ms(percentile(l, 0.99))} | ${ms(percentile(r, 0.5))} / ${ms(percentile(r, 0.99))} |`
  )
}

console.log(`# control WebSocket fan-out — ${machine()}`)
const control = await startControlServer(['--register-rate-per-min', '100000', '--max-peers-limit', String(opt.subscribers + opt.joiners + 10)])
const bare = spawnChild([BUN, join(import.meta.dir, 'bare-ws.ts')])
const sockets: WebSocket[] = []
try {
  // ---- the control server
  const subs = await pool(Array.from({ length: opt.subscribers }), 16, () => register(control.url))
  const joiners = await pool(Array.from({ length: opt.joiners }), 16, () => register(control.url))
  const partyId = await createParty(control.url, subs[0]!, 'fanout', opt.subscribers + opt.joiners + 10, peerInfo(0))
  await pool(subs.slice(1), 16, (p: Peer, i) => joinParty(control.url, p, partyId, peerInfo(i + 1)))
  const fan = new Fanout()
  const burst = new Fanout()
  const left = new Fanout()
  let joined = fan
  for (const p of subs) {
    sockets.push(
      await openSocket(control.url, p, (msg, at) => {
        if (msg.type === 'peer_joined') joined.arrive((msg.peer as { peer_id: string }).peer_id, at)
        else if (msg.type === 'peer_left') left.arrive(msg.peer_id as string, at)
      }),
    )
  }
  const t0 = performance.now()
  for (let i = 0; i < opt.joins; i++) {
    const p = joiners[i % joiners.length]!
    const start = performance.now()
    const all = fan.expect(p.peerId, subs.length, start)
    await joinParty(control.url, p, partyId, peerInfo(1000 + i))
    fan.responses.push(performance.now() - start)
    await all
    const gone = left.expect(p.peerId, subs.length, performance.now())
    await leaveParty(control.url, p, partyId)
    await gone
  }
  const elapsed = (performance.now() - t0) / 1000
  joined = burst
  for (let b = 0; b < opt.bursts; b++) {
    await Promise.all(
      joiners.map(async (p, j) => {
        const start = performance.now()
        const all = burst.expect(p.peerId, subs.length, start)
        await joinParty(control.url, p, partyId, peerInfo(2000 + j))
        burst.responses.push(performance.now() - start)
        await all
      }),
    )
    await Promise.all(
      joiners.map(async (p) => {
        const gone = left.expect(p.peerId, subs.length, performance.now())
        await leaveParty(control.url, p, partyId)
        await gone
      }),
    )
  }
  const health = await call<Record<string, unknown>>(control.url, 'GET', '/')

  // ---- the baseline: the same fan-out through a bare Bun.serve WebSocket topic
  const barePort = (JSON.parse(await bare.line()) as { port: number }).port
  const bareFan = new Fanout()
  let bareJoined = bareFan
  const bareSockets: WebSocket[] = []
  for (let i = 0; i < opt.subscribers; i++) {
    bareSockets.push(
      await new Promise<WebSocket>((resolve, reject) => {
        const ws = new WebSocket(`ws://127.0.0.1:${barePort}/ws`)
        ws.onmessage = (ev) => {
          const msg = JSON.parse(String(ev.data)) as { type: string; peer?: { peer_id: string } }
          if (msg.type === 'hello') resolve(ws)
          else if (msg.type === 'peer_joined') bareJoined.arrive(msg.peer!.peer_id, performance.now())
        }
        ws.onerror = () => reject(new Error('bare WebSocket error'))
      }),
    )
  }
  sockets.push(...bareSockets)
  for (let i = 0; i < opt.joins; i++) {
    const id = `bare-${i}`
    const start = performance.now()
    const all = bareFan.expect(id, bareSockets.length, start)
    await fetch(`http://127.0.0.1:${barePort}/join`, { method: 'POST', body: JSON.stringify({ peer_id: id, ...peerInfo(i) }) }).then((r) => r.text())
    bareFan.responses.push(performance.now() - start)
    await all
  }
  const bareBurst = new Fanout()
  bareJoined = bareBurst
  for (let b = 0; b < opt.bursts; b++) {
    await Promise.all(
      joiners.map(async (_, j) => {
        const id = `bare-burst-${b}-${j}`
        const start = performance.now()
        const all = bareBurst.expect(id, bareSockets.length, start)
        await fetch(`http://127.0.0.1:${barePort}/join`, { method: 'POST', body: JSON.stringify({ peer_id: id, ...peerInfo(j) }) }).then((r) => r.text())
        bareBurst.responses.push(performance.now() - start)
        await all
      }),
    )
  }

  console.log(`\n## Join → peer_joined at each of ${opt.subscribers} subscribers, ${opt.joins} sequential joins (ms from sending the join)\n`)
  console.log('| server | deliveries | p50 | p99 | max | last subscriber p50 | last subscriber p99 | join response p50 / p99 |')
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- |')
  console.log(summary('control server (join + SQLite commit + fan-out)', fan))
  console.log(summary(`control server, ${opt.joiners} joins at once × ${opt.bursts}`, burst))
  console.log(summary('bare Bun.serve, publish to a topic', bareFan))
  console.log(summary(`bare Bun.serve, ${opt.joiners} at once × ${opt.bursts}`, bareBurst))
  const p99 = percentile([...fan.latencies].sort((a, b) => a - b), 0.99)
  const p99b = percentile([...burst.latencies].sort((a, b) => a - b), 0.99)
  console.log(`\ncontrol p99 ${fmt(p99, 2)} ms sequential, ${fmt(p99b, 2)} ms in bursts — goal < 50 ms: ${Math.max(p99, p99b) < 50 ? 'met' : 'MISSED'}`)
  console.log(`control: ${opt.joins} join+leave cycles in ${fmt(elapsed, 1)} s; server RSS ${rssMiB(control.pid).toFixed(0)} MiB; GET / ${JSON.stringify(health)}`)
  console.log(`\n${machine()}`)
} finally {
  for (const ws of sockets) ws.close()
  await bare.stop()
  await control.stop()
}
