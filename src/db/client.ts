/**
 * Opens a SQLite database with the pragmas this project relies on and applies the migrations in drizzle/
 * with drizzle's bun-sqlite migrator (never another driver's, STYLE.md §4.3).
 */
import { Database } from 'bun:sqlite'
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { drizzle, type BunSQLiteDatabase } from 'drizzle-orm/bun-sqlite'
import { migrate } from 'drizzle-orm/bun-sqlite/migrator'
import * as schema from './schema/index.ts'

export type Db = BunSQLiteDatabase<typeof schema>
export interface OpenDb {
  db: Db
  sqlite: Database
  path: string
  close(): void
}

export const MIGRATIONS_FOLDER = new URL('../../drizzle', import.meta.url).pathname

export function openDatabase(path: string): OpenDb {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true })
  const sqlite = new Database(path, { create: true, strict: true })
  // WAL + synchronous=NORMAL: commits don't fsync the main file; a crash loses at most the last
  // transactions, never corrupts (STYLE.md §4.6). foreign_keys is off by default in SQLite.
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
