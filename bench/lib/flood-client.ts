/**
 * The legitimate side of bench/relay-flood.ts, run inside the clients' namespace: one relay session (both sides
 * claimed with ALLOCATE and learned with handshakes, as peers do) and a STUN prober. Then, for each line
 * `measure S` on stdin, it sends session datagrams from a to b through the relay and STUN Binding requests at
 * fixed rates for S seconds, and prints one JSON line: what was sent, what came back, and latencies.
 *
 * Environment: FLOOD_RELAY (ip), FLOOD_PORT, FLOOD_TICKET_A / _B (hex), FLOOD_KEY_A / _B (hex public keys),
 * FLOOD_SESSION_RATE (datagrams/s), FLOOD_STUN_RATE (requests/s).
 */
import { allocate, fakeData, fakeInitiation } from '../../src/relay/testing.ts'
import { decodeBindingResponse, encodeBindingRequest } from '../../src/shared/wire/stun.ts'
import { percentile } from './common.ts'

const env = (k: string) => {
  const v = process.env[k]
  if (!v) throw new Error(`flood-client: ${k} is not set`)
  return v
}
const hex = (k: string) => new Uint8Array(Buffer.from(env(k), 'hex'))
const relay = { host: env('FLOOD_RELAY'), port: Number(env('FLOOD_PORT')) }
const sessionRate = Number(env('FLOOD_SESSION_RATE'))
const stunRate = Number(env('FLOOD_STUN_RATE'))
const SIZE = 208

// Session datagrams carry a sequence number at 16 and the send time (ms, float64) at 24; one clock for both ends.
const got = { session: [] as number[], stun: [] as number[] }
const stunSent = new Map<string, number>()
const bind = (data: (buf: Buffer, port: number) => void) => Bun.udpSocket({ hostname: '0.0.0.0', socket: { data: (_s, buf, port) => data(buf, port), error() {} } })
let learnedA = false
const a = await bind(() => (learnedA = true))
const b = await bind((buf) => {
  if (buf.length === SIZE && buf[0] === 4) got.session.push(performance.now() - buf.readDoubleLE(24))
})
const stun = await bind((buf) => {
  const r = decodeBindingResponse(buf)
  if (!r.ok) return
  const id = Buffer.from(r.transactionId).toString('hex')
  const at = stunSent.get(id)
  if (at !== undefined) {
    stunSent.delete(id)
    got.stun.push(performance.now() - at)
  }
})

const ra = await allocate(relay, hex('FLOOD_TICKET_A'), { tries: 50 })
const rb = await allocate(relay, hex('FLOOD_TICKET_B'), { tries: 50 })
if (ra.status !== 'ok' || rb.status !== 'ok') throw new Error(`ALLOCATE: ${ra.status} / ${rb.status}`)
a.send(fakeInitiation(hex('FLOOD_KEY_B')), ra.sessionPort, relay.host)
await Bun.sleep(100)
for (let i = 0; i < 50 && !learnedA; i++) {
  b.send(fakeInitiation(hex('FLOOD_KEY_A')), rb.sessionPort, relay.host)
  await Bun.sleep(100)
}
if (!learnedA) throw new Error('the session did not come up')
console.log(JSON.stringify({ ready: true, port_a: ra.sessionPort, port_b: rb.sessionPort }))

async function measure(seconds: number) {
  got.session.length = 0
  got.stun.length = 0
  stunSent.clear()
  const data = Buffer.from(fakeData(SIZE, 0))
  let sessionSent = 0
  let stunCount = 0
  const start = performance.now()
  const end = start + seconds * 1000
  // Paced in 1 ms steps: every step sends what is due by then (bounded by the time and the rates).
  while (performance.now() < end) {
    const elapsed = performance.now() - start
    for (; sessionSent < (elapsed * sessionRate) / 1000; sessionSent++) {
      data.writeUInt32LE(sessionSent, 16)
      data.writeDoubleLE(performance.now(), 24)
      a.send(data, ra.sessionPort, relay.host)
    }
    for (; stunCount < (elapsed * stunRate) / 1000; stunCount++) {
      const req = encodeBindingRequest()
      stunSent.set(Buffer.from(req.subarray(8, 20)).toString('hex'), performance.now())
      stun.send(req, relay.port, relay.host)
    }
    await Bun.sleep(1)
  }
  await Bun.sleep(1000) // stragglers: a STUN answer later than this counts as lost
  const s = [...got.session].sort((x, y) => x - y)
  const t = [...got.stun].sort((x, y) => x - y)
  const ms = (xs: number[], p: number) => Math.round(percentile(xs, p) * 1000) / 1000
  return {
    session: { sent: sessionSent, received: s.length, p50_ms: ms(s, 0.5), p99_ms: ms(s, 0.99) },
    stun: { sent: stunCount, answered: t.length, p50_ms: ms(t, 0.5), p99_ms: ms(t, 0.99) },
  }
}

const decoder = new TextDecoder()
let buf = ''
for await (const chunk of Bun.stdin.stream()) {
  buf += decoder.decode(chunk)
  for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
    const line = buf.slice(0, nl).trim()
    buf = buf.slice(nl + 1)
    const m = /^measure (\d+(?:\.\d+)?)$/.exec(line)
    if (m) console.log(JSON.stringify(await measure(Number(m[1]))))
    else if (line === 'quit') process.exit(0)
  }
}
