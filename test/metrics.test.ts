// /metrics of every server process, scraped from real `lanrage control`, `lanrage relay` and `lanrage serve`
// processes and checked with Prometheus's own linter (`promtool check metrics`, Debian prometheus): the process_*
// set, lanrage_build_info, latency by route template, a WebSocket upgrade counted as 101, and serve's relay
// figures in the control server's /metrics.
import { afterAll, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import pkg from '../package.json'
import { BIN } from './client/helpers.ts'
import { call, TestPeer, TestSocket, tempDir } from './control/helpers.ts'
import { needs } from './needs.ts'

const skip = needs('promtool')
const children: ReturnType<typeof Bun.spawn>[] = []
afterAll(async () => {
  for (const c of children) {
    c.kill('SIGTERM')
    await c.exited
  }
})

/** Starts a server command and waits for the log line that names its address (`pattern`'s first group). */
async function start(args: string[], pattern: RegExp): Promise<string> {
  const p = Bun.spawn([BIN, ...args, '--log-level', 'info'], { stdout: 'ignore', stderr: 'pipe' })
  children.push(p)
  let text = ''
  const reader = p.stderr.getReader()
  const deadline = Date.now() + 15_000
  while (Date.now() < deadline) {
    const m = pattern.exec(text)
    if (m) {
      reader.releaseLock()
      void p.stderr.pipeTo(new WritableStream()) // keep draining
      return m[1]!
    }
    const { value, done } = await reader.read()
    if (done) break
    text += new TextDecoder().decode(value)
  }
  throw new Error(`${args[0]} did not start: ${text}`)
}

function promtool(text: string): { code: number; out: string } {
  const r = Bun.spawnSync(['promtool', 'check', 'metrics'], { stdin: Buffer.from(text) })
  return { code: r.exitCode, out: r.stdout.toString() + r.stderr.toString() }
}

/** Every metric family is declared once (what a Prometheus scrape requires of one exposition). */
function families(text: string): string[] {
  const types = text.split('\n').filter((l) => l.startsWith('# TYPE ')).map((l) => l.split(' ')[2]!)
  expect(types.length).toBe(new Set(types).size)
  return types
}

function expectProcessMetrics(text: string, startedBefore: number) {
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1])
  expect(value('process_cpu_seconds_total')).toBeGreaterThan(0)
  expect(value('process_resident_memory_bytes')).toBeGreaterThan(10 * 1024 * 1024)
  expect(value('process_virtual_memory_bytes')).toBeGreaterThan(value('process_resident_memory_bytes'))
  expect(value('process_open_fds')).toBeGreaterThan(3)
  expect(value('process_max_fds')).toBeGreaterThanOrEqual(value('process_open_fds'))
  const startedAt = value('process_start_time_seconds')
  expect(startedAt).toBeGreaterThanOrEqual(startedBefore / 1000 - 1)
  expect(startedAt).toBeLessThanOrEqual(Date.now() / 1000)
  expect(text).toMatch(new RegExp(`^lanrage_build_info\\{version="${pkg.version.replace(/\./g, '\\.')}",runtime="bun",runtime_version="[^"]+"\\} 1$`, 'm'))
}

describe.skipIf(!!skip)('/metrics of every server passes promtool', () => {
  test('lanrage control: process metrics, build info, latency by route, /ws upgrades as 101', async () => {
    const t0 = Date.now()
    const base = await start(['control', '--port', '0', '--host', '127.0.0.1', '--db', join(tempDir(), 'c.db'), '--max-body-bytes', '1024'], /listening.*?(http:\/\/127\.0\.0\.1:\d+)/)
    const peer = await new TestPeer(base).register()
    const ws = await peer.ws()
    await ws.next()
    ws.close()
    const sub = await TestSocket.open(base.replace('http', 'ws') + '/ws', { authorization: `Bearer ${peer.token}` })
    sub.close()
    expect((await call(base, 'GET', '/ws')).status).toBe(426) // a plain GET of the WebSocket path
    expect((await call(base, 'POST', '/parties', { token: peer.token, raw: JSON.stringify({ name: 'x'.repeat(2000) }) })).status).toBe(413)
    expect((await call(base, 'GET', '/no/such/route')).status).toBe(404)
    const text = await (await fetch(base + '/metrics')).text()
    expect(promtool(text)).toEqual({ code: 0, out: '' })
    families(text)
    expectProcessMetrics(text, t0)
    expect(text).toContain('lanrage_http_requests_total{method="GET",route="/ws",status="101"} 2\n')
    expect(text).toContain('lanrage_http_requests_total{method="GET",route="/ws",status="426"} 1\n')
    // Refused before routing (declared length over the limit), still counted under its route template.
    expect(text).toContain('lanrage_http_requests_total{method="POST",route="/parties",status="413"} 1\n')
    expect(text).toContain('lanrage_http_requests_total{method="GET",route="unmatched",status="404"} 1\n')
    expect(text).not.toContain('/no/such/route')
    expect(text).toMatch(/^lanrage_http_request_duration_seconds_count\{method="POST",route="\/auth\/register"\} 1$/m)
    expect(text).toMatch(/^lanrage_http_request_duration_seconds_bucket\{method="GET",route="\/ws",le="\+Inf"\} 3$/m)
  }, 30_000)

  test('lanrage relay (standalone, its own metrics port): relay counters, process metrics, build info', async () => {
    const t0 = Date.now()
    const addr = await start(['relay', '--host', '127.0.0.1', '--port', '0', '--stun-alt-port', '-1', '--ports', '47420-47429', '--metrics-port', '0'], /relay listening.*metrics=(127\.0\.0\.1:\d+)/)
    const text = await (await fetch(`http://${addr}/metrics`)).text()
    expect(promtool(text)).toEqual({ code: 0, out: '' })
    const names = families(text)
    expect(names).toContain('lanrage_relay_forwarded_total')
    expect(names).toContain('lanrage_relay_dropped_total')
    expectProcessMetrics(text, t0)
  }, 30_000)

  test('lanrage serve: one /metrics with the control server, the relay and the process, each family once', async () => {
    const t0 = Date.now()
    const base = await start(
      ['serve', '--port', '0', '--host', '127.0.0.1', '--relay-port', '0', '--relay-stun-alt-port', '-1', '--relay-ports', '47440-47449', '--db', join(tempDir(), 's.db')],
      /control server listening.*?(http:\/\/127\.0\.0\.1:\d+)/,
    )
    await new TestPeer(base).register()
    const text = await (await fetch(base + '/metrics')).text()
    expect(promtool(text)).toEqual({ code: 0, out: '' })
    const names = families(text)
    for (const n of ['lanrage_http_requests_total', 'lanrage_relays', 'lanrage_relay_forwarded_total', 'lanrage_relay_sessions', 'lanrage_relay_dropped_total', 'process_cpu_seconds_total', 'lanrage_build_info'])
      expect(names).toContain(n)
    // The in-process relay registered through the same API a remote relay uses.
    expect(text).toMatch(/^lanrage_relays 1$/m)
    expectProcessMetrics(text, t0)
  }, 30_000)
})
