/**
 * STUN messages (RFC 8489): just what LANrage needs — Binding requests and responses, XOR-MAPPED-ADDRESS,
 * FINGERPRINT, and MESSAGE-INTEGRITY (HMAC-SHA1, short-term key) so the RFC 5769 vectors round-trip byte for byte.
 * The relay answers Binding requests on its main port; the client's STUN client reuses this codec.
 *
 * Header (RFC 8489 §5), 20 bytes, big endian:
 *
 *   offset  size  field
 *   0       2     message type      top two bits zero; method + class bits (§5: C1 at 0x0100, C0 at 0x0010)
 *   2       2     message length    bytes after the header, a multiple of 4
 *   4       4     magic cookie      0x2112A442
 *   8       12    transaction id
 *   20      ...   attributes        type (2), length (2), value padded to 4 bytes (§14)
 *
 * Decoding never throws on wire input: it returns `{ ok: false, error }` and the caller drops and counts.
 */
import { hmac } from '@noble/hashes/hmac.js'
import { sha1 } from '@noble/hashes/legacy.js'

export const MAGIC_COOKIE = 0x2112a442
export const HEADER_LEN = 20
/** RFC 8489 §14.7: FINGERPRINT = CRC-32 of the message up to it, XORed with 0x5354554e ("STUN"). */
export const FINGERPRINT_XOR = 0x5354554e
/** RFC 8489 §14.5: HMAC-SHA1 output. */
export const INTEGRITY_LEN = 20

export const BINDING_REQUEST = 0x0001
export const BINDING_INDICATION = 0x0011
export const BINDING_SUCCESS = 0x0101
export const BINDING_ERROR = 0x0111

/** Attribute types (RFC 8489 §18.3). Below 0x8000: comprehension-required; above: comprehension-optional. */
export const ATTR = {
  MAPPED_ADDRESS: 0x0001,
  USERNAME: 0x0006,
  MESSAGE_INTEGRITY: 0x0008,
  ERROR_CODE: 0x0009,
  UNKNOWN_ATTRIBUTES: 0x000a,
  XOR_MAPPED_ADDRESS: 0x0020,
  SOFTWARE: 0x8022,
  FINGERPRINT: 0x8028,
} as const

export type Family = 'IPv4' | 'IPv6'
export interface AddrPort {
  address: string
  port: number
  family: Family
}

export interface StunAttribute {
  type: number
  value: Uint8Array
}
export interface StunMessage {
  type: number
  transactionId: Uint8Array // 12
  attributes: StunAttribute[]
  /** Byte offset of the MESSAGE-INTEGRITY attribute header, if present (for `checkIntegrity`). */
  integrityAt?: number
  /** True when a FINGERPRINT attribute was present (and valid: an invalid one fails decoding). */
  fingerprint: boolean
}

export type StunDecodeError = 'short' | 'not-stun' | 'bad-length' | 'bad-attribute' | 'bad-fingerprint'
export type StunResult = { ok: true; message: StunMessage } | { ok: false; error: StunDecodeError }

// --- CRC-32 (ISO 3309 / ITU-T V.42, the one RFC 8489 §14.7 names), table driven -------------------------
const CRC_TABLE = (() => {
  const t = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    t[n] = c >>> 0
  }
  return t
})()
export function crc32(b: Uint8Array): number {
  let c = 0xffffffff
  for (let i = 0; i < b.length; i++) c = CRC_TABLE[(c ^ b[i]!) & 0xff]! ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}

/**
 * Cheap prefilter (RFC 8489 §5 and §7.3): top two bits zero, the magic cookie, a length that is a multiple of 4
 * and matches the datagram. Lets the relay tell STUN from ALLOCATE and WireGuard with four reads.
 */
export function isStun(b: Uint8Array): boolean {
  if (b.length < HEADER_LEN || (b[0]! & 0xc0) !== 0) return false
  if (b[4] !== 0x21 || b[5] !== 0x12 || b[6] !== 0xa4 || b[7] !== 0x42) return false
  const len = (b[2]! << 8) | b[3]!
  return len % 4 === 0 && len + HEADER_LEN === b.length
}

export function decodeStun(b: Uint8Array): StunResult {
  if (b.length < HEADER_LEN) return { ok: false, error: 'short' }
  if (!isStun(b)) {
    const len = (b[2]! << 8) | b[3]!
    const cookieOk = b[4] === 0x21 && b[5] === 0x12 && b[6] === 0xa4 && b[7] === 0x42
    return { ok: false, error: (b[0]! & 0xc0) === 0 && cookieOk && len + HEADER_LEN !== b.length ? 'bad-length' : 'not-stun' }
  }
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength)
  const attributes: StunAttribute[] = []
  let integrityAt: number | undefined
  let fingerprint = false
  let off = HEADER_LEN
  while (off < b.length) {
    if (off + 4 > b.length) return { ok: false, error: 'bad-attribute' }
    const type = dv.getUint16(off)
    const len = dv.getUint16(off + 2)
    const end = off + 4 + len
    if (end > b.length) return { ok: false, error: 'bad-attribute' }
    if (fingerprint) return { ok: false, error: 'bad-fingerprint' } // §14.7: FINGERPRINT must be the last attribute
    if (type === ATTR.FINGERPRINT) {
      if (len !== 4) return { ok: false, error: 'bad-fingerprint' }
      if ((crc32(b.subarray(0, off)) ^ FINGERPRINT_XOR) >>> 0 !== dv.getUint32(off + 4)) return { ok: false, error: 'bad-fingerprint' }
      fingerprint = true
    }
    if (type === ATTR.MESSAGE_INTEGRITY && integrityAt === undefined) {
      if (len !== INTEGRITY_LEN) return { ok: false, error: 'bad-attribute' }
      integrityAt = off
    }
    attributes.push({ type, value: b.subarray(off + 4, end) })
    off = end + ((4 - (len % 4)) % 4)
  }
  if (off !== b.length) return { ok: false, error: 'bad-attribute' }
  return { ok: true, message: { type: dv.getUint16(0), transactionId: b.subarray(8, 20), attributes, integrityAt, fingerprint } }
}

export function getAttribute(m: StunMessage, type: number): Uint8Array | undefined {
  return m.attributes.find((a) => a.type === type)?.value
}

// --- Addresses -----------------------------------------------------------------------------------------------

/** Parses an IPv4 or IPv6 literal to 4 or 16 bytes; undefined when it is neither. */
export function parseIp(s: string): Uint8Array | undefined {
  if (s.includes('.') && !s.includes(':')) {
    const parts = s.split('.')
    if (parts.length !== 4) return undefined
    const out = new Uint8Array(4)
    for (let i = 0; i < 4; i++) {
      if (!/^\d{1,3}$/.test(parts[i]!)) return undefined
      const n = Number(parts[i])
      if (n > 255) return undefined
      out[i] = n
    }
    return out
  }
  if (!s.includes(':')) return undefined
  let text = s
  const lastColon = text.lastIndexOf(':')
  if (text.slice(lastColon + 1).includes('.')) {
    // Embedded IPv4 (RFC 4291 §2.2 form 3, e.g. ::ffff:192.0.2.1): rewrite it as two hex groups.
    const v4 = parseIp(text.slice(lastColon + 1))
    if (!v4) return undefined
    text = `${text.slice(0, lastColon + 1)}${((v4[0]! << 8) | v4[1]!).toString(16)}:${((v4[2]! << 8) | v4[3]!).toString(16)}`
  }
  const halves = text.split('::')
  if (halves.length > 2) return undefined
  const group = (h: string) => (h === '' ? [] : h.split(':'))
  const head = group(halves[0]!)
  const rest = halves.length === 2 ? group(halves[1]!) : []
  const words = [...head, ...rest]
  if (!words.every((w) => /^[0-9a-fA-F]{1,4}$/.test(w))) return undefined
  const total = halves.length === 2 ? 8 : words.length
  if (words.length > (halves.length === 2 ? 7 : 8) || total !== 8) return undefined
  const vals = [...head, ...Array(8 - words.length).fill('0'), ...rest].map((w) => parseInt(w, 16))
  const out = new Uint8Array(16)
  vals.forEach((v, i) => {
    out[2 * i] = v >> 8
    out[2 * i + 1] = v & 0xff
  })
  return out
}

/** Formats 4 or 16 address bytes; IPv6 in RFC 5952 form (lowercase, longest zero run as ::). */
export function formatIp(b: Uint8Array): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`
  const w: number[] = []
  for (let i = 0; i < 16; i += 2) w.push((b[i]! << 8) | b[i + 1]!)
  let best = -1
  let bestLen = 1
  for (let i = 0; i < 8; ) {
    if (w[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && w[j] === 0) j++
    if (j - i > bestLen) [best, bestLen] = [i, j - i]
    i = j
  }
  const hexes = w.map((x) => x.toString(16))
  if (best < 0) return hexes.join(':')
  return `${hexes.slice(0, best).join(':')}::${hexes.slice(best + bestLen).join(':')}`
}

/** Strips the IPv4-mapped IPv6 prefix Bun reports on dual-stack sockets ("::ffff:1.2.3.4" → "1.2.3.4"). */
export const unmapIp = (a: string) => (a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a)

/** RFC 8489 §14.2 XOR-MAPPED-ADDRESS value: family, port ^ cookie>>16, address ^ cookie (‖ transaction id). */
export function encodeXorAddress(a: AddrPort, transactionId: Uint8Array): Uint8Array {
  const ip = parseIp(unmapIp(a.address))
  if (!ip) throw new TypeError(`not an IP address: ${JSON.stringify(a.address)}`)
  const out = new Uint8Array(4 + ip.length)
  out[1] = ip.length === 4 ? 0x01 : 0x02
  const port = a.port ^ (MAGIC_COOKIE >>> 16)
  out[2] = port >> 8
  out[3] = port & 0xff
  const mask = xorMask(transactionId)
  for (let i = 0; i < ip.length; i++) out[4 + i] = ip[i]! ^ mask[i]!
  return out
}

export function decodeXorAddress(v: Uint8Array, transactionId: Uint8Array): AddrPort | undefined {
  return decodeAddress(v, transactionId)
}

/** RFC 8489 §14.1 MAPPED-ADDRESS (no XOR), for old servers. */
export function decodeMappedAddress(v: Uint8Array): AddrPort | undefined {
  return decodeAddress(v, undefined)
}

function xorMask(transactionId: Uint8Array): Uint8Array {
  const mask = new Uint8Array(16)
  new DataView(mask.buffer).setUint32(0, MAGIC_COOKIE)
  mask.set(transactionId.subarray(0, 12), 4)
  return mask
}

function decodeAddress(v: Uint8Array, transactionId: Uint8Array | undefined): AddrPort | undefined {
  if (v.length < 4) return undefined
  const family = v[1]
  const len = family === 0x01 ? 4 : family === 0x02 ? 16 : 0
  if (!len || v.length !== 4 + len) return undefined
  const mask = transactionId ? xorMask(transactionId) : new Uint8Array(16)
  const port = ((v[2]! << 8) | v[3]!) ^ (transactionId ? MAGIC_COOKIE >>> 16 : 0)
  const ip = new Uint8Array(len)
  for (let i = 0; i < len; i++) ip[i] = v[4 + i]! ^ mask[i]!
  return { address: formatIp(ip), port, family: len === 4 ? 'IPv4' : 'IPv6' }
}

/** The address a Binding success response reports: XOR-MAPPED-ADDRESS, else MAPPED-ADDRESS (RFC 3489 servers). */
export function mappedAddress(m: StunMessage): AddrPort | undefined {
  const x = getAttribute(m, ATTR.XOR_MAPPED_ADDRESS)
  if (x) return decodeXorAddress(x, m.transactionId)
  const p = getAttribute(m, ATTR.MAPPED_ADDRESS)
  return p ? decodeMappedAddress(p) : undefined
}

// --- Encoding ------------------------------------------------------------------------------------------------

export interface EncodeOptions {
  /** Append MESSAGE-INTEGRITY (HMAC-SHA1, RFC 8489 §14.5) keyed with this (short-term: the password bytes). */
  integrityKey?: Uint8Array
  /** Append FINGERPRINT (§14.7). */
  fingerprint?: boolean
  /** Padding byte value. RFC 8489 says zero; RFC 5769's vectors pad with spaces (0x20), so tests pass 0x20. */
  padByte?: number
}

export function encodeStun(m: { type: number; transactionId: Uint8Array; attributes: StunAttribute[] }, opts: EncodeOptions = {}): Uint8Array {
  if (m.transactionId.length !== 12) throw new TypeError('a STUN transaction id is 12 bytes')
  const padded = (n: number) => n + ((4 - (n % 4)) % 4)
  let size = HEADER_LEN
  for (const a of m.attributes) size += 4 + padded(a.value.length)
  if (opts.integrityKey) size += 4 + INTEGRITY_LEN
  if (opts.fingerprint) size += 8
  const out = new Uint8Array(size)
  const dv = new DataView(out.buffer)
  dv.setUint16(0, m.type)
  dv.setUint32(4, MAGIC_COOKIE)
  out.set(m.transactionId, 8)
  let off = HEADER_LEN
  for (const a of m.attributes) {
    dv.setUint16(off, a.type)
    dv.setUint16(off + 2, a.value.length)
    out.set(a.value, off + 4)
    out.fill(opts.padByte ?? 0, off + 4 + a.value.length, off + 4 + padded(a.value.length))
    off += 4 + padded(a.value.length)
  }
  if (opts.integrityKey) {
    // §14.5: the HMAC covers the message up to MESSAGE-INTEGRITY with the length field already counting it.
    dv.setUint16(2, off + 4 + INTEGRITY_LEN - HEADER_LEN)
    const mac = hmac(sha1, opts.integrityKey, out.subarray(0, off))
    dv.setUint16(off, ATTR.MESSAGE_INTEGRITY)
    dv.setUint16(off + 2, INTEGRITY_LEN)
    out.set(mac, off + 4)
    off += 4 + INTEGRITY_LEN
  }
  if (opts.fingerprint) {
    dv.setUint16(2, off + 8 - HEADER_LEN)
    const crc = (crc32(out.subarray(0, off)) ^ FINGERPRINT_XOR) >>> 0
    dv.setUint16(off, ATTR.FINGERPRINT)
    dv.setUint16(off + 2, 4)
    dv.setUint32(off + 4, crc)
    off += 8
  }
  dv.setUint16(2, off - HEADER_LEN)
  return out
}

/** Checks MESSAGE-INTEGRITY of a decoded message against its raw bytes (RFC 8489 §14.5). */
export function checkIntegrity(raw: Uint8Array, m: StunMessage, key: Uint8Array): boolean {
  const at = m.integrityAt
  if (at === undefined || at + 4 + INTEGRITY_LEN > raw.length) return false
  const copy = raw.slice(0, at)
  new DataView(copy.buffer).setUint16(2, at + 4 + INTEGRITY_LEN - HEADER_LEN)
  const want = hmac(sha1, key, copy)
  const got = raw.subarray(at + 4, at + 4 + INTEGRITY_LEN)
  let diff = 0
  for (let i = 0; i < INTEGRITY_LEN; i++) diff |= want[i]! ^ got[i]!
  return diff === 0
}

export function newTransactionId(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(12))
}

/** A Binding request (RFC 8489 §6.1), with FINGERPRINT so a server can tell it from other protocols on its port. */
export function encodeBindingRequest(transactionId: Uint8Array = newTransactionId(), opts: EncodeOptions = { fingerprint: true }): Uint8Array {
  return encodeStun({ type: BINDING_REQUEST, transactionId, attributes: [] }, opts)
}

/** A Binding success response (§6.3.1.1) carrying the source address the server saw as XOR-MAPPED-ADDRESS. */
export function encodeBindingResponse(
  transactionId: Uint8Array,
  mapped: AddrPort,
  opts: EncodeOptions & { software?: string } = { fingerprint: true },
): Uint8Array {
  const attributes: StunAttribute[] = []
  if (opts.software !== undefined) attributes.push({ type: ATTR.SOFTWARE, value: new TextEncoder().encode(opts.software) })
  attributes.push({ type: ATTR.XOR_MAPPED_ADDRESS, value: encodeXorAddress(mapped, transactionId) })
  return encodeStun({ type: BINDING_SUCCESS, transactionId, attributes }, opts)
}

/** Decodes a Binding success response and returns the mapped address (the client side). */
export function decodeBindingResponse(
  b: Uint8Array,
): { ok: true; transactionId: Uint8Array; mapped: AddrPort } | { ok: false; error: StunDecodeError | 'not-binding-response' | 'no-address' } {
  const r = decodeStun(b)
  if (!r.ok) return r
  if (r.message.type !== BINDING_SUCCESS) return { ok: false, error: 'not-binding-response' }
  const mapped = mappedAddress(r.message)
  if (!mapped) return { ok: false, error: 'no-address' }
  return { ok: true, transactionId: r.message.transactionId, mapped }
}
