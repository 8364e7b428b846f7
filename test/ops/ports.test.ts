// A busy port stops a command at start with one line naming the port and the flag that moves it, exit 1.
// Before: a second `lanrage control --port P` started, logged "listening", and the kernel split the requests between
// the two processes and their two databases (Elysia asks Bun for SO_REUSEPORT); `lanrage up` went on with a busy
// --listen-port until WireGuard failed to bind it. Logs are at warn level here, so the error is the only line.
import { describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { needs } from '../needs.ts'
import { holdTcp, holdUdp, issueCert, listeningUrl, makeCa, runLanrage, spawnLanrage, tcpOpen, tempDir } from './helpers.ts'

const QUIET = { LANRAGE_LOG_LEVEL: 'warn' }
const noOpenssl = needs('openssl')
const lines = (s: string) => s.trim().split('\n')

describe('a busy port stops the command with one line', () => {
  test('a second lanrage control on the port of the first refuses to start; the first keeps every request', async () => {
    const dir = tempDir()
    const first = spawnLanrage(['control', '--host', '127.0.0.1', '--port', '0', '--db', join(dir, 'a.db')], { env: { LANRAGE_LOG_LEVEL: 'info' } })
    try {
      const url = await listeningUrl(first)
      const port = Number(new URL(url).port)
      const second = await runLanrage(['control', '--host', '127.0.0.1', '--port', String(port), '--db', join(dir, 'b.db')], { env: QUIET })
      expect(second.code).toBe(1)
      expect(lines(second.err)).toEqual([`lanrage control: control HTTP: port ${port}/tcp is already in use; choose another with --port (PORT_IN_USE)`])
      // Every request still reaches the first server, which is still running.
      const challenges = await Promise.all(
        Array.from({ length: 20 }, () => fetch(url + '/auth/challenge', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"public_key":"' + 'A'.repeat(43) + '="}' }).then((r) => r.status)),
      )
      expect(challenges.every((s) => s === 200 || s === 429)).toBe(true)
      expect(first.proc.exitCode).toBeNull()
    } finally {
      expect(await first.stop()).toBe(0)
    }
  }, 30_000)

  test.skipIf(!!noOpenssl)('lanrage control: a port held by another program (any address), also with --tls-cert', async () => {
    const dir = tempDir()
    const ca = makeCa(dir, 'ca')
    const leaf = issueCert(ca, 'server')
    for (const holder of [holdTcp(0, '127.0.0.1'), holdTcp(0, '0.0.0.0')]) {
      try {
        for (const extra of [[], ['--tls-cert', leaf.cert, '--tls-key', leaf.key]]) {
          const r = await runLanrage(['control', '--host', '127.0.0.1', '--port', String(holder.port), '--db', join(dir, 'c.db'), ...extra], { env: QUIET })
          expect({ code: r.code, err: lines(r.err) }).toEqual({
            code: 1,
            err: [`lanrage control: control HTTP: port ${holder.port}/tcp is already in use; choose another with --port (PORT_IN_USE)`],
          })
        }
      } finally {
        holder.stop(true)
      }
    }
  }, 30_000)

  test('lanrage serve: a busy control port names --port', async () => {
    const dir = tempDir()
    const holder = holdTcp()
    try {
      const r = await runLanrage(
        ['serve', '--host', '127.0.0.1', '--port', String(holder.port), '--db', join(dir, 's.db'), '--relay-port', '0', '--relay-ports', '41500-41539'],
        { env: QUIET },
      )
      expect({ code: r.code, err: lines(r.err) }).toEqual({
        code: 1,
        err: [`lanrage serve: control HTTP: port ${holder.port}/tcp is already in use; choose another with --port (PORT_IN_USE)`],
      })
    } finally {
      holder.stop(true)
    }
  }, 30_000)

  test.each([
    ['--relay-port', 'relay main port', 'udp'],
    ['--relay-stun-alt-port', 'relay STUN alt port', 'udp'],
    ['--relay-metrics-port', 'relay metrics port', 'tcp'],
  ] as const)('lanrage serve: a busy %s is named by its serve flag; the control server it had opened is closed', async (flag, what, proto) => {
    const dir = tempDir()
    const held = proto === 'udp' ? await holdUdp(0, '127.0.0.1') : holdTcp(0, '127.0.0.1')
    const busyPort = held.port
    // The control port is fixed here so the test can check that it was let go.
    const probe = holdTcp()
    const controlPort = probe.port
    probe.stop(true)
    const ports: Record<string, string> = { '--relay-port': '0', '--relay-stun-alt-port': '0', '--relay-metrics-port': '-1', [flag]: String(busyPort) }
    try {
      const p = spawnLanrage(
        ['serve', '--host', '127.0.0.1', '--port', String(controlPort), '--db', join(dir, 's.db'), '--relay-ports', '41500-41539', ...Object.entries(ports).flat()],
        { env: QUIET },
      )
      expect(await p.exited).toBe(1)
      expect(lines(p.err)).toEqual([`lanrage serve: ${what}: port ${busyPort}/${proto} is already in use; choose another with ${flag} (PORT_IN_USE)`])
      expect(await tcpOpen(controlPort)).toBe(false)
    } finally {
      if ('close' in held) held.close()
      else held.stop(true)
    }
  }, 30_000)

  test('lanrage up: a busy --listen-port is refused before anything registers', async () => {
    const home = tempDir()
    const sock = await holdUdp(0, '0.0.0.0')
    // A control URL nothing listens on: the command must stop before it ever tries it.
    const ghost = holdTcp()
    const ghostPort = ghost.port
    ghost.stop(true)
    try {
      const r = await runLanrage(['up', '--control', `http://127.0.0.1:${ghostPort}`, '--create', 'x', '--listen-port', String(sock.port)], {
        env: { ...QUIET, LANRAGE_HOME: join(home, 'h') },
        ms: 15_000,
      })
      expect({ code: r.code, err: lines(r.err) }).toEqual({
        code: 1,
        err: [`lanrage up: WireGuard listen port: port ${sock.port}/udp is already in use; choose another with --listen-port (PORT_IN_USE)`],
      })
      expect(await tcpOpen(ghostPort)).toBe(false)
    } finally {
      sock.close()
    }
  }, 30_000)
})
