// What a game launcher does, through the library's public entry (src/client/index.ts) only: register with a
// real control server process, create and join a party, follow live events, learn the NAT type from coturn,
// and produce a WireGuard configuration that really carries traffic — applied to wireguard-go interfaces in
// two network namespaces joined by a veth pair (a LAN), then ping through the tunnel.
import { afterAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  detectNatFromPort,
  encodeKey,
  generateKeyPair,
  RemoteControlPlane,
  renderWgQuick,
  spawnRunner,
  wireguardConfigForParty,
  WireGuardInterface,
  type PartyInfo,
} from '../../src/client/index.ts'
import { freeTcpPort, freeUdpPort, startControlProcess, startTurnserver, udpListening } from './helpers.ts'
import { needs } from '../needs.ts'

const canNetns = needs('root', 'turnserver', 'ip', 'wg', 'wireguard-go', 'ping') === null

const tag = (process.pid % 46656).toString(36)
const NS = [`lrc-l${tag}a`, `lrc-l${tag}b`]
const IF = [`lrcl${tag}a`, `lrcl${tag}b`]
const LAN = ['192.168.215.1', '192.168.215.2']
const dir = mkdtempSync(join(tmpdir(), 'lrc-launcher-'))
const cleanup: (() => unknown)[] = []

afterAll(async () => {
  for (const f of cleanup.reverse()) await Promise.resolve(f()).catch(() => {})
  for (const ns of NS) await spawnRunner(['ip', 'netns', 'delete', ns])
  rmSync(dir, { recursive: true, force: true })
})

async function sh(argv: string[]) {
  const r = await spawnRunner(argv)
  if (r.code !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`)
  return r.stdout
}

describe.skipIf(!canNetns)('a launcher using the library', () => {
  test('register, create/join, live events, NAT type, WireGuard config that pings', async () => {
    const srv = await startControlProcess(join(dir, 'control.db'), await freeTcpPort())
    cleanup.push(() => srv.stop())
    const stunPorts = [await freeUdpPort(), await freeUdpPort()]
    for (const p of stunPorts) {
      const t = startTurnserver('127.0.0.1', p)
      cleanup.push(() => t.kill())
      await udpListening(p)
    }

    const keys = [generateKeyPair(), generateKeyPair()]
    const cps = keys.map((k) => new RemoteControlPlane({ url: srv.url, privateKey: k.privateKey }))
    for (const c of cps) cleanup.push(() => c.close())
    const [alice, bob] = cps as [RemoteControlPlane, RemoteControlPlane]

    // NAT type from two STUN servers (loopback: no NAT → open, mapping not varying by destination)
    const nat = await detectNatFromPort(
      await freeUdpPort(),
      stunPorts.map((p) => `127.0.0.1:${p}`),
      { hostname: '127.0.0.1' },
    )
    expect(nat).toMatchObject({ natType: 'open', mappingVariesByDestination: false })

    await alice.connect()
    const party = await alice.createParty('lan party', { peer_info: { nat_type: nat.natType, local_endpoints: [`${LAN[0]}:51820`] } })
    const joinedEv = alice.next('peer_joined')
    const bobView = await bob.joinParty(party.party_id, { peer_info: { nat_type: nat.natType, local_endpoints: [`${LAN[1]}:51821`] } })
    expect((await joinedEv).peer.peer_id).toBe(bob.peerId!)
    const aliceView: PartyInfo = await alice.getParty(party.party_id)

    const confs = [
      wireguardConfigForParty(aliceView, { peerId: alice.peerId!, privateKey: encodeKey(keys[0]!.privateKey), listenPort: 51820 }),
      wireguardConfigForParty(bobView, { peerId: bob.peerId!, privateKey: encodeKey(keys[1]!.privateKey), listenPort: 51821 }),
    ]
    expect(confs[0]!.address).toEqual(['10.66.0.1/16'])
    expect(confs[0]!.peers).toEqual([{ publicKey: encodeKey(keys[1]!.publicKey), allowedIps: ['10.66.0.2/32'], endpoint: `${LAN[1]}:51821`, persistentKeepalive: 25 }])
    expect(renderWgQuick(confs[1]!)).toContain(`Endpoint = ${LAN[0]}:51820`)

    // the LAN: two namespaces and a veth pair
    for (const ns of NS) await sh(['ip', 'netns', 'add', ns])
    const veth = [`lrcv${tag}c`, `lrcv${tag}d`]
    await sh(['ip', 'link', 'add', veth[0]!, 'netns', NS[0]!, 'type', 'veth', 'peer', 'name', veth[1]!, 'netns', NS[1]!])
    for (const i of [0, 1]) {
      await sh(['ip', '-n', NS[i]!, 'address', 'add', `${LAN[i]}/24`, 'dev', veth[i]!])
      await sh(['ip', '-n', NS[i]!, 'link', 'set', veth[i]!, 'up'])
    }
    for (const i of [0, 1]) {
      const w = await WireGuardInterface.create({ name: IF[i]!, netns: NS[i] })
      cleanup.push(() => w.delete())
      await w.setConfig(confs[i]!)
      await w.setAddress(confs[i]!.address![0]!)
      await w.setMtu(confs[i]!.mtu!)
      await w.up()
    }
    const ping = await spawnRunner(['ip', 'netns', 'exec', NS[0]!, 'ping', '-c', '3', '-i', '0.2', '-W', '2', '10.66.0.2'])
    expect(ping.stdout).toContain('3 packets transmitted, 3 received')

    // and the party ends cleanly: bob hears about it live
    await bob.connect()
    const ended = bob.next('party_deleted')
    expect(await alice.leaveParty(party.party_id)).toBe('party_deleted')
    expect((await ended).reason).toBe('host_left')
  }, 60_000)
})
