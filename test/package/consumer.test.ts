// The packages as a launcher author and an operator get them: `npm pack` of lanrage and lanrage-client, installed
// from the tarballs (lanrage globally under a temporary prefix, lanrage-client into a fresh project), then
//   - the tarballs hold only what runs (no tests, benchmarks or sources),
//   - lanrage-client installs without Bun, and its types check in a TypeScript project,
//   - the installed `lanrage` command runs on the Bun it brought, and `lanrage serve` (plain HTTP, and HTTPS with a
//     private CA) is what the consumers talk to,
//   - the same consumer script (consumer.mjs) runs under Node and under Bun importing only package entries:
//     register, create a party, hear peer_joined over the WebSocket, ALLOCATE at the relay, NAT type from its STUN
//     ports,
//   - under Node the server and settings entries say they need Bun; under Bun they embed a control server and a
//     relay, and open a settings file.
// npm installs from its cache first (--prefer-offline): the repository's own `npm install` filled it.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { needs } from '../needs.ts'
import { issueCert, makeCa, tempDir } from '../ops/helpers.ts'
import { freeTcpPort, freeUdpPort, waitFor } from '../client/helpers.ts'

const skip = needs('node', 'npm', 'openssl')
const REPO = join(import.meta.dir, '..', '..')
const version = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).version as string
const work = tempDir('lr-pkg-')
const GLOBAL = join(work, 'global')
const LANRAGE = join(GLOBAL, 'bin', 'lanrage')
const APP_CLIENT = join(work, 'app-client') // lanrage-client only: what a Node launcher installs
const APP_FULL = join(work, 'app-full') // the whole lanrage package
const CONSUMER = join(import.meta.dir, 'consumer.mjs')

interface Run {
  code: number | null
  out: string
  err: string
}
function run(cmd: string[], cwd: string, timeoutMs: number, env: Record<string, string> = {}): Run {
  const p = Bun.spawnSync(cmd, { cwd, env: { ...process.env, ...env }, stdout: 'pipe', stderr: 'pipe', timeout: timeoutMs })
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() }
}
function ok(cmd: string[], cwd: string, timeoutMs: number): string {
  const r = run(cmd, cwd, timeoutMs)
  if (r.code !== 0) throw new Error(`${cmd.join(' ')} (in ${cwd}) exited ${r.code}:\n${r.err}\n${r.out}`)
  return r.out
}
const NPM_FLAGS = ['--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error']

let tarball = ''
let clientTarball = ''
const servers: { name: string; proc: ReturnType<typeof Bun.spawn>; log: () => string }[] = []
let plainUrl = ''
let tlsUrl = ''
let caFile = ''
let relayPorts = { first: 0, last: 0 }

/** `lanrage serve` from the global install; resolves with its URL once it answers. */
async function startServe(name: string, extra: string[], scheme: 'http' | 'https'): Promise<string> {
  const port = await freeTcpPort()
  const args = ['serve', '--host', '127.0.0.1', '--port', String(port), '--db', join(work, `${name}.db`), '--public-ip', '127.0.0.1']
  args.push('--relay-port', String(await freeUdpPort()), '--relay-stun-alt-port', String(await freeUdpPort()))
  args.push('--relay-ports', `${relayPorts.first}-${relayPorts.last}`, '--relay-metrics-port', '-1', ...extra)
  let out = ''
  const proc = Bun.spawn([LANRAGE, ...args], { cwd: work, stdout: 'pipe', stderr: 'pipe', env: { ...process.env, LANRAGE_HOME: join(work, 'home') } })
  for (const s of [proc.stdout, proc.stderr]) void (async () => { for await (const c of s) out += new TextDecoder().decode(c) })()
  servers.push({ name, proc, log: () => out })
  // The in-process relay registers once the control server listens; the consumers need it in GET /relays.
  await waitFor(`${name}: the relay registered`, () => /registered with control server/.test(out), 20_000, 50).catch(() => {
    throw new Error(`${name} did not come up:\n${out}`)
  })
  return `${scheme}://127.0.0.1:${port}`
}

beforeAll(async () => {
  if (skip) return
  // 1. the tarballs (prepack builds dist/ with tsc)
  tarball = join(work, ok(['npm', 'pack', '--silent', '--pack-destination', work], REPO, 300_000).trim().split('\n').at(-1)!)
  clientTarball = join(work, ok(['npm', 'pack', '--silent', './packages/lanrage-client', '--pack-destination', work], REPO, 300_000).trim().split('\n').at(-1)!)
  // 2. lanrage globally (its own prefix), lanrage-client into a fresh project; a second project sees the global
  // lanrage through a symlink (what `npm link lanrage` makes), which spares a second 100 MB install
  ok(['npm', 'install', '-g', '--prefix', GLOBAL, ...NPM_FLAGS, tarball], work, 300_000)
  for (const dir of [APP_CLIENT, APP_FULL]) {
    mkdirSync(join(dir, 'node_modules'), { recursive: true })
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'launcher', private: true, type: 'module' }))
  }
  ok(['npm', 'install', ...NPM_FLAGS, clientTarball], APP_CLIENT, 300_000)
  symlinkSync(join(GLOBAL, 'lib', 'node_modules', 'lanrage'), join(APP_FULL, 'node_modules', 'lanrage'))
  // 3. servers: plain HTTP, and HTTPS with a certificate from a private CA
  const first = 20000 + Math.floor(Math.random() * 400) * 20
  relayPorts = { first, last: first + 19 }
  const ca = makeCa(work, 'pkg-ca')
  const cert = issueCert(ca, 'pkg-server')
  caFile = ca.cert
  plainUrl = await startServe('plain', [], 'http')
  tlsUrl = await startServe('tls', ['--tls-cert', cert.cert, '--tls-key', cert.key], 'https')
}, 900_000)

afterAll(async () => {
  for (const s of servers) {
    s.proc.kill('SIGTERM')
    await s.proc.exited
  }
  rmSync(work, { recursive: true, force: true })
})

const tarFiles = (tgz: string) => ok(['tar', 'tzf', tgz], work, 30_000).trim().split('\n')

describe.skipIf(!!skip)('npm pack', () => {
  test('lanrage ships its compiled JavaScript and types, the launcher, the migrations and the README: no tests, benchmarks or sources', () => {
    const files = tarFiles(tarball)
    const bad = files.filter((f) => !/^package\/(dist\/.+\.(js|d\.ts)|bin\/lanrage|drizzle\/.+\.(sql|json)|web\/[a-z]+\.(html|js|css|svg)|package\.json|README\.md)$/.test(f))
    expect(bad).toEqual([])
    expect(files.filter((f) => /test|bench|\.ts$/.test(f.replace(/\.d\.ts$/, '')))).toEqual([])
    // The agent's page: it serves these files from the package (no CDN).
    for (const asset of ['index.html', 'app.js', 'style.css', 'favicon.svg']) expect(files).toContain(`package/web/${asset}`)
    for (const entry of ['cli', 'client/index', 'db/settings', 'control/index', 'relay/index', 'bun-only']) {
      expect(files).toContain(`package/dist/${entry}.js`)
      expect(files).toContain(`package/dist/${entry}.d.ts`)
    }
    expect(files.some((f) => f.includes('_snapshot.json'))).toBe(false) // drizzle-kit's, not needed to run
  })

  test('lanrage-client ships the client library and what it imports from shared code, nothing else', () => {
    const files = tarFiles(clientTarball)
    expect(files.filter((f) => !/^package\/(dist\/(client|shared)\/.+\.(js|d\.ts)|package\.json|README\.md)$/.test(f))).toEqual([])
    expect(files).toContain('package/dist/client/index.js')
    expect(files.some((f) => /dist\/(control|relay|db|cmd)\//.test(f))).toBe(false)
  })
})

describe.skipIf(!!skip)('installed packages', () => {
  test('lanrage-client installs without Bun (no bun, no @oven platform binary)', () => {
    const mods = readdirSync(join(APP_CLIENT, 'node_modules'))
    expect(mods).toContain('lanrage-client')
    expect(mods).not.toContain('bun')
    expect(mods).not.toContain('@oven')
  })

  test('the globally installed `lanrage` runs on the Bun it brought', () => {
    expect(existsSync(join(GLOBAL, 'lib', 'node_modules', 'lanrage', 'node_modules', 'bun'))).toBe(true)
    const env = { PATH: `/usr/bin:/bin` } // no bun on PATH: it must find its own
    expect(run([LANRAGE, '--version'], work, 30_000, env)).toMatchObject({ code: 0, out: `${version}\n` })
    const key = run([LANRAGE, 'keygen'], work, 30_000, env)
    expect(key.code).toBe(0)
    const pub = Bun.spawnSync([LANRAGE, 'pubkey'], { stdin: Buffer.from(key.out), env: { ...process.env, ...env } })
    expect(pub.exitCode).toBe(0)
    expect(pub.stdout.toString()).toMatch(/^[A-Za-z0-9+/]{43}=\n$/)
    expect(run([LANRAGE, 'no-such-command'], work, 30_000, env).code).toBe(2)
  })

  test('the .d.ts files of both packages import only their own files, node: modules and their dependencies', () => {
    for (const pkg of [join(APP_CLIENT, 'node_modules', 'lanrage-client'), join(GLOBAL, 'lib', 'node_modules', 'lanrage')]) {
      const deps = Object.keys(JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')).dependencies ?? {})
      const bad: string[] = []
      for (const f of new Bun.Glob('dist/**/*.d.ts').scanSync(pkg)) {
        // code lines only: the declarations keep the sources' comments, which quote import examples
        const text = readFileSync(join(pkg, f), 'utf8')
          .split('\n')
          .filter((l) => !/^\s*(\*|\/\*|\/\/)/.test(l))
          .join('\n')
        for (const m of text.matchAll(/(?:^\s*(?:import|export)\b[^'"]*?\bfrom\s+|import\(\s*)['"]([^'"]+)['"]/gm)) {
          const spec = m[1]!
          if (spec.startsWith('.') || spec.startsWith('node:')) continue
          const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!
          if (!deps.includes(name)) bad.push(`${f}: ${spec}`)
        }
      }
      // lanrage's server entries are for Bun programs, which have Bun's types; the client's must not need them
      expect(bad.filter((b) => !(pkg.endsWith('/lanrage') && / bun(:|$)/.test(b)))).toEqual([])
    }
  })

  test("lanrage-client's types check in a TypeScript project (NodeNext), and they are real types, not any", () => {
    writeFileSync(
      join(APP_CLIENT, 'launcher.ts'),
      [
        "import { RemoteControlPlane, generateKeyPair, detectNatFromPort, allocate, type NatReport, type PartyInfo } from 'lanrage-client'",
        'const cp = new RemoteControlPlane({ url: "http://127.0.0.1:8667", privateKey: generateKeyPair().privateKey })',
        'export const party: Promise<PartyInfo> = cp.createParty("x")',
        'export const nat: Promise<NatReport> = detectNatFromPort(0, ["127.0.0.1:3478"])',
        'export const port: Promise<number> = allocate({ host: "127.0.0.1", port: 1 }, "t")',
        '// @ts-expect-error: createParty takes a name, not a number',
        'cp.createParty(42)',
      ].join('\n'),
    )
    writeFileSync(
      join(APP_CLIENT, 'tsconfig.json'),
      JSON.stringify({
        // skipLibCheck: the library's declarations were checked when they were emitted, and their imports above
        compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', strict: true, noEmit: true, skipLibCheck: true, types: ['node'], typeRoots: [join(REPO, 'node_modules', '@types')] },
        files: ['launcher.ts'],
      }),
    )
    const r = run([join(REPO, 'node_modules', '.bin', 'tsc'), '-p', APP_CLIENT], APP_CLIENT, 120_000)
    expect(r.out + r.err).toBe('')
    expect(r.code).toBe(0)
  }, 120_000)
})

const consumers: [runtime: 'node' | 'bun', app: string, entry: string, tls: boolean][] = [
  ['node', APP_CLIENT, 'lanrage-client', false],
  ['node', APP_CLIENT, 'lanrage-client', true],
  ['bun', APP_CLIENT, 'lanrage-client', false],
  ['node', APP_FULL, 'lanrage/client', false],
  ['bun', APP_FULL, 'lanrage/client', true],
]
describe.skipIf(!!skip)('the consumer script, from the installed packages', () => {
  for (const [runtime, app, entry, tls] of consumers) {
    test(`${runtime}, import '${entry}', ${tls ? 'https with a private CA' : 'http'}: register, party, peer_joined, ALLOCATE, NAT type`, () => {
      // The script runs from inside the project (so imports resolve in its node_modules), as a launcher's code would.
      const script = join(app, 'consumer.mjs')
      writeFileSync(script, readFileSync(CONSUMER))
      const r = run([runtime === 'node' ? 'node' : process.execPath, script, entry, tls ? tlsUrl : plainUrl, ...(tls ? [caFile] : [])], app, 60_000)
      if (r.code !== 0) throw new Error(`consumer failed (${r.code}):\n${r.err}\n${r.out}\n${servers.map((s) => `--- ${s.name}\n${s.log().slice(-3000)}`).join('\n')}`)
      const got = JSON.parse(r.out.trim().split('\n').at(-1)!)
      expect(got.runtime).toStartWith(runtime)
      expect(got.joined).toBe(true)
      expect(got.relay.sessionPort).toBeGreaterThanOrEqual(relayPorts.first)
      expect(got.relay.sessionPort).toBeLessThanOrEqual(relayPorts.last)
      expect(got.relay.stunPorts).toHaveLength(2)
      // loopback: the relay sees us at our own address from both of its ports, so no NAT
      expect(got.nat).toMatchObject({ type: 'open', mappings: 2, failures: [] })
      expect(got.nat.publicEndpoint).toStartWith('127.0.0.1:')
    }, 60_000)
  }
})

describe.skipIf(!!skip)('the server entries', () => {
  test('under Node, lanrage/control, lanrage/relay and lanrage/settings refuse at import with one line saying they need Bun', () => {
    for (const entry of ['lanrage/control', 'lanrage/relay', 'lanrage/settings']) {
      const r = run(['node', '--input-type=module', '-e', `await import('${entry}')`], APP_FULL, 30_000)
      expect(r.code).not.toBe(0)
      expect(r.err).toContain('runs on Bun only')
    }
  })

  test('under Bun, lanrage/settings opens a settings file with the settings tables only', () => {
    const script = join(APP_FULL, 'settings.mjs')
    const path = join(work, 'user-settings.db')
    writeFileSync(
      script,
      `import { openSettings } from 'lanrage/settings'
import { Database } from 'bun:sqlite'
const s = openSettings(${JSON.stringify(path)})
s.settings.set('relay.port', 51820)
s.favorites.add({ name: 'box', address: '10.66.0.5:27015' })
const port = s.settings.get('relay.port')
s.close()
const tables = new Database(${JSON.stringify(path)}).query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").all().map((r) => r.name)
console.log(JSON.stringify({ port, tables }))
`,
    )
    const r = run([process.execPath, script], APP_FULL, 60_000)
    if (r.code !== 0) throw new Error(`settings failed (${r.code}):\n${r.err}`)
    expect(JSON.parse(r.out.trim().split('\n').at(-1)!)).toEqual({ port: 51820, tables: ['__drizzle_migrations', 'favorite_servers', 'game_profiles', 'server_configs', 'settings'] })
  }, 60_000)

  test('under Bun, lanrage/control and lanrage/relay embed a control server and a relay that registers with it', () => {
    const script = join(APP_FULL, 'embed.mjs')
    writeFileSync(
      script,
      `import { defaultControlConfig, openDatabase, startControl } from 'lanrage/control'
import { defaultRelayConfig, startRelay } from 'lanrage/relay'
const open = openDatabase(${JSON.stringify(join(work, 'embed.db'))})
const control = startControl(defaultControlConfig({ host: '127.0.0.1', port: 0, relaySecret: 'embedded-secret' }), { open })
const relay = await startRelay(defaultRelayConfig({ host: '127.0.0.1', port: 0, stunAltPort: -1, metricsPort: -1, ports: '${relayPorts.first}-${relayPorts.last}', publicIp: '127.0.0.1', control: control.url, relaySecret: 'embedded-secret' }), { ticketPublicKey: control.ticketPublicKey })
let relays = 0
for (let i = 0; i < 100 && relays === 0; i++) {
  relays = (await (await fetch(control.url + '/')).json()).relays ?? 0
  if (relays === 0) await Bun.sleep(50)
}
console.log(JSON.stringify({ health: (await fetch(control.url + '/')).status, relays }))
await relay.close(); await control.close(); open.close()
`,
    )
    const r = run([process.execPath, script], APP_FULL, 60_000)
    if (r.code !== 0) throw new Error(`embedding failed (${r.code}):\n${r.err}`)
    expect(r.err).toContain('registered with control server')
    expect(JSON.parse(r.out.trim().split('\n').at(-1)!)).toEqual({ health: 200, relays: 1 })
  }, 60_000)
})
