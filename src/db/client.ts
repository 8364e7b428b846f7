/**
 * Opens a SQLite database with the pragmas this project relies on and applies its migration streams
 * (src/db/migrations.ts): a server's database gets the settings and the control tables (`openDatabase`), a
 * user's settings file the settings tables only (`openSettingsDatabase`).
 *
 * Every database here holds secrets (the server's private keys; settings may hold a relay secret), so the file
 * and its -wal/-shm/-journal sidecars (same content) are 0600 and a directory created for it is 0700.
 */
import { Database } from 'bun:sqlite'
import { dirname } from 'node:path'
import { drizzle, type BunSQLiteDatabase } from 'drizzle-orm/bun-sqlite'
import { createLogger, type Logger } from '../shared/log.ts'
import { ensurePrivateDir, ensurePrivateFile } from '../shared/private-files.ts'
import { dropUnusedControlTables, migrateStreams, type Stream } from './migrations.ts'
import * as schema from './schema/index.ts'
import * as settingsSchema from './schema/settings.ts'

/** A server's database: the settings and the control tables. */
export type Db = BunSQLiteDatabase<typeof schema>
/** A user's settings file: the settings tables only. */
export type SettingsDb = BunSQLiteDatabase<typeof settingsSchema>
export interface OpenDb<D = Db> {
  db: D
  sqlite: Database
  path: string
  close(): void
}

export interface OpenOptions {
  /**
   * The database's directory belongs to LANrage alone ($LANRAGE_HOME, the default ./data): an existing one open to
   * other users is tightened to 0700. Otherwise only a directory created here is made 0700.
   */
  privateDir?: boolean
  /** Where warnings about loosened modes go (default: a `db` logger on stderr). */
  log?: Logger
}

/** The files SQLite keeps beside a database in WAL mode (or after a crash in rollback mode): same secrets. */
const SIDECARS = ['-wal', '-shm', '-journal']

/** A control server's database (`lanrage control`, `lanrage serve`): created if missing, both streams migrated. */
export function openDatabase(path: string, o: OpenOptions = {}): OpenDb {
  return open(path, o, ['settings', 'control'], schema)
}

/**
 * A settings file ($LANRAGE_HOME/settings.db, `lanrage settings --db`): created if missing, the settings stream
 * migrated. A file from before the split keeps its settings and loses its control tables if it never used them.
 */
export function openSettingsDatabase(path: string, o: OpenOptions = {}): OpenDb<SettingsDb> {
  return open(path, o, ['settings'], settingsSchema, (sqlite) => {
    const dropped = dropUnusedControlTables(sqlite)
    if (dropped.length) (o.log ?? createLogger('db')).info('removed the unused control server tables from a settings file', { path, tables: dropped.length })
  })
}

function open<S extends Record<string, unknown>>(path: string, o: OpenOptions, streams: Stream[], tables: S, before?: (sqlite: Database) => void): OpenDb<BunSQLiteDatabase<S>> {
  if (path !== ':memory:' && path !== '') {
    const warn = (m: string) => (o.log ?? createLogger('db')).warn(m)
    ensurePrivateDir(dirname(path), { tighten: o.privateDir ?? false, warn })
    // Created 0600 before SQLite opens it: SQLite gives the -wal and -shm files it creates the main file's mode.
    ensurePrivateFile(path, { create: true, warn })
    for (const s of SIDECARS) ensurePrivateFile(path + s, { warn })
  }
  const sqlite = new Database(path, { create: true, strict: true })
  // WAL + synchronous=NORMAL: commits don't fsync the main file; a crash loses at most the last
  // transactions, never corrupts. foreign_keys is off by default in SQLite.
  sqlite.exec('PRAGMA journal_mode = WAL')
  sqlite.exec('PRAGMA synchronous = NORMAL')
  sqlite.exec('PRAGMA foreign_keys = ON')
  sqlite.exec('PRAGMA busy_timeout = 5000')
  try {
    before?.(sqlite)
    migrateStreams(sqlite, streams)
  } catch (e) {
    sqlite.close(false)
    throw e
  }
  const db = drizzle(sqlite, { schema: tables })
  let closed = false
  return {
    db,
    sqlite,
    path,
    close() {
      if (closed) return
      closed = true
      try {
        if (path !== ':memory:') sqlite.exec('PRAGMA wal_checkpoint(TRUNCATE)')
      } catch {
        // a checkpoint can fail while another connection reads; the WAL is replayed on next open
      }
      sqlite.close(false)
    },
  }
}
