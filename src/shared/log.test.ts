import { afterEach, describe, expect, test } from 'bun:test'
import { configureLogging, createLogger, formatJson, formatLine, loggingSettings, redactText, REDACTED } from './log.ts'

const at = new Date('2026-11-26T06:40:00.000Z')

describe('log lines', () => {
  test('text: time, level, component, message, key=value fields', () => {
    expect(formatLine('info', 'relay', 'session opened', { id: 3, port: 52001, name: 'a b' }, at)).toBe(
      '2026-11-26T06:40:00.000Z INFO  relay: session opened id=3 port=52001 name="a b"',
    )
  })
  test('json: one object with time, level, component, message and the fields', () => {
    const line = formatJson('warn', 'control/http', 'request', { method: 'GET', status: 404, error: new Error('boom'), none: undefined }, at)
    expect(line).not.toContain('\n')
    expect(JSON.parse(line)).toEqual({ time: '2026-11-26T06:40:00.000Z', level: 'warn', component: 'control/http', message: 'request', method: 'GET', status: 404, error: 'boom' })
  })
  test('json: a field named like a core key does not overwrite it', () => {
    expect(JSON.parse(formatJson('info', 'x', 'm', { level: 'forged', message: 'forged' }, at))).toMatchObject({ level: 'info', message: 'm', level_: 'forged', message_: 'forged' })
  })
  test('network text cannot drive the terminal in either format', () => {
    const evil = 'name\x1b[2J\u202e\r'
    expect(formatLine('info', 'agent', evil, { name: evil }, at)).not.toMatch(/[\x1b\u202e\r]/)
    const json = formatJson('info', 'agent', evil, { name: evil }, at)
    expect(json).not.toMatch(/[\x1b\u202e\r]/)
    expect(JSON.parse(json).name).toBe(evil)
  })
})

describe('secrets never reach a line', () => {
  const token = 'q7H2vV1m0pZ8Rk3bXyTn5LwQe9Ua4Cd6Sf1Gh2Jk3Lm'
  test('credential-named fields are redacted whatever their value; counts are kept', () => {
    const f = { token, relay_secret: 's3cret', relaySecret: 's3cret', password: 'pw', authorization: `Bearer ${token}`, proof: 'p', private_key: 'k', ticket_checks: 5 }
    for (const line of [formatLine('info', 'x', 'm', f, at), formatJson('info', 'x', 'm', f, at)]) {
      expect(line).not.toContain(token)
      expect(line).not.toContain('s3cret')
      expect(line).toContain(REDACTED)
      expect(line).toContain('5')
    }
  })
  test('tokens inside text: Bearer, ?token= and the bearer. subprotocol', () => {
    expect(redactText(`GET /ws?token=${token}&x=1`)).toBe(`GET /ws?token=${REDACTED}&x=1`)
    expect(redactText(`Authorization: Bearer ${token}`)).toBe(`Authorization: Bearer ${REDACTED}`)
    expect(redactText(`lanrage, bearer.${token}`)).toBe(`lanrage, bearer.${REDACTED}`)
    expect(redactText('Authorization header must be "Bearer <token>"')).toBe('Authorization header must be "Bearer <token>"')
    const nested = { url: `http://h/ws?token=${token}`, headers: { authorization: `Bearer ${token}` } }
    for (const line of [formatLine('error', 'x', `failed ws?token=${token}`, { nested }, at), formatJson('error', 'x', `failed ws?token=${token}`, { nested }, at)])
      expect(line).not.toContain(token)
  })
})

describe('process-wide level and format', () => {
  afterEach(() => configureLogging({ level: 'info', format: 'text' }))
  test('loggers without their own settings follow configureLogging, even ones made before', () => {
    const lines: string[] = []
    configureLogging({ level: 'info', format: 'text', write: (l) => lines.push(l) })
    const log = createLogger('c')
    log.debug('hidden')
    expect(log.enabled('debug')).toBe(false)
    configureLogging({ level: 'debug', format: 'json' })
    expect(loggingSettings()).toEqual({ level: 'debug', format: 'json' })
    log.debug('shown', { a: 1 })
    log.child('sub').info('child')
    expect(lines.map((l) => JSON.parse(l))).toMatchObject([
      { level: 'debug', component: 'c', message: 'shown', a: 1 },
      { level: 'info', component: 'c/sub', message: 'child' },
    ])
    configureLogging({ write: (l) => process.stderr.write(l + '\n') })
  })
  test('a logger with its own level ignores the process-wide one', () => {
    const lines: string[] = []
    const log = createLogger('c', 'error', (l) => lines.push(l))
    configureLogging({ level: 'debug' })
    log.warn('no')
    log.error('yes')
    expect(lines).toHaveLength(1)
  })
})
