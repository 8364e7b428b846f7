/**
 * Opens a SQLite database with the pragmas this project relies on and applies the migrations in drizzle/
 * with drizzle's bun-sqlite migrator (drizzle-kit's other drivers cannot run under bun:sqlite).
 *
 * Every database here holds secrets (the server's private keys; settings may hold a relay secret), so the file
 * and its -wal/-shm/-journal sidecars (same content) are 0600 and a directory created for it is 0700.
 */
import { Database } from 'bun:sqlite'
import { dirname } from 'node:path'
import { drizzle, type BunSQLiteDatabase } from 'drizzle-orm/bun-sqlite'
import { migrate } from 'drizzle-orm/bun-sqlite/migrator'
import { createLogger, type Logger } from '../shared/log.ts'
import { ensurePrivateDir, ensurePrivateFile } from '../shared/private-files.ts'
import * as schema from './schema/index.ts'

export type Db = BunSQLiteDatabase<typeof schema>
export interface OpenDb {
  db: Db
  sqlite: Database
  path: string
  close(): void
}

export const MIGRATIONS_FOLDER = new URL('../../drizzle', import.meta.url).pathname

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

export function openDatabase(path: string, o: OpenOptions = {}): OpenDb {
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
  const db = drizzle(sqlite, { schema })
  migrate(db, { migrationsFolder: MIGRATIONS_FOLDER })
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
