// The relay's behavioural tests (relay.test.ts) once more with --kernel-offload: the whole file runs in a network
// namespace of its own (loopback up, IPv4 forwarding on, prefix lrk<pid>) with LANRAGE_TEST_KERNEL_OFFLOAD=1,
// so every relay it starts forwards locked sessions with nftables. Where the two paths differ by design (the
// kernel's rate limiter runs on the kernel's clock, not the test's; the kernel's counters reach the relay a moment
// later), relay.test.ts says so next to the assertion.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { needs } from '../needs.ts'

const skip = needs('root', 'ip', 'nft')
const NS = `lrk${process.pid}`
const BIN = join(import.meta.dir, '..', '..', 'bin', 'lanrage')

describe.skipIf(!!skip)('relay behaviour with --kernel-offload', () => {
  beforeAll(() => {
    // Namespaces of earlier runs whose process is gone.
    for (const m of Bun.spawnSync(['ip', 'netns', 'list']).stdout.toString().matchAll(/^lrk(\d+)\b/gm))
      if (Number(m[1]) !== process.pid && !Bun.spawnSync(['kill', '-0', m[1]!]).success) Bun.spawnSync(['ip', 'netns', 'del', `lrk${m[1]}`])
    for (const cmd of [
      ['ip', 'netns', 'add', NS],
      ['ip', '-n', NS, 'link', 'set', 'lo', 'up'],
      ['ip', 'netns', 'exec', NS, 'sysctl', '-qw', 'net.ipv4.ip_forward=1'],
    ])
      if (!Bun.spawnSync(cmd).success) throw new Error(`${cmd.join(' ')} failed`)
  })
  afterAll(() => {
    Bun.spawnSync(['ip', 'netns', 'del', NS])
  })

  test('lanrage relay and lanrage serve refuse --kernel-offload with one line and exit 1 where it cannot work', () => {
    // A fresh namespace has IPv4 forwarding off.
    const ns = `${NS}x`
    const home = mkdtempSync(join(tmpdir(), 'lrk-home-'))
    Bun.spawnSync(['ip', 'netns', 'add', ns])
    try {
      for (const args of [
        ['relay', '--kernel-offload', '--port', '0', '--stun-alt-port', '-1'],
        ['serve', '--kernel-offload', '--host', '127.0.0.1', '--port', '0', '--db', join(home, 'c.db'), '--relay-port', '0', '--relay-stun-alt-port', '-1'],
      ]) {
        const p = Bun.spawnSync(['ip', 'netns', 'exec', ns, BIN, ...args], { env: { ...process.env, LANRAGE_HOME: home }, timeout: 20_000 })
        expect(p.exitCode).toBe(1)
        const last = p.stderr.toString().trim().split('\n').at(-1)
        expect(last).toBe(
          `lanrage ${args[0]}: --kernel-offload: IPv4 forwarding is off (net.ipv4.ip_forward = 0); turn it on with sysctl -w net.ipv4.ip_forward=1 (KERNEL_OFFLOAD_UNAVAILABLE)`,
        )
        expect(p.stderr.toString()).not.toContain('    at ') // no stack trace
      }
    } finally {
      Bun.spawnSync(['ip', 'netns', 'del', ns])
      rmSync(home, { recursive: true, force: true })
    }
  }, 45_000)

  test('relay.test.ts passes with locked sessions in the kernel', async () => {
    const p = Bun.spawn(['ip', 'netns', 'exec', NS, process.execPath, 'test', join(import.meta.dir, 'relay.test.ts')], {
      env: { ...process.env, LANRAGE_TEST_KERNEL_OFFLOAD: '1' },
      stdout: 'pipe',
      stderr: 'pipe',
    })
    const timer = setTimeout(() => p.kill(), 100_000)
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited])
    clearTimeout(timer)
    const text = out + err
    if (code !== 0) console.error(text)
    expect(code).toBe(0)
    expect(text).toMatch(/^ *0 fail$/m)
    expect(Number(/^ *(\d+) pass$/m.exec(text)?.[1])).toBeGreaterThanOrEqual(20)
    expect(text).not.toMatch(/^\(skip\)/m)
  }, 120_000)
})
