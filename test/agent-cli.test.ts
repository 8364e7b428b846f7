// The agent's commands as a user meets them without a running agent or server: clear messages, right exit codes.
import { describe, expect, test } from 'bun:test'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { lanrage } from './cli.test.ts'

const home = () => mkdtempSync(join(tmpdir(), 'lanrage-agent-cli-'))

describe('lanrage up / status / down without an agent', () => {
  test('up needs exactly one of --create and --join', () => {
    const env = { LANRAGE_HOME: home() }
    for (const args of [[], ['--create', 'x', '--join', '0123456789ab']]) {
      const r = lanrage(['up', ...args], env)
      expect(r.code).toBe(1)
      expect(r.err).toContain('lanrage up: give exactly one of --create NAME or --join PARTY_ID (USAGE)')
    }
  })

  test('up refuses a malformed party id and interface name before touching anything', () => {
    const r = lanrage(['up', '--join', 'PARTY', '--interface', 'a/b'], { LANRAGE_HOME: home() })
    expect(r.code).toBe(2)
    expect(r.err).toContain('--join: Expected string to match')
    expect(r.err).toContain('--interface: Expected string to match')
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
