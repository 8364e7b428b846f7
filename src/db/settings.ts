/**
 * The typed settings store: every value keeps its type through a round trip (string, int, float, bool, json;
 * null stays null). Values are stored as text plus a type tag so the table stays readable with the sqlite3 CLI.
 */
import { asc, eq } from 'drizzle-orm'
import { LanrageError } from '../shared/errors.ts'
import type { Db } from './client.ts'
import { SETTING_TYPES, settings, type SettingType } from './schema/settings.ts'

export type SettingValue = string | number | boolean | null | SettingJson
export type SettingJson = { [k: string]: unknown } | unknown[]
export interface SettingRow {
  key: string
  value: SettingValue
  type: SettingType
  updatedAt: number
}

export class SettingsError extends LanrageError {}

export const KEY_RE = /^[a-z0-9][a-z0-9_.-]{0,127}$/

export function typeOf(v: SettingValue): SettingType {
  if (v === null) return 'null'
  if (typeof v === 'string') return 'string'
  if (typeof v === 'boolean') return 'bool'
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new SettingsError('INVALID_SETTING', `setting value ${v} is not a finite number`)
    return Number.isInteger(v) ? 'int' : 'float'
  }
  return 'json'
}

export function encodeValue(v: SettingValue, type: SettingType): string | null {
  switch (type) {
    case 'null':
      return null
    case 'string':
      return v as string
    case 'json':
      return JSON.stringify(v)
    default:
      return String(v)
  }
}

export function decodeValue(text: string | null, type: SettingType): SettingValue {
  switch (type) {
    case 'null':
      return null
    case 'string':
      return text ?? ''
    case 'int':
    case 'float':
      return Number(text)
    case 'bool':
      return text === 'true'
    case 'json':
      return JSON.parse(text ?? 'null')
  }
}

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
  constructor(private readonly db: Db) {}

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
