/**
 * One TypeBox schema per command feeds its flags, its environment variables, its settings-database keys and
 * its `--help` text. Precedence (DESIGN.md "Processes and commands"): flag > env > settings > default.
 *
 *   key `relaySecret`  →  flag `--relay-secret`, env `LANRAGE_RELAY_SECRET`, setting `<scope>.relay_secret`
 *
 * Booleans take `--flag`, `--flag=false` or `--no-flag`. Arrays take comma-separated values.
 * A property may opt out of a source with schema options `{ env: false }` or `{ settings: false }`
 * (e.g. the database path cannot come from the database). Every problem is reported at once (ConfigError).
 */
import { type Static, type TObject, type TSchema, Kind } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { ConfigError } from './errors.ts'

export const ENV_PREFIX = 'LANRAGE_'

export interface CommandSpec<T extends TObject> {
  /** e.g. "relay" — used in usage lines and as the settings scope. */
  name: string
  /** One line for the command list. */
  summary: string
  /** Extra text after the summary in --help. */
  description?: string
  /** Positional arguments shown in the usage line, e.g. "<get|set|list> [key] [value]". */
  positionals?: string
  schema: T
  /** Settings-database scope; defaults to `name`. */
  settingsScope?: string
}

export interface ConfigSources {
  argv: readonly string[]
  env?: Record<string, string | undefined>
  /** Reads a raw value from the settings database; undefined when absent. */
  settings?: (key: string) => unknown
}

export type Parsed<T extends TObject> =
  | { help: true; text: string }
  | { help: false; config: Static<T>; positionals: string[]; sources: Record<string, 'flag' | 'env' | 'settings' | 'default'> }

export const kebab = (k: string) => k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())
export const snake = (k: string) => k.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase())
export const envName = (k: string) => ENV_PREFIX + snake(k).toUpperCase()
export const settingsKey = (scope: string, k: string) => `${scope}.${snake(k)}`

const kindOf = (s: TSchema): string => (s as { [Kind]: string })[Kind]

/** Splits argv into flags and positionals; unknown flags are problems, not silently ignored. */
function scanArgv(argv: readonly string[], props: Record<string, TSchema>, problems: string[]) {
  const byFlag = new Map(Object.keys(props).map((k) => [kebab(k), k]))
  const flags: Record<string, unknown> = {}
  const positionals: string[] = []
  let help = false
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1))
      break
    }
    if (arg === '-h' || arg === '--help') {
      help = true
      continue
    }
    if (!arg.startsWith('--')) {
      positionals.push(arg)
      continue
    }
    const eq = arg.indexOf('=')
    let name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2)
    let value: unknown = eq >= 0 ? arg.slice(eq + 1) : undefined
    let key = byFlag.get(name)
    if (!key && name.startsWith('no-') && eq < 0) {
      const k = byFlag.get(name.slice(3))
      if (k && kindOf(props[k]!) === 'Boolean') {
        key = k
        value = 'false'
        name = name.slice(3)
      }
    }
    if (!key) {
      problems.push(`unknown option --${name}`)
      continue
    }
    if (value === undefined) {
      if (kindOf(props[key]!) === 'Boolean') value = 'true'
      else if (i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) value = argv[++i]
      else {
        problems.push(`option --${name} needs a value`)
        continue
      }
    }
    flags[key] = value
  }
  return { flags, positionals, help }
}

/** Coerces a raw string (flag, env) towards the property's schema; validation happens afterwards. */
function coerce(schema: TSchema, raw: unknown): unknown {
  if (typeof raw !== 'string') return raw
  const kind = kindOf(schema)
  if (kind === 'Array') return raw === '' ? [] : raw.split(',').map((s) => s.trim())
  if (kind === 'Object' || kind === 'Record') {
    try {
      return JSON.parse(raw)
    } catch {
      return raw
    }
  }
  return Value.Convert(schema, raw)
}

export function parseCommand<T extends TObject>(spec: CommandSpec<T>, src: ConfigSources): Parsed<T> {
  const props = spec.schema.properties as Record<string, TSchema>
  const problems: string[] = []
  const { flags, positionals, help } = scanArgv(src.argv, props, problems)
  if (help) return { help: true, text: renderHelp(spec) }
  const env = src.env ?? {}
  const scope = spec.settingsScope ?? spec.name
  const raw: Record<string, unknown> = {}
  const sources: Record<string, 'flag' | 'env' | 'settings' | 'default'> = {}
  const origin: Record<string, string> = {}
  for (const [key, schema] of Object.entries(props)) {
    const opts = schema as TSchema & { env?: boolean; settings?: boolean }
    if (key in flags) {
      raw[key] = coerce(schema, flags[key])
      sources[key] = 'flag'
      origin[key] = `--${kebab(key)}`
      continue
    }
    const e = opts.env === false ? undefined : env[envName(key)]
    if (e !== undefined && e !== '') {
      raw[key] = coerce(schema, e)
      sources[key] = 'env'
      origin[key] = envName(key)
      continue
    }
    const s = opts.settings === false || !src.settings ? undefined : src.settings(settingsKey(scope, key))
    if (s !== undefined && s !== null) {
      raw[key] = coerce(schema, s)
      sources[key] = 'settings'
      origin[key] = `setting ${settingsKey(scope, key)}`
      continue
    }
    sources[key] = 'default'
    origin[key] = `--${kebab(key)}`
  }
  const withDefaults = Value.Default(spec.schema, raw) as Record<string, unknown>
  for (const err of Value.Errors(spec.schema, withDefaults)) {
    const key = err.path.split('/')[1] ?? ''
    const where = origin[key] ?? (key ? `--${kebab(key)}` : 'config')
    const shown = key in withDefaults ? ` (got ${JSON.stringify(withDefaults[key])})` : ''
    problems.push(`${where}: ${err.message}${shown}`)
  }
  if (problems.length) throw new ConfigError([...new Set(problems)])
  return { help: false, config: withDefaults as Static<T>, positionals, sources }
}

function typeLabel(s: TSchema): string {
  const kind = kindOf(s)
  if (kind === 'Union') {
    const lits = (s.anyOf as TSchema[]).map((x) => x.const).filter((x) => x !== undefined)
    if (lits.length) return lits.join('|')
  }
  if (kind === 'Array') return 'a,b,...'
  if (kind === 'Boolean') return ''
  return (s.type as string) ?? 'value'
}

export function renderHelp<T extends TObject>(spec: CommandSpec<T>): string {
  const props = spec.schema.properties as Record<string, TSchema>
  const scope = spec.settingsScope ?? spec.name
  const lines = [`Usage: lanrage ${spec.name}${spec.positionals ? ' ' + spec.positionals : ''} [options]`, '', `  ${spec.summary}`]
  if (spec.description) lines.push('', ...spec.description.split('\n').map((l) => (l ? '  ' + l : '')))
  lines.push('', 'Options (flag > env > settings database > default):')
  for (const [key, s] of Object.entries(props)) {
    const opts = s as TSchema & { env?: boolean; settings?: boolean }
    const t = typeLabel(s)
    const flag = `  --${kebab(key)}${t ? ` <${t}>` : ''}`
    const extra: string[] = []
    if (s.default !== undefined) extra.push(`default: ${JSON.stringify(s.default)}`)
    if (opts.env !== false) extra.push(`env ${envName(key)}`)
    if (opts.settings !== false) extra.push(`setting ${settingsKey(scope, key)}`)
    lines.push(flag)
    lines.push(`        ${s.description ?? ''}${extra.length ? ` [${extra.join('; ')}]` : ''}`)
  }
  lines.push('  -h, --help', '        show this help')
  return lines.join('\n')
}
