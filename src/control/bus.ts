/**
 * Events between the control instances that share one PostgreSQL database, over LISTEN/NOTIFY: no broker besides
 * the database itself. Each event is small (ids and a reason, never a record): a NOTIFY payload holds at most
 * 8000 bytes and is delivered only when the sending transaction commits, so the receivers read the rows they need
 * and see what was committed (PostgreSQL docs, NOTIFY: "if a NOTIFY is executed inside a transaction, the notify
 * events are not delivered until and unless the transaction is committed").
 *
 * Every instance receives every event, its own included (they are marked as its own, so the sender can skip what
 * it already did locally). Notifications sent while an instance's listening connection was down are lost: when the
 * connection comes back and the channel is listened to again, `onResync` runs, so the instance can refresh what it
 * may have missed (member lists, token caches). Payloads from the channel are checked against the event schema
 * before use; one that fails is counted and dropped, never thrown.
 */
import type { Static, TSchema } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'

/** The part of a PostgreSQL client the bus uses: Bun's SQL and postgres.js both have it in this shape. */
export interface Notifier {
  listen(channel: string, onNotify: (payload: string) => void, onListen?: () => void): Promise<{ unlisten(): Promise<void> }>
  notify(channel: string, payload: string): Promise<void>
}

/** NOTIFY's payload limit in the default build (PostgreSQL docs, NOTIFY). */
export const NOTIFY_PAYLOAD_MAX = 7999

/** The wire form: the sender's instance id and the event. */
interface Envelope {
  i: string
  e: unknown
}

export interface BusStats {
  published: number
  received: number
  /** Payloads that were not an event of the schema (dropped). */
  malformed: number
  /** Times the listening connection came back after a drop. */
  resyncs: number
}

/** Encodes one event for NOTIFY; throws if it would not fit (a programming error: events carry ids only). */
export function encodeEnvelope(instanceId: string, event: unknown): string {
  const text = JSON.stringify({ i: instanceId, e: event } satisfies Envelope)
  if (Buffer.byteLength(text) > NOTIFY_PAYLOAD_MAX) throw new Error(`bus event of ${Buffer.byteLength(text)} bytes exceeds NOTIFY's ${NOTIFY_PAYLOAD_MAX}`)
  return text
}

/** Decodes a payload from the channel: the event and its sender, or undefined for anything else. */
export function decodeEnvelope<S extends TSchema>(schema: S, payload: string): { from: string; event: Static<S> } | undefined {
  let env: Envelope
  try {
    env = JSON.parse(payload) as Envelope
  } catch {
    return undefined
  }
  if (typeof env !== 'object' || env === null || typeof env.i !== 'string' || !Value.Check(schema, env.e)) return undefined
  return { from: env.i, event: env.e as Static<S> }
}

export class EventBus<S extends TSchema> {
  readonly stats: BusStats = { published: 0, received: 0, malformed: 0, resyncs: 0 }
  private readonly handlers: ((event: Static<S>, own: boolean) => void)[] = []
  private readonly resyncHandlers: (() => void)[] = []
  private subscription: { unlisten(): Promise<void> } | undefined
  private listened = 0

  constructor(
    private readonly notifier: Notifier,
    private readonly o: { channel: string; instanceId: string; schema: S; onError?: (what: string, e: unknown) => void },
  ) {}

  /** Calls `fn` for every event, from any instance; `own` is true for this instance's. */
  on(fn: (event: Static<S>, own: boolean) => void): void {
    this.handlers.push(fn)
  }

  /** Calls `fn` each time the listening connection came back after a drop (events may have been missed). */
  onResync(fn: () => void): void {
    this.resyncHandlers.push(fn)
  }

  /** Listens on the channel; resolves once PostgreSQL acknowledged the LISTEN. */
  async start(): Promise<void> {
    this.subscription = await this.notifier.listen(
      this.o.channel,
      (payload) => this.receive(payload),
      () => {
        // The first acknowledgement is the start; every later one follows a reconnect.
        if (this.listened++ === 0) return
        this.stats.resyncs++
        for (const fn of this.resyncHandlers) this.guard('resync handler', fn)
      },
    )
  }

  /**
   * Sends an event to every instance. Through `via` (a transaction's handle) it is delivered only if that
   * transaction commits, and only then.
   */
  async publish(event: Static<S>, via: Pick<Notifier, 'notify'> = this.notifier): Promise<void> {
    await via.notify(this.o.channel, encodeEnvelope(this.o.instanceId, event))
    this.stats.published++
  }

  private receive(payload: string): void {
    const d = decodeEnvelope(this.o.schema, payload)
    if (!d) {
      this.stats.malformed++
      return
    }
    this.stats.received++
    for (const fn of this.handlers) this.guard('event handler', () => fn(d.event, d.from === this.o.instanceId))
  }

  private guard(what: string, fn: () => void): void {
    try {
      fn()
    } catch (e) {
      this.o.onError?.(what, e)
    }
  }

  async close(): Promise<void> {
    const s = this.subscription
    this.subscription = undefined
    await s?.unlisten()
  }
}
