/**
 * Settings for the standalone `lanrage relay` (keys `relay.<option>`, e.g. `lanrage settings set relay.region eu`).
 * The relay has no database of its own and no ORM in its import graph, so this opens the user's settings file
 * ($LANRAGE_HOME/settings.db, written by `lanrage settings`) read-only with bun:sqlite, reads what the option
 * parser asks for, and is closed before the relay starts. A missing file means no settings.
 */
import { Database } from 'bun:sqlite'
import { existsSync } from 'node:fs'
import { decodeValue, SETTING_TYPES, type SettingType } from '../shared/settings-codec.ts'

export interface SettingsFile {
  get(key: string): unknown
  close(): void
}

export function openSettingsFile(path: string): SettingsFile | undefined {
  if (!existsSync(path)) return undefined
  const db = new Database(path, { readonly: true })
  let q: ReturnType<typeof db.query<{ value: string | null; type: string }, [string]>>
  try {
    q = db.query('SELECT value, type FROM settings WHERE key = ?')
  } catch {
    db.close() // a file without the settings table (never migrated): nothing to read
    return undefined
  }
  let closed = false
  return {
    get(key) {
      const row = q.get(key)
      if (!row || !SETTING_TYPES.includes(row.type as SettingType)) return undefined
      return decodeValue(row.value, row.type as SettingType)
    },
    close() {
      if (closed) return
      closed = true
      db.close(false)
    },
  }
}
