/**
 * Resident memory of the control server (issue 2 "Numbers") holding --peers peers in --parties parties
 * (--peers / --parties each) with --sockets WebSocket clients connected. The server is `lanrage control` with a
 * SQLite file, in its own process; its RSS comes from /proc/PID/status. Baseline in the same run: the same
 * number of WebSockets held by a bare Bun.serve (bench/bare-ws.ts), and the server's RSS when it is empty.
 *
 *   node_modules/.bin/bun bench/control-memory.ts [--peers=10000] [--parties=1000] [--sockets=1000] [--concurrency=32]
 *
 * Everything is created through the HTTP API as a client would: challenge + register with the X25519 proof
 * for every peer, POST /parties by the first peer of each party, POST /parties/{id}/join by the rest, with
 * --concurrency requests in flight. Registration is rate limited per source address, and every peer comes
 * from 127.0.0.1, so the server runs with --register-rate-per-min raised; --peer-timeout-s is raised so no
 * peer is cleaned up while the rest are being created. The WebSocket clients are peers of distinct parties.
 */
import { statSync } from 'node:fs'
import { join } from 'node:path'
import { BUN, flags, fmt, machine, pool, rssMiB, spawnChild } from './lib/common.ts'
import { call, createParty, joinParty, openSocket, peerInfo, register, startControlServer, type Peer } from './lib/control-client.ts'

const opt = flags({ peers: 10_000, parties: 1_000, sockets: 1_000, concurrency: 32 })
const perParty = Math.ceil(opt.peers / opt.parties)

console.log(`# control memory — ${machine()}`)
const control = await startControlServer([
  '--register-rate-per-min',
  String(opt.peers * 10),
  '--peer-timeout-s',
  '86400',
  '--max-peers-limit',
  String(Math.max(perParty, 2)),
])
const bare = spawnChild([BUN, join(import.meta.dir, 'bare-ws.ts')])
const sockets: WebSocket[] = []
try {
  await Bun.sleep(500)
  const empty = rssMiB(control.pid)
  const t0 = performance.now()
  const peers = await pool(Array.from({ length: opt.peers }), opt.concurrency, () => register(control.url))
  const tReg = performance.now()
  const hosts: { host: Peer; partyId: string }[] = await pool(Array.from({ length: opt.parties }), opt.concurrency, async (_, i) => {
    const host = peers[i * perParty]!
    return { host, partyId: await createParty(control.url, host, `party-${i}`, perParty, peerInfo(i * perParty)) }
  })
  const joins: { peer: Peer; partyId: string; i: number }[] = []
  for (let i = 0; i < opt.parties; i++) {
    for (let j = 1; j < perParty && i * perParty + j < peers.length; j++) joins.push({ peer: peers[i * perParty + j]!, partyId: hosts[i]!.partyId, i: i * perParty + j })
  }
  await pool(joins, opt.concurrency, (x) => joinParty(control.url, x.peer, x.partyId, peerInfo(x.i)))
  const tParties = performance.now()
  const health = await call<{ parties: number; peers: number }>(control.url, 'GET', '/')
  await Bun.sleep(1000) // let the server settle (heartbeat flush, GC)
  const withPeers = rssMiB(control.pid)

  // WebSocket clients: the hosts of the first --sockets parties (one socket per party, so each sees events).
  const holders = hosts.slice(0, opt.sockets).map((h) => h.host)
  const extra = opt.sockets > hosts.length ? peers.filter((p) => !holders.includes(p)).slice(0, opt.sockets - hosts.length) : []
  await pool([...holders, ...extra], 16, async (p) => {
    sockets.push(await openSocket(control.url, p, () => {}))
  })
  await Bun.sleep(1000)
  const health2 = await call<{ ws_clients?: number }>(control.url, 'GET', '/')
  const withSockets = rssMiB(control.pid)

  // Baseline: the same number of WebSockets on a bare Bun.serve.
  const barePort = (JSON.parse(await bare.line()) as { port: number }).port
  const bareEmpty = rssMiB(bare.proc.pid)
  await pool(Array.from({ length: opt.sockets }), 16, async () => {
    sockets.push(
      await new Promise<WebSocket>((resolve, reject) => {
        const ws = new WebSocket(`ws://127.0.0.1:${barePort}/ws`)
        ws.onmessage = () => resolve(ws)
        ws.onerror = () => reject(new Error('bare WebSocket error'))
      }),
    )
  })
  await Bun.sleep(1000)
  const bareWith = rssMiB(bare.proc.pid)
  const dbBytes = ['', '-wal'].reduce((sum, suffix) => {
    try {
      return sum + statSync(control.dbPath + suffix).size
    } catch {
      return sum
    }
  }, 0)

  console.log(`\ncreated ${fmt(health.peers)} peers (${fmt((tReg - t0) / 1000, 1)} s to register) in ${fmt(health.parties)} parties ` + `(${fmt((tParties - tReg) / 1000, 1)} s to create and join), ${fmt(health2.ws_clients ?? NaN)} WebSocket clients`)
  console.log(`\n## Control server resident memory (RSS, MiB)\n`)
  console.log('| state | control server | bare Bun.serve |')
  console.log('| --- | --- | --- |')
  console.log(`| empty, just started | ${empty.toFixed(1)} | ${bareEmpty.toFixed(1)} |`)
  console.log(`| ${fmt(health.peers)} peers in ${fmt(health.parties)} parties | ${withPeers.toFixed(1)} | - |`)
  console.log(`| + ${fmt(opt.sockets)} WebSocket clients | ${withSockets.toFixed(1)} | ${bareWith.toFixed(1)} |`)
  console.log(
    `\nper peer: ${fmt(((withPeers - empty) * 1024) / health.peers, 2)} KiB; per WebSocket: ${fmt(((withSockets - withPeers) * 1024) / opt.sockets, 2)} KiB ` +
      `(bare: ${fmt(((bareWith - bareEmpty) * 1024) / opt.sockets, 2)} KiB); SQLite file + WAL: ${fmt(dbBytes / 2 ** 20, 1)} MiB`,
  )
  console.log(`\n${machine()}`)
} finally {
  for (const ws of sockets) ws.close()
  await bare.stop()
  await control.stop()
}
