// Client addresses behind reverse proxies, as pure functions: what a client writes into X-Forwarded-For never counts.
import { describe, expect, test } from 'bun:test'
import { addressSet, clientAddress, parseIpv6, proxyTrust } from './proxy.ts'

describe('parseIpv6', () => {
  test.each([
    ['::1', 1n],
    ['::', 0n],
    ['2001:db8::1', 0x20010db8000000000000000000000001n],
    ['1:2:3:4:5:6:7:8', 0x00010002000300040005000600070008n],
    ['::ffff:192.0.2.1', 0xffffc0000201n],
    ['64:ff9b::1.2.3.4', 0x0064ff9b000000000000000001020304n],
    ['fe80::', 0xfe800000000000000000000000000000n],
  ])('%s', (text, n) => expect(parseIpv6(text)).toBe(n))
  test.each(['1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8:9', '1::2::3', ':::', '12345::', 'g::1', '1.2.3.4', '::1.2.3', 'spoof-1', ''])('refuses %j', (text) =>
    expect(parseIpv6(text)).toBeUndefined(),
  )
})

describe('addressSet', () => {
  test('exact addresses and networks of both families; IPv4-mapped IPv6 counts as IPv4', () => {
    const set = addressSet('127.0.0.1, 10.0.0.0/8, ::1, fd00::/8') as { has(ip: string): boolean }
    for (const ip of ['127.0.0.1', '10.1.2.3', '::1', 'fd12::5', '::ffff:10.9.9.9', '::ffff:127.0.0.1']) expect(set.has(ip)).toBe(true)
    for (const ip of ['127.0.0.2', '11.0.0.1', '::2', 'fe80::1', 'spoof', '']) expect(set.has(ip)).toBe(false)
  })
  test('a bad entry is named', () => {
    expect(addressSet('10.0.0.0/8, proxy.example')).toEqual({ bad: 'proxy.example' })
    expect(addressSet('10.0.0.0/33')).toEqual({ bad: '10.0.0.0/33' })
    expect(addressSet('::1/129')).toEqual({ bad: '::1/129' })
    expect(() => proxyTrust({ trustProxy: false, trustedProxies: '1.2.3.4/x' })).toThrow('--trusted-proxies: "1.2.3.4/x" is not an IP address or network')
  })
})

describe('clientAddress', () => {
  const one = proxyTrust({ trustProxy: true, trustedProxies: '' })
  const none = proxyTrust({ trustProxy: false, trustedProxies: '' })
  const chain = proxyTrust({ trustProxy: false, trustedProxies: '127.0.0.1, 10.0.0.0/8' })

  test('no proxy trusted: the socket address, whatever the header says', () => {
    expect(clientAddress('198.51.100.7', '1.1.1.1', none)).toBe('198.51.100.7')
  })
  test('--trust-proxy: the entry our proxy appended (the rightmost), not what the client wrote', () => {
    expect(clientAddress('127.0.0.1', 'spoof-1, 127.0.0.1, 198.51.100.7', one)).toBe('198.51.100.7')
    expect(clientAddress('127.0.0.1', '198.51.100.7', one)).toBe('198.51.100.7')
    expect(clientAddress('127.0.0.1', '198.51.100.7, garbage', one)).toBe('127.0.0.1')
    expect(clientAddress('127.0.0.1', null, one)).toBe('127.0.0.1')
  })
  test('--trusted-proxies: walk from the right over our proxies; others are taken at their socket address', () => {
    expect(clientAddress('127.0.0.1', 'spoof, 203.0.113.5, 10.1.1.1', chain)).toBe('203.0.113.5')
    expect(clientAddress('127.0.0.1', '203.0.113.5, 198.51.100.7', chain)).toBe('198.51.100.7')
    expect(clientAddress('198.51.100.7', '10.0.0.1', chain)).toBe('198.51.100.7') // not from a proxy: header ignored
    expect(clientAddress('127.0.0.1', 'spoof, 10.1.1.1', chain)).toBe('10.1.1.1') // non-address: the hop that wrote it
    expect(clientAddress('127.0.0.1', '10.2.2.2, 10.1.1.1', chain)).toBe('10.2.2.2') // all ours: the farthest
    expect(clientAddress('::ffff:127.0.0.1', '203.0.113.5', chain)).toBe('203.0.113.5')
  })
})
