import { describe, expect, test } from 'bun:test'
import { safeJson, safeText } from './terminal.ts'

/** Code points that must never reach a terminal raw. */
const RAW_UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200b\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\u{e0000}-\u{e007f}]/u

const HOSTILE = [
  { name: 'clear screen', s: 'evil\x1b[2J\x1b[H', want: 'evil\\x1b[2J\\x1b[H' },
  { name: 'bell', s: 'ding\x07', want: 'ding\\x07' },
  { name: 'window title (OSC 0, ST)', s: '\x1b]0;pwned\x1b\\', want: '\\x1b]0;pwned\\x1b\\\\' },
  { name: 'C1 CSI', s: 'a\x9b31mred', want: 'a\\x9b31mred' },
  { name: 'carriage return overwrite', s: 'ok\rFAKE', want: 'ok\\x0dFAKE' },
  { name: 'newline and tab', s: 'a\nb\tc', want: 'a\\x0ab\\x09c' },
  { name: 'backspace and DEL', s: 'x\b\x7f', want: 'x\\x08\\x7f' },
  { name: 'bidi override (Trojan Source)', s: 'user\u202Egnp.exe', want: 'user\\u{202e}gnp.exe' },
  { name: 'bidi isolates and marks', s: '\u2066a\u2069\u200f\u061c', want: '\\u{2066}a\\u{2069}\\u{200f}\\u{061c}' },
  { name: 'line separator', s: 'a\u2028b', want: 'a\\u{2028}b' },
  { name: 'invisible tag characters', s: 'hi\u{E0041}\u{E0042}', want: 'hi\\u{e0041}\\u{e0042}' },
  { name: 'zero width space and BOM', s: 'a\u200bb\ufeff', want: 'a\\u{200b}b\\u{feff}' },
  { name: 'a literal backslash escape stays distinguishable', s: 'a\\x07', want: 'a\\\\x07' },
]

describe('safeText', () => {
  test.each(HOSTILE)('$name', ({ s, want }) => {
    const out = safeText(s)
    expect(out).toBe(want)
    expect(out).not.toMatch(RAW_UNSAFE)
  })

  test('printable text passes unchanged: accents, CJK, emoji sequences with zero width joiners', () => {
    for (const s of ['Ça va? ñ ü', '日本語のパーティー', 'team 👨‍👩‍👧 🏳️‍🌈 #1', '10.66.0.2:51820', '[2001:db8::1]:3478']) expect(safeText(s)).toBe(s)
  })
})

describe('safeJson', () => {
  test.each(HOSTILE)('$name: still the same JSON value, nothing unsafe in the text', ({ s }) => {
    const value = { name: s, nested: [s, { s }] }
    for (const space of [undefined, 2]) {
      const out = safeJson(value, space)
      // Indented output has its own line breaks between members; nothing else raw.
      expect(space ? out.replaceAll('\n', '') : out).not.toMatch(RAW_UNSAFE)
      expect(JSON.parse(out)).toEqual(value)
    }
  })

  test('printable text is not escaped; undefined is null', () => {
    expect(safeJson({ n: 'team 👨‍👩‍👧 日本' })).toBe('{"n":"team 👨‍👩‍👧 日本"}')
    expect(safeJson(undefined)).toBe('null')
  })
})
