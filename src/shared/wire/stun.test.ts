import { describe, expect, test } from 'bun:test'
import {
  ATTR,
  BINDING_REQUEST,
  BINDING_SUCCESS,
  checkIntegrity,
  crc32,
  decodeBindingResponse,
  decodeStun,
  encodeBindingRequest,
  encodeBindingResponse,
  encodeStun,
  formatIp,
  getAttribute,
  isStun,
  mappedAddress,
  parseIp,
} from './stun.ts'

// RFC 5769 test vectors, copied from the RFC's hex dumps (§2.1, §2.2, §2.3). Padding there is 0x20, not zero.
const hex = (s: string) => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'))
const TXID = hex('b7e7a701 bc34d686 fa87dfae')
const PASSWORD = new TextEncoder().encode('VOkJxbRl1RmTxUk/WvJxBt')
const VECTORS = {
  'rfc5769-request': hex(`
    00010058 2112a442 b7e7a701 bc34d686 fa87dfae
    80220010 5354554e 20746573 7420636c 69656e74
    00240004 6e0001ff
    80290008 932ff9b1 51263b36
    00060009 6576746a 3a683676 59202020
    00080014 9aeaa70c bfd8cb56 781ef2b5 b2d3f249 c1b571a2
    80280004 e57a3bcf`),
  'rfc5769-ipv4-response': hex(`
    0101003c 2112a442 b7e7a701 bc34d686 fa87dfae
    8022000b 74657374 20766563 746f7220
    00200008 0001a147 e112a643
    00080014 2b91f599 fd9e90c3 8c7489f9 2af9ba53 f06be7d7
    80280004 c07d4c96`),
  'rfc5769-ipv6-response': hex(`
    01010048 2112a442 b7e7a701 bc34d686 fa87dfae
    8022000b 74657374 20766563 746f7220
    00200014 0002a147 0113a9fa a5d3f179 bc25f4b5 bed2b9d9
    00080014 a382954e 4be67bf1 1784c97c 8292c275 bfe3ed41
    80280004 c8fb0b4c`),
}
const enc = (s: string) => new TextEncoder().encode(s)

describe('STUN codec against RFC 5769', () => {
  test('rfc5769-request decodes: attributes, FINGERPRINT and MESSAGE-INTEGRITY check out', () => {
    const raw = VECTORS['rfc5769-request']
    expect(isStun(raw)).toBe(true)
    const r = decodeStun(raw)
    if (!r.ok) throw new Error(r.error)
    expect(r.message.type).toBe(BINDING_REQUEST)
    expect(r.message.transactionId).toEqual(TXID)
    expect(r.message.fingerprint).toBe(true)
    expect(new TextDecoder().decode(getAttribute(r.message, ATTR.SOFTWARE))).toBe('STUN test client')
    expect(new TextDecoder().decode(getAttribute(r.message, ATTR.USERNAME))).toBe('evtj:h6vY')
    expect(r.message.attributes.map((a) => a.type)).toEqual([0x8022, 0x0024, 0x8029, 0x0006, 0x0008, 0x8028])
    expect(checkIntegrity(raw, r.message, PASSWORD)).toBe(true)
    expect(checkIntegrity(raw, r.message, enc('wrong password'))).toBe(false)
  })

  test('rfc5769-request re-encodes byte for byte', () => {
    const out = encodeStun(
      {
        type: BINDING_REQUEST,
        transactionId: TXID,
        attributes: [
          { type: ATTR.SOFTWARE, value: enc('STUN test client') },
          { type: 0x0024, value: hex('6e0001ff') },
          { type: 0x8029, value: hex('932ff9b151263b36') },
          { type: ATTR.USERNAME, value: enc('evtj:h6vY') },
        ],
      },
      { integrityKey: PASSWORD, fingerprint: true, padByte: 0x20 },
    )
    expect(Buffer.from(out).toString('hex')).toBe(Buffer.from(VECTORS['rfc5769-request']).toString('hex'))
  })

  test.each([
    ['rfc5769-ipv4-response', { address: '192.0.2.1', port: 32853, family: 'IPv4' }],
    ['rfc5769-ipv6-response', { address: '2001:db8:1234:5678:11:2233:4455:6677', port: 32853, family: 'IPv6' }],
  ] as const)('%s decodes to its mapped address and re-encodes byte for byte', (name, want) => {
    const raw = VECTORS[name]
    const r = decodeStun(raw)
    if (!r.ok) throw new Error(r.error)
    expect(r.message.type).toBe(BINDING_SUCCESS)
    expect(mappedAddress(r.message)).toEqual(want)
    expect(checkIntegrity(raw, r.message, PASSWORD)).toBe(true)
    expect(decodeBindingResponse(raw)).toEqual({ ok: true, transactionId: TXID, mapped: want })
    const out = encodeBindingResponse(TXID, want, { software: 'test vector', integrityKey: PASSWORD, fingerprint: true, padByte: 0x20 })
    expect(Buffer.from(out).toString('hex')).toBe(Buffer.from(raw).toString('hex'))
  })
})

describe('STUN decoding refuses bad input without throwing', () => {
  const good = VECTORS['rfc5769-ipv4-response']
  test('a flipped bit anywhere before FINGERPRINT fails the fingerprint', () => {
    for (let i = 20; i < good.length - 8; i++) {
      const bad = good.slice()
      bad[i] = bad[i]! ^ 0x01
      const r = decodeStun(bad)
      expect(r.ok ? 'ok' : r.error).toMatch(/bad-fingerprint|bad-attribute/)
    }
  })
  test('short, wrong cookie, wrong length, truncated attribute', () => {
    expect(decodeStun(good.subarray(0, 19))).toEqual({ ok: false, error: 'short' })
    const cookie = good.slice()
    cookie[4] = 0
    expect(decodeStun(cookie)).toEqual({ ok: false, error: 'not-stun' })
    expect(decodeStun(good.subarray(0, good.length - 4))).toEqual({ ok: false, error: 'bad-length' })
    // Header says 8 bytes of attributes, but the one attribute claims 12.
    const trunc = hex('00010008 2112a442 000000000000000000000000 8022000c 41414141')
    expect(decodeStun(trunc)).toEqual({ ok: false, error: 'bad-attribute' })
    // WireGuard initiation header (type 1, little endian) is not STUN.
    expect(isStun(hex('01000000' + '00'.repeat(144)))).toBe(false)
  })
  test('a seeded run of random datagrams never throws', () => {
    let seed = Number(process.env.LANRAGE_FUZZ_SEED ?? 1234)
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff
    for (let n = 0; n < 5000; n++) {
      const b = good.slice(0, 20 + (rnd() % (good.length - 19)))
      for (let k = 0; k < 3; k++) b[rnd() % b.length] = rnd()
      expect(() => decodeStun(b)).not.toThrow()
    }
  })
})

describe('STUN helpers', () => {
  test('crc32 of "123456789" is the standard check value', () => {
    expect(crc32(enc('123456789'))).toBe(0xcbf43926)
  })
  test('binding request → response round trip', () => {
    const req = encodeBindingRequest()
    const d = decodeStun(req)
    if (!d.ok) throw new Error(d.error)
    expect(d.message.type).toBe(BINDING_REQUEST)
    expect(d.message.fingerprint).toBe(true)
    const res = encodeBindingResponse(d.message.transactionId, { address: '203.0.113.7', port: 40000, family: 'IPv4' })
    expect(decodeBindingResponse(res)).toEqual({
      ok: true,
      transactionId: d.message.transactionId,
      mapped: { address: '203.0.113.7', port: 40000, family: 'IPv4' },
    })
    // An IPv4-mapped IPv6 source (dual-stack socket) is reported as plain IPv4.
    const mapped = encodeBindingResponse(d.message.transactionId, { address: '::ffff:10.0.0.1', port: 1, family: 'IPv6' })
    expect(decodeBindingResponse(mapped)).toMatchObject({ ok: true, mapped: { address: '10.0.0.1', family: 'IPv4' } })
  })
  test.each([
    ['2001:db8:1234:5678:11:2233:4455:6677', '2001:db8:1234:5678:11:2233:4455:6677'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['::', '::'],
    ['::1', '::1'],
    ['fe80::', 'fe80::'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
    ['::ffff:192.0.2.1', '::ffff:c000:201'],
    ['127.0.0.1', '127.0.0.1'],
  ])('ip %s formats as %s', (input, want) => {
    const b = parseIp(input)
    expect(b).toBeDefined()
    expect(formatIp(b!)).toBe(want)
  })
  test.each(['1.2.3', '1.2.3.256', '1::2::3', '1:2:3:4:5:6:7:8:9', 'abc', '12345::', ''])('%p is not an IP', (s) => {
    expect(parseIp(s)).toBeUndefined()
  })
})
