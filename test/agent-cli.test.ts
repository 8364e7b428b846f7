// The agent's commands as a user meets them without a running agent or server: clear messages, right exit codes.
import { describe, expect, test } from 'bun:test'
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { lanrage } from './cli.test.ts'
import { safeText } from '../src/shared/terminal.ts'
import { needs } from './needs.ts'

const home = () => mkdtempSync(join(tmpdir(), 'lanrage-agent-cli-'))

describe('lanrage up / status / down without an agent', () => {
  test('up takes at most one of --create and --join, and with --no-api one is needed', () => {
    const env = { LANRAGE_HOME: home() }
    const both = lanrage(['up', '--create', 'x', '--join', '0123456789ab'], env)
    expect(both.code).toBe(2)
    expect(both.err).toContain('lanrage up: give --create NAME or --join PARTY_ID, not both\nSee: lanrage up --help')
    const neither = lanrage(['up', '--no-api'], env)
    expect(neither.code).toBe(2)
    expect(neither.err).toContain('lanrage up: with --no-api, give --create NAME or --join PARTY_ID (without them the party is chosen on the page)\nSee: lanrage up --help')
  })

  // up checks the machine (root, ip, wg, WireGuard) before it binds anything.
  test.skipIf(!!needs('root', 'ip', 'wg', 'wireguard-go'))('up: a busy local API port stops it at start, in one line naming --api-port', async () => {
    const held = Bun.serve({ hostname: '127.0.0.1', port: 0, reusePort: false, fetch: () => new Response('another program') })
    try {
      const h = home()
      const r = lanrage(['up', '--control', 'http://127.0.0.1:1', '--api-port', String(held.port)], { LANRAGE_HOME: h })
      expect(r.code).toBe(1)
      expect(r.err.trim()).toBe(`lanrage up: local API: port ${held.port}/tcp is already in use; choose another with --api-port (PORT_IN_USE)`)
      // Nothing registered, no status file: it stopped before anything else.
      expect(lanrage(['status'], { LANRAGE_HOME: h }).code).toBe(1)
    } finally {
      held.stop(true)
    }
  })

  test('up refuses a malformed party id and interface name before touching anything', () => {
    const r = lanrage(['up', '--join', 'PARTY', '--interface', 'a/b'], { LANRAGE_HOME: home() })
    expect(r.code).toBe(2)
    expect(r.err).toContain('--join must be 12 hex digits (got "PARTY")')
    expect(r.err).toContain('--interface must be 1 to 15 letters, digits, _ . or - (got "a/b")')
  })

  test('up refuses a bad --control list in one line, before creating a key', () => {
    const h = home()
    for (const [control, msg] of [
      ['http://127.0.0.1:1,ftp://x', 'lanrage up: control URL "ftp://x": expected http://, https://, ws:// or wss:// and a host (BAD_CONTROL_URL)'],
      ['http://127.0.0.1:1, http://127.0.0.1:1/', 'lanrage up: control URL "http://127.0.0.1:1/" is given twice (BAD_CONTROL_URL)'],
      [' , ', 'lanrage up: no control URL given (e.g. https://control.example:8667) (BAD_CONTROL_URL)'],
    ]) {
      const r = lanrage(['up', '--control', control!, '--join', '0123456789ab'], { LANRAGE_HOME: h })
      expect({ code: r.code, err: r.err }).toEqual({ code: 1, err: msg + '\n' })
    }
    expect(existsSync(join(h, 'private.key'))).toBe(false)
  })

  test('status and down say that no agent runs', () => {
    const env = { LANRAGE_HOME: home() }
    expect(lanrage(['status'], env)).toMatchObject({ code: 1, err: 'lanrage status: no agent is running\n' })
    expect(JSON.parse(lanrage(['status', '--json'], env).out)).toEqual({ running: false, message: 'no agent is running' })
    expect(lanrage(['down'], env)).toMatchObject({ code: 1, err: 'lanrage down: no agent is running\n' })
  })

  test('a status file left by a dead agent is reported as stale', () => {
    const h = home()
    // pid 2^22+1 is above Linux's pid_max ceiling, so no process has it.
    writeFileSync(join(h, 'agent.json'), JSON.stringify({ pid: 4194305, interface: 'lanrage0', peers: [] }))
    const r = lanrage(['status'], { LANRAGE_HOME: h })
    expect(r.code).toBe(1)
    expect(r.err).toContain('the agent (pid 4194305) is not running; stale')
  })
})

// Names, ids, endpoints and server messages reach the terminal only escaped (ESC, BEL, C1 controls, bidi overrides).
describe('lanrage prints what came from the network escaped', () => {
  const EVIL = 'pwn\x1b[2J\x1b]0;title\x07\x9b31m\u202eexe.txt\r'
  const RAW = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/
  const BIN = join(import.meta.dir, '..', 'bin', 'lanrage')

  /** Runs the real command without blocking this process, so a server in it can answer. */
  async function run(args: string[], env: Record<string, string>) {
    const p = Bun.spawn([BIN, ...args], { env: { ...process.env, ...env }, stdout: 'pipe', stderr: 'pipe', stdin: 'ignore' })
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited])
    return { code, out, err }
  }

  function hostileStatus(h: string, extra: Record<string, unknown> = {}) {
    const status = {
      pid: process.pid, // alive: this test process
      interface: 'lanrage0',
      listen_port: 51820,
      party: { party_id: 'ab\x1b[31m', name: EVIL, host_id: 'h\x07', subnet: '10.66.0.0/16' },
      self: { peer_id: '0011223344556677', virtual_ip: '10.66.0.1', public_endpoint: '\x1b[1A1.2.3.4:5', nat_type: 'full_cone' },
      peers: [{ peer_id: EVIL, virtual_ip: '10.66.0.2\x1b[K', public_key: 'k', nat_type: 'symmetric', public_endpoint: null, endpoint: '\u202e1.2.3.4:9', path: 'relay', latest_handshake: null }],
      updated_at: new Date().toISOString(),
      control: 'http://127.0.0.1:1',
      ...extra,
    }
    writeFileSync(join(h, 'agent.json'), JSON.stringify(status))
  }

  test('status: hostile party and peer names are shown escaped, nothing raw reaches the terminal', () => {
    const h = home()
    hostileStatus(h)
    const r = lanrage(['status'], { LANRAGE_HOME: h })
    expect(r.code).toBe(0)
    expect(r.out).not.toMatch(RAW)
    expect(r.out).toContain(`(${safeText(EVIL)})`)
    expect(r.out).toContain('pwn\\x1b[2J\\x1b]0;title\\x07\\x9b31m\\u{202e}exe.txt\\x0d')
    expect(r.out).toContain('10.66.0.2\\x1b[K')
  })

  test('status --json: the same values, as JSON escapes only', () => {
    const h = home()
    hostileStatus(h)
    const r = lanrage(['status', '--json'], { LANRAGE_HOME: h })
    expect(r.code).toBe(0)
    expect(r.out.replaceAll('\n', '')).not.toMatch(RAW)
    const j = JSON.parse(r.out)
    expect(j.party.name).toBe(EVIL)
    expect(j.peers[0].peer_id).toBe(EVIL)
  })

  // `up` talks to the server only on a machine where it could create the interface (src/client/wireguard/preflight.ts).
  test.skipIf(!!needs('root', 'ip', 'wg', 'wireguard-go'))("up and down: a hostile control server's error text is printed escaped, on one line", async () => {
    const hostile = { error: { code: 'NOPE\x1b[2J', message: `denied ${EVIL}\nlanrage up: connected (OK)` } }
    const server = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => Response.json(hostile, { status: 403 }) })
    try {
      const control = `http://127.0.0.1:${server.port}`
      const up = await run(['up', '--control', control, '--join', '0123456789ab'], { LANRAGE_HOME: home() })
      expect(up.code).toBe(1)
      expect(up.err).not.toMatch(RAW)
      const line = up.err.split('\n').find((l) => l.startsWith('lanrage up: '))!
      expect(line).toContain(`denied ${safeText(EVIL)}\\x0alanrage up: connected (OK)`)

      // down after an agent that died: it leaves the party itself and reports the server's answer.
      const h = home()
      hostileStatus(h, { pid: 4194305, interface: `lrx${process.pid % 100000}`, party: { party_id: '0123456789ab', name: 'n', host_id: 'h', subnet: '10.66.0.0/16' }, control })
      const down = await run(['down'], { LANRAGE_HOME: h })
      expect(down.code).toBe(0)
      expect(down.out + down.err).not.toMatch(RAW)
      expect(down.out).toContain(`party 0123456789ab: not left: `)
      expect(down.out).toContain(safeText(`denied ${EVIL}`))
    } finally {
      server.stop(true)
    }
  }, 20_000)
})
