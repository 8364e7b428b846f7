// `lanrage serve` runs the relay in-process: it registers with its own control server over HTTP, knows the
// ticket key (ALLOCATE is judged on the ticket, not refused for want of a key), and answers STUN.
import { describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { decodeBindingResponse, encodeBindingRequest } from '../../src/shared/wire/stun.ts'
import { allocate, createTicketIssuer } from '../../src/relay/testing.ts'
import { peer, portRange, until } from './helpers.ts'

const BIN = join(import.meta.dir, '..', '..', 'bin', 'lanrage')

describe('lanrage serve with the relay', () => {
  test('relay takes its port from settings, registers, knows the ticket key, answers STUN; SIGTERM stops both', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lrr-serve-'))
    const relayPort = 20000 + Math.floor(Math.random() * 9000)
    // The relay's main port comes from the server's settings database (serve.relay_port), not from a flag.
    const set = Bun.spawnSync([BIN, 'settings', 'set', 'serve.relay_port', String(relayPort), '--db', join(dir, 'c.db')])
    expect(set.exitCode).toBe(0)
    const proc = Bun.spawn(
      [BIN, 'serve', '--host', '127.0.0.1', '--port', '0', '--db', join(dir, 'c.db'), '--relay-ports', portRange()],
      { stdout: 'pipe', stderr: 'pipe', env: { ...process.env, LANRAGE_HOME: dir } },
    )
    const killer = setTimeout(() => proc.kill('SIGKILL'), 20_000)
    let err = ''
    const reader = (async () => {
      for await (const chunk of proc.stderr) err += new TextDecoder().decode(chunk)
    })()
    const p = await peer()
    try {
      expect(await until(() => err.includes('registered with control server'), 10_000)).toBe(true)
      const url = /control server listening url=(\S+)/.exec(err)![1]!
      const health = (await (await fetch(url + '/')).json()) as { relays: number }
      expect(health.relays).toBe(1)
      p.send(encodeBindingRequest(), relayPort)
      expect(await until(() => p.got.length > 0)).toBe(true)
      expect(decodeBindingResponse(p.got[0]!.buf)).toMatchObject({ ok: true, mapped: { address: '127.0.0.1', port: p.port } })
      // A ticket for this relay from some other key: refused as bad_ticket (not no_control_key), which shows the
      // relay holds the control key.
      const relayId = /relay listening .*relay_id=([0-9a-f]{16})/.exec(err)![1]!
      const stranger = createTicketIssuer(relayId).session()
      expect((await allocate({ host: '127.0.0.1', port: relayPort }, stranger.ticketA)).status).toBe('bad_ticket')
      proc.kill('SIGTERM')
      expect(await proc.exited).toBe(0)
      await reader
      expect(err).toContain('relay stopped')
      expect(err).toContain('control server stopped')
    } finally {
      clearTimeout(killer)
      p.close()
      proc.kill('SIGKILL')
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
