// LocalControlPlane across real processes sharing one directory: one creates, another joins through the
// discovery file, events flow both ways; batched atomic writes; a corrupt state file is reported and kept.
import { afterAll, afterEach, describe, expect, test } from 'bun:test'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LocalControlPlane } from '../../src/client/control/local.ts'
import { peerIdOf } from '../../src/client/control/remote.ts'
import { ManualClock } from '../../src/shared/clock.ts'
import { encodeKey, generateKeyPair } from '../../src/client/wireguard/keys.ts'
import { waitFor } from './helpers.ts'

const FIXTURE = join(import.meta.dir, 'fixtures', 'local-peer.ts')
const BUN = process.execPath
const dirs: string[] = []
const open: LocalControlPlane[] = []
const children: ReturnType<typeof spawnPeer>[] = []
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'lrc-local-'))
  dirs.push(d)
  return d
}
const pub = () => encodeKey(generateKeyPair().publicKey)
async function plane(dir: string, extra: Partial<Parameters<typeof LocalControlPlane.open>[0]> = {}) {
  const c = await LocalControlPlane.open({ dir, publicKey: pub(), pollIntervalMs: 50, flushDelayMs: 10, ...extra })
  open.push(c)
  return c
}

/** The fixture process, with its JSON lines collected as they come. */
function spawnPeer(dir: string, action: 'join' | 'create', arg: string) {
  const proc = Bun.spawn([BUN, FIXTURE, dir, action, arg], { stdin: 'pipe', stdout: 'pipe', stderr: 'pipe' })
  const lines: Record<string, unknown>[] = []
  void (async () => {
    let buf = ''
    for await (const chunk of proc.stdout) {
      buf += new TextDecoder().decode(chunk)
      let i: number
      while ((i = buf.indexOf('\n')) >= 0) {
        lines.push(JSON.parse(buf.slice(0, i)))
        buf = buf.slice(i + 1)
      }
    }
  })()
  const send = (cmd: string) => {
    proc.stdin.write(cmd + '\n')
    proc.stdin.flush()
  }
  return { proc, lines, send, line: (pred: (l: Record<string, any>) => boolean, what: string) => waitFor(what, () => lines.find(pred), 10_000) }
}

afterEach(async () => {
  for (const c of open.splice(0)) await c.close()
})
afterAll(() => {
  for (const c of children) c.proc.kill()
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

describe('LocalControlPlane, two processes', () => {
  test('one creates, the other joins through the discovery file; both see each other and the host leaving ends it', async () => {
    const dir = tmp()
    const host = await plane(dir)
    const party = await host.createParty('lan night', { peer_info: { nat_type: 'open' } })
    expect(party).toMatchObject({ name: 'lan night', host_id: host.peerId, subnet: '10.66.0.0/16' })
    expect(party.party_id).toMatch(/^[0-9a-f]{12}$/)
    expect(party.peers[host.peerId]).toMatchObject({ virtual_ip: '10.66.0.1', nat_type: 'open' })
    expect(readdirSync(join(dir, 'discovery'))).toEqual([`${party.party_id}.json`])

    const joined = host.next('peer_joined', (e) => e.party_id === party.party_id, 10_000)
    const child = spawnPeer(dir, 'join', party.party_id)
    children.push(child)
    const ready = await child.line((l) => l.ready === true, 'the child to join')
    const childId = ready.peer_id as string
    const seen = ready.party as { peers: Record<string, { virtual_ip: string }>; host_id: string }
    expect(seen.host_id).toBe(host.peerId)
    expect(seen.peers[host.peerId]!.virtual_ip).toBe('10.66.0.1')
    expect(seen.peers[childId]!.virtual_ip).toBe('10.66.0.2')

    const ev = await joined
    expect(ev.peer).toMatchObject({ peer_id: childId, virtual_ip: '10.66.0.2', nat_type: 'open', local_endpoints: ['192.168.1.20:51820'] })
    expect(Object.keys(await host.getPeers(party.party_id)).sort()).toEqual([host.peerId, childId].sort())

    // updates travel to the host; a signal travels to the child
    const updated = host.next('peer_updated', (e) => e.peer.peer_id === childId, 10_000)
    child.send('update 198.51.100.9:40000')
    expect((await updated).peer.public_endpoint).toBe('198.51.100.9:40000')
    await host.sendSignal(party.party_id, childId, 'punch', { at: 123, endpoint: '10.0.0.1:1' })
    const sig = await child.line((l) => l.event === 'signal', 'the signal at the child')
    expect(sig.signal).toMatchObject({ from_peer_id: host.peerId, to_peer_id: childId, type: 'punch', data: { at: 123, endpoint: '10.0.0.1:1' } })

    // the host leaves: the party ends for the child
    expect(await host.leaveParty(party.party_id)).toBe('party_deleted')
    const del = await child.line((l) => l.event === 'party_deleted', 'party_deleted at the child')
    expect(del).toMatchObject({ party_id: party.party_id, reason: 'host_left' })
    expect(readdirSync(join(dir, 'discovery'))).toEqual([])
    child.send('exit')
    expect(await child.proc.exited).toBe(0)
  }, 30_000)

  test('a member leaving and a member whose process died are both seen as peer_left', async () => {
    const dir = tmp()
    const host = await plane(dir)
    const party = await host.createParty('p')
    const a = spawnPeer(dir, 'join', party.party_id)
    const b = spawnPeer(dir, 'join', party.party_id)
    children.push(a, b)
    const aId = (await a.line((l) => l.ready === true, 'a joined')).peer_id
    const bId = (await b.line((l) => l.ready === true, 'b joined')).peer_id
    // Two processes joining at once may pick the same address; the later joiner moves (eventually unique).
    await waitFor('both members at the host, with distinct addresses', async () => {
      const ips = Object.values(await host.getPeers(party.party_id)).map((p) => p.virtual_ip)
      return ips.length === 3 && new Set(ips).size === 3
    })

    const left = host.next('peer_left', (e) => e.peer_id === aId, 10_000)
    a.send('leave')
    expect(await a.line((l) => 'left' in l, 'a left')).toEqual({ left: 'left' })
    await left

    const gone = host.next('peer_left', (e) => e.peer_id === bId, 10_000)
    b.proc.kill('SIGKILL')
    await b.proc.exited
    expect(await gone).toMatchObject({ reason: 'timeout' })
    // the dead process's state file was cleaned up
    await waitFor('the stale state file to go', () => !readdirSync(join(dir, 'state')).includes(`${bId}.json`))
  }, 30_000)

  test('joining refuses a wrong password, an unknown party and a full party, with codes', async () => {
    const dir = tmp()
    const host = await plane(dir)
    const locked = await host.createParty('locked', { password: 'hunter2', max_peers: 2 })
    const other = await plane(dir)
    await expect(other.joinParty(locked.party_id, { password: 'nope' })).rejects.toMatchObject({ code: 'CONTROL_FORBIDDEN', serverCode: 'WRONG_PASSWORD', message: expect.stringContaining('wrong password') })
    await expect(other.joinParty('0123456789ab')).rejects.toMatchObject({ code: 'CONTROL_NOT_FOUND', serverCode: 'PARTY_NOT_FOUND', message: expect.stringContaining('no such party') })
    await expect(other.joinParty('../../etc')).rejects.toMatchObject({ code: 'CONTROL_BAD_REQUEST', message: expect.stringContaining('is not a party or peer id') })
    await other.joinParty(locked.party_id, { password: 'hunter2' })
    const third = await plane(dir)
    await expect(third.joinParty(locked.party_id, { password: 'hunter2' })).rejects.toMatchObject({ code: 'CONTROL_CONFLICT', serverCode: 'PARTY_FULL' })
    await expect(third.getParty(locked.party_id)).rejects.toMatchObject({ code: 'CONTROL_FORBIDDEN', serverCode: 'NOT_A_MEMBER' })
    await expect(third.requestRelay(locked.party_id, host.peerId)).rejects.toMatchObject({ serverCode: 'NO_RELAY', status: 501 })
  })
})

describe('LocalControlPlane names', () => {
  test('members see each other’s names, a rename arrives as peer_updated, a hostile name is refused', async () => {
    const dir = tmp()
    const host = await plane(dir)
    const party = await host.createParty('lan', { peer_info: { name: 'ana' } })
    expect(party.peers[host.peerId]!.name).toBe('ana')
    const other = await plane(dir)
    await expect(other.joinParty(party.party_id, { peer_info: { name: 'bob\x1b[2J' } })).rejects.toMatchObject({ status: 422, serverCode: 'VALIDATION', message: expect.stringContaining('name must be 1-32 printable characters') })
    const joined = await other.joinParty(party.party_id, { peer_info: { name: 'bob' } })
    expect(joined.peers[host.peerId]!.name).toBe('ana')
    const seen = await host.next('peer_joined', (e) => e.peer.peer_id === other.peerId, 10_000)
    expect(seen.peer.name).toBe('bob')
    const renamed = host.next('peer_updated', (e) => e.peer.peer_id === other.peerId, 10_000)
    await other.updatePeer(party.party_id, { name: 'bobby' })
    expect((await renamed).peer.name).toBe('bobby')
    await expect(other.updatePeer(party.party_id, { name: ' ' })).rejects.toMatchObject({ status: 422 })
  })
})

describe('LocalControlPlane state file', () => {
  test('writes are batched and deduplicated, atomic (no temp files left), and a restart resumes memberships', async () => {
    const dir = tmp()
    const key = pub()
    const c = await LocalControlPlane.open({ dir, publicKey: key, pollIntervalMs: 10_000, flushDelayMs: 60_000 })
    const party = await c.createParty('batch')
    const before = c.writes
    for (let i = 0; i < 20; i++) await c.heartbeat(party.party_id, { public_endpoint: `198.51.100.1:${4000 + (i % 2)}` })
    await c.flush()
    expect(c.writes).toBe(before + 1) // 20 changes within one flush window: one write
    await c.flush()
    expect(c.writes).toBe(before + 1) // nothing changed: no write
    const files = readdirSync(join(dir, 'state'))
    expect(files).toEqual([`${peerIdOf(new Uint8Array(Buffer.from(key, 'base64')))}.json`])
    const onDisk = JSON.parse(readFileSync(join(dir, 'state', files[0]!), 'utf8'))
    expect(onDisk.memberships[party.party_id].public_endpoint).toBe('198.51.100.1:4001')
    await c.close()

    const again = await LocalControlPlane.open({ dir, publicKey: key, pollIntervalMs: 10_000 })
    open.push(again)
    expect((await again.getParty(party.party_id)).peers[again.peerId]).toMatchObject({ virtual_ip: '10.66.0.1', public_endpoint: '198.51.100.1:4001' })
  })

  test('a failed write is reported and the next flush writes again', async () => {
    const dir = tmp()
    const c = await plane(dir, { pollIntervalMs: 10_000, flushDelayMs: 60_000 })
    const party = await c.createParty('w')
    rmSync(join(dir, 'state'), { recursive: true, force: true })
    await c.heartbeat(party.party_id, { public_endpoint: '198.51.100.2:1' })
    await expect(c.flush()).rejects.toMatchObject({ code: 'ENOENT' })
    mkdirSync(join(dir, 'state'))
    await c.flush()
    const onDisk = JSON.parse(readFileSync(join(dir, 'state', `${c.peerId}.json`), 'utf8'))
    expect(onDisk.memberships[party.party_id].public_endpoint).toBe('198.51.100.2:1')
  })

  test('a corrupt state file is reported and moved aside, not silently lost', async () => {
    const dir = tmp()
    const key = pub()
    const first = await LocalControlPlane.open({ dir, publicKey: key })
    await first.close()
    const path = join(dir, 'state', `${first.peerId}.json`)
    writeFileSync(path, '{"version":1,"peer_id":"trunc')
    const errors: Error[] = []
    const c = await LocalControlPlane.open({ dir, publicKey: key, pollIntervalMs: 10_000 })
    open.push(c)
    c.on('error', (e) => errors.push(e.error))
    expect(c.corrupt).toHaveLength(1)
    const [orig, aside] = c.corrupt[0]!
    expect(orig).toBe(path)
    expect(aside).toStartWith(path + '.corrupt-')
    expect(readFileSync(aside, 'utf8')).toBe('{"version":1,"peer_id":"trunc') // kept byte for byte
    // the other processes' view reports it too: a corrupt file from another writer is moved aside with an error event
    const otherPath = join(dir, 'state', 'ffffffffffffffff.json')
    writeFileSync(otherPath, 'not json')
    await c.poll()
    expect(errors).toHaveLength(1)
    expect(errors[0]!.message).toContain(`state file ${otherPath} is corrupt`)
    expect((errors[0] as Error & { code: string }).code).toBe('LOCAL_STATE')
    expect(readdirSync(join(dir, 'state')).some((f) => f.startsWith('ffffffffffffffff.json.corrupt-'))).toBe(true)
  })

  test('a peer that stops heartbeating is dropped after staleAfterMs even if its process lives', async () => {
    const dir = tmp()
    const clock = new ManualClock(Date.now())
    const host = await plane(dir, { clock, staleAfterMs: 60_000, pollIntervalMs: 10_000 })
    const party = await host.createParty('p')
    const quiet = await plane(dir, { clock, staleAfterMs: 60_000, pollIntervalMs: 10_000 })
    await quiet.joinParty(party.party_id)
    await host.poll()
    expect(Object.keys(await host.getPeers(party.party_id))).toHaveLength(2)
    clock.advance(61_000)
    await host.heartbeat(party.party_id)
    await host.flush()
    const left = host.next('peer_left', (e) => e.peer_id === quiet.peerId, 2000)
    await host.poll()
    expect(await left).toMatchObject({ party_id: party.party_id, reason: 'timeout' })
    expect(Object.keys(await host.getPeers(party.party_id))).toEqual([host.peerId])
  })
})
