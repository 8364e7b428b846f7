// deploy/haproxy.cfg as an operator installs it, in front of real `lanrage control` processes: the shipped file
// with only its listening address, certificate path and server lines replaced (each replacement must find its
// line, so a changed file cannot quietly test nothing). Through it: HTTPS with a private CA, the live channel's
// WebSocket upgrade and its events, and X-Forwarded-For as the control server's per-address limit needs it.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { RemoteControlPlane } from '../../src/client/control/remote.ts'
import { encodeKey, generateKeyPair } from '../../src/client/wireguard/keys.ts'
import { readCaFile } from '../../src/shared/tls.ts'
import { freeTcpPort, startControlProcess } from '../client/helpers.ts'
import { needs } from '../needs.ts'
import { issueCert, makeCa, tempDir } from '../ops/helpers.ts'
import { haproxyConfig, PROXY_IP, startHaproxy } from './haproxy.ts'

const skip = needs('haproxy', 'openssl')
const dir = tempDir('lrm-haproxy-')

describe.skipIf(!!skip)('deploy/haproxy.cfg in front of lanrage control', () => {
  const stops: (() => Promise<void>)[] = []
  const clients: RemoteControlPlane[] = []
  let pem = ''
  let ca: ReturnType<typeof readCaFile>
  beforeAll(() => {
    const authority = makeCa(dir, 'lb-ca')
    const cert = issueCert(authority, 'lb')
    pem = join(dir, 'lb-bundle.pem')
    writeFileSync(pem, readFileSync(cert.cert, 'utf8') + readFileSync(cert.key, 'utf8'))
    ca = readCaFile(authority.cert)
  })
  afterAll(async () => {
    for (const c of clients) await c.close()
    for (const stop of stops.reverse()) await stop()
  })

  /** A control server (its own database, `args` added) behind the shipped proxy; returns the proxy's URL. */
  async function stack(name: string, args: string[] = []): Promise<string> {
    const control = await startControlProcess(join(dir, `${name}.db`), await freeTcpPort(), args)
    stops.push(() => control.stop())
    const port = await freeTcpPort()
    const lb = await startHaproxy(haproxyConfig({ port, pem, servers: [new URL(control.url).host] }), port, dir)
    stops.push(() => lb.stop())
    return `https://127.0.0.1:${port}`
  }

  /** A client of `url` that sends `forged` as X-Forwarded-For with every request. */
  const client = (url: string, forged?: string) => {
    const fetchForged = ((input: string | URL | Request, init?: RequestInit) =>
      fetch(input, forged ? { ...init, headers: { ...(init?.headers as Record<string, string>), 'x-forwarded-for': forged } } : init)) as typeof fetch
    const c = new RemoteControlPlane({ url, tls: ca, privateKey: encodeKey(generateKeyPair().privateKey), fetch: fetchForged, retry: { attempts: 1 } })
    clients.push(c)
    return c
  }

  test('HTTPS through the proxy; the live channel upgrades through it and carries the events', async () => {
    const url = await stack('ws')
    const host = client(url)
    const guest = client(url)
    await host.connect()
    const party = await host.createParty('behind haproxy')
    const heard = host.next('peer_joined', (e) => e.party_id === party.party_id, 5000)
    await guest.joinParty(party.party_id)
    expect((await heard).peer.peer_id).toBe(guest.peerId!)
    expect(host.connected).toBe(true)
  }, 30_000)

  test('a forged X-Forwarded-For buys no registration budget: the proxy appends the real address, the server takes that one', async () => {
    // The server trusts the proxy's address and allows 4 registration requests a minute per client address: two
    // registrations (challenge + register each). Every client here is 127.0.0.1 whatever it claims. Without the
    // proxy's own entry the server would take each forged address as the client's: four registrations.
    const url = await stack('xff', ['--trusted-proxies', PROXY_IP, '--register-rate-per-min', '4'])
    const results: unknown[] = []
    for (const forged of ['198.51.100.1', '198.51.100.2', '198.51.100.3', '198.51.100.4'])
      results.push(await client(url, forged).register().then(() => 'registered', (e) => e.status ?? e.code))
    expect(results).toEqual(['registered', 'registered', 429, 429])
  }, 30_000)
})
