import { describe, expect, test } from 'bun:test'
import { closest, didYouMean, editDistance } from './suggest.ts'

describe('did you mean', () => {
  test('edit distance counts insertions, deletions, substitutions and swaps', () => {
    expect(editDistance('serve', 'serve')).toBe(0)
    expect(editDistance('serv', 'serve')).toBe(1)
    expect(editDistance('sevre', 'serve')).toBe(1)
    expect(editDistance('statsu', 'status')).toBe(1)
    expect(editDistance('relya', 'relay')).toBe(1)
    expect(editDistance('abc', 'xyz')).toBe(3)
  })
  const commands = ['serve', 'control', 'relay', 'keygen', 'nat', 'pubkey', 'up', 'down', 'status', 'settings', 'version']
  test('close typos are suggested, unrelated words are not', () => {
    expect(closest('sevre', commands)).toBe('serve')
    expect(closest('stauts', commands)).toBe('status')
    expect(closest('setting', commands)).toBe('settings')
    expect(closest('contorl', commands)).toBe('control')
    expect(closest('frobnicate', commands)).toBeUndefined()
    expect(closest('xy', commands)).toBeUndefined()
  })
  test('a prefix of exactly one candidate is suggested', () => {
    expect(closest('key', commands)).toBe('keygen')
    expect(closest('s', commands)).toBeUndefined()
  })
  test('the phrase to append', () => {
    expect(didYouMean('prot', ['port', 'host'], (f) => `--${f}`)).toBe(' (did you mean --port?)')
    expect(didYouMean('zzzz', ['port', 'host'])).toBe('')
  })
})
