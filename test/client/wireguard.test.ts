// WireGuard configuration and the interface manager, against the real `wg`, `ip` and wireguard-go inside
// network namespaces (prefix lrc-, unique per process: wireguard-go's UAPI sockets are shared by all netns).
import { afterAll, describe, expect, test } from 'bun:test'
import { parseDump, renderSetconf, renderWgQuick, type WgInterfaceConfig } from '../../src/client/wireguard/config.ts'
import { spawnRunner, WireGuardInterface, type Runner } from '../../src/client/wireguard/iface.ts'
import { wireguardConfigForParty } from '../../src/client/wireguard/party.ts'
import type { PartyInfo, PeerInfo } from '../../src/client/control/types.ts'
import { encodeKey, generateKeyPair } from '../../src/client/wireguard/keys.ts'
import { waitFor } from './helpers.ts'
import { needs } from '../needs.ts'
import { readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'

const keys = () => {
  const k = generateKeyPair()
  return { priv: encodeKey(k.privateKey), pub: encodeKey(k.publicKey) }
}
const a = keys()
const b = keys()
const base: WgInterfaceConfig = {
  privateKey: a.priv,
  listenPort: 51820,
  address: ['10.66.0.1/16'],
  mtu: 1380,
  dns: ['10.66.0.1'],
  peers: [{ publicKey: b.pub, endpoint: '203.0.113.7:51820', allowedIps: ['10.66.0.2/32'], persistentKeepalive: 25 }],
}

describe('config rendering (pure)', () => {
  test('wg-quick carries Address/MTU/DNS; setconf does not', () => {
    const q = renderWgQuick(base)
    expect(q).toBe(
      [
        '[Interface]',
        `PrivateKey = ${a.priv}`,
        'ListenPort = 51820',
        'Address = 10.66.0.1/16',
        'MTU = 1380',
        'DNS = 10.66.0.1',
        '',
        '[Peer]',
        `PublicKey = ${b.pub}`,
        'AllowedIPs = 10.66.0.2/32',
        'Endpoint = 203.0.113.7:51820',
        'PersistentKeepalive = 25',
        '',
      ].join('\n'),
    )
    const s = renderSetconf(base)
    expect(s).not.toContain('Address')
    expect(s).not.toContain('MTU')
    expect(s).not.toContain('DNS')
    expect(s).toContain('Endpoint = 203.0.113.7:51820')
  })

  test.each([
    ['a bad endpoint', { peers: [{ ...base.peers[0]!, endpoint: '1.2.3.4:51820\nPrivateKey = x' }] }, 'endpoint "1.2.3.4:51820\\nPrivateKey = x" is not ip:port'],
    ['a port out of range', { peers: [{ ...base.peers[0]!, endpoint: '1.2.3.4:70000' }] }, 'is not ip:port'],
    ['a bad allowed ip', { peers: [{ ...base.peers[0]!, allowedIps: ['10.66.0.300/32'] }] }, '"10.66.0.300/32" is not an address/prefix'],
    ['a prefix too long', { peers: [{ ...base.peers[0]!, allowedIps: ['10.66.0.3/33'] }] }, '"10.66.0.3/33" is not an address/prefix'],
    ['a duplicate peer', { peers: [base.peers[0]!, base.peers[0]!] }, 'appears twice'],
    ['a bad MTU', { mtu: 100 }, 'MTU 100 must be 576-9000'],
    ['a bad listen port', { listenPort: 65536 }, 'listen port 65536 is not a port'],
    ['a bad DNS server', { dns: ['dns.example'] }, 'DNS server "dns.example" is not an IP address'],
  ] as const)('refuses %s with INVALID_WIREGUARD_CONFIG', (_n, patch, msg) => {
    expect(() => renderWgQuick({ ...base, ...(patch as Partial<WgInterfaceConfig>) })).toThrow(
      expect.objectContaining({ code: 'INVALID_WIREGUARD_CONFIG', message: expect.stringContaining(msg) }),
    )
  })

  test('refuses a bad key with INVALID_KEY', () => {
    expect(() => renderSetconf({ ...base, privateKey: 'nope' })).toThrow(expect.objectContaining({ code: 'INVALID_KEY', message: expect.stringContaining('private key') }))
    expect(() => renderSetconf({ ...base, peers: [{ publicKey: 'x', allowedIps: [] }] })).toThrow(expect.objectContaining({ code: 'INVALID_KEY' }))
  })

  test('IPv6 endpoints and allowed IPs are accepted', () => {
    const s = renderSetconf({ privateKey: a.priv, peers: [{ publicKey: b.pub, endpoint: '[2001:db8::1]:51820', allowedIps: ['fd00::2/128', '10.66.0.2/32'] }] })
    expect(s).toContain('Endpoint = [2001:db8::1]:51820')
    expect(s).toContain('AllowedIPs = fd00::2/128, 10.66.0.2/32')
  })

  test('parseDump reads wg show dump lines; garbage is undefined', () => {
    const text = `${a.priv}\t${a.pub}\t51820\toff\n${b.pub}\t(none)\t1.2.3.4:5\t10.66.0.2/32,10.67.0.0/16\t1700000000\t10\t20\t25\n`
    expect(parseDump(text)).toEqual({
      privateKey: a.priv,
      publicKey: a.pub,
      listenPort: 51820,
      fwmark: 0,
      peers: [
        { publicKey: b.pub, presharedKey: null, endpoint: '1.2.3.4:5', allowedIps: ['10.66.0.2/32', '10.67.0.0/16'], latestHandshake: 1_700_000_000_000, rxBytes: 10, txBytes: 20, persistentKeepalive: 25 },
      ],
    })
    expect(parseDump('')).toBeUndefined()
    expect(parseDump('unable to access interface: No such device\n')).toBeUndefined()
  })
})

describe('wireguardConfigForParty (pure)', () => {
  const peer = (id: string, pub: string, ip: string, extra: Partial<PeerInfo> = {}): PeerInfo => ({
    peer_id: id, name: null, public_key: pub, virtual_ip: ip, public_endpoint: null, local_endpoints: [], nat_type: 'unknown', last_seen: '', joined_at: '', ...extra,
  })
  const c = keys()
  const party: PartyInfo = {
    party_id: 'abcdefabcdef', name: 'p', host_id: 'a', created_at: '', subnet: '10.66.0.0/16', max_peers: 8,
    peers: {
      a: peer('a', a.pub, '10.66.0.1'),
      c: peer('c', c.pub, '10.66.0.10', { local_endpoints: ['192.168.1.9:51820'] }),
      b: peer('b', b.pub, '10.66.0.2', { public_endpoint: '203.0.113.5:4000', local_endpoints: ['192.168.1.8:51820'] }),
    },
  }
  test('our address in the subnet; one /32 peer per other member, public endpoint first, else local', () => {
    expect(wireguardConfigForParty(party, { peerId: 'a', privateKey: a.priv, listenPort: 51820 })).toEqual({
      privateKey: a.priv, listenPort: 51820, address: ['10.66.0.1/16'], mtu: 1380,
      peers: [
        { publicKey: b.pub, allowedIps: ['10.66.0.2/32'], endpoint: '203.0.113.5:4000', persistentKeepalive: 25 },
        { publicKey: c.pub, allowedIps: ['10.66.0.10/32'], endpoint: '192.168.1.9:51820', persistentKeepalive: 25 },
      ],
    })
  })
  test('not a member: INVALID_WIREGUARD_CONFIG', () => {
    expect(() => wireguardConfigForParty(party, { peerId: 'zz', privateKey: a.priv })).toThrow(
      expect.objectContaining({ code: 'INVALID_WIREGUARD_CONFIG', message: 'peer zz is not a member of party abcdefabcdef' }),
    )
  })
})

describe('interface manager with a recording runner', () => {
  test('runs every command inside the namespace and never through a shell', async () => {
    const calls: string[][] = []
    const runner: Runner = async (argv) => {
      calls.push(argv)
      // `ip link show` says the interface exists, so create() adopts it without creating anything.
      return { code: 0, stdout: '', stderr: '' }
    }
    const w = await WireGuardInterface.create({ name: 'lrcrec0', netns: 'lrc-rec', runner })
    await w.setPeer({ publicKey: b.pub, endpoint: '198.51.100.1:4000', allowedIps: ['10.66.0.9/32'], persistentKeepalive: 0 })
    await w.removePeer(b.pub)
    expect(calls).toEqual([
      ['ip', 'netns', 'exec', 'lrc-rec', 'ip', 'link', 'show', 'dev', 'lrcrec0'],
      ['ip', 'netns', 'exec', 'lrc-rec', 'wg', 'set', 'lrcrec0', 'peer', b.pub, 'endpoint', '198.51.100.1:4000', 'allowed-ips', '10.66.0.9/32', 'persistent-keepalive', 'off'],
      ['ip', 'netns', 'exec', 'lrc-rec', 'wg', 'set', 'lrcrec0', 'peer', b.pub, 'remove'],
    ])
  })

  test('a failing command becomes WIREGUARD_FAILED with its stderr', async () => {
    const runner: Runner = async (argv) => (argv.includes('show') ? { code: 0, stdout: '', stderr: '' } : { code: 1, stdout: '', stderr: 'Unable to modify interface: Operation not permitted' })
    const w = await WireGuardInterface.create({ name: 'lrcrec1', runner })
    await expect(w.setMtu(1400)).rejects.toThrow(expect.objectContaining({ code: 'WIREGUARD_FAILED', message: expect.stringContaining('Operation not permitted') }))
    await expect(WireGuardInterface.create({ name: 'this-name-is-too-long' })).rejects.toThrow('must be 1-15')
  })
})

const canNetns = needs('root', 'ip', 'wg', 'wireguard-go') === null

const tag = (process.pid % 46656).toString(36)
const NS = [`lrc-w${tag}a`, `lrc-w${tag}b`]
const IF = [`lrcw${tag}a`, `lrcw${tag}b`]
const made: WireGuardInterface[] = []
const sh = async (argv: string[]) => {
  const r = await spawnRunner(argv)
  if (r.code !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`)
  return r.stdout
}

afterAll(async () => {
  if (!canNetns) return
  for (const w of made) await w.delete().catch(() => {})
  for (const ns of NS) await spawnRunner(['ip', 'netns', 'delete', ns])
})

describe.skipIf(!canNetns)('interface manager in network namespaces (wireguard-go)', () => {
  test('our rendered config is accepted by wg setconf and wg show reads back what we set', async () => {
    for (const ns of NS) await sh(['ip', 'netns', 'add', ns])
    const w = await WireGuardInterface.create({ name: IF[0]!, netns: NS[0] })
    made.push(w)
    expect(w.backend === 'wireguard-go' || w.backend === 'kernel').toBe(true)
    await w.setConfig(base)
    // wg's own view, independent of our parser
    expect(await sh(['ip', 'netns', 'exec', NS[0]!, 'wg', 'show', IF[0]!, 'private-key'])).toBe(a.priv + '\n')
    expect(await sh(['ip', 'netns', 'exec', NS[0]!, 'wg', 'show', IF[0]!, 'endpoints'])).toBe(`${b.pub}\t203.0.113.7:51820\n`)
    const st = await w.status()
    expect(st).toMatchObject({ privateKey: a.priv, publicKey: a.pub, listenPort: 51820 })
    expect(st.peers).toEqual([
      { publicKey: b.pub, presharedKey: null, endpoint: '203.0.113.7:51820', allowedIps: ['10.66.0.2/32'], latestHandshake: null, rxBytes: 0, txBytes: 0, persistentKeepalive: 25 },
    ])

    // update, add, remove peers one by one
    const c = keys()
    await w.setPeer({ publicKey: b.pub, endpoint: '203.0.113.8:4000', allowedIps: ['10.66.0.2/32', '10.99.0.0/16'], persistentKeepalive: 0 })
    await w.setPeer({ publicKey: c.pub, allowedIps: ['10.66.0.3/32'] })
    let peers = new Map((await w.status()).peers.map((p) => [p.publicKey, p]))
    expect(peers.get(b.pub)).toMatchObject({ endpoint: '203.0.113.8:4000', allowedIps: ['10.66.0.2/32', '10.99.0.0/16'], persistentKeepalive: 0 })
    expect(peers.get(c.pub)).toMatchObject({ endpoint: null, allowedIps: ['10.66.0.3/32'] })
    await w.removePeer(b.pub)
    peers = new Map((await w.status()).peers.map((p) => [p.publicKey, p]))
    expect([...peers.keys()]).toEqual([c.pub])

    await w.setAddress('10.66.0.1/16')
    await w.setMtu(1380)
    await w.up()
    const link = await sh(['ip', 'netns', 'exec', NS[0]!, 'ip', '-o', 'address', 'show', 'dev', IF[0]!])
    expect(link).toContain('inet 10.66.0.1/16')
    expect(await sh(['ip', 'netns', 'exec', NS[0]!, 'ip', '-o', 'link', 'show', 'dev', IF[0]!])).toContain('mtu 1380')
  }, 20_000)

  test('two interfaces in two namespaces over a veth pair handshake and ping', async () => {
    // veth between the namespaces: 192.168.213.1 <-> 192.168.213.2
    const veth = [`lrcv${tag}a`, `lrcv${tag}b`]
    await sh(['ip', 'link', 'add', veth[0]!, 'netns', NS[0]!, 'type', 'veth', 'peer', 'name', veth[1]!, 'netns', NS[1]!])
    for (const i of [0, 1]) {
      await sh(['ip', '-n', NS[i]!, 'address', 'add', `192.168.213.${i + 1}/24`, 'dev', veth[i]!])
      await sh(['ip', '-n', NS[i]!, 'link', 'set', veth[i]!, 'up'])
      await sh(['ip', '-n', NS[i]!, 'link', 'set', 'lo', 'up'])
    }
    const wa = made[0]!
    const wb = await WireGuardInterface.create({ name: IF[1]!, netns: NS[1] })
    made.push(wb)
    await wa.setConfig({ privateKey: a.priv, listenPort: 51820, peers: [{ publicKey: b.pub, endpoint: '192.168.213.2:51821', allowedIps: ['10.66.0.2/32'] }] })
    await wb.setPrivateKey(b.priv, 51821)
    await wb.setPeer({ publicKey: a.pub, endpoint: '192.168.213.1:51820', allowedIps: ['10.66.0.1/32'], persistentKeepalive: 1 })
    await wb.setAddress('10.66.0.2/16')
    await wb.up()

    const ping = await spawnRunner(['ip', 'netns', 'exec', NS[0]!, 'ping', '-c', '3', '-i', '0.2', '-W', '2', '10.66.0.2'])
    expect(ping.stdout).toContain('3 packets transmitted, 3 received')
    const hs = await waitFor('a handshake on both sides', async () => {
      const x = (await wa.latestHandshakes()).get(b.pub)
      const y = (await wb.latestHandshakes()).get(a.pub)
      return x && y ? [x, y] : null
    })
    for (const t of hs) expect(Math.abs(t - Date.now())).toBeLessThan(60_000)
    const sa = await wa.status()
    expect(sa.peers[0]!.rxBytes).toBeGreaterThan(0)
    expect(sa.peers[0]!.endpoint).toBe('192.168.213.2:51821')
  }, 30_000)

  test('delete removes the interface and is idempotent', async () => {
    for (const w of made) {
      await w.delete()
      expect(await w.exists()).toBe(false)
      await w.delete()
    }
  }, 20_000)
})

describe('spawnRunner (node:child_process, so the library runs commands under Node and Bun)', () => {
  test('passes stdin, collects stdout and stderr, returns the exit code', async () => {
    expect(await spawnRunner(['sh', '-c', 'tr a-z A-Z; echo oops >&2; exit 3'], 'hello\n')).toEqual({ code: 3, stdout: 'HELLO\n', stderr: 'oops\n' })
  })
  test('a command that is not installed is exit 127 with the reason, not a rejection', async () => {
    const r = await spawnRunner(['lanrage-no-such-command-here'])
    expect(r.code).toBe(127)
    expect(r.stderr).toContain('lanrage-no-such-command-here')
  })
  test('a command killed by a signal is 128+n', async () => {
    expect((await spawnRunner(['sh', '-c', 'kill -TERM $$'])).code).toBe(143)
  })
  test('a command can open /dev/stdin by path (how wg reads keys), and no file is left behind', async () => {
    const before = new Set(readdirSync(tmpdir()).filter((f) => f.startsWith('lanrage-stdin-')))
    expect(await spawnRunner(['cat', '/dev/stdin'], 'secret key\n')).toEqual({ code: 0, stdout: 'secret key\n', stderr: '' })
    expect(readdirSync(tmpdir()).filter((f) => f.startsWith('lanrage-stdin-') && !before.has(f))).toEqual([])
  })
  test('a command that exits without reading its stdin is fine', async () => {
    expect((await spawnRunner(['true'], 'x'.repeat(1 << 20))).code).toBe(0)
  })
})
