// Virtual IP arithmetic: subnet parsing and lowest-free allocation (host .0.1, no network/broadcast address).
import { describe, expect, test } from 'bun:test'
import { allocateIp, formatIpv4, parseIpv4, parseSubnet } from '../../src/control/ip.ts'

describe('subnets', () => {
  test.each([
    ['10.66.0.0/16', { base: parseIpv4('10.66.0.0'), prefix: 16, size: 65536 }],
    ['192.168.7.0/24', { base: parseIpv4('192.168.7.0'), prefix: 24, size: 256 }],
    ['10.0.0.4/30', { base: parseIpv4('10.0.0.4'), prefix: 30, size: 4 }],
  ])('parse %s', (cidr, want) => expect(parseSubnet(cidr)).toEqual(want as any))

  test.each(['10.66.0.1/16', '10.66.0.0', '10.66.0.0/31', '10.66.0.0/7', '300.1.1.0/24', 'x/24'])('refuse %s', (cidr) => expect(parseSubnet(cidr)).toBeUndefined())

  test('ipv4 round trip', () => {
    for (const ip of ['0.0.0.0', '10.66.0.1', '255.255.255.255', '192.168.1.200']) expect(formatIpv4(parseIpv4(ip)!)).toBe(ip)
  })
})

describe('allocation', () => {
  const s16 = parseSubnet('10.66.0.0/16')!
  test('first is .0.1, then the lowest free, across octet boundaries', () => {
    expect(allocateIp(s16, [])).toBe('10.66.0.1')
    expect(allocateIp(s16, ['10.66.0.1', '10.66.0.3'])).toBe('10.66.0.2')
    const taken = Array.from({ length: 255 }, (_, i) => formatIpv4(s16.base + 1 + i))
    expect(allocateIp(s16, taken)).toBe('10.66.1.0')
  })
  test('a full subnet gives undefined; the broadcast address is never handed out', () => {
    const s30 = parseSubnet('10.0.0.4/30')!
    expect(allocateIp(s30, ['10.0.0.5'])).toBe('10.0.0.6')
    expect(allocateIp(s30, ['10.0.0.5', '10.0.0.6'])).toBeUndefined()
  })
})
