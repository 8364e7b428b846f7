/**
 * Settings database tables (DESIGN.md "Settings database"). Shared by the client agent (~/.lanrage/settings.db)
 * and the servers (their own database file), which read their option defaults from `settings`.
 * Pure drizzle-orm/sqlite-core: drizzle-kit loads this file under Node (STYLE.md §4.3).
 */
import { integer, sqliteTable, text } from 'drizzle-orm/sqlite-core'
import { SETTING_TYPES } from '../../shared/settings-codec.ts'

export { SETTING_TYPES, type SettingType } from '../../shared/settings-codec.ts'

export const settings = sqliteTable('settings', {
  key: text('key').primaryKey(),
  /** The value's text form: a string as is, numbers and booleans in canonical text, json as JSON text. */
  value: text('value'),
  type: text('type', { enum: SETTING_TYPES }).notNull(),
  updatedAt: integer('updated_at', { mode: 'number' }).notNull(),
})

export const SERVER_MODES = ['control', 'relay', 'serve'] as const

/** Named control/relay server configurations a user keeps (e.g. "home", "eu-relay"). */
export const serverConfigs = sqliteTable('server_configs', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  name: text('name').notNull().unique(),
  mode: text('mode', { enum: SERVER_MODES }).notNull(),
  enabled: integer('enabled', { mode: 'boolean' }).notNull().default(true),
  /** JSON object of option values for that mode. */
  config: text('config', { mode: 'json' }).notNull().$type<Record<string, unknown>>(),
  createdAt: integer('created_at', { mode: 'number' }).notNull(),
  updatedAt: integer('updated_at', { mode: 'number' }).notNull(),
})

/** Game servers a user marks as favourites (address reachable over the virtual network). */
export const favoriteServers = sqliteTable('favorite_servers', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  name: text('name').notNull(),
  address: text('address').notNull().unique(),
  game: text('game'),
  addedAt: integer('added_at', { mode: 'number' }).notNull(),
})

/** Per-game tuning (ports to forward, keepalive, MTU...) as a JSON object. */
export const gameProfiles = sqliteTable('game_profiles', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  name: text('name').notNull().unique(),
  game: text('game').notNull(),
  profile: text('profile', { mode: 'json' }).notNull().$type<Record<string, unknown>>(),
  createdAt: integer('created_at', { mode: 'number' }).notNull(),
  updatedAt: integer('updated_at', { mode: 'number' }).notNull(),
})
