/**
 * The text form of typed settings values (string, int, float, bool, json, null), shared by the settings store
 * (src/db/settings.ts) and the relay, which reads its settings without an ORM (src/relay/settings-file.ts).
 */
import { LanrageError } from './errors.ts'

export const SETTING_TYPES = ['string', 'int', 'float', 'bool', 'json', 'null'] as const
export type SettingType = (typeof SETTING_TYPES)[number]

export type SettingValue = string | number | boolean | null | SettingJson
export type SettingJson = { [k: string]: unknown } | unknown[]

export class SettingsError extends LanrageError {}

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
