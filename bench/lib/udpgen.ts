/**
 * Driver for bench/c/udpgen.c (the C load generator): builds its plan, runs it as a separate process and
 * parses its one JSON line. See the header of udpgen.c for the plan format.
 */
export interface GenResult {
  size: number
  rate: number
  sent_window: number
  received_window: number
  received_other: number
  offered_pps: number
  delivered_pps: number
  delivered_bytes_per_s: number
  loss: number
  send_short: number
  sender_lagging: number
  lat_us: { p50: number; p90: number; p99: number; p999: number; max: number }
}

export interface Plan {
  /** Bytes every data datagram starts with. */
  template: Uint8Array
  /** Sent once from the receiver's socket (b) and the sender's socket (a) before the run. */
  hellos: { side: 'a' | 'b'; port: number; bytes: Uint8Array }[]
  /** Destination ports on 127.0.0.1 (or GenNet's destA), round robin; 'self' = straight to the receiver (no forwarder). */
  targets: (number | 'self')[]
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

export function renderPlan(p: Plan): string {
  const lines: string[] = []
  if (p.template.length > 0) lines.push(`template ${hex(p.template)}`)
  for (const h of p.hellos) lines.push(`hello-${h.side} ${h.port} ${hex(h.bytes)}`)
  for (const t of p.targets) lines.push(t === 'self' ? 'target self' : `target ${t}`)
  return lines.join('\n') + '\n'
}

/**
 * Where udpgen's two sockets live when the forwarder is in another network namespace (bench/relay-offload.ts):
 * the sender (a) and receiver (b) namespaces and bind addresses, and the forwarder's address on each side.
 */
export interface GenNet {
  nsA: string
  nsB: string
  addrA: string
  addrB: string
  destA: string
  destB: string
}

export async function runGen(
  bin: string,
  plan: Plan,
  o: { size: number; rate: number; duration: number; warmup: number; prefix?: string[]; ports?: [number, number]; net?: GenNet },
): Promise<GenResult> {
  const args = ['--size', String(o.size), '--rate', String(o.rate), '--duration', String(o.duration), '--warmup', String(o.warmup)]
  if (o.ports) args.push('--ports', o.ports.join(','))
  if (o.net) {
    const n = o.net
    args.push('--ns-a', n.nsA, '--ns-b', n.nsB, '--addr-a', n.addrA, '--addr-b', n.addrB, '--dest-a', n.destA, '--dest-b', n.destB)
  }
  const proc = Bun.spawn([...(o.prefix ?? []), bin, ...args], {
    stdin: new TextEncoder().encode(renderPlan(plan)),
    stdout: 'pipe',
    stderr: 'pipe',
  })
  // Bounded: the generator stops itself after warmup + duration (+ hellos and 300 ms of stragglers).
  const limit = (o.duration + o.warmup + 10) * 1000
  const done = await Promise.race([proc.exited, Bun.sleep(limit).then(() => 'timeout' as const)])
  if (done === 'timeout') {
    proc.kill('SIGKILL')
    throw new Error('udpgen did not finish in time')
  }
  const out = await new Response(proc.stdout).text()
  if (done !== 0) throw new Error(`udpgen exited ${done}: ${await new Response(proc.stderr).text()}`)
  return JSON.parse(out) as GenResult
}

/** Two UDP ports on 127.0.0.1 that are free now (the generator binds them with SO_REUSEADDR). */
export async function freeUdpPorts(): Promise<[number, number]> {
  const a = await Bun.udpSocket({ hostname: '127.0.0.1' })
  const b = await Bun.udpSocket({ hostname: '127.0.0.1' })
  const ports: [number, number] = [a.port, b.port]
  a.close()
  b.close()
  return ports
}

/**
 * The most a forwarder delivers: a ladder of paced offered loads (×1.3 a step, from `start`) until the delivered
 * rate stops growing (two steps in a row without 3% more than the best) or more than 60% is lost, at most 12
 * steps. A paced sender leaves the rest of its core to the receiver; one sending flat out measures the scheduler.
 */
export async function maxDelivered(
  bin: string,
  plan: () => Plan,
  o: Omit<Parameters<typeof runGen>[2], 'rate'>,
  start: number,
): Promise<{ top: number; steps: string[] }> {
  let rate = Math.max(50_000, Math.round(start / 1000) * 1000)
  let top = 0
  let flat = 0
  const steps: string[] = []
  for (let step = 0; step < 12; step++) {
    const r = await runGen(bin, plan(), { ...o, rate })
    steps.push(`${Math.round(rate / 1000)}k→${Math.round(r.delivered_pps / 1000)}k`)
    flat = r.delivered_pps < top * 1.03 ? flat + 1 : 0
    top = Math.max(top, r.delivered_pps)
    if (flat >= 2 || r.loss > 0.6) break
    rate = Math.round((rate * 1.3) / 1000) * 1000
  }
  return { top, steps }
}
