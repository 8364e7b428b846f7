import { afterEach, describe, expect, test } from 'bun:test'
import { openDatabase, type OpenDb } from './client.ts'
import { parseTyped, SettingsError, SettingsStore } from './settings.ts'

let open: OpenDb | undefined
afterEach(() => open?.close())
const store = () => new SettingsStore((open = openDatabase(':memory:')).db)

describe('SettingsStore', () => {
  test.each([
    ['string', 'hello'],
    ['empty string', ''],
    ['int', 51820],
    ['negative int', -3],
    ['float', 0.25],
    ['bool true', true],
    ['bool false', false],
    ['null', null],
    ['json object', { a: [1, 'x', null], b: { c: true } }],
    ['json array', [1, 2, 3]],
  ] as const)('round trip: %s', (_name, value) => {
    const s = store()
    s.set('k.one', value as never)
    expect(s.get('k.one')).toEqual(value as never)
  })

  test('int and float keep their types; absent is undefined', () => {
    const s = store()
    expect(s.set('a', 3).type).toBe('int')
    expect(s.set('b', 3.5).type).toBe('float')
    expect(s.set('c', 3, 'float').type).toBe('float')
    expect(s.get('missing')).toBeUndefined()
  })

  test('list filters by prefix and is sorted; delete removes', () => {
    const s = store()
    s.set('relay.port', 1)
    s.set('control.port', 2)
    s.set('relay.host', 'x')
    expect(s.list('relay.').map((r) => r.key)).toEqual(['relay.host', 'relay.port'])
    expect(s.delete('relay.host')).toBe(true)
    expect(s.delete('relay.host')).toBe(false)
    expect(s.list().map((r) => r.key)).toEqual(['control.port', 'relay.port'])
  })

  test('bad keys and values give clear errors', () => {
    const s = store()
    expect(() => s.set('Bad Key', 1)).toThrow(/setting key "Bad Key" must match/)
    expect(() => s.set('x', Number.NaN)).toThrow(/not a finite number/)
    expect(() => s.set('x', 'str', 'int')).toThrow('value for x is a string, not a int')
  })
})

describe('parseTyped', () => {
  test('infers types from text', () => {
    expect(parseTyped('true')).toEqual({ value: true, type: 'bool' })
    expect(parseTyped('42')).toEqual({ value: 42, type: 'int' })
    expect(parseTyped('-1.5')).toEqual({ value: -1.5, type: 'float' })
    expect(parseTyped('{"a":1}')).toEqual({ value: { a: 1 }, type: 'json' })
    expect(parseTyped('eu-west')).toEqual({ value: 'eu-west', type: 'string' })
    expect(parseTyped('42', 'string')).toEqual({ value: '42', type: 'string' })
  })

  test('rejects values that do not fit the asked type', () => {
    const err = (f: () => unknown) => {
      try {
        f()
      } catch (e) {
        expect(e).toBeInstanceOf(SettingsError)
        return (e as SettingsError).message
      }
      throw new Error('expected SettingsError')
    }
    expect(err(() => parseTyped('abc', 'int'))).toBe('value "abc" is not an integer')
    expect(err(() => parseTyped('1.5', 'int'))).toBe('value "1.5" is not an integer')
    expect(err(() => parseTyped('maybe', 'bool'))).toBe('value "maybe" is not a boolean (true/false)')
    expect(err(() => parseTyped('{x', 'json'))).toMatch(/^value "\{x" is not valid JSON/)
    expect(err(() => parseTyped('1', 'date' as never))).toMatch(/unknown type "date"/)
  })
})
