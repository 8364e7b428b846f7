import { describe, expect, test } from 'bun:test'
import { Type } from '@sinclair/typebox'
import { parseCommand, renderHelp, type CommandSpec } from './config.ts'
import { ConfigError } from './errors.ts'

const spec = {
  name: 'relay',
  summary: 'test relay',
  schema: Type.Object({
    host: Type.String({ default: '0.0.0.0', description: 'bind address' }),
    port: Type.Integer({ minimum: 0, maximum: 65535, default: 51820, description: 'main UDP port' }),
    relaySecret: Type.Optional(Type.String({ description: 'shared secret' })),
    verbose: Type.Boolean({ default: false }),
    regions: Type.Array(Type.String(), { default: [] }),
    db: Type.String({ default: './data/x.db', settings: false }),
    mode: Type.Union([Type.Literal('a'), Type.Literal('b')], { default: 'a' }),
  }),
} satisfies CommandSpec<any>

function problems(fn: () => unknown): string[] {
  try {
    fn()
  } catch (e) {
    if (e instanceof ConfigError) return e.problems
    throw e
  }
  throw new Error('expected a ConfigError')
}

describe('parseCommand', () => {
  test('defaults when nothing is given', () => {
    const p = parseCommand(spec, { argv: [] })
    if (p.help) throw new Error('unexpected help')
    expect(p.config).toEqual({ host: '0.0.0.0', port: 51820, verbose: false, regions: [], db: './data/x.db', mode: 'a' })
    expect(p.sources.port).toBe('default')
  })

  test('precedence: flag > env > settings > default', () => {
    const settings = (k: string) => ({ 'relay.port': 3, 'relay.host': '10.0.0.1', 'relay.relay_secret': 's3' })[k]
    const env = { LANRAGE_PORT: '2', LANRAGE_HOST: '' }
    const p = parseCommand(spec, { argv: ['--port', '1'], env, settings })
    if (p.help) throw new Error('unexpected help')
    expect(p.config.port).toBe(1)
    expect(p.config.host).toBe('10.0.0.1') // empty env counts as unset
    expect(p.config.relaySecret).toBe('s3')
    const p2 = parseCommand(spec, { argv: [], env, settings })
    if (p2.help) throw new Error('unexpected help')
    expect(p2.config.port).toBe(2)
    expect(p2.sources).toMatchObject({ port: 'env', host: 'settings', verbose: 'default' })
  })

  test('flag forms: --k=v, --k v, booleans, --no-, arrays, positionals, --', () => {
    const p = parseCommand(spec, { argv: ['get', '--host=::1', '--verbose', '--regions', 'eu,us', 'x', '--', '--port'] })
    if (p.help) throw new Error('unexpected help')
    expect(p.config).toMatchObject({ host: '::1', verbose: true, regions: ['eu', 'us'] })
    expect(p.positionals).toEqual(['get', 'x', '--port'])
    const q = parseCommand(spec, { argv: ['--verbose', '--no-verbose'] })
    if (q.help) throw new Error('unexpected help')
    expect(q.config.verbose).toBe(false)
  })

  test('settings:false keys ignore the settings database', () => {
    const p = parseCommand(spec, { argv: [], settings: (k) => (k === 'relay.db' ? '/evil' : undefined) })
    if (p.help) throw new Error('unexpected help')
    expect(p.config.db).toBe('./data/x.db')
  })

  test('every problem is reported at once, naming its source', () => {
    const ps = problems(() => parseCommand(spec, { argv: ['--port', 'abc', '--bogus', '--mode=c'], env: { LANRAGE_HOST: 'ok' } }))
    expect(ps).toContain('unknown option --bogus')
    expect(ps.some((p) => p.startsWith('--port:') && p.includes('"abc"'))).toBe(true)
    expect(ps.some((p) => p.startsWith('--mode:'))).toBe(true)
    const envBad = problems(() => parseCommand(spec, { argv: [], env: { LANRAGE_PORT: '70000' } }))
    expect(envBad).toEqual(['LANRAGE_PORT: Expected integer to be less or equal to 65535 (got 70000)'])
  })

  test('a value-taking flag at the end is a problem', () => {
    expect(problems(() => parseCommand(spec, { argv: ['--host'] }))).toEqual(['option --host needs a value'])
  })

  test('--help renders every option with env and settings names', () => {
    const p = parseCommand(spec, { argv: ['--port', 'junk', '-h'] })
    expect(p.help).toBe(true)
    const text = renderHelp(spec)
    expect(text).toContain('Usage: lanrage relay [options]')
    expect(text).toContain('--relay-secret <string>')
    expect(text).toContain('env LANRAGE_RELAY_SECRET')
    expect(text).toContain('setting relay.relay_secret')
    expect(text).toContain('--mode <a|b>')
    expect(text).not.toContain('setting relay.db')
  })
})
