import { expect, test } from 'bun:test'
import { inSubnet, parseSubnet } from './ipv4.ts'

test('inSubnet: the first and last address of the prefix are in it, their neighbours outside are not', () => {
  const s = parseSubnet('10.66.0.0/16')!
  expect(['10.66.0.0', '10.66.0.1', '10.66.255.255'].map((ip) => inSubnet(ip, s))).toEqual([true, true, true])
  expect(['10.65.255.255', '10.67.0.0', '8.8.8.8', '10.66.0.256', 'fd00::1', '10.66.0.1/32'].map((ip) => inSubnet(ip, s))).toEqual([false, false, false, false, false, false])
  const small = parseSubnet('192.168.1.4/30')!
  expect(['192.168.1.3', '192.168.1.4', '192.168.1.7', '192.168.1.8'].map((ip) => inSubnet(ip, small))).toEqual([false, true, true, false])
})
