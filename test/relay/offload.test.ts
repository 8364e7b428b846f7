// The relay's kernel fast path (src/relay/offload) in real kernels: a relay namespace with forwarding on and a
// peer namespace on each side (test/relay/netns-lab.ts, prefix lro<pid>). The test plays the relay's part: it
// knows the locked addresses and learned ports of a session and applies them, and a UDP agent in the relay's
// namespace stands for the relay's user-space sockets, so the tests see what reaches user space and what the
// kernel forwards. Real WireGuard (wireguard-go) crosses an offloaded session with a ping.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { existsSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { startKernelOffload, KernelOffloadUnavailable, type KernelOffload, type LockedSide } from '../../src/relay/offload/kernel.ts'
import { LAB_ADDR, NetnsLab, type UdpAgent } from './netns-lab.ts'
import { needs } from '../needs.ts'
import { silentLogger } from '../../src/shared/log.ts'
import { oneLine, setupScript, transitionScript } from '../../src/relay/offload/ruleset.ts'

const skip = needs('root', 'ip', 'nft', 'conntrack', 'setpriv', 'wg', 'wireguard-go', 'ping')

const PREFIX = `lro${process.pid % 100000}`
const FIX = join(import.meta.dir, 'fixtures')
const limits = { pps: 20_000, bps: 25_000_000, burstS: 1 }
const side = (port: number, ip: string, peerPort: number): LockedSide => ({ port, ip, peerPort })
/** Bytes an nft counter counts for a UDP datagram with `payload` bytes: the IPv4 and UDP headers too. */
const ipBytes = (payload: number) => payload + 28

describe.skipIf(!!skip)('kernel fast path (nftables) between two peer namespaces', () => {
  let lab: NetnsLab
  let k: KernelOffload
  let a: UdpAgent // peer a
  let b: UdpAgent // peer b
  let r: UdpAgent // the relay's user-space sockets
  const exec = () => ['ip', 'netns', 'exec', lab.ns.r]
  const tables = () => lab.must(lab.ns.r, ['nft', 'list', 'tables'])
  /** How many sources a table has locked (elements of its @locked set). */
  const lockedCount = (table: string) => {
    const doc = JSON.parse(lab.must(lab.ns.r, ['nft', '-j', 'list', 'set', 'ip', table, 'locked'])) as { nftables: { set?: { elem?: unknown[] } }[] }
    return doc.nftables.find((x) => x.set)?.set?.elem?.length ?? 0
  }

  beforeAll(async () => {
    lab = NetnsLab.up(PREFIX)
    k = await startKernelOffload({ firstPort: 51820, host: '0.0.0.0', limits, exec: exec() })
    ;[a, b, r] = await Promise.all([lab.agent(lab.ns.a), lab.agent(lab.ns.b), lab.agent(lab.ns.r)])
    await Promise.all([a.bind(5001, LAB_ADDR.a), a.bind(5011), b.bind(5002), r.bind(40001), r.bind(40002)])
  })
  afterAll(async () => {
    await k?.close()
    lab?.down()
  })

  test('a locked session is forwarded by the kernel both ways, from the relay ports, and counted', async () => {
    expect(tables()).toContain(`table ip ${k.table}`)
    expect(await k.apply('s1', { a: side(40001, LAB_ADDR.a, 5001), b: side(40002, LAB_ADDR.b, 5002) })).toBe(true)
    await a.send(5001, LAB_ADDR.ra, 40001, 'a-to-b', 5)
    await b.send(5002, LAB_ADDR.rb, 40002, 'b-to-a', 3)
    // Each peer sees only the relay: b gets a's datagrams from the relay's b port, a gets b's from its a port.
    expect((await b.waitFor('a-to-b', 5)).map((d) => d.from)).toEqual(Array(5).fill(`${LAB_ADDR.rb}:40002`))
    expect((await a.waitFor('b-to-a', 3)).map((d) => `${d.on} ${d.from}`)).toEqual(Array(3).fill(`5001 ${LAB_ADDR.ra}:40001`))
    // Nothing of it went through user space.
    expect(r.received('a-to-b').length + r.received('b-to-a').length).toBe(0)
    const d = (await k.poll()).get('s1')!
    expect(d.a).toEqual({ forwarded: 5, bytesForwarded: 5 * ipBytes(6), limited: 0, bytesLimited: 0 })
    expect(d.b).toEqual({ forwarded: 3, bytesForwarded: 3 * ipBytes(6), limited: 0, bytesLimited: 0 })
    // Deltas: a second poll with no traffic reports nothing new (idle expiry reads "stopped moving" from this).
    expect((await k.poll()).get('s1')).toEqual({
      a: { forwarded: 0, bytesForwarded: 0, limited: 0, bytesLimited: 0 },
      b: { forwarded: 0, bytesForwarded: 0, limited: 0, bytesLimited: 0 },
    })
  })

  test('datagrams from anything but the locked source reach user space and never the other side', async () => {
    lab.must(lab.ns.a, ['ip', 'addr', 'add', '10.201.1.3/24', 'dev', 'va'])
    await a.bind(5001, '10.201.1.3')
    await a.send(5011, LAB_ADDR.ra, 40001, 'other-port') // the locked IP, another port
    await a.send('10.201.1.3:5001', LAB_ADDR.ra, 40001, 'other-ip') // the locked port, another IP
    await b.send(5002, LAB_ADDR.rb, 40001, 'wrong-side') // b's locked source, to a's relay port
    expect((await r.waitFor('other-port')).map((d) => `${d.on} ${d.from}`)).toEqual([`40001 ${LAB_ADDR.a}:5011`])
    expect((await r.waitFor('other-ip')).map((d) => `${d.on} ${d.from}`)).toEqual(['40001 10.201.1.3:5001'])
    expect((await r.waitFor('wrong-side')).map((d) => `${d.on} ${d.from}`)).toEqual([`40001 ${LAB_ADDR.b}:5002`])
    await Bun.sleep(100)
    expect(b.received('other-port').length + b.received('other-ip').length + a.received('wrong-side').length).toBe(0)
    expect((await k.poll()).get('s1')!.a.forwarded).toBe(0)
  })

  test('roaming: a new source port goes to user space until the relay moves the session, then the kernel follows', async () => {
    await a.send(5011, LAB_ADDR.ra, 40001, 'roam-before')
    expect(await r.waitFor('roam-before')).toHaveLength(1)
    expect(b.received('roam-before')).toHaveLength(0)
    // The relay saw a handshake with a valid mac1 from 5011 (user space checks it) and applies the move.
    expect(await k.apply('s1', { a: side(40001, LAB_ADDR.a, 5011), b: side(40002, LAB_ADDR.b, 5002) })).toBe(true)
    await a.send(5011, LAB_ADDR.ra, 40001, 'roam-after', 2)
    await a.send(5001, LAB_ADDR.ra, 40001, 'old-port')
    await b.send(5002, LAB_ADDR.rb, 40002, 'to-new-port')
    expect(await b.waitFor('roam-after', 2)).toHaveLength(2)
    expect((await a.waitFor('to-new-port')).map((d) => d.on)).toEqual([5011])
    expect(await r.waitFor('old-port')).toHaveLength(1) // the old port is no longer locked
    const d = (await k.poll()).get('s1')!
    // What the old elements counted was read just before the move; the new ones count from zero: nothing is lost
    // or counted twice.
    expect([d.a.forwarded, d.b.forwarded]).toEqual([2, 1])
  })

  test("a peer on the relay's own host also hears from the relay's port, not from the other peer", async () => {
    // Side b is a socket in the relay's namespace: datagrams for it are delivered locally (input hook), not routed.
    await Promise.all([a.bind(5061), r.bind(5062, LAB_ADDR.rb), r.bind(40061), r.bind(40062)])
    expect(await k.apply('local', { a: side(40061, LAB_ADDR.a, 5061), b: side(40062, LAB_ADDR.rb, 5062) })).toBe(true)
    await a.send(5061, LAB_ADDR.ra, 40061, 'to-local-peer', 2)
    expect((await r.waitFor('to-local-peer', 2)).map((d) => `${d.on} ${d.from}`)).toEqual(Array(2).fill(`5062 ${LAB_ADDR.rb}:40062`))
    await r.send(`${LAB_ADDR.rb}:5062`, LAB_ADDR.rb, 40062, 'from-local-peer')
    expect((await a.waitFor('from-local-peer')).map((d) => d.from)).toEqual([`${LAB_ADDR.ra}:40061`])
    const d = (await k.remove('local'))!
    expect([d.a.forwarded, d.b.forwarded]).toEqual([2, 1])
  })

  test('per-side packet and byte limits: what is over is dropped in the kernel and counted, not handed to user space', async () => {
    // pps 10 and 2000 bytes/s, one second of burst: ten small datagrams pass, or one of 1000 bytes and change.
    const small = await startKernelOffload({ firstPort: 51821, host: '0.0.0.0', limits: { pps: 10, bps: 2000, burstS: 1 }, exec: exec() })
    try {
      await Promise.all([a.bind(5021), b.bind(5022), r.bind(40011), r.bind(40012)])
      expect(await small.apply('lim', { a: side(40011, LAB_ADDR.a, 5021), b: side(40012, LAB_ADDR.b, 5022) })).toBe(true)
      await a.send(5021, LAB_ADDR.ra, 40011, 'x'.repeat(40), 100)
      await Bun.sleep(200)
      let d = (await small.poll()).get('lim')!
      // The sends took a few ms: at 10/s the bucket refills by at most one more.
      expect(d.a.forwarded).toBeGreaterThanOrEqual(10)
      expect(d.a.forwarded).toBeLessThanOrEqual(11)
      expect(d.a.forwarded + d.a.limited).toBe(100)
      expect(d.a.bytesLimited).toBe(d.a.limited * ipBytes(40))
      expect(b.received('x'.repeat(40))).toHaveLength(d.a.forwarded)
      expect(r.received('x'.repeat(40))).toHaveLength(0)
      // b's side has its own bucket, and there the byte limit binds first: 2000 bytes hold one 1400-byte datagram.
      await b.send(5022, LAB_ADDR.rb, 40012, 'y'.repeat(1400), 5)
      await Bun.sleep(200)
      d = (await small.poll()).get('lim')!
      expect([d.b.forwarded, d.b.limited]).toEqual([1, 4])
      expect(a.received('y'.repeat(1400))).toHaveLength(1)
    } finally {
      await small.close()
    }
  })

  test('conntrack: a flow that already went both ways through user space moves to the kernel at once', async () => {
    // Any ct expression turns conntrack on in the namespace (as Docker's or a firewall's NAT does on a real host).
    lab.must(lab.ns.r, ['nft', oneLine('add table ip ctwatch\nadd chain ip ctwatch c { type filter hook prerouting priority 0; }\nadd rule ip ctwatch c ct state established counter')])
    await Promise.all([a.bind(5031), b.bind(5032), r.bind(40021), r.bind(40022)])
    await r.echo(40021)
    await a.send(5031, LAB_ADDR.ra, 40021, 'hello-user-space')
    expect(await a.waitFor('hello-user-space')).toHaveLength(1) // the reply: the flow went both ways
    const ct = () => lab.must(lab.ns.r, ['conntrack', '-L', '-p', 'udp', '--orig-port-dst', '40021'])
    expect(ct()).toContain(`src=${LAB_ADDR.a} dst=${LAB_ADDR.ra} sport=5031 dport=40021`)
    // With DNAT rules instead, this flow kept reaching the socket until its conntrack entry was deleted; here the
    // rule runs before conntrack and marks the datagram untracked, so the entry does not matter.
    expect(await k.apply('ct', { a: side(40021, LAB_ADDR.a, 5031), b: side(40022, LAB_ADDR.b, 5032) })).toBe(true)
    await a.send(5031, LAB_ADDR.ra, 40021, 'now-kernel', 3)
    expect(await b.waitFor('now-kernel', 3)).toHaveLength(3)
    expect(r.received('now-kernel')).toHaveLength(0)
    expect(ct()).toContain('dport=40021') // still there, and irrelevant
    // Taken out again, the same flow is the user-space socket's once more; what it forwarded since the last poll
    // comes back with the removal (counters are read before they are deleted).
    expect((await k.remove('ct'))?.a).toEqual({ forwarded: 3, bytesForwarded: 3 * ipBytes(10), limited: 0, bytesLimited: 0 })
    expect(k.installed('ct')).toBeUndefined()
    await a.send(5031, LAB_ADDR.ra, 40021, 'user-again')
    expect(await r.waitFor('user-again')).toHaveLength(1)
    lab.must(lab.ns.r, ['nft', 'delete table ip ctwatch'])
  })

  test('real WireGuard crosses an offloaded session: ping, and the counters move', async () => {
    const ifs = [`${PREFIX}w1`, `${PREFIX}w2`]
    const ns = [lab.ns.a, lab.ns.b]
    const priv = [0, 1].map(() => Bun.spawnSync(['wg', 'genkey']).stdout.toString().trim())
    const pub = priv.map((k) => Bun.spawnSync(['wg', 'pubkey'], { stdin: Buffer.from(k) }).stdout.toString().trim())
    const relayPorts = [40031, 40032]
    try {
      for (const i of [0, 1]) {
        Bun.spawn(['ip', 'netns', 'exec', ns[i]!, 'wireguard-go', ifs[i]!], { stdin: 'ignore', stdout: 'ignore', stderr: 'ignore' })
        for (let n = 0; n < 50 && !existsSync(`/var/run/wireguard/${ifs[i]}.sock`); n++) await Bun.sleep(100)
        const keyFile = join(tmpdir(), `${ifs[i]}.key`)
        await Bun.write(keyFile, priv[i]!)
        try {
          lab.must(ns[i]!, ['wg', 'set', ifs[i]!, 'private-key', keyFile, 'listen-port', '51820'])
        } finally {
          rmSync(keyFile, { force: true })
        }
        lab.must(ns[i]!, ['ip', 'addr', 'add', `10.77.0.${i + 1}/24`, 'dev', ifs[i]!])
        lab.must(ns[i]!, ['ip', 'link', 'set', ifs[i]!, 'up'])
        const relayAddr = i === 0 ? LAB_ADDR.ra : LAB_ADDR.rb
        lab.must(ns[i]!, ['wg', 'set', ifs[i]!, 'peer', pub[1 - i]!, 'endpoint', `${relayAddr}:${relayPorts[i]}`, 'allowed-ips', `10.77.0.${2 - i}/32`])
      }
      // The relay would have learned 51820 on both sides from the handshake; here the test knows it.
      expect(await k.apply('wg', { a: side(40031, LAB_ADDR.a, 51820), b: side(40032, LAB_ADDR.b, 51820) })).toBe(true)
      let ok = false
      for (let n = 0; n < 20 && !ok; n++) ok = lab.exec(lab.ns.a, ['ping', '-c', '1', '-W', '1', '10.77.0.2']).code === 0
      expect(ok).toBe(true)
      expect(lab.exec(lab.ns.b, ['ping', '-c', '3', '-i', '0.2', '-W', '1', '10.77.0.1']).code).toBe(0)
      // Each peer still has the relay as its endpoint: neither learned the other's address.
      expect(lab.must(lab.ns.a, ['wg', 'show', ifs[0]!, 'endpoints']).trim()).toBe(`${pub[1]}\t${LAB_ADDR.ra}:40031`)
      expect(lab.must(lab.ns.b, ['wg', 'show', ifs[1]!, 'endpoints']).trim()).toBe(`${pub[0]}\t${LAB_ADDR.rb}:40032`)
      const d = (await k.poll()).get('wg')!
      // A handshake initiation and response (148 + 92 bytes) and four pings each way at least.
      expect(d.a.forwarded).toBeGreaterThanOrEqual(5)
      expect(d.b.forwarded).toBeGreaterThanOrEqual(5)
      expect(r.got.filter((g) => g.on === 40031 || g.on === 40032)).toHaveLength(0) // nothing reached user space
      // Out of the kernel, and with no user-space relay behind it, the tunnel stops.
      expect(await k.remove('wg')).toBeDefined()
      expect(lab.exec(lab.ns.a, ['ping', '-c', '2', '-W', '1', '10.77.0.2']).code).not.toBe(0)
    } finally {
      for (const i of [0, 1]) {
        lab.exec(ns[i]!, ['ip', 'link', 'del', ifs[i]!])
        rmSync(`/var/run/wireguard/${ifs[i]}.sock`, { force: true })
      }
    }
  }, 60_000)

  test('sessions locked at the same moment go in together; one the kernel refuses does not stop the others', async () => {
    const many = await startKernelOffload({ firstPort: 51822, host: '0.0.0.0', limits, exec: exec(), log: silentLogger })
    try {
      const n = 200
      const sides = (i: number, port = 30000 + 2 * i) => ({ a: side(port, LAB_ADDR.a, 10000 + i), b: side(port + 1, LAB_ADDR.b, 20000 + i) })
      const first = many.apply('s0', sides(0))
      // Queued while s0's transaction runs: these go in one transaction; 'clash' reuses s7's relay ports, which
      // the kernel refuses (an existing map key), so that transaction fails and each session is tried alone.
      const rest = Array.from({ length: n - 1 }, (_, i) => many.apply(`s${i + 1}`, sides(i + 1)))
      const clash = many.apply('clash', sides(999, 30000 + 2 * 7))
      expect(await first).toBe(true)
      expect((await Promise.all(rest)).every(Boolean)).toBe(true)
      expect(await clash).toBe(false)
      expect(many.size).toBe(n)
      expect(lockedCount(many.table)).toBe(2 * n)
      // And they are all out in one go too, each with its (here empty) final counts.
      const gone = await Promise.all(Array.from({ length: n }, (_, i) => many.remove(`s${i}`)))
      expect(gone.every((d) => d?.a.forwarded === 0 && d.b.forwarded === 0)).toBe(true)
      expect(lockedCount(many.table)).toBe(0)
    } finally {
      await many.close()
    }
  })

  test('if nft dies, its table goes with it and every session is back in user space', async () => {
    const lone = await startKernelOffload({ firstPort: 51823, host: '0.0.0.0', limits, exec: exec(), log: silentLogger })
    await Promise.all([a.bind(5051), b.bind(5052), r.bind(40051), r.bind(40052)])
    expect(await lone.apply('lone', { a: side(40051, LAB_ADDR.a, 5051), b: side(40052, LAB_ADDR.b, 5052) })).toBe(true)
    await a.send(5051, LAB_ADDR.ra, 40051, 'nft-alive')
    expect(await b.waitFor('nft-alive')).toHaveLength(1)
    expect(lab.must(lab.ns.r, ['nft', 'list', 'table', 'ip', lone.table])).toContain('flags owner')
    expect(lab.must(lab.ns.r, ['cat', `/proc/${lone.ownerPid}/comm`]).trim()).toBe('nft')
    process.kill(lone.ownerPid, 'SIGKILL')
    let gone = false
    for (let i = 0; i < 50 && !gone; i++) {
      gone = !lab.must(lab.ns.r, ['nft', 'list', 'tables']).includes(lone.table)
      if (!gone) await Bun.sleep(50)
    }
    expect(gone).toBe(true)
    expect(tables()).toContain(k.table) // another process's table is untouched
    for (let i = 0; i < 50 && lone.alive; i++) await Bun.sleep(20)
    expect(lone.alive).toBe(false)
    await a.send(5051, LAB_ADDR.ra, 40051, 'nft-dead')
    expect(await r.waitFor('nft-dead')).toHaveLength(1)
    expect(b.received('nft-dead')).toHaveLength(0)
    expect(await lone.apply('lone', { a: side(40051, LAB_ADDR.a, 5051), b: side(40052, LAB_ADDR.b, 5052) })).toBe(false)
    await lone.close()
  })

  test('a second relay process cannot take a table another running process owns', async () => {
    const e = await startKernelOffload({ firstPort: 51820, host: '0.0.0.0', limits, exec: exec() }).catch((x: unknown) => x)
    expect(e).toBeInstanceOf(KernelOffloadUnavailable)
    expect((e as Error).message).toMatch(/^--kernel-offload: .*another running process/)
    expect((e as Error).message).not.toContain('\n')
    // The owner's table is untouched.
    expect(k.installed('s1')).toBeDefined()
    await a.send(5011, LAB_ADDR.ra, 40001, 'still-kernel')
    expect(await b.waitFor('still-kernel')).toHaveLength(1)
  })

  test('refused with a one-line reason without IPv4 forwarding or without CAP_NET_ADMIN', async () => {
    const ns = `${PREFIX}-x`
    Bun.spawnSync(['ip', 'netns', 'add', ns])
    try {
      const e = await startKernelOffload({ firstPort: 51820, host: '0.0.0.0', limits, exec: ['ip', 'netns', 'exec', ns] }).catch((x: unknown) => x)
      expect(e).toBeInstanceOf(KernelOffloadUnavailable)
      expect((e as Error).message).toBe('--kernel-offload: IPv4 forwarding is off (net.ipv4.ip_forward = 0); turn it on with sysctl -w net.ipv4.ip_forward=1')
    } finally {
      Bun.spawnSync(['ip', 'netns', 'del', ns])
    }
    // Root without CAP_NET_ADMIN (dropped from the bounding set, so neither the process nor its nft has it).
    const p = lab.exec(lab.ns.r, ['setpriv', '--bounding-set=-net_admin', '--inh-caps=-net_admin', process.execPath, join(FIX, 'offload-host.ts'), '51850'])
    expect(p.code).toBe(1)
    expect(JSON.parse(p.out).refused).toMatch(/^--kernel-offload: needs CAP_NET_ADMIN/)
    expect(tables()).not.toContain('lanrage_51850')
  })

  test('the relay killed with SIGKILL leaves no table and nothing forwarded; a restart starts clean', async () => {
    await Promise.all([a.bind(5041), b.bind(5042), r.bind(40041), r.bind(40042)])
    const session = JSON.stringify({ a: side(40041, LAB_ADDR.a, 5041), b: side(40042, LAB_ADDR.b, 5042) })
    const start = async () => {
      const p = Bun.spawn(['ip', 'netns', 'exec', lab.ns.r, process.execPath, join(FIX, 'offload-host.ts'), '51830', session], { stdout: 'pipe', stderr: 'pipe' })
      const reader = p.stdout.getReader()
      const first = await Promise.race([reader.read(), Bun.sleep(10_000).then(() => undefined)])
      reader.releaseLock()
      const line = first?.value ? new TextDecoder().decode(first.value) : ''
      expect(JSON.parse(line)).toEqual({ table: 'lanrage_51830', installed: true })
      return p
    }
    const gone = async () => {
      for (let n = 0; n < 50 && tables().includes('lanrage_51830'); n++) await Bun.sleep(100)
      return !tables().includes('lanrage_51830')
    }

    const first = await start()
    await a.send(5041, LAB_ADDR.ra, 40041, 'before-kill')
    expect(await b.waitFor('before-kill')).toHaveLength(1)
    first.kill('SIGKILL')
    await first.exited
    // Its nft saw stdin close and exited; the kernel deleted the table that nft's socket owned.
    expect(await gone()).toBe(true)
    await a.send(5041, LAB_ADDR.ra, 40041, 'after-kill')
    expect(await r.waitFor('after-kill')).toHaveLength(1)
    expect(b.received('after-kill')).toHaveLength(0)

    // A table of that name without the owner flag (left by something that did not own it) is replaced at start.
    const stale =
      setupScript('lanrage_51830', limits).replace(' { flags owner; }', '') +
      '\n' +
      transitionScript('lanrage_51830', null, {
        a: { port: 40041, peerIp: LAB_ADDR.a, peerPort: 5041, relayIp: LAB_ADDR.ra },
        b: { port: 40042, peerIp: LAB_ADDR.b, peerPort: 5042, relayIp: LAB_ADDR.rb },
      })
    lab.must(lab.ns.r, ['nft', oneLine(stale)])
    await a.send(5041, LAB_ADDR.ra, 40041, 'stale-forwards')
    expect(await b.waitFor('stale-forwards')).toHaveLength(1)
    const second = Bun.spawn(['ip', 'netns', 'exec', lab.ns.r, process.execPath, join(FIX, 'offload-host.ts'), '51830'], { stdout: 'pipe', stderr: 'pipe' })
    const reader = second.stdout.getReader()
    const line = await Promise.race([reader.read(), Bun.sleep(10_000).then(() => undefined)])
    reader.releaseLock()
    expect(JSON.parse(new TextDecoder().decode(line?.value))).toEqual({ table: 'lanrage_51830', installed: false })
    await a.send(5041, LAB_ADDR.ra, 40041, 'after-restart')
    expect(await r.waitFor('after-restart')).toHaveLength(1)
    expect(b.received('after-restart')).toHaveLength(0)
    expect(lab.must(lab.ns.r, ['nft', 'list', 'table', 'ip', 'lanrage_51830'])).toContain('flags owner')
    // A clean exit (SIGTERM) deletes the table too.
    second.kill('SIGTERM')
    expect(await second.exited).toBe(0)
    expect(await gone()).toBe(true)
  }, 30_000)

  test('close() deletes the table: nothing is forwarded afterwards, everything reaches user space', async () => {
    await k.close()
    expect(tables()).not.toContain(k.table)
    await a.send(5011, LAB_ADDR.ra, 40001, 'after-close')
    expect(await r.waitFor('after-close')).toHaveLength(1)
    expect(b.received('after-close')).toHaveLength(0)
    expect(k.alive).toBe(false)
    expect(await k.apply('s1', { a: side(40001, LAB_ADDR.a, 5011), b: side(40002, LAB_ADDR.b, 5002) })).toBe(false)
  })
})
