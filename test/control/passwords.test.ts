// Party passwords under attack: wrong guesses are rate-limited per peer and per party (429 with Retry-After)
// before they cost a hash, hashing runs with bounded concurrency in turns, and the per-host party limit holds
// under concurrent creates. (The attack: 300 parallel wrong guesses used 10 s of server CPU and delayed a good
// join; 100 parallel creates with a limit of 16 all succeeded.)
import { afterAll, describe, expect, test } from 'bun:test'
import { registeredPeers, startServer, type TestPeer, type TestServer } from './helpers.ts'

const servers: TestServer[] = []
afterAll(async () => {
  for (const s of servers) await s.stop()
})
async function server(config: Record<string, unknown> = {}) {
  const s = await startServer({ config: { registerRatePerMin: 10_000, ...config } })
  servers.push(s)
  return s
}
async function partyOf(s: TestServer, password = 'right horse battery') {
  const [host] = (await registeredPeers(s.base, 1)) as [TestPeer]
  return { host, id: await host.createParty({ name: 'locked', password, max_peers: 64 }) }
}

describe('wrong passwords', () => {
  test('300 parallel wrong guesses from one peer: 10 are checked (403), 290 get 429 with Retry-After and cost no hash', async () => {
    const s = await server()
    const { id } = await partyOf(s)
    const [guesser, friend] = (await registeredPeers(s.base, 2)) as [TestPeer, TestPeer]
    const hashesBefore = s.service.passwordGate.started
    const rs = await Promise.all(Array.from({ length: 300 }, (_, i) => guesser.join(id, { password: `guess-${i}` })))
    const by = (st: number) => rs.filter((r) => r.status === st)
    expect(by(403).length).toBe(10)
    expect(by(429).length).toBe(290)
    expect(by(403).every((r) => r.body.error.code === 'WRONG_PASSWORD')).toBe(true)
    const limited = by(429)[0]!
    expect(limited.body.error).toEqual({ code: 'RATE_LIMITED', message: expect.stringMatching(/^too many wrong passwords from you; retry in \d+ s$/) })
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
    expect(Number(limited.headers.get('retry-after'))).toBeLessThanOrEqual(60)
    expect(s.service.passwordGate.started - hashesBefore).toBe(10)
    // The right password from someone else still gets in; the guesser's window resets after a minute.
    expect((await friend.join(id, { password: 'right horse battery' })).status).toBe(200)
    expect((await guesser.join(id, { password: 'right horse battery' })).status).toBe(429)
    s.clock.advance(60_000)
    expect((await guesser.join(id, { password: 'right horse battery' })).status).toBe(200)
  }, 30_000)

  test('guesses from many identities are limited per party (here 5 wrong per minute), then 429 for everyone; right passwords do not count', async () => {
    const s = await server({ wrongPasswordsPerParty: 5 })
    const { id } = await partyOf(s, 'pw')
    const guessers = (await registeredPeers(s.base, 8)) as TestPeer[]
    const first = await Promise.all(guessers.slice(0, 5).map((g, i) => g.join(id, { password: `nope-${i}` })))
    expect(first.map((r) => r.status)).toEqual(Array(5).fill(403))
    const rest = await Promise.all(guessers.slice(5).map((g, i) => g.join(id, { password: `nope-${i}` })))
    expect(rest.map((r) => r.status)).toEqual(Array(3).fill(429))
    expect(rest[0]!.body.error.message).toMatch(new RegExp(`^too many wrong passwords for party ${id}; retry in \\d+ s$`))
    // Another party is not affected, and right passwords (more at once than the allowance) never use it up.
    const other = await partyOf(s, 'pw2')
    const joiners = (await registeredPeers(s.base, 7)) as TestPeer[]
    expect((await Promise.all(joiners.map((j) => j.join(other.id, { password: 'pw2' })))).map((r) => r.status)).toEqual(Array(7).fill(200))
    expect((await guessers[0]!.join(other.id, { password: 'wrong' })).status).toBe(403)
  }, 30_000)

  test('100 identities guessing at once on a party of 8: hashes stay bounded (30 wrong by default + 8 in progress), the rest get 429', async () => {
    const s = await server()
    const [host] = (await registeredPeers(s.base, 1)) as [TestPeer]
    const id = await host.createParty({ name: 'small', password: 'pw', max_peers: 8 })
    const guessers = (await registeredPeers(s.base, 100)) as TestPeer[]
    const before = s.service.passwordGate.started
    const rs = await Promise.all(guessers.map((g, i) => g.join(id, { password: `nope-${i}` })))
    const checked = rs.filter((r) => r.status === 403).length
    expect(checked).toBeGreaterThanOrEqual(8)
    expect(checked).toBeLessThanOrEqual(37)
    expect(rs.filter((r) => r.status === 429).length).toBe(100 - checked)
    expect(s.service.passwordGate.started - before).toBe(checked)
  }, 30_000)

  test('a good join is not queued behind the guesses: at most a few hashes start between its arrival and its answer', async () => {
    // Limits high enough that every guess is hashed, one hash at a time: the order is the gate's alone.
    const s = await server({ wrongPasswordsPerPeer: 10_000, wrongPasswordsPerParty: 10_000, passwordHashConcurrency: 1, maxPeersLimit: 256 })
    const { id } = await partyOf(s, 'pw')
    const [guesser, friend] = (await registeredPeers(s.base, 2)) as [TestPeer, TestPeer]
    const gate = s.service.passwordGate
    const guesses = Promise.all(Array.from({ length: 40 }, (_, i) => guesser.join(id, { password: `guess-${i}` })))
    for (let i = 0; i < 500 && gate.waiting < 30; i++) await Bun.sleep(10)
    expect(gate.waiting).toBeGreaterThanOrEqual(30)
    const atSend = gate.started
    const good = await friend.join(id, { password: 'pw' })
    expect(good.status).toBe(200)
    // The friend's hash, the guess that was running and at most one more guess (served in turn): not the ~30 queued.
    expect(gate.started - atSend).toBeLessThanOrEqual(3)
    expect(gate.waiting).toBeGreaterThan(20)
    expect((await guesses).every((r) => r.status === 403)).toBe(true)
  }, 30_000)
})

describe('parties per host', () => {
  test('100 parallel password-protected creates with a limit of 16: exactly 16 succeed, only they are hashed', async () => {
    const s = await server({ maxPartiesPerHost: 16 })
    const [host] = (await registeredPeers(s.base, 1)) as [TestPeer]
    const before = s.service.passwordGate.started
    const rs = await Promise.all(Array.from({ length: 100 }, (_, i) => host.call('POST', '/parties', { name: `p${i}`, password: 'pw' })))
    expect(rs.filter((r) => r.status === 201).length).toBe(16)
    expect(rs.filter((r) => r.status === 409).every((r) => r.body.error.code === 'TOO_MANY_PARTIES')).toBe(true)
    expect(rs.filter((r) => r.status === 409).length).toBe(84)
    expect(s.service.passwordGate.started - before).toBe(16)
    expect((await host.call('GET', '/')).body.parties).toBe(16)
    // Leaving one makes room for exactly one more.
    const first = rs.find((r) => r.status === 201)!.body.party_id
    await host.call('DELETE', `/parties/${first}/peers/${host.peerId}`)
    const again = await Promise.all(Array.from({ length: 5 }, () => host.call('POST', '/parties', { name: 'again' })))
    expect(again.map((r) => r.status).sort()).toEqual([201, 409, 409, 409, 409])
  }, 30_000)
})
