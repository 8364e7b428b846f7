// Real WireGuard through the relay: two wireguard-go peers behind NATs in the natlab topology
// (test/e2e/natlab.sh, prefix LR_NS=lrr<pid>), the relay on the "internet" at 203.0.113.10. Each peer
// ALLOCATEs its side with a ticket, points its endpoint at 203.0.113.10:its_side_port, and a ping crosses the
// tunnel. Both NATs are symmetric, so a direct path is impossible: the ping can only go through the relay.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { existsSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { createTicketIssuer } from '../../src/relay/testing.ts'
import { NsProcess, natlabSkipReason, TOPO } from '../e2e/natlab.ts'

const skip = natlabSkipReason()

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

  test('ping crosses the tunnel; each peer only ever sees the relay; the relay counts forwarded packets', async () => {
    const issuer = createTicketIssuer(RELAY_ID)
    const relay = new NsProcess(
      'relay',
      Bun.spawn(['ip', 'netns', 'exec', PUB, process.execPath, join(FIX, 'run-relay.ts')], {
        env: {
          ...process.env,
          LRR_KEY: Buffer.from(issuer.publicKey).toString('base64'),
          LRR_STATS: STATS,
          LRR_CONFIG: JSON.stringify({ host: RELAY_IP, port: 51820, ports: '52000-52099', publicIp: RELAY_IP, relayId: RELAY_ID, statsInterval: 0 }),
        },
        stdin: 'ignore',
        stdout: 'pipe',
        stderr: 'pipe',
      }),
    )
    procs.push(relay)
    await relay.waitFor(/relay listening/, 10_000)

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

    for (const i of [0, 1]) {
      const ns = `${P}-peer${i + 1}`
      const iface = IFACES[i]!
      procs.push(new NsProcess(`wireguard-go ${iface}`, Bun.spawn(['ip', 'netns', 'exec', ns, 'wireguard-go', '-f', iface], { stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' })))
    }
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
      ok = Bun.spawnSync(['ip', 'netns', 'exec', `${P}-peer1`, 'ping', '-c', '1', '-W', '1', '10.77.0.2']).exitCode === 0
      if (!ok) await Bun.sleep(200)
    }
    if (!ok) console.error(relay.tail(), JSON.stringify(await readStats().catch(() => null)))
    expect(ok).toBe(true)
    expect(Bun.spawnSync(['ip', 'netns', 'exec', `${P}-peer2`, 'ping', '-c', '3', '-i', '0.2', '-W', '1', '10.77.0.1']).exitCode).toBe(0)

    // Neither peer learned the other's address: each one's endpoint is still the relay's port for its side.
    for (const i of [0, 1]) {
      const ep = inNs(`${P}-peer${i + 1}`, 'wg', 'show', IFACES[i]!, 'endpoints')
      expect(ep).toBe(`${pub[1 - i]}\t${RELAY_IP}:${sidePorts[i]}`)
    }
    await Bun.sleep(250)
    const st = await readStats()
    expect(st.stats.forwarded).toBeGreaterThanOrEqual(6) // handshake pair + 4 pings each way at least
    expect(st.sessions[0]!.sides.a).toMatchObject({ learned: true })
    expect(st.sessions[0]!.sides.b).toMatchObject({ learned: true })
    expect(st.sessions[0]!.sides.a.forwarded).toBeGreaterThan(0)
    expect(st.sessions[0]!.sides.b.forwarded).toBeGreaterThan(0)
    expect(st.stats.drops.bad_mac1).toBe(0)
  }, 60_000)
})
