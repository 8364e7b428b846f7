/**
 * `lanrage/settings`: the settings database (Bun only: bun:sqlite).
 *
 *   import { openSettings } from 'lanrage/settings'
 *   const s = openSettings()                         // $LANRAGE_HOME/settings.db (~/.lanrage), created if missing
 *   s.settings.set('relay.port', 51820)              // typed: string, int, float, bool, json, null
 *   s.favorites.add({ name: 'LAN box', address: '10.66.0.5:27015', game: 'cs2' })
 *   s.close()
 *
 * The typed settings store keeps every value's type through a round trip (null stays null); values are stored as
 * text plus a type tag so the table stays readable with the sqlite3 CLI. The same stores work on a server's own
 * database (the `settings` table there holds that server's option defaults).
 */
import { asc, eq } from 'drizzle-orm'
import { decodeValue, encodeValue, SettingsError, typeOf, type SettingValue } from '../shared/settings-codec.ts'
import { existsSync } from 'node:fs'
import { defaultSettingsPath } from '../shared/home.ts'
import { openSettingsDatabase, type OpenOptions, type SettingsDb } from './client.ts'
import { isUniqueViolation } from './errors.ts'
import { favoriteServers, gameProfiles, SERVER_MODES, serverConfigs, SETTING_TYPES, settings, type SettingType } from './schema/settings.ts'

export type { SettingJson, SettingValue } from '../shared/settings-codec.ts'
export { decodeValue, encodeValue, SettingsError, typeOf } from '../shared/settings-codec.ts'
export interface SettingRow {
  key: string
  value: SettingValue
  type: SettingType
  updatedAt: number
}

export const KEY_RE = /^[a-z0-9][a-z0-9_.-]{0,127}$/

/**
 * Parses a value typed on the command line: `lanrage settings set relay.port 51820 --type int`.
 * Without a type: true/false → bool, integers → int, decimals → float, {…}/[…] → json, else string.
 */
export function parseTyped(text: string, type?: SettingType): { value: SettingValue; type: SettingType } {
  const bad = (why: string) => new SettingsError('INVALID_SETTING', `value ${JSON.stringify(text)} ${why}`)
  if (type && !SETTING_TYPES.includes(type)) throw new SettingsError('INVALID_SETTING', `unknown type "${type}" (one of ${SETTING_TYPES.join(', ')})`)
  const t = type ?? (/^(true|false)$/.test(text) ? 'bool' : /^-?\d+$/.test(text) ? 'int' : /^-?\d*\.\d+(e-?\d+)?$/i.test(text) ? 'float' : /^[[{]/.test(text) ? 'json' : 'string')
  switch (t) {
    case 'string':
      return { value: text, type: t }
    case 'null':
      if (text !== 'null' && text !== '') throw bad('is not null')
      return { value: null, type: t }
    case 'bool':
      if (!/^(true|false|1|0|yes|no|on|off)$/i.test(text)) throw bad('is not a boolean (true/false)')
      return { value: /^(true|1|yes|on)$/i.test(text), type: t }
    case 'int': {
      const n = Number(text)
      if (!/^-?\d+$/.test(text.trim()) || !Number.isSafeInteger(n)) throw bad('is not an integer')
      return { value: n, type: t }
    }
    case 'float': {
      const n = Number(text)
      if (text.trim() === '' || !Number.isFinite(n)) throw bad('is not a number')
      return { value: n, type: t }
    }
    case 'json':
      try {
        return { value: JSON.parse(text), type: t }
      } catch (e) {
        throw bad(`is not valid JSON: ${(e as Error).message}`)
      }
  }
}

export class SettingsStore {
  constructor(private readonly db: SettingsDb) {}

  private checkKey(key: string) {
    if (!KEY_RE.test(key)) throw new SettingsError('INVALID_SETTING_KEY', `setting key ${JSON.stringify(key)} must match ${KEY_RE}`)
  }

  get(key: string): SettingValue | undefined {
    const row = this.db.select().from(settings).where(eq(settings.key, key)).get()
    return row ? decodeValue(row.value, row.type) : undefined
  }

  getRow(key: string): SettingRow | undefined {
    const row = this.db.select().from(settings).where(eq(settings.key, key)).get()
    return row ? { key: row.key, type: row.type, updatedAt: row.updatedAt, value: decodeValue(row.value, row.type) } : undefined
  }

  set(key: string, value: SettingValue, type: SettingType = typeOf(value), now = Date.now()): SettingRow {
    this.checkKey(key)
    if (type !== typeOf(value) && !(type === 'float' && typeof value === 'number') && !(type === 'json' && value !== null))
      throw new SettingsError('INVALID_SETTING', `value for ${key} is a ${typeOf(value)}, not a ${type}`)
    const text = encodeValue(value, type)
    this.db
      .insert(settings)
      .values({ key, value: text, type, updatedAt: now })
      .onConflictDoUpdate({ target: settings.key, set: { value: text, type, updatedAt: now } })
      .run()
    return { key, value, type, updatedAt: now }
  }

  delete(key: string): boolean {
    return this.db.delete(settings).where(eq(settings.key, key)).returning({ key: settings.key }).all().length > 0
  }

  list(prefix?: string): SettingRow[] {
    const rows = this.db.select().from(settings).orderBy(asc(settings.key)).all()
    return rows.filter((r) => !prefix || r.key.startsWith(prefix)).map((r) => ({ key: r.key, type: r.type, updatedAt: r.updatedAt, value: decodeValue(r.value, r.type) }))
  }
}

// ---- server_configs, favorite_servers, game_profiles ----------------------------------------------------------

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$/
export type ServerMode = (typeof SERVER_MODES)[number]

function checkName(name: string, what: string): string {
  if (typeof name !== 'string' || !NAME_RE.test(name)) throw new SettingsError('INVALID_NAME', `${what} name ${JSON.stringify(name)} must be 1-64 letters, digits, space, _ . - (starting with a letter or digit)`)
  return name
}
function checkObject(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new SettingsError('INVALID_SETTING', `${what} must be a JSON object, not ${Array.isArray(v) ? 'an array' : JSON.stringify(v)}`)
  return v as Record<string, unknown>
}

export type ServerConfig = typeof serverConfigs.$inferSelect

/** Named control/relay/serve configurations a user keeps (`server_configs`). */
export class ServerConfigStore {
  constructor(private readonly db: SettingsDb) {}

  list(mode?: ServerMode): ServerConfig[] {
    const rows = this.db.select().from(serverConfigs).orderBy(asc(serverConfigs.name)).all()
    return rows.filter((r) => !mode || r.mode === mode)
  }

  get(name: string): ServerConfig | undefined {
    return this.db.select().from(serverConfigs).where(eq(serverConfigs.name, name)).get()
  }

  /** Creates or replaces the configuration called `name` (its id and createdAt survive a replace). */
  save(input: { name: string; mode: ServerMode; config: Record<string, unknown>; enabled?: boolean }, now = Date.now()): ServerConfig {
    checkName(input.name, 'server config')
    if (!SERVER_MODES.includes(input.mode)) throw new SettingsError('INVALID_SETTING', `server config mode ${JSON.stringify(input.mode)} must be one of ${SERVER_MODES.join(', ')}`)
    const config = checkObject(input.config, `server config ${input.name}`)
    const enabled = input.enabled ?? true
    return this.db
      .insert(serverConfigs)
      .values({ name: input.name, mode: input.mode, config, enabled, createdAt: now, updatedAt: now })
      .onConflictDoUpdate({ target: serverConfigs.name, set: { mode: input.mode, config, enabled, updatedAt: now } })
      .returning()
      .get()
  }

  setEnabled(name: string, enabled: boolean, now = Date.now()): ServerConfig {
    const row = this.db.update(serverConfigs).set({ enabled, updatedAt: now }).where(eq(serverConfigs.name, name)).returning().get()
    if (!row) throw new SettingsError('NOT_FOUND', `no server config named ${JSON.stringify(name)}`, 404)
    return row
  }

  delete(name: string): boolean {
    return this.db.delete(serverConfigs).where(eq(serverConfigs.name, name)).returning({ id: serverConfigs.id }).all().length > 0
  }
}

export type FavoriteServer = typeof favoriteServers.$inferSelect

/** Game servers reachable over the virtual network that a user marked (`favorite_servers`, unique by address). */
export class FavoriteServerStore {
  constructor(private readonly db: SettingsDb) {}

  list(game?: string): FavoriteServer[] {
    const rows = this.db.select().from(favoriteServers).orderBy(asc(favoriteServers.name), asc(favoriteServers.address)).all()
    return rows.filter((r) => game === undefined || r.game === game)
  }

  add(input: { name: string; address: string; game?: string | null }, now = Date.now()): FavoriteServer {
    checkName(input.name, 'favorite server')
    const m = /^([A-Za-z0-9.-]+|\[[0-9a-fA-F:.]+\]):(\d{1,5})$/.exec(input.address ?? '')
    if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) throw new SettingsError('INVALID_SETTING', `favorite server address ${JSON.stringify(input.address)} must be host:port (port 1-65535)`)
    try {
      return this.db.insert(favoriteServers).values({ name: input.name, address: input.address, game: input.game ?? null, addedAt: now }).returning().get()
    } catch (e) {
      if (isUniqueViolation(e)) throw new SettingsError('ALREADY_EXISTS', `${input.address} is already a favorite`, 409)
      throw e
    }
  }

  remove(address: string): boolean {
    return this.db.delete(favoriteServers).where(eq(favoriteServers.address, address)).returning({ id: favoriteServers.id }).all().length > 0
  }
}

export type GameProfile = typeof gameProfiles.$inferSelect

/** Per-game tuning as a JSON object (`game_profiles`), e.g. { keepalive: 25, mtu: 1380, ports: [27015] }. */
export class GameProfileStore {
  constructor(private readonly db: SettingsDb) {}

  list(game?: string): GameProfile[] {
    const rows = this.db.select().from(gameProfiles).orderBy(asc(gameProfiles.name)).all()
    return rows.filter((r) => game === undefined || r.game === game)
  }

  get(name: string): GameProfile | undefined {
    return this.db.select().from(gameProfiles).where(eq(gameProfiles.name, name)).get()
  }

  save(input: { name: string; game: string; profile: Record<string, unknown> }, now = Date.now()): GameProfile {
    checkName(input.name, 'game profile')
    if (typeof input.game !== 'string' || !input.game.trim() || input.game.length > 64) throw new SettingsError('INVALID_SETTING', `game profile ${input.name}: game must be 1-64 characters`)
    const profile = checkObject(input.profile, `game profile ${input.name}`)
    return this.db
      .insert(gameProfiles)
      .values({ name: input.name, game: input.game, profile, createdAt: now, updatedAt: now })
      .onConflictDoUpdate({ target: gameProfiles.name, set: { game: input.game, profile, updatedAt: now } })
      .returning()
      .get()
  }

  delete(name: string): boolean {
    return this.db.delete(gameProfiles).where(eq(gameProfiles.name, name)).returning({ id: gameProfiles.id }).all().length > 0
  }
}

export interface SettingsDatabase {
  readonly path: string
  /** `settings`: typed key/value pairs (option defaults are `<command>.<option>`, e.g. relay.port). */
  readonly settings: SettingsStore
  /** `server_configs`: named control/relay/serve option sets. */
  readonly servers: ServerConfigStore
  /** `favorite_servers`: game servers, unique by address. */
  readonly favorites: FavoriteServerStore
  /** `game_profiles`: a JSON object per game. */
  readonly games: GameProfileStore
  close(): void
}

/**
 * Opens a settings file (default $LANRAGE_HOME/settings.db), creating and migrating it as needed. The default
 * file's directory is LANrage's own and is kept private (0700); a path of your own keeps its directory as it is.
 */
export function openSettings(path?: string, o: OpenOptions = {}): SettingsDatabase {
  const open = openSettingsDatabase(path ?? defaultSettingsPath(), { privateDir: path === undefined, ...o })
  return {
    path: open.path,
    settings: new SettingsStore(open.db),
    servers: new ServerConfigStore(open.db),
    favorites: new FavoriteServerStore(open.db),
    games: new GameProfileStore(open.db),
    close: () => open.close(),
  }
}

/** Reads option values from the settings file under $LANRAGE_HOME, when there is one (`lanrage up`, `lanrage nat`). */
export function settingsReader(env: Record<string, string | undefined> = process.env): ((key: string) => unknown) | undefined {
  const path = defaultSettingsPath(env)
  if (!existsSync(path)) return undefined
  const open = openSettingsDatabase(path, { privateDir: true })
  const store = new SettingsStore(open.db)
  return (key) => store.get(key)
}

export { SETTING_TYPES, type SettingType } from './schema/settings.ts'
