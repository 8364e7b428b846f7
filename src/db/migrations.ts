/**
 * The two migration streams and how a database file gets the ones it needs.
 *
 *   settings  drizzle/settings/  the settings tables: in a user's settings file and in every server's database
 *   control   drizzle/control/   the control server's tables: in its database only
 *
 * Each stream is one drizzle-kit output folder (drizzle.<stream>.config.ts) with its own table recording what was
 * applied, so either can gain migrations without the other. drizzle applies a stream's migrations that are newer
 * than the newest recorded one (by the journal's `when`), each once.
 *
 * Before the split there was one stream, recorded in `__drizzle_migrations`, that created every table in every
 * file: a settings file made then also holds the (empty) control tables, and a server database has its control
 * migrations recorded in that table. The settings stream keeps that table, and its first migration is the same
 * file, so those files need nothing for settings. For control, `adoptSingleStream` copies into the control stream's
 * table the records of the control migrations the old stream applied (same SQL, so same hash, and same `when`);
 * `dropUnusedControlTables` removes the control tables from a settings file that never served as a server's
 * database. drizzle's migrator is used as is (never another driver's: bun:sqlite is the only one that runs here).
 */
import type { Database } from 'bun:sqlite'
import { getTableName, is } from 'drizzle-orm'
import { drizzle } from 'drizzle-orm/bun-sqlite'
import { migrate } from 'drizzle-orm/bun-sqlite/migrator'
import { readMigrationFiles } from 'drizzle-orm/migrator'
import { SQLiteTable } from 'drizzle-orm/sqlite-core'
import * as controlSchema from './schema/control.ts'

export type Stream = 'settings' | 'control'

const folder = (s: Stream) => new URL(`../../drizzle/${s}`, import.meta.url).pathname
export const STREAMS: Record<Stream, { folder: string; table: string }> = {
  // the single stream's table: every file made before the split already records this stream's first migration
  settings: { folder: folder('settings'), table: '__drizzle_migrations' },
  control: { folder: folder('control'), table: '__drizzle_migrations_control' },
}

/** The control server's tables, from its schema. */
export const CONTROL_TABLES: string[] = Object.values(controlSchema)
  .filter((t) => is(t, SQLiteTable))
  .map((t) => getTableName(t as SQLiteTable))

const tableExists = (sqlite: Database, name: string) => sqlite.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name) !== null

/** The control stream's migrations that the single stream applied to this file (by hash and `when`). */
function controlMigrationsOfSingleStream(sqlite: Database): { hash: string; folderMillis: number }[] {
  if (!tableExists(sqlite, STREAMS.settings.table)) return []
  const applied = new Set(
    (sqlite.query(`SELECT hash, created_at FROM ${STREAMS.settings.table}`).all() as { hash: string; created_at: number | string }[]).map((r) => `${r.hash}@${Number(r.created_at)}`),
  )
  return readMigrationFiles({ migrationsFolder: STREAMS.control.folder }).filter((m) => applied.has(`${m.hash}@${m.folderMillis}`))
}

/**
 * For a server database made by the single stream: records in the control stream's table the control migrations
 * already applied, so the migrator applies only the newer ones. Does nothing once the control stream has a table.
 */
export function adoptSingleStream(sqlite: Database): void {
  if (tableExists(sqlite, STREAMS.control.table)) return
  const done = controlMigrationsOfSingleStream(sqlite)
  if (!done.length) return
  sqlite.transaction(() => {
    // the table as drizzle's migrator creates it
    sqlite.run(`CREATE TABLE ${STREAMS.control.table} (id SERIAL PRIMARY KEY, hash text NOT NULL, created_at numeric)`)
    for (const m of done) sqlite.run(`INSERT INTO ${STREAMS.control.table} (hash, created_at) VALUES (?, ?)`, [m.hash, m.folderMillis])
  })()
}

/**
 * For a settings file made by the single stream: drops the control tables it holds when every one of them is
 * empty (nothing ever used the file as a control server's database), and forgets their migrations. A file whose
 * control tables hold anything is left as it is.
 */
export function dropUnusedControlTables(sqlite: Database): string[] {
  if (tableExists(sqlite, STREAMS.control.table)) return []
  const done = controlMigrationsOfSingleStream(sqlite)
  if (!done.length) return []
  const present = CONTROL_TABLES.filter((t) => tableExists(sqlite, t))
  if (present.some((t) => sqlite.query(`SELECT 1 FROM "${t}" LIMIT 1`).get() !== null)) return []
  // Foreign keys between the dropped tables must not fire while they go (the pragma is ignored inside a transaction).
  sqlite.exec('PRAGMA foreign_keys = OFF')
  try {
    sqlite.transaction(() => {
      for (const t of present) sqlite.run(`DROP TABLE "${t}"`)
      for (const m of done) sqlite.run(`DELETE FROM ${STREAMS.settings.table} WHERE hash = ? AND created_at = ?`, [m.hash, m.folderMillis])
    })()
  } finally {
    sqlite.exec('PRAGMA foreign_keys = ON')
  }
  return present
}

/** Applies the streams' pending migrations, in order (settings first: the control stream never depends on it). */
export function migrateStreams(sqlite: Database, streams: readonly Stream[]): void {
  const db = drizzle(sqlite)
  for (const s of streams) {
    if (s === 'control') adoptSingleStream(sqlite)
    migrate(db, { migrationsFolder: STREAMS[s].folder, migrationsTable: STREAMS[s].table })
  }
}
