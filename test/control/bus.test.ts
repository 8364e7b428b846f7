// The event bus between control instances (src/control/bus.ts) on a real PostgreSQL: two buses on two
// connections stand for two instances. What must hold: every instance hears every event (its own marked), an
// event sent inside a transaction arrives on commit and never on rollback, hostile payloads on the channel are
// dropped and counted, and a listening connection that the server cut comes back, listens again and says so.
import { Type } from '@sinclair/typebox'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { decodeEnvelope, encodeEnvelope, EventBus, NOTIFY_PAYLOAD_MAX } from '../../src/control/bus.ts'
import { waitFor } from '../client/helpers.ts'
import { pgSkipReason, startPgCluster, type PgCluster } from '../pg.ts'

const Event = Type.Object(
  { kind: Type.Literal('peer_joined'), party: Type.String({ pattern: '^[0-9a-f]{12}$' }), peer: Type.String({ pattern: '^[0-9a-f]{16}$' }) },
  { additionalProperties: false },
)
const ev = (n: number) => ({ kind: 'peer_joined' as const, party: '0123456789ab', peer: n.toString(16).padStart(16, '0') })

describe('envelope (pure)', () => {
  test('round trip, and anything else is undefined', () => {
    expect(decodeEnvelope(Event, encodeEnvelope('i1', ev(1)))).toEqual({ from: 'i1', event: ev(1) })
    for (const bad of ['', 'null', '[]', '{"i":1,"e":{}}', JSON.stringify({ i: 'x', e: { ...ev(1), party: 'NOPE' } }), '{"i":"x"}', '\u0000'])
      expect(decodeEnvelope(Event, bad)).toBeUndefined()
  })
  test('an event too large for NOTIFY is refused when sent, not cut', () => {
    expect(() => encodeEnvelope('i1', { blob: 'x'.repeat(NOTIFY_PAYLOAD_MAX) })).toThrow(/exceeds NOTIFY/)
  })
})

const skip = pgSkipReason()
describe.skipIf(!!skip)('EventBus on PostgreSQL', () => {
  let pg: PgCluster
  let url = ''
  const clients: Bun.SQL[] = []
  const buses: EventBus<typeof Event>[] = []
  beforeAll(async () => {
    pg = await startPgCluster()
    url = await pg.createDatabase('bus')
  }, 60_000)
  afterAll(async () => {
    for (const b of buses) await b.close()
    for (const c of clients) await c.close()
    await pg?.stop()
  })
  const sql = () => {
    const c = new Bun.SQL(url)
    clients.push(c)
    return c
  }
  async function bus(instanceId: string, channel = 'lanrage_test', errors: unknown[] = []) {
    const b = new EventBus(sql(), { channel, instanceId, schema: Event, onError: (_w, e) => errors.push(e) })
    await b.start()
    buses.push(b)
    const got: { event: unknown; own: boolean }[] = []
    b.on((event, own) => got.push({ event, own }))
    return { b, got }
  }

  test('every instance hears every event, in order, its own marked as its own', async () => {
    const a = await bus('a', 'ch_order')
    const b = await bus('b', 'ch_order')
    for (let i = 0; i < 20; i++) await (i % 2 ? b.b : a.b).publish(ev(i))
    await waitFor('20 events at both', () => a.got.length === 20 && b.got.length === 20, 5000)
    expect(a.got.map((g) => g.event)).toEqual(Array.from({ length: 20 }, (_, i) => ev(i)))
    expect(b.got.map((g) => g.event)).toEqual(a.got.map((g) => g.event))
    expect(a.got.map((g) => g.own)).toEqual(Array.from({ length: 20 }, (_, i) => i % 2 === 0))
    expect(b.got.map((g) => g.own)).toEqual(Array.from({ length: 20 }, (_, i) => i % 2 === 1))
  }, 20_000)

  test('sent inside a transaction: delivered at commit, never after a rollback', async () => {
    const a = await bus('a', 'ch_tx')
    const b = await bus('b', 'ch_tx')
    const db = sql()
    await db`create table if not exists members (party text, peer text)`
    const { promise: inside, resolve: goOn } = Promise.withResolvers<void>()
    const committed = db.begin(async (tx) => {
      await tx`insert into members values (${'0123456789ab'}, ${ev(1).peer})`
      await a.b.publish(ev(1), tx)
      await inside
    })
    // the transaction is open and has notified: nothing has arrived
    await Bun.sleep(200)
    expect(b.got).toEqual([])
    goOn()
    await committed
    await waitFor('the committed event', () => b.got.length === 1, 5000)
    // the row is visible to whoever hears the event
    expect(await db`select peer from members`).toEqual([{ peer: ev(1).peer }])
    await db
      .begin(async (tx) => {
        await a.b.publish(ev(2), tx)
        throw new Error('roll back')
      })
      .catch(() => {})
    await a.b.publish(ev(3))
    await waitFor('the event after the rollback', () => b.got.length === 2, 5000)
    expect(b.got.map((g) => g.event)).toEqual([ev(1), ev(3)])
  }, 20_000)

  test('hostile payloads on the channel are dropped and counted; a throwing handler costs the others nothing', async () => {
    const errors: unknown[] = []
    const a = await bus('a', 'ch_hostile', errors)
    a.b.on(() => {
      throw new Error('handler bug')
    })
    const after: unknown[] = []
    a.b.on((e) => after.push(e))
    const raw = sql()
    for (const p of ['not json', '{"i":"x","e":{"kind":"peer_joined","party":"x","peer":"y"}}', '{"e":{}}', JSON.stringify({ i: 'x', e: { ...ev(1), extra: "'; drop table x; --" } })])
      await raw.notify('ch_hostile', p)
    await raw.notify('ch_hostile', encodeEnvelope('x', ev(9)))
    await waitFor('the good event', () => a.got.length === 1, 5000)
    expect(a.got).toEqual([{ event: ev(9), own: false }])
    expect(after).toEqual([ev(9)])
    expect(errors.map((e) => (e as Error).message)).toEqual(['handler bug'])
    expect(a.b.stats).toMatchObject({ received: 1, malformed: 4 })
  }, 20_000)

  test('the server cuts the listening connection: it comes back, listens again, says so, and events flow', async () => {
    const a = await bus('a', 'ch_cut')
    const b = await bus('b', 'ch_cut')
    let resyncs = 0
    b.b.onResync(() => resyncs++)
    const admin = sql()
    // every connection listening on ch_cut (both buses') is terminated, as a server restart or a proxy would
    const cut = await admin`select pg_terminate_backend(pid) as ok from pg_stat_activity where query = 'LISTEN "ch_cut"'`
    expect(cut.length).toBeGreaterThanOrEqual(2)
    await waitFor('b to listen again', () => resyncs === 1, 15_000, 50)
    expect(b.b.stats.resyncs).toBe(1)
    await waitFor('a to listen again', () => a.b.stats.resyncs === 1, 15_000, 50)
    await a.b.publish(ev(5))
    await waitFor('the event after the cut', () => b.got.length === 1, 5000)
    expect(b.got[0]).toEqual({ event: ev(5), own: false })
  }, 30_000)
})
