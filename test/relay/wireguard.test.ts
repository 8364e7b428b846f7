// Real WireGuard through the relay: two wireguard-go peers behind NATs in the natlab topology
// (test/e2e/natlab.sh, prefix LR_NS=lrr<pid>), the relay on the "internet" at 203.0.113.10. Each peer
// ALLOCATEs its side with a ticket, points its endpoint at 203.0.113.10:its_side_port, and a ping crosses the
// tunnel. Both NATs are symmetric, so a direct path is impossible: the ping can only go through the relay.
// The same runs with --kernel-offload (IPv4 forwarding on in the relay's namespace): then the kernel forwards the
// locked session, its counters reach the relay's stats, and a relay killed with SIGKILL leaves nothing forwarding.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { existsSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { parseSetCounters } from '../../src/relay/offload/ruleset.ts'
import { createTicketIssuer } from '../../src/relay/testing.ts'
import { NsProcess, natlabSkipReason, TOPO } from '../e2e/natlab.ts'

const skip = natlabSkipReason('nft')

const P = `lrr${process.pid % 100000}`
const PUB = `${P}-pub`
const RELAY_IP = '203.0.113.10'
const RELAY_ID = '0123456789abcdef'
const IFACES = [`${P}a`, `${P}b`]
const STATS = join(tmpdir(), `${P}-relay-stats.json`)
const FIX = join(import.meta.dir, 'fixtures')

const sh = (cmd: string[], stdin?: string) => {
  const p = Bun.spawnSync(cmd, { stdin: stdin === undefined ? 'ignore' : Buffer.from(stdin), timeout: 15_000 })
  if (p.exitCode !== 0) throw new Error(`${cmd.join(' ')} → ${p.exitCode}: ${p.stderr.toString()}${p.stdout.toString()}`)
  return p.stdout.toString().trim()
}
const inNs = (ns: string, ...cmd: string[]) => sh(['ip', 'netns', 'exec', ns, ...cmd])
const readStats = async () =>
  JSON.parse(await Bun.file(STATS).text()) as {
    stats: { forwarded: number; drops: Record<string, number> }
    sessions: { sides: Record<'a' | 'b', { learned: boolean; forwarded: number }> }[]
  }

describe.skipIf(!!skip)('WireGuard through the relay (natlab, symmetric NATs)', () => {
  const procs: NsProcess[] = []
  beforeAll(() => {
    const p = Bun.spawnSync(['bash', TOPO, 'up', 'symmetric', 'symmetric'], { env: { ...process.env, LR_NS: P } })
    if (p.exitCode !== 0) throw new Error(`natlab.sh up failed: ${p.stderr.toString()}`)
  })
  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop().catch(() => -1)))
    Bun.spawnSync(['bash', TOPO, 'down'], { env: { ...process.env, LR_NS: P } })
    for (const i of IFACES) rmSync(`/var/run/wireguard/${i}.sock`, { force: true })
    rmSync(STATS, { force: true })
  })

  const issuer = createTicketIssuer(RELAY_ID)
  const startRelayProcess = async (kernelOffload: boolean) => {
    const relay = new NsProcess(
      'relay',
      Bun.spawn(['ip', 'netns', 'exec', PUB, process.execPath, join(FIX, 'run-relay.ts')], {
        env: {
          ...process.env,
          LRR_KEY: Buffer.from(issuer.publicKey).toString('base64'),
          LRR_STATS: STATS,
          LRR_CONFIG: JSON.stringify({ host: RELAY_IP, port: 51820, ports: '52000-52099', publicIp: RELAY_IP, relayId: RELAY_ID, statsInterval: 0, kernelOffload }),
        },
        stdin: 'ignore',
        stdout: 'pipe',
        stderr: 'pipe',
      }),
    )
    procs.push(relay)
    await relay.waitFor(/relay listening/, 10_000)
    return relay
  }
  const ping = (from: number, to: string, count = 1) => Bun.spawnSync(['ip', 'netns', 'exec', `${P}-peer${from}`, 'ping', '-c', String(count), '-i', '0.2', '-W', '1', to]).exitCode === 0

  /** Starts a relay, gives each peer a ticket-allocated side and a WireGuard interface, and pings across. */
  async function tunnel(kernelOffload: boolean) {
    const relay = await startRelayProcess(kernelOffload)
    // WireGuard keys from wg itself, so the test does not depend on our key code.
    const priv = [sh(['wg', 'genkey']), sh(['wg', 'genkey'])]
    const pub = priv.map((k) => sh(['wg', 'pubkey'], k))
    const raw = (b64: string) => new Uint8Array(Buffer.from(b64, 'base64'))
    const s = issuer.session({
      keyA: { secretKey: raw(priv[0]!), publicKey: raw(pub[0]!) },
      keyB: { secretKey: raw(priv[1]!), publicKey: raw(pub[1]!) },
    })
    const tickets = [s.ticketA, s.ticketB]
    const sidePorts: number[] = []
    for (const i of [0, 1]) {
      const ns = `${P}-peer${i + 1}`
      const out = inNs(ns, process.execPath, join(FIX, 'allocate.ts'), RELAY_IP, '51820', Buffer.from(tickets[i]!).toString('hex'))
      const r = JSON.parse(out) as { status: string; sessionPort: number; observed: { address: string } }
      expect(r.status).toBe('ok')
      // The relay saw the NAT's WAN address, not the gamer's private one.
      expect(r.observed.address).toBe(`203.0.113.${21 + i}`)
      sidePorts.push(r.sessionPort)
    }

    const wgProcs: NsProcess[] = []
    for (const i of [0, 1]) {
      const ns = `${P}-peer${i + 1}`
      const iface = IFACES[i]!
      wgProcs.push(new NsProcess(`wireguard-go ${iface}`, Bun.spawn(['ip', 'netns', 'exec', ns, 'wireguard-go', '-f', iface], { stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' })))
    }
    procs.push(...wgProcs)
    for (const i of [0, 1]) {
      const ns = `${P}-peer${i + 1}`
      const iface = IFACES[i]!
      // Bun.file().exists() is false for a socket; existsSync sees it.
      for (let k = 0; k < 50 && !existsSync(`/var/run/wireguard/${iface}.sock`); k++) await Bun.sleep(100)
      const keyFile = join(tmpdir(), `${iface}.key`)
      await Bun.write(keyFile, priv[i]!)
      try {
        inNs(ns, 'wg', 'set', iface, 'private-key', keyFile, 'listen-port', '51820')
      } finally {
        rmSync(keyFile, { force: true })
      }
      inNs(ns, 'ip', 'addr', 'add', `10.77.0.${i + 1}/24`, 'dev', iface)
      inNs(ns, 'ip', 'link', 'set', iface, 'up')
      // Endpoint: the relay port of this peer's OWN side; persistent-keepalive makes both sides handshake at once.
      inNs(ns, 'wg', 'set', iface, 'peer', pub[1 - i]!, 'endpoint', `${RELAY_IP}:${sidePorts[i]}`, 'allowed-ips', `10.77.0.${2 - i}/32`, 'persistent-keepalive', '1')
    }

    let ok = false
    for (let k = 0; k < 30 && !ok; k++) {
      ok = ping(1, '10.77.0.2')
      if (!ok) await Bun.sleep(200)
    }
    if (!ok) console.error(relay.tail(), JSON.stringify(await readStats().catch(() => null)))
    expect(ok).toBe(true)
    expect(ping(2, '10.77.0.1', 3)).toBe(true)

    // Neither peer learned the other's address: each one's endpoint is still the relay's port for its side.
    for (const i of [0, 1]) {
      const ep = inNs(`${P}-peer${i + 1}`, 'wg', 'show', IFACES[i]!, 'endpoints')
      expect(ep).toBe(`${pub[1 - i]}\t${RELAY_IP}:${sidePorts[i]}`)
    }
    // The stats file is rewritten every 100 ms; the kernel's counts reach it within a second or so.
    const counted = async () => {
      const st = await readStats()
      const x = st.sessions[0]?.sides
      return st.stats.forwarded >= 6 && !!x && x.a.forwarded > 0 && x.b.forwarded > 0 // handshake pair + 4 pings each way at least
    }
    for (let k = 0; k < 40 && !(await counted()); k++) await Bun.sleep(100)
    const st = await readStats()
    expect(st.stats.forwarded).toBeGreaterThanOrEqual(6)
    expect(st.sessions[0]!.sides.a).toMatchObject({ learned: true })
    expect(st.sessions[0]!.sides.b).toMatchObject({ learned: true })
    expect(st.sessions[0]!.sides.a.forwarded).toBeGreaterThan(0)
    expect(st.sessions[0]!.sides.b.forwarded).toBeGreaterThan(0)
    expect(st.stats.drops.bad_mac1).toBe(0)
    const close = async () => {
      await relay.stop()
      await Promise.all(wgProcs.map((p) => p.stop()))
      for (const i of [0, 1]) Bun.spawnSync(['ip', 'netns', 'exec', `${P}-peer${i + 1}`, 'ip', 'link', 'del', IFACES[i]!])
    }
    return { relay, sidePorts, close }
  }

  test('ping crosses the tunnel; each peer only ever sees the relay; the relay counts forwarded packets', async () => {
    const t = await tunnel(false)
    await t.close()
  }, 60_000)

  test('with --kernel-offload the kernel forwards the session and counts it; SIGKILL and a restart leave no stale forwarding', async () => {
    inNs(PUB, 'sysctl', '-qw', 'net.ipv4.ip_forward=1')
    const t = await tunnel(true)
    try {
      // The session is in the relay's table, locked to each NAT's WAN address and the port WireGuard came from.
      const locked = inNs(PUB, 'nft', 'list', 'set', 'ip', 'lanrage_52000', 'locked')
      expect(locked).toMatch(new RegExp(`203\\.0\\.113\\.21 \\. \\d+ \\. ${t.sidePorts[0]}`))
      expect(locked).toMatch(new RegExp(`203\\.0\\.113\\.22 \\. \\d+ \\. ${t.sidePorts[1]}`))
      // ... and the pings were the kernel's: what it forwarded to each side is counted on that side's element.
      const counters = parseSetCounters(inNs(PUB, 'nft', '-j', 'list', 'map', 'ip', 'lanrage_52000', 'out_saddr'))
      const seen = (port: number) => [...counters].find(([key]) => key.endsWith(` . ${port}`))?.[1].packets ?? 0
      expect(seen(t.sidePorts[0]!)).toBeGreaterThanOrEqual(4)
      expect(seen(t.sidePorts[1]!)).toBeGreaterThanOrEqual(4)

      // SIGKILL: the relay runs no cleanup, yet its nft ends with it and the kernel drops the table nft owned.
      t.relay.proc.kill('SIGKILL')
      await t.relay.exited
      let gone = false
      for (let k = 0; k < 50 && !gone; k++) {
        gone = !inNs(PUB, 'nft', 'list', 'tables').includes('lanrage_52000')
        if (!gone) await Bun.sleep(100)
      }
      expect(gone).toBe(true)
      expect(ping(1, '10.77.0.2', 2)).toBe(false)
      // A restart starts with an empty table: the old session does not come back to life.
      const again = await startRelayProcess(true)
      expect(inNs(PUB, 'nft', 'list', 'set', 'ip', 'lanrage_52000', 'locked')).not.toContain('203.0.113.2')
      expect(ping(1, '10.77.0.2', 2)).toBe(false)
      await again.stop()
    } finally {
      await t.close()
    }
  }, 60_000)
})
