// RemoteControlPlane against the real control server, run as a process (`bin/lanrage control`) on 127.0.0.1
// with a temporary database: the whole party lifecycle with live events, a server restart in the middle
// (requests retry, the live channel reconnects), and a revoked token (the client registers again).
import { afterAll, afterEach, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ControlPlaneError } from '../../src/client/control/errors.ts'
import { peerIdOf, RemoteControlPlane } from '../../src/client/control/remote.ts'
import type { ControlEventName, ControlEvents } from '../../src/client/control/types.ts'
import { encodeKey, generateKeyPair } from '../../src/client/wireguard/keys.ts'
import { freeTcpPort, startControlProcess, waitFor } from './helpers.ts'

const dir = mkdtempSync(join(tmpdir(), 'lrc-remote-'))
const clients: RemoteControlPlane[] = []
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close()
})
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true })
})

function client(url: string, extra: Partial<ConstructorParameters<typeof RemoteControlPlane>[0]> = {}) {
  const keys = generateKeyPair()
  const c = new RemoteControlPlane({ url, privateKey: encodeKey(keys.privateKey), retry: { baseMs: 50, maxMs: 500, attempts: 6 }, reconnect: { baseMs: 50, maxMs: 300 }, ...extra })
  clients.push(c)
  return { c, keys }
}

/** Records every event a client emits, to assert on what arrived. */
function record(c: RemoteControlPlane) {
  const log: { type: ControlEventName; e: unknown }[] = []
  for (const t of ['connected', 'disconnected', 'registered', 'peer_joined', 'peer_updated', 'peer_left', 'party_deleted', 'signal', 'error'] as const)
    c.on(t, (e: ControlEvents[typeof t]) => log.push({ type: t, e }))
  return log
}

describe('RemoteControlPlane against lanrage control', () => {
  test('the whole party lifecycle, with live events', async () => {
    const srv = await startControlProcess(join(dir, 'lifecycle.db'), await freeTcpPort())
    const { c: host, keys: hk } = client(srv.url)
    const { c: guest } = client(srv.url)
    const { c: third } = client(srv.url)

    // key-proof registration: the peer id is derived from our public key
    expect(await host.register()).toBe(peerIdOf(hk.publicKey))
    expect(host.peerId).toBe(peerIdOf(hk.publicKey))
    await host.connect()
    const hostEvents = record(host)

    const party = await host.createParty('friday', { password: 'pw', max_peers: 4, peer_info: { nat_type: 'full_cone', public_endpoint: '198.51.100.1:51820' } })
    expect(party).toMatchObject({ name: 'friday', host_id: host.peerId, max_peers: 4 })
    expect(party.peers[host.peerId!]).toMatchObject({ virtual_ip: '10.66.0.1', nat_type: 'full_cone', public_endpoint: '198.51.100.1:51820', public_key: encodeKey(hk.publicKey) })

    // typed errors from real answers: wrong password, unknown party, not a member
    const wrong = await guest.joinParty(party.party_id, { password: 'nope' }).catch((e) => e)
    expect(wrong).toBeInstanceOf(ControlPlaneError)
    expect(wrong).toMatchObject({ code: 'CONTROL_FORBIDDEN', status: 403, serverCode: 'WRONG_PASSWORD' })
    expect(wrong.message).toContain('wrong password')
    expect(await guest.getParty('0123456789ab').catch((e) => e)).toMatchObject({ code: 'CONTROL_NOT_FOUND', serverCode: 'PARTY_NOT_FOUND' })
    expect(await guest.getParty(party.party_id).catch((e) => e)).toMatchObject({ code: 'CONTROL_FORBIDDEN', serverCode: 'NOT_A_MEMBER' })

    await guest.connect()
    const joinedEv = host.next('peer_joined', (e) => e.peer.peer_id === guest.peerId)
    const joined = await guest.joinParty(party.party_id, { password: 'pw', peer_info: { nat_type: 'symmetric', local_endpoints: ['192.168.1.5:51820'] } })
    expect(joined.peers[guest.peerId!]).toMatchObject({ virtual_ip: '10.66.0.2', nat_type: 'symmetric', local_endpoints: ['192.168.1.5:51820'] })
    expect((await joinedEv).party_id).toBe(party.party_id)

    // reads
    expect(Object.keys(await host.getPeers(party.party_id)).sort()).toEqual([host.peerId!, guest.peerId!].sort())
    expect(await host.discoverPeer(party.party_id, guest.peerId!)).toMatchObject({ peer_id: guest.peerId, virtual_ip: '10.66.0.2' })
    expect((await guest.getParty(party.party_id)).host_id).toBe(host.peerId!)

    // update → peer_updated at the host; heartbeat
    const upd = host.next('peer_updated', (e) => e.peer.peer_id === guest.peerId)
    expect(await guest.updatePeer(party.party_id, { public_endpoint: '203.0.113.5:40000' })).toMatchObject({ public_endpoint: '203.0.113.5:40000' })
    expect((await upd).peer.public_endpoint).toBe('203.0.113.5:40000')
    await guest.heartbeat(party.party_id, { nat_type: 'port_restricted_cone' })

    // signals: pushed live to the other member
    const sigEv = guest.next('signal', (e) => e.signal.type === 'punch')
    const sent = await host.sendSignal(party.party_id, guest.peerId!, 'punch', { at: 1_700_000_000_000, endpoint: '198.51.100.1:51820' })
    expect(sent).toMatchObject({ from_peer_id: host.peerId, to_peer_id: guest.peerId, type: 'punch' })
    expect((await sigEv).signal).toMatchObject({ id: sent.id, data: { at: 1_700_000_000_000, endpoint: '198.51.100.1:51820' } })
    expect(Array.isArray(await guest.getSignals(party.party_id))).toBe(true)

    // relay tickets need a registered relay: the server says so (503 NO_RELAY, retried, then typed)
    const noRelay = await host.requestRelay(party.party_id, guest.peerId!).catch((e) => e)
    expect(noRelay).toMatchObject({ code: 'CONTROL_SERVER_ERROR', status: 503, serverCode: 'NO_RELAY' })

    // a third member; the guest leaves (peer_left 'left'); the host leaves (party_deleted 'host_left')
    await third.connect()
    await third.joinParty(party.party_id, { password: 'pw' })
    const leftEv = host.next('peer_left', (e) => e.peer_id === guest.peerId)
    expect(await guest.leaveParty(party.party_id)).toBe('left')
    expect((await leftEv).reason).toBe('left')
    const deleted = third.next('party_deleted', (e) => e.party_id === party.party_id)
    expect(await host.leaveParty(party.party_id)).toBe('party_deleted')
    expect((await deleted).reason).toBe('host_left')
    expect(third.parties).toEqual([])
    expect(hostEvents.filter((x) => x.type === 'error')).toEqual([])
    await srv.stop()
  }, 30_000)

  test('a server restart in the middle: requests retry through it and the live channel comes back', async () => {
    const port = await freeTcpPort()
    const db = join(dir, 'restart.db')
    let srv = await startControlProcess(db, port)
    // enough retry budget (about 8 s) to cover a server process start on a loaded machine
    const retry = { baseMs: 100, maxMs: 1000, attempts: 12 }
    const { c: host } = client(srv.url, { retry })
    const { c: guest } = client(srv.url, { retry })
    await host.connect()
    await guest.connect()
    const party = await host.createParty('restart')
    await guest.joinParty(party.party_id)
    const hostEvents = record(host)

    const down = host.next('disconnected')
    await srv.stop()
    await down
    const reconnected = host.next('connected', undefined, 15_000)
    // a request issued while the server is down succeeds once it is back (network errors are retried)
    const pending = guest.getParty(party.party_id)
    await Bun.sleep(150)
    srv = await startControlProcess(db, port)
    expect((await pending).peers[host.peerId!]).toBeDefined()

    const back = await reconnected
    expect(back).toMatchObject({ peer_id: host.peerId, reconnect: true })
    expect(back.parties).toContain(party.party_id)

    // live events flow again after the reconnect
    await waitFor('the guest to be connected again', () => guest.connected, 10_000)
    const upd = host.next('peer_updated', (e) => e.peer.peer_id === guest.peerId)
    await guest.updatePeer(party.party_id, { public_endpoint: '198.51.100.7:1234' })
    expect((await upd).peer.public_endpoint).toBe('198.51.100.7:1234')
    expect(hostEvents.some((x) => x.type === 'disconnected')).toBe(true)
    await srv.stop()
  }, 40_000)

  test('a revoked token: the next request registers again and succeeds; a dead server is CONTROL_UNREACHABLE', async () => {
    const srv = await startControlProcess(join(dir, 'revoke.db'), await freeTcpPort())
    const { c: host, keys } = client(srv.url)
    const party = await host.createParty('revoke')
    const oldToken = host.token!

    // a saved token is used as is by a new client with the same key (no registration)
    const resumed = new RemoteControlPlane({ url: srv.url, privateKey: keys.privateKey, token: { token: oldToken, peer_id: host.peerId!, expires_at: '' } })
    clients.push(resumed)
    const resumedEvents = record(resumed)
    expect((await resumed.getParty(party.party_id)).host_id).toBe(host.peerId!)
    expect(resumedEvents).toEqual([])
    const r = await fetch(srv.url + '/auth/revoke', { method: 'POST', headers: { authorization: `Bearer ${oldToken}` } })
    expect(r.status).toBe(200)
    expect(await r.json()).toEqual({ status: 'revoked' })

    const re = host.next('registered')
    expect((await host.getParty(party.party_id)).party_id).toBe(party.party_id)
    expect(await re).toEqual({ peer_id: host.peerId!, reregistered: true })
    expect(host.token).not.toBe(oldToken)

    // the live channel also works with the new token
    await host.connect()
    expect(host.connected).toBe(true)

    // refresh swaps tokens and the old one stops working
    const before = host.token!
    await host.refresh()
    expect(host.token).not.toBe(before)
    expect((await fetch(srv.url + `/parties/${party.party_id}`, { headers: { authorization: `Bearer ${before}` } })).status).toBe(401)

    await srv.stop()
    const e = await host.getParty(party.party_id).catch((e) => e)
    expect(e).toMatchObject({ code: 'CONTROL_UNREACHABLE' })
    expect(e.message).toContain('after 6 tries')
  }, 30_000)

  test('the live channel with a revoked token: the refused upgrade leads to a new registration and a connection', async () => {
    const srv = await startControlProcess(join(dir, 'ws-revoke.db'), await freeTcpPort())
    const { c } = client(srv.url)
    await c.register()
    const oldToken = c.token!
    expect((await fetch(srv.url + '/auth/revoke', { method: 'POST', headers: { authorization: `Bearer ${oldToken}` } })).status).toBe(200)
    const events = record(c)
    // the first attempt presents the revoked token: the server refuses the upgrade (or closes 4001) before hello
    await c.connect()
    expect(events.map((e) => e.type)).toEqual(['disconnected', 'registered', 'connected'])
    expect((events[0]!.e as ControlEvents['disconnected']).reason).toMatch(/^closed \((1006|4001)/)
    expect(events[1]!.e).toEqual({ peer_id: c.peerId!, reregistered: true })
    expect(events[2]!.e).toMatchObject({ peer_id: c.peerId, reconnect: false })
    expect(c.token).not.toBe(oldToken)
    expect(c.connected).toBe(true)
    await srv.stop()
  }, 30_000)

  test('revoking the token of an open live channel: the server closes it (4001), the client registers and reconnects', async () => {
    const srv = await startControlProcess(join(dir, 'ws-revoke-open.db'), await freeTcpPort())
    const { c } = client(srv.url)
    await c.connect()
    const oldToken = c.token!
    const events = record(c)
    const back = c.next('connected', (e) => e.reconnect, 10_000)
    expect((await fetch(srv.url + '/auth/revoke', { method: 'POST', headers: { authorization: `Bearer ${oldToken}` } })).status).toBe(200)
    await back
    expect(events.map((e) => e.type)).toEqual(['disconnected', 'registered', 'connected'])
    expect((events[0]!.e as ControlEvents['disconnected']).reason).toContain('4001')
    expect(c.token).not.toBe(oldToken)
    await srv.stop()
  }, 30_000)

  test('heartbeat loop keeps the peer alive and reports a party that vanished', async () => {
    const srv = await startControlProcess(join(dir, 'hb.db'), await freeTcpPort())
    const { c: host } = client(srv.url, { heartbeatIntervalMs: 50 })
    const { c: guest } = client(srv.url, { heartbeatIntervalMs: 50 })
    const party = await host.createParty('hb')
    await guest.joinParty(party.party_id)
    const before = (await host.discoverPeer(party.party_id, guest.peerId!)).last_seen
    guest.startHeartbeats()
    // last_seen moves forward (the server batches writes; reads see the in-memory value)
    await waitFor('last_seen to move', async () => (await host.discoverPeer(party.party_id, guest.peerId!)).last_seen > before, 5000, 60)
    // the host ends the party: the guest's heartbeat gets 404 and stops beating for it
    const err = guest.next('error', (e) => e.where === `heartbeat ${party.party_id}`, 5000)
    await host.leaveParty(party.party_id)
    expect((await err).error).toMatchObject({ code: 'CONTROL_NOT_FOUND' })
    await waitFor('the party to be dropped from the heartbeat set', () => guest.parties.length === 0, 2000)
    await srv.stop()
  }, 30_000)
})
