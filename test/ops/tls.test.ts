// HTTPS and WSS on the control server (--tls-cert/--tls-key), with a private CA the test makes with openssl.
// Before: plain HTTP only, so bearer tokens, relay secrets and signals crossed the network in clear unless the operator
// put a proxy in front. Here: a client that trusts the CA connects (HTTP API and live channel), one that does not is
// refused, plain HTTP to the TLS port gets nothing back, relays and `serve`'s own relay register over TLS, and SIGHUP
// swaps the certificate (new connections see it) while the server and its open WebSockets carry on.
import { afterAll, describe, expect, test } from 'bun:test'
import { copyFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { connect as tlsConnect } from 'node:tls'
import { ControlTlsError } from '../../src/client/control/errors.ts'
import { RemoteControlPlane } from '../../src/client/control/remote.ts'
import { encodeKey, generateKeyPair } from '../../src/client/wireguard/keys.ts'
import { readCaFile } from '../../src/shared/tls.ts'
import { needs } from '../needs.ts'
import { issueCert, listeningUrl, makeCa, runLanrage, spawnLanrage, tempDir, type Proc } from './helpers.ts'

const skip = needs('openssl')
const dir = tempDir('lro-tls-')
// The files the server is started with (`live`); the test overwrites them to rotate the certificate.
const live = { cert: join(dir, 'live.pem'), key: join(dir, 'live.key') }
const secretFile = join(dir, 'relay-secret')
function makePki() {
  const ca = makeCa(dir, 'private-ca')
  const pki = { ca, rogue: makeCa(dir, 'rogue-ca'), certA: issueCert(ca, 'server-a'), certB: issueCert(ca, 'server-b') }
  copyFileSync(pki.certA.cert, live.cert)
  copyFileSync(pki.certA.key, live.key)
  writeFileSync(secretFile, 'tls-test-secret\n', { mode: 0o600 })
  return pki
}
const none = { cert: '', key: '' }
const { ca, rogue, certA, certB } = skip ? { ca: { ...none, dir, name: '' }, rogue: { ...none, dir, name: '' }, certA: none, certB: none } : makePki()

const clients: RemoteControlPlane[] = []
afterAll(async () => {
  for (const c of clients) await c.close()
})
function client(url: string, tls?: ReturnType<typeof readCaFile>) {
  const c = new RemoteControlPlane({ url, privateKey: encodeKey(generateKeyPair().privateKey), tls, retry: { baseMs: 50, maxMs: 200, attempts: 3 }, reconnect: { baseMs: 50, maxMs: 200 } })
  clients.push(c)
  return c
}

/** The subject CN of the certificate a new TLS connection to 127.0.0.1:port is served (verified against `caPem`). */
function servedCn(port: number, caPem: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ca: caPem, servername: 'localhost' }, () => {
      const cn = String(s.getPeerCertificate().subject?.CN)
      s.end()
      resolve(cn)
    })
    s.on('error', reject)
  })
}

/** Sends raw bytes over plain TCP and collects whatever comes back within `ms`. */
async function plainExchange(port: number, request: string, ms = 1500): Promise<Buffer> {
  const got: Buffer[] = []
  const done = Promise.withResolvers<void>()
  const sock = await Bun.connect({
    hostname: '127.0.0.1',
    port,
    socket: {
      data: (_s, d) => void got.push(Buffer.from(d)),
      close: () => done.resolve(),
      error: () => done.resolve(),
    },
  })
  sock.write(request)
  await Promise.race([done.promise, Bun.sleep(ms)])
  sock.end()
  return Buffer.concat(got)
}

describe.skipIf(!!skip)('lanrage control with --tls-cert/--tls-key', () => {
  let server: Proc
  let url: string
  let port: number
  const caPem = skip ? {} : readCaFile(ca.cert)

  test('starts on https:// and says which certificate it serves', async () => {
    server = spawnLanrage(['control', '--host', '127.0.0.1', '--port', '0', '--db', join(dir, 'c.db'), '--tls-cert', live.cert, '--tls-key', live.key, '--relay-secret-file', secretFile])
    url = await listeningUrl(server)
    expect(url).toStartWith('https://127.0.0.1:')
    port = Number(new URL(url).port)
    expect(server.err).toContain('TLS certificate loaded subject="CN=server-a"')
    expect(await servedCn(port, caPem.ca!)).toBe('server-a')
  }, 20_000)

  test('a client that trusts the CA registers, creates a party and holds the live channel (wss://)', async () => {
    const host = client(url, caPem)
    await host.register()
    await host.connect()
    expect(host.connected).toBe(true)
    const party = await host.createParty('tls party')
    const guest = client(url.replace('https://', 'wss://'), caPem) // the same server named by its wss:// URL
    const joined = host.next('peer_joined', undefined, 5000)
    await guest.joinParty(party.party_id)
    expect((await joined).peer.peer_id).toBe((await guest.register()))
  }, 20_000)

  test('a client without the CA, or trusting another CA, is refused: CONTROL_TLS at once, no token', async () => {
    for (const tls of [undefined, readCaFile(rogue.cert)]) {
      const c = client(url, tls)
      const started = Date.now()
      const err = await c.register().catch((e) => e)
      expect(err).toBeInstanceOf(ControlTlsError)
      expect(err).toMatchObject({ code: 'CONTROL_TLS' })
      expect(err.message).toContain('--ca-file')
      expect(c.token).toBeUndefined()
      expect(Date.now() - started).toBeLessThan(2000) // not retried like a network error (3 tries with backoff)
    }
  }, 20_000)

  test('plain HTTP to the TLS port gets no HTTP answer, let alone a token', async () => {
    const body = JSON.stringify({ public_key: encodeKey(generateKeyPair().publicKey) })
    for (const req of [
      `POST /auth/challenge HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
      'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n',
    ]) {
      const answer = await plainExchange(port, req)
      expect(answer.toString('latin1')).not.toContain('HTTP/1.1')
      expect(answer.toString('latin1')).not.toContain('challenge')
      expect(answer.toString('latin1')).not.toContain('token')
    }
    expect(await fetch(url.replace('https://', 'http://') + '/').catch((e) => e)).toBeInstanceOf(Error)
  }, 20_000)

  test('a relay registers over https with --ca-file, and not without it', async () => {
    const relay = spawnLanrage(['relay', '--host', '127.0.0.1', '--port', '0', '--ports', '41570-41579', '--control', url, '--ca-file', ca.cert, '--relay-secret-file', secretFile], {
      env: { LANRAGE_HOME: dir },
    })
    const blind = spawnLanrage(['relay', '--host', '127.0.0.1', '--port', '0', '--ports', '41580-41589', '--control', url, '--relay-secret-file', secretFile], {
      env: { LANRAGE_HOME: dir },
    })
    try {
      await relay.waitErr('registered with control server')
      await blind.waitErr(/registration failed, retrying.*UNABLE_TO_VERIFY_LEAF_SIGNATURE/)
      const c = client(url, caPem)
      await c.register()
      const res = await fetch(url + '/relays', { headers: { authorization: `Bearer ${c.token}` }, tls: { ca: caPem.ca } })
      expect(((await res.json()) as { relays: unknown[] }).relays).toHaveLength(1)
    } finally {
      expect(await relay.stop()).toBe(0)
      expect(await blind.stop()).toBe(0)
    }
  }, 30_000)

  test('SIGHUP serves the new certificate to new connections; the server and an open live channel carry on', async () => {
    const host = client(url, caPem)
    await host.connect()
    const drops: unknown[] = []
    host.on('disconnected', (e) => drops.push(e))
    const party = await host.createParty('before the swap')
    copyFileSync(certB.cert, live.cert)
    copyFileSync(certB.key, live.key)
    server.proc.kill('SIGHUP')
    await server.waitErr('TLS certificate reloaded subject="CN=server-b"')
    expect(await servedCn(port, caPem.ca!)).toBe('server-b')
    // The WebSocket opened before the swap still delivers events; a new client works over the new certificate.
    const joined = host.next('peer_joined', undefined, 5000)
    const late = client(url, caPem)
    await late.joinParty(party.party_id)
    expect((await joined).peer.peer_id).toBe(late.peerId!)
    expect(host.connected).toBe(true)
    expect(drops).toEqual([]) // the same socket throughout, never reconnected
    expect(server.proc.exitCode).toBeNull()
  }, 20_000)

  test('SIGHUP with a broken pair keeps the current certificate and the server', async () => {
    writeFileSync(live.key, 'not a key\n')
    server.proc.kill('SIGHUP')
    await server.waitErr('TLS reload failed; still serving the previous certificate')
    expect(await servedCn(port, caPem.ca!)).toBe('server-b')
    expect((await fetch(url + '/', { tls: { ca: caPem.ca } })).status).toBe(200)
    expect(server.proc.exitCode).toBeNull()
    expect(await server.stop()).toBe(0)
  }, 20_000)
})

describe.skipIf(!!skip)('lanrage serve with --tls-cert/--tls-key', () => {
  test('its own relay registers (no certificate for 127.0.0.1 needed) and clients reach it over https', async () => {
    // A certificate that names only the public host: the in-process relay must not depend on it naming 127.0.0.1.
    const publicOnly = issueCert(ca, 'control.example', 'DNS:control.example')
    const p = spawnLanrage(['serve', '--host', '127.0.0.1', '--port', '0', '--db', join(dir, 's.db'), '--tls-cert', publicOnly.cert, '--tls-key', publicOnly.key, '--relay-port', '0', '--relay-ports', '41590-41599'])
    try {
      await p.waitErr('registered with control server')
      const url = await listeningUrl(p)
      expect(url).toStartWith('https://')
      const res = await fetch(url + '/', { tls: { ca: readCaFile(ca.cert).ca, serverName: 'control.example' } })
      expect(((await res.json()) as { relays: number }).relays).toBe(1)
    } finally {
      expect(await p.stop()).toBe(0)
    }
  }, 30_000)
})

describe.skipIf(!!skip)('bad TLS input is one line at start', () => {
  test('a missing key, a key of another certificate, half a pair, a bad CA file', async () => {
    const db = join(dir, 'bad.db')
    const cases: [string[], number, RegExp][] = [
      [['control', '--port', '0', '--db', db, '--tls-cert', certA.cert, '--tls-key', join(dir, 'nope.key')], 1, /^lanrage control: --tls-key \S+nope\.key: cannot read it: .* \(TLS_FILE\)$/],
      [['control', '--port', '0', '--db', db, '--tls-cert', certA.cert, '--tls-key', certB.key], 1, /^lanrage control: --tls-key \S+ is not the key of the certificate in --tls-cert \S+ \(TLS_FILE\)$/],
      [['serve', '--port', '0', '--db', db, '--tls-cert', certA.cert, '--tls-key', certA.cert], 1, /^lanrage serve: --tls-key \S+: not a PEM private key .* \(TLS_FILE\)$/],
      [['relay', '--port', '0', '--control', 'https://127.0.0.1:1', '--ca-file', certA.key], 1, /^lanrage relay: --ca-file \S+: no PEM certificate in it \(CA_FILE\)$/],
      [['relay', '--port', '0', '--control', 'ftp://x'], 1, /^lanrage relay: control URL "ftp:\/\/x": expected http:\/\/, https:\/\/, ws:\/\/ or wss:\/\/ and a host \(BAD_CONTROL_URL\)$/],
      [['up', '--control', 'https://127.0.0.1:1', '--create', 'x', '--ca-file', join(dir, 'nope.pem')], 1, /^lanrage up: --ca-file \S+nope\.pem: cannot read it: .* \(CA_FILE\)$/],
    ]
    for (const [args, code, line] of cases) {
      const r = await runLanrage(args, { env: { LANRAGE_LOG_LEVEL: 'warn', LANRAGE_HOME: join(dir, 'home') } })
      expect({ args, code: r.code, lines: r.err.trim().split('\n').length }).toEqual({ args, code, lines: 1 })
      expect(r.err.trim()).toMatch(line)
    }
    const half = await runLanrage(['control', '--port', '0', '--db', db, '--tls-cert', certA.cert])
    expect(half.code).toBe(2)
    expect(half.err).toContain('--tls-cert and --tls-key: give both (HTTPS) or neither (HTTP)')
  }, 60_000)
})
