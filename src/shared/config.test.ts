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
    expect(p.config).toEqual({ host: '0.0.0.0', port: 51820, verbose: false, regions: [], db: './data/x.db', mode: 'a', logLevel: 'info', logFormat: 'text' })
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
    expect(ps).toContain('--port must be an integer from 0 to 65535 (got "abc")')
    expect(ps).toContain('--mode must be one of a, b (got "c")')
    const envBad = problems(() => parseCommand(spec, { argv: [], env: { LANRAGE_PORT: '70000' } }))
    expect(envBad).toEqual(['LANRAGE_PORT must be an integer from 0 to 65535 (got 70000)'])
  })

  test('problems are in words: what is allowed, never the validation library\'s phrases', () => {
    const words = Type.Object({
      stun: Type.Array(Type.String(), { minItems: 1, description: 'STUN servers host[:port]' }),
      rate: Type.Number({ exclusiveMinimum: 0, default: 1 }),
      name: Type.String({ minLength: 1, maxLength: 64, default: 'x' }),
      id: Type.String({ pattern: '^[0-9a-f]{12}$', expected: '12 hex digits', default: '000000000000' }),
      on: Type.Boolean({ default: false }),
    })
    const s2 = { name: 'w', summary: 'words', schema: words } satisfies CommandSpec<any>
    const ps = problems(() => parseCommand(s2, { argv: ['--rate', '0', '--name=', '--id', 'XYZ', '--on=maybe', '--log-level', 'loud', '--log-format', 'xml'] }))
    expect(ps).toEqual([
      '--stun is required: STUN servers host[:port]',
      '--rate must be a number greater than 0 (got 0)',
      '--name must be text of 1 to 64 characters (got "")',
      '--id must be 12 hex digits (got "XYZ")',
      '--on must be true or false (got "maybe")',
      '--log-level must be one of debug, info, warn, error, silent (got "loud")',
      '--log-format must be one of text, json (got "xml")',
    ])
    for (const p of ps) expect(p).not.toMatch(/Expected|union/)
  })

  test('numbers are read strictly: no silent truncation of 1.5 or 1e3 to an integer', () => {
    expect(problems(() => parseCommand(spec, { argv: ['--port', '1.5'] }))).toEqual(['--port must be an integer from 0 to 65535 (got "1.5")'])
    expect(problems(() => parseCommand(spec, { argv: ['--port', '1e3'] }))).toEqual(['--port must be an integer from 0 to 65535 (got "1e3")'])
    expect(problems(() => parseCommand(spec, { argv: ['--port', '0x10'] }))).toEqual(['--port must be an integer from 0 to 65535 (got "0x10")'])
    const p = parseCommand(spec, { argv: ['--port', ' 80 '] })
    if (p.help) throw new Error('unexpected help')
    expect(p.config.port).toBe(80)
  })

  test('a mistyped option gets a suggestion', () => {
    expect(problems(() => parseCommand(spec, { argv: ['--prot', '1'] }))[0]).toBe('unknown option --prot (did you mean --port?)')
    expect(problems(() => parseCommand(spec, { argv: ['--log-levle', 'debug'] }))[0]).toBe('unknown option --log-levle (did you mean --log-level?)')
  })

  test('every command takes --log-level and --log-format, from env and settings too', () => {
    const p = parseCommand(spec, { argv: ['--log-format', 'json'], env: { LANRAGE_LOG_LEVEL: 'debug' } })
    if (p.help) throw new Error('unexpected help')
    expect(p.config).toMatchObject({ logLevel: 'debug', logFormat: 'json' })
    const q = parseCommand(spec, { argv: [], settings: (k) => (k === 'relay.log_level' ? 'warn' : undefined) })
    if (q.help) throw new Error('unexpected help')
    expect(q.config.logLevel).toBe('warn')
    expect(problems(() => parseCommand(spec, { argv: [], env: { LANRAGE_LOG_LEVEL: 'verbose' } }))).toEqual([
      'LANRAGE_LOG_LEVEL must be one of debug, info, warn, error, silent (got "verbose")',
    ])
    expect(renderHelp(spec)).toContain('--log-level <debug|info|warn|error|silent>')
    expect(renderHelp(spec)).toContain('--log-format <text|json>')
  })

  test('a command that reads no settings neither reads nor lists them', () => {
    const none = { ...spec, settingsFrom: false as const }
    const p = parseCommand(none, { argv: [], settings: () => 7 })
    if (p.help) throw new Error('unexpected help')
    expect(p.config.port).toBe(51820)
    expect(renderHelp(none)).not.toContain('setting relay.')
    expect(renderHelp(none)).toContain('Options (flag > env > default)')
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
