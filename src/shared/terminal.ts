/**
 * Text from the network (party and peer names, ids, endpoints, server error messages) printed on a terminal.
 * Whoever controls such a string must not control the terminal: ESC starts escape sequences (clear the screen,
 * move the cursor, set the window title, OSC 8 links), BEL rings, 0x9B is a one-byte CSI on terminals that honour
 * C1 controls, CR and backspace overwrite what was printed, and the bidi embeddings, overrides and isolates
 * reorder what the reader sees (the "Trojan Source" trick, CVE-2021-42574). Commands print every such string through
 * `safeText` (plain lines) or `safeJson` (--json output).
 */

/**
 * Controls (Unicode Cc: C0, DEL, C1), format characters (Cf: bidi marks, embeddings, overrides and isolates,
 * zero-width and invisible characters, the Unicode tag block) and the line and paragraph separators. Zero width
 * joiner (U+200D) stays: emoji sequences such as 👨‍👩‍👧 are built with it and it moves or hides nothing.
 */
const UNSAFE = /(?!\u200d)[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu
/** The same characters less the ones JSON.stringify already escapes (C0 controls, RFC 8259 §7). */
const UNSAFE_IN_JSON = /(?![\u0000-\u001f\u200d])[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu

const hex = (n: number, width: number) => n.toString(16).padStart(width, '0')

/**
 * `s` with every unsafe character written as a visible escape: `\x1b` below U+0100, `\u{202e}` above, and the
 * backslash itself as `\\`, so that the printed text is unambiguous (a name that contains the four characters
 * `\x07` is told apart from one that contains BEL). Printable text, emoji included, passes unchanged.
 */
export function safeText(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(UNSAFE, (c) => {
    const cp = c.codePointAt(0)!
    return cp < 0x100 ? `\\x${hex(cp, 2)}` : `\\u{${hex(cp, 4)}}`
  })
}

/**
 * JSON.stringify whose output is safe on a terminal and still the same JSON: every unsafe character that
 * JSON.stringify leaves raw is written as a `\uXXXX` escape (two for a character beyond the BMP), which any JSON
 * parser reads back as the original character.
 */
export function safeJson(value: unknown, space?: number): string {
  const json = JSON.stringify(value, null, space) ?? 'null'
  return json.replace(UNSAFE_IN_JSON, (c) => {
    let out = ''
    for (let i = 0; i < c.length; i++) out += `\\u${hex(c.charCodeAt(i), 4)}`
    return out
  })
}
