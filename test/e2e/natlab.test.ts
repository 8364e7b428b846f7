// The natlab itself, as the agent's e2e tests rely on it: gamers reach the internet through their NAT, a cone NAT
// keeps one public port per socket for every destination, a symmetric NAT gives each destination its own.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { Natlab, natlabSkipReason, natWanIp, NS_PREFIX, PUB_IP } from './natlab.ts'

const skip = natlabSkipReason()
const fixture = (f: string) => join(import.meta.dir, 'fixtures', f)

describe.skipIf(!!skip)('natlab harness', () => {
  let lab: Natlab
  beforeAll(async () => {
    lab = Natlab.up(['cone', 'symmetric'])
    const echo = lab.spawn(Natlab.ns('pub'), [process.execPath, fixture('udp-echo.ts'), '3478', '3479'])
    await echo.waitFor(/listening/, 5000)
  })
  afterAll(async () => {
    await lab?.down()
    expect(Bun.spawnSync(['ip', 'netns', 'list']).stdout.toString()).not.toContain(`${NS_PREFIX}-`)
  })

  test('gamers reach the internet through their routers', async () => {
    expect(await lab.waitForPing(Natlab.ns('peer1'), PUB_IP, 5000)).toBeLessThan(5000)
    expect(await lab.waitForPing(Natlab.ns('peer2'), PUB_IP, 5000)).toBeLessThan(5000)
  })

  const ask = (peer: number) => {
    const r = lab.exec(Natlab.ns(`peer${peer}`), [process.execPath, fixture('udp-ask.ts'), `${PUB_IP}:3478`, `${PUB_IP}:3479`])
    expect(r.code).toBe(0)
    return JSON.parse(r.out) as Record<string, string>
  }

  test('cone: one public mapping for every destination', () => {
    const m = ask(1)
    const a = m[`${PUB_IP}:3478`]!
    expect(a.startsWith(natWanIp(1) + ':')).toBe(true)
    expect(m[`${PUB_IP}:3479`]).toBe(a)
  })

  test('symmetric: a different public port per destination', () => {
    const m = ask(2)
    const a = m[`${PUB_IP}:3478`]!
    const b = m[`${PUB_IP}:3479`]!
    expect(a.startsWith(natWanIp(2) + ':')).toBe(true)
    expect(b.startsWith(natWanIp(2) + ':')).toBe(true)
    expect(a).not.toBe(b)
  })
})
