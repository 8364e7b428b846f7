// The relay as users run it: `lanrage relay` as a process, and a STUN client nobody here wrote (coturn's
// turnutils_stunclient) against its main port.
import { describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { createLogger } from '../../src/shared/log.ts'
import { startRelay } from '../../src/relay/index.ts'
import { Value } from '@sinclair/typebox/value'
import { relaySchema, type RelayConfig } from '../../src/relay/config.ts'
import { decodeBindingResponse, encodeBindingRequest } from '../../src/shared/wire/stun.ts'
import { peer, portRange, until } from './helpers.ts'
import { needs } from '../needs.ts'

const BIN = join(import.meta.dir, '..', '..', 'bin', 'lanrage')
const stunclient = needs('turnutils_stunclient') === null

describe('lanrage relay', () => {
  test.skipIf(!stunclient)('turnutils_stunclient reads our XOR-MAPPED-ADDRESS: 127.0.0.1 and its own source port', async () => {
    const lines: string[] = []
    const config = Value.Default(relaySchema, { host: '127.0.0.1', port: 0, ports: portRange(), statsInterval: 0 }) as RelayConfig
    const relay = await startRelay(config, { log: createLogger('relay', 'debug', (l) => lines.push(l)), sweepIntervalMs: 0 })
    try {
      const p = Bun.spawn(['turnutils_stunclient', '-p', String(relay.port), '127.0.0.1'], { stdout: 'pipe', stderr: 'pipe' })
      const timer = setTimeout(() => p.kill(), 10_000)
      const [out, code] = [await new Response(p.stdout).text(), await p.exited]
      clearTimeout(timer)
      expect(code).toBe(0)
      const m = /UDP reflexive addr: (\d+\.\d+\.\d+\.\d+):(\d+)/.exec(out)
      expect(m?.[1]).toBe('127.0.0.1')
      // The port it reports is the one the relay saw the request come from.
      expect(lines.some((l) => l.includes(`stun binding from=127.0.0.1:${m![2]}`))).toBe(true)
      expect(relay.stats().stun_responses).toBeGreaterThanOrEqual(1)
    } finally {
      await relay.close()
    }
  })

  test('runs without --control: warns it cannot take tickets, answers STUN, logs stats, stops on SIGTERM', async () => {
    const port = 20000 + Math.floor(Math.random() * 9000)
    const proc = Bun.spawn([BIN, 'relay', '--host', '127.0.0.1', '--port', String(port), '--ports', portRange(), '--stats-interval', '1'], {
      stdout: 'pipe',
      stderr: 'pipe',
    })
    const killer = setTimeout(() => proc.kill('SIGKILL'), 15_000)
    const p = await peer()
    try {
      let answered = false
      for (let i = 0; i < 50 && !answered; i++) {
        p.send(encodeBindingRequest(), port)
        answered = await until(() => p.got.length > 0, 100)
      }
      expect(answered).toBe(true)
      expect(decodeBindingResponse(p.got[0]!.buf)).toMatchObject({ ok: true, mapped: { address: '127.0.0.1', port: p.port } })
      await Bun.sleep(1100) // one stats interval
      proc.kill('SIGTERM')
      expect(await proc.exited).toBe(0)
      const err = await new Response(proc.stderr).text()
      expect(err).toMatch(/INFO  relay: stats sessions=0 in_pps=0 fwd_pps=0 forwarded=0 stun=\d+ blocked=0 drops=0/)
      expect(err).toContain('cannot accept tickets until it knows a control server key')
      expect(err).toContain('relay listening')
      expect(err).toContain('shutting down signal=SIGTERM')
      expect(err).toContain('relay stopped')
    } finally {
      clearTimeout(killer)
      p.close()
      proc.kill('SIGKILL')
    }
  })

  test('a busy main port, STUN alt port or metrics port: exit 1 with one line naming the port and its flag', async () => {
    // The realistic case: a second relay started with the ports of one already running. Bun's HTTP listener
    // would share a busy port with the first process; the relay must refuse instead.
    const config = Value.Default(relaySchema, { host: '127.0.0.1', port: 0, ports: portRange(), statsInterval: 0, metricsPort: 0 }) as RelayConfig
    const first = await startRelay(config, { log: createLogger('relay', 'error', () => {}), sweepIntervalMs: 0 })
    try {
      const cases: [string[], string][] = [
        [['--port', String(first.port)], `relay main port: port ${first.port}/udp is already in use; choose another with --port (PORT_IN_USE)`],
        [['--port', '0', '--stun-alt-port', String(first.stunAltPort)], `relay STUN alt port: port ${first.stunAltPort}/udp is already in use; choose another with --stun-alt-port (PORT_IN_USE)`],
        [['--port', '0', '--metrics-port', String(first.metricsPort)], `relay metrics port: port ${first.metricsPort}/tcp is already in use; choose another with --metrics-port (PORT_IN_USE)`],
      ]
      for (const [flags, line] of cases) {
        const r = Bun.spawnSync([BIN, 'relay', '--host', '127.0.0.1', '--ports', portRange(), '--metrics-host', '127.0.0.1', ...flags], { timeout: 10_000 })
        const err = r.stderr.toString()
        expect({ flags, code: r.exitCode }).toEqual({ flags, code: 1 })
        expect(err.trim().split('\n').filter((l) => !/^(DEBUG|INFO|WARN|ERROR) /.test(l))).toEqual([`lanrage relay: ${line}`])
        expect(err).not.toContain('    at ')
        expect(err).not.toContain('relay listening')
      }
      // The first relay still owns its metrics port: every scrape reaches it.
      for (let i = 0; i < 5; i++) expect((await fetch(`http://127.0.0.1:${first.metricsPort}/health`)).status).toBe(200)
    } finally {
      await first.close()
    }
  })

  test('bad options exit 2 and name the option', () => {
    const r = Bun.spawnSync([BIN, 'relay', '--ports', 'abc', '--port', '70000'])
    expect(r.exitCode).toBe(2)
    const err = r.stderr.toString()
    expect(err).toContain('--ports must be a range FIRST-LAST, e.g. 52000-52999 (got "abc")')
    expect(err).toContain('--port must be an integer from 0 to 65535 (got 70000)')
    expect(err).toContain('See: lanrage relay --help')
  })
})
