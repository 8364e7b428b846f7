/** `lanrage up`: join this machine to a party's WireGuard network and keep every member connected. */
import { Type } from '@sinclair/typebox'
import { runCommand } from '../shared/command.ts'
import type { CommandSpec } from '../shared/config.ts'
import { isAddrInUse, LanrageError, PortInUseError, UsageError } from '../shared/errors.ts'
import { createLogger } from '../shared/log.ts'
import { safeText } from '../shared/terminal.ts'
import { RemoteControlPlane } from '../client/control/remote.ts'
import { detectNatFromPort } from '../client/nat/detect.ts'
import { IFNAME_RE, WireGuardInterface } from '../client/wireguard/iface.ts'
import { machineFacts, preflightProblem } from '../client/wireguard/preflight.ts'
import { DEFAULT_TIMING } from '../client/punch/conn.ts'
import { Agent, nameFromHost, type RelayEndpoint } from '../client/agent/agent.ts'
import { MAX_PEER_NAME, PeerName } from '../shared/api.ts'
import { hostname } from 'node:os'
import { allocate, listRelays } from '../client/agent/relay-client.ts'
import { alive, loadOrCreateApiKey, loadOrCreateKey, readStatusFile, removeStatusFile, statusPath, writeStatusFile } from '../client/agent/state.ts'
import { AgentSession } from '../client/agent/session.ts'
import { createLocalApi, DEFAULT_API_PORT, loadAssets, type LocalApi, WEB_DIR } from '../client/agent/local-api.ts'
import { openSettingsDatabase } from '../db/client.ts'
import { FavoriteServerStore, GameProfileStore, ServerConfigStore, SettingsStore, settingsReader } from '../db/settings.ts'
import { defaultSettingsPath } from '../shared/home.ts'
import { Value } from '@sinclair/typebox/value'
import { randomBytes } from 'node:crypto'
import { controlUrlList, readCaFile } from '../shared/tls.ts'
import { openUdpSocket } from '../client/net/udp.ts'

export const spec = {
  name: 'up',
  summary: 'run the client agent: create or join a party (here or on its page) and keep this machine on its WireGuard network',
  description: [
    'Registers this machine (its WireGuard key in $LANRAGE_HOME/private.key), learns its public address by',
    'STUN at the relay, creates (--create NAME) or joins (--join PARTY_ID) a party, brings up the interface',
    'with the party virtual IP and connects to every member: directly when both NATs allow it, else relayed.',
    'Prints `party_id: <id>` and one line per peer whenever its path (direct / relay / connecting) changes.',
    'Without --create or --join it waits for a party chosen on its page, http://127.0.0.1:8666/ (the local API;',
    '--no-api turns it off). Runs until Ctrl-C, SIGTERM or `lanrage down`, then leaves the party and removes',
    'the interface.',
  ].join('\n'),
  schema: Type.Object({
    control: Type.String({
      default: 'http://127.0.0.1:8667',
      description: 'control server URL (http://, https://, ws:// or wss://), or several separated by commas: instances of one control server, used in turn when one fails',
    }),
    caFile: Type.String({ default: '', description: 'PEM file of the CA that signed an https:// control server certificate (a private CA; replaces the system list)' }),
    create: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'create a party with this name', settings: false })),
    join: Type.Optional(Type.String({ pattern: '^[0-9a-f]{12}$', expected: '12 hex digits', description: 'join the party with this id (12 hex digits)', settings: false })),
    password: Type.Optional(Type.String({ description: 'party password (for --create: set it; for --join: present it)', settings: false })),
    name: Type.Optional(Type.String({ ...PeerName, description: `your display name in the party, 1-${MAX_PEER_NAME} printable characters (default: this machine's host name)` })),
    maxPeers: Type.Optional(Type.Integer({ minimum: 2, maximum: 254, description: 'party size limit (with --create)', settings: false })),
    interface: Type.String({
      default: 'lanrage0',
      pattern: IFNAME_RE.source,
      expected: '1 to 15 letters, digits, _ . or -',
      description: 'WireGuard interface name (unique per machine)',
    }),
    listenPort: Type.Integer({ default: 0, minimum: 0, maximum: 65535, description: 'WireGuard UDP port (0: a free one)' }),
    directRetry: Type.Number({ default: DEFAULT_TIMING.directRetryMs / 1000, minimum: 1, description: 'seconds between tries of a direct path while relayed (doubling while they fail)' }),
    api: Type.Boolean({ default: true, description: 'serve the local API and page on 127.0.0.1 (--no-api: off; then --create or --join is needed)' }),
    apiPort: Type.Integer({ default: DEFAULT_API_PORT, minimum: 0, maximum: 65535, description: 'TCP port of the local API and page on 127.0.0.1 (0: a free one)' }),
    heartbeatInterval: Type.Number({
      default: 30,
      minimum: 0.5,
      maximum: 120,
      description: 'seconds between heartbeats (the control server drops members silent for 5 minutes)',
    }),
  }),
} satisfies CommandSpec<any>

/** What it means when no relay answered STUN from the WireGuard port, said once at start-up. */
export const NO_STUN_ANSWER =
  'no STUN answer from any relay: UDP from this machine to the relays is blocked (a firewall?) or they are down, so this ' +
  'machine does not know its public address; peers can reach it only if they can reach it directly, and relaying uses ' +
  'the same UDP ports, so it will most likely fail too'

/** STUN at our own relays: a short schedule (≈3.75 s worst case) so a dead relay does not hold up `up`. */
const STUN_RETRANSMIT = { rtoMs: 250, rc: 4, rm: 8 }

/**
 * Binds the WireGuard port for a moment (0: any free one) and releases it for STUN and then WireGuard. A port
 * another program holds fails here, in one line, before anything registers or changes.
 */
async function claimUdpPort(port: number): Promise<number> {
  try {
    const s = await openUdpSocket({ hostname: '0.0.0.0', port, onMessage: () => {} })
    const bound = s.port
    s.close()
    return bound
  } catch (e) {
    if (isAddrInUse(e)) throw new PortInUseError('WireGuard listen port', port, 'udp', '--listen-port', { cause: e })
    throw e
  }
}

/** The local API's listener: 127.0.0.1 only, never sharing its port; a busy port is one line naming --api-port. */
function serveApi(port: number, fetch: (req: Request) => Promise<Response>) {
  try {
    // idleTimeout: live-update streams carry a comment every KEEPALIVE_MS, well within it.
    return Bun.serve({ hostname: '127.0.0.1', port, reusePort: false, idleTimeout: 30, fetch })
  } catch (e) {
    if (isAddrInUse(e)) throw new PortInUseError('local API', port, 'tcp', '--api-port', { cause: e })
    throw e
  }
}

export async function main(argv: string[]): Promise<number> {
  const settings = settingsReader()
  return runCommand(spec, { argv, env: process.env, settings }, async (cfg, pos) => {
    if (pos.length) throw new UsageError(`unexpected argument ${JSON.stringify(pos[0])}`)
    if (cfg.create !== undefined && cfg.join !== undefined) throw new UsageError('give --create NAME or --join PARTY_ID, not both')
    if (!cfg.api && cfg.create === undefined && cfg.join === undefined)
      throw new UsageError('with --no-api, give --create NAME or --join PARTY_ID (without them the party is chosen on the page)')
    controlUrlList(cfg.control) // a bad URL in the list is one line now, before any key or port is touched
    // What this machine lacks (root or CAP_NET_ADMIN, ip and wg, WireGuard) stops it here: before any party exists.
    const lacking = preflightProblem(machineFacts(), cfg.interface)
    if (lacking) throw lacking
    const running = readStatusFile()
    if (running && alive(running.pid) && running.pid !== process.pid)
      throw new LanrageError('ALREADY_RUNNING', `an agent is already running (pid ${running.pid}, ${statusPath()}); run lanrage down first`)

    const log = createLogger('agent')
    const tls = cfg.caFile ? readCaFile(cfg.caFile) : undefined
    // The settings database, for the page's settings view and the name setting read at every create/join.
    const db = openSettingsDatabase(defaultSettingsPath(), { privateDir: true })
    const store = new SettingsStore(db.db)
    const cleanups: (() => unknown)[] = [() => db.close()]
    const cleanup = () => {
      for (const c of cleanups.splice(0).reverse()) {
        try {
          c()
        } catch (e) {
          log.warn('cleanup failed', { error: e })
        }
      }
    }
    try {
      // --name (or LANRAGE_NAME) wins; a name from the settings is read again for every party, so the page's
      // "Your name" applies to the next one; without either, the host name.
      const fromSettings = cfg.name === undefined || cfg.name === settings?.('up.name')
      const nameNow = () => {
        if (!fromSettings) return cfg.name
        const v = store.get('up.name')
        if (v === undefined || v === null) return nameFromHost(hostname())
        if (typeof v === 'string' && Value.Check(PeerName, v)) return v
        log.warn('the setting up.name is not a usable name (1-32 printable characters); using the host name', {})
        return nameFromHost(hostname())
      }

      // The local API binds first: a busy port stops here, before anything registers or changes.
      let api: LocalApi | null = null
      let server: ReturnType<typeof serveApi> | null = null
      let session: AgentSession | null = null
      if (cfg.api) {
        api = createLocalApi({
          session: {
            status: () => session!.status(),
            subscribe: (fn) => session!.subscribe(fn),
            create: (name, o) => session!.create(name, o),
            join: (id, o) => session!.join(id, o),
            leave: () => session!.leave(),
          },
          settings: {
            settings: store,
            // The same checks as `lanrage settings set` (loaded here: the settings command imports the command list).
            typed: async (key, text, type, force) => (await import('./settings.ts')).homeSetting(key, text, type, force),
            serverConfigs: new ServerConfigStore(db.db),
            favorites: new FavoriteServerStore(db.db),
            gameProfiles: new GameProfileStore(db.db),
          },
          apiKey: loadOrCreateApiKey(),
          pageToken: randomBytes(32).toString('hex'),
          port: () => server?.port ?? cfg.apiPort,
          assets: loadAssets(WEB_DIR),
          log,
        })
        const s = serveApi(cfg.apiPort, api.fetch)
        server = s
        cleanups.push(() => s.stop(true), () => api!.close())
      }
      const pageUrl = server ? `http://127.0.0.1:${server.port}/` : null

      const listenPort = await claimUdpPort(cfg.listenPort)
      const privateKey = loadOrCreateKey()
      const control = new RemoteControlPlane({ url: cfg.control, privateKey, log, tls })
      cleanups.push(() => void control.close())
      log.info('registering with the control server', { control: cfg.control })
      await control.register()
      await control.connect()
      control.startHeartbeats(cfg.heartbeatInterval * 1000)

      const agentDeps = {
        control,
        listRelays: () => listRelays(control.url, control.token!, tls),
        detectNat: async (port: number, targets: RelayEndpoint[]) => {
          const r = await detectNatFromPort(port, targets, { retransmit: STUN_RETRANSMIT, log })
          if (!r.mappings.length) log.warn(NO_STUN_ANSWER, { asked: r.failures.map((f) => `${f.server} ${f.code}`).join(', ') })
          return r
        },
        allocate,
        createInterface: (name: string) => WireGuardInterface.create({ name, log }),
        now: Date.now,
        log,
        say: (line: string) => console.log(line),
        openEcho: (address: string, port: number, onMessage: (d: Uint8Array, p: number, a: string) => void) =>
          openUdpSocket({ hostname: address, port, onMessage, onError: (e) => log.debug('latency echo', { error: e }) }),
        hrNow: () => performance.now(),
      }
      const active = new AgentSession({
        makeAgent: (party, password, onStatus) =>
          new Agent(
            {
              privateKey,
              interfaceName: cfg.interface,
              listenPort,
              party,
              password,
              name: nameNow(),
              timing: { ...DEFAULT_TIMING, directRetryMs: cfg.directRetry * 1000 },
            },
            { ...agentDeps, writeStatus: onStatus },
          ),
        idleStatus: () => ({
          pid: process.pid,
          interface: cfg.interface,
          listen_port: listenPort,
          party: null,
          self: control.peerId ? { peer_id: control.peerId, name: nameNow() ?? null, virtual_ip: null, public_endpoint: null, nat_type: 'unknown' } : null,
          peers: [],
          updated_at: new Date().toISOString(),
        }),
        publish: (s) => writeStatusFile({ ...s, api: pageUrl, control: cfg.control, ...(cfg.caFile ? { ca_file: cfg.caFile } : {}) }),
        log,
      })
      session = active
      writeStatusFile({ ...active.status(), api: pageUrl, control: cfg.control, ...(cfg.caFile ? { ca_file: cfg.caFile } : {}) })

      let stopping: Promise<void> | null = null
      const stop = () => (stopping ??= active.stop().finally(() => {
        removeStatusFile()
        cleanup()
      }))
      const { promise: signalled, resolve: onStopSignal } = Promise.withResolvers<string>()
      const onSignal = (sig: string) => {
        log.info('stopping', { signal: sig })
        onStopSignal('')
        void stop()
      }
      process.on('SIGINT', onSignal)
      process.on('SIGTERM', onSignal)
      if (pageUrl) console.log(`page: ${pageUrl}`)
      try {
        if (cfg.create !== undefined) await active.create(cfg.create, { password: cfg.password, maxPeers: cfg.maxPeers })
        else if (cfg.join !== undefined) await active.join(cfg.join, { password: cfg.password })
      } catch (e) {
        await stop()
        throw e
      }
      // Started with --create/--join, the process ends with its party; started idle, it waits for the next one.
      const ended = cfg.create !== undefined || cfg.join !== undefined ? active.partyEnded : new Promise<string>(() => {})
      const why = await Promise.race([ended, signalled])
      await stop()
      if (why) console.log(safeText(`stopped: ${why}`))
      return 0
    } finally {
      cleanup()
    }
  })
}
