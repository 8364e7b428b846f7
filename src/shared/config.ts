/**
 * One TypeBox schema per command feeds its flags, its environment variables, its settings-database keys and
 * its `--help` text. Precedence: flag > env > settings > default.
 *
 *   key `relaySecret`  →  flag `--relay-secret`, env `LANRAGE_RELAY_SECRET`, setting `<scope>.relay_secret`
 *
 * Booleans take `--flag`, `--flag=false` or `--no-flag`. Arrays take comma-separated values.
 * A property may opt out of a source with schema options `{ env: false }` or `{ settings: false }`
 * (e.g. the database path cannot come from the database). Every problem is reported at once (ConfigError).
 */
import { type Static, type TObject, type TSchema, Kind, OptionalKind, Type } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { ConfigError } from './errors.ts'
import { LOG_FORMATS, LOG_LEVELS } from './log.ts'
import { didYouMean } from './suggest.ts'

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
  /**
   * Where the command reads its settings keys from: 'home' ($LANRAGE_HOME/settings.db, the default), 'server'
   * (the server's own database, --db), or false: it reads none, and --help lists no settings keys for it.
   */
  settingsFrom?: 'home' | 'server' | false
}

export interface ConfigSources {
  argv: readonly string[]
  env?: Record<string, string | undefined>
  /** Reads a raw value from the settings database; undefined when absent. */
  settings?: (key: string) => unknown
}

/**
 * Options every command takes, added here once (not in each command's schema): `--log-level` and `--log-format`
 * (env LANRAGE_LOG_LEVEL / LANRAGE_LOG_FORMAT, settings `<scope>.log_level`). src/shared/command.ts applies them.
 */
export const commonSchema = Type.Object({
  logLevel: Type.Union(
    LOG_LEVELS.map((l) => Type.Literal(l)),
    { default: 'info', description: 'least severe log lines written to stderr; debug adds one access line per HTTP request on the servers' },
  ),
  logFormat: Type.Union(
    LOG_FORMATS.map((f) => Type.Literal(f)),
    { default: 'text', description: 'log lines as text, or json: one object per line with time, level, component, message and fields' },
  ),
})
export type CommonOptions = Static<typeof commonSchema>

const withCommon = new WeakMap<TObject, TObject>()
/** The command's own schema plus the common options: what is parsed, validated, shown in --help and checked by `settings set`. */
export function fullSchema(spec: { schema: TObject }): TObject {
  let s = withCommon.get(spec.schema)
  if (!s) withCommon.set(spec.schema, (s = Type.Object({ ...spec.schema.properties, ...commonSchema.properties })))
  return s
}

export type Parsed<T extends TObject> =
  | { help: true; text: string }
  | { help: false; config: Static<T> & CommonOptions; positionals: string[]; sources: Record<string, 'flag' | 'env' | 'settings' | 'default'> }

export const kebab = (k: string) => k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())
export const snake = (k: string) => k.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase())
export const envName = (k: string) => ENV_PREFIX + snake(k).toUpperCase()
export const settingsKey = (scope: string, k: string) => `${scope}.${snake(k)}`

/** The settings keys a command reads, each with its option's schema (what `lanrage settings set` checks values against). */
export function settingsKeys(spec: CommandSpec<TObject>): Map<string, TSchema> {
  const out = new Map<string, TSchema>()
  if (spec.settingsFrom === false) return out
  for (const [k, s] of Object.entries(fullSchema(spec).properties as Record<string, TSchema>))
    if ((s as { settings?: boolean }).settings !== false) out.set(settingsKey(spec.settingsScope ?? spec.name, k), s)
  return out
}

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
      problems.push(`unknown option --${name}${didYouMean(name, [...byFlag.keys()], (f) => `--${f}`)}`)
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

/** Coerces a raw string (flag, env, `settings set`) towards the property's schema; validation happens afterwards. */
export function coerce(schema: TSchema, raw: unknown): unknown {
  if (typeof raw !== 'string') return raw
  const kind = kindOf(schema)
  if (kind === 'Array') return raw === '' ? [] : raw.split(',').map((s) => s.trim())
  // Numbers are read strictly: TypeBox's own conversion takes "1.5" and "1e3" as the integer 1.
  if (kind === 'Integer') return /^\s*[+-]?\d+\s*$/.test(raw) ? Number(raw) : raw
  if (kind === 'Number') return /^\s*[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?\s*$/i.test(raw) ? Number(raw) : raw
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
  const schema = fullSchema(spec)
  const props = schema.properties as Record<string, TSchema>
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
    const s = opts.settings === false || spec.settingsFrom === false || !src.settings ? undefined : src.settings(settingsKey(scope, key))
    if (s !== undefined && s !== null) {
      raw[key] = coerce(schema, s)
      sources[key] = 'settings'
      origin[key] = `setting ${settingsKey(scope, key)}`
      continue
    }
    sources[key] = 'default'
    origin[key] = `--${kebab(key)}`
  }
  const withDefaults = Value.Default(schema, raw) as Record<string, unknown>
  const named = new Set<string>()
  for (const err of Value.Errors(schema, withDefaults)) {
    const key = err.path.split('/')[1] ?? ''
    // One line per option, in words, however many ways TypeBox found its value wrong.
    if (named.has(key)) continue
    named.add(key)
    const where = origin[key] ?? (key ? `--${kebab(key)}` : 'config')
    problems.push(props[key] ? describeProblem(where, props[key], withDefaults[key], !(key in withDefaults)) : `${where}: ${err.message}`)
  }
  if (problems.length) throw new ConfigError([...new Set(problems)])
  return { help: false, config: withDefaults as Static<T> & CommonOptions, positionals, sources }
}

const range = (min: unknown, max: unknown, exMin?: unknown, exMax?: unknown): string => {
  const lo = min ?? exMin
  const hi = max ?? exMax
  if (lo !== undefined && hi !== undefined && exMin === undefined && exMax === undefined) return ` from ${lo} to ${hi}`
  const parts: string[] = []
  if (min !== undefined) parts.push(`at least ${min}`)
  if (exMin !== undefined) parts.push(`greater than ${exMin}`)
  if (max !== undefined) parts.push(`at most ${max}`)
  if (exMax !== undefined) parts.push(`less than ${exMax}`)
  return parts.length ? (parts[0]!.startsWith('at ') ? ' of ' : ' ') + parts.join(' and ') : ''
}

/**
 * What a value of this schema must be, in words: "an integer from 0 to 65535", "one of text, json". Schemas may
 * say it themselves with the option `expected` (for patterns: `{ pattern: '^[0-9a-f]{12}$', expected: '12 hex digits' }`).
 */
export function expectedText(s: TSchema): string {
  const own = (s as { expected?: string }).expected
  if (own) return own
  const kind = kindOf(s)
  if (kind === 'Union' || kind === 'Literal') {
    const options = kind === 'Literal' ? [s] : (s.anyOf as TSchema[])
    const lits = options.map((x) => x.const).filter((x) => x !== undefined)
    if (lits.length === options.length) return lits.length === 1 ? JSON.stringify(lits[0]) : `one of ${lits.join(', ')}`
    return options.map(expectedText).join(' or ')
  }
  if (kind === 'Integer') return `an integer${range(s.minimum, s.maximum, s.exclusiveMinimum, s.exclusiveMaximum)}`
  if (kind === 'Number') return `a number${range(s.minimum, s.maximum, s.exclusiveMinimum, s.exclusiveMaximum)}`
  if (kind === 'Boolean') return 'true or false'
  if (kind === 'Null') return 'null'
  if (kind === 'Array') {
    const n = s.minItems as number | undefined
    const item = s.items as TSchema
    const of = kindOf(item) === 'String' && !item.pattern ? '' : ` of ${expectedText(item).replace(/^(an?|one) /, '')}s`
    return `a comma-separated list${of}${n ? ` with at least ${n} entr${n === 1 ? 'y' : 'ies'}` : ''}`
  }
  if (kind === 'Object' || kind === 'Record') return 'a JSON object'
  if (kind === 'String') {
    const [lo, hi] = [s.minLength as number | undefined, s.maxLength as number | undefined]
    const len = lo !== undefined && hi !== undefined ? ` of ${lo} to ${hi} characters` : lo ? ` of at least ${lo} character${lo === 1 ? '' : 's'}` : hi !== undefined ? ` of at most ${hi} characters` : ''
    return s.pattern ? `text matching ${s.pattern}${len}` : `text${len}`
  }
  return 'a valid value'
}

/** One problem line naming where the value came from: `--port must be an integer from 0 to 65535 (got "abc")`. */
export function describeProblem(where: string, s: TSchema, value: unknown, missing: boolean): string {
  if (missing && !(OptionalKind in s)) return `${where} is required${s.description ? `: ${s.description}` : ''}`
  return `${where} must be ${expectedText(s)} (got ${JSON.stringify(value)})`
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
  const props = fullSchema(spec).properties as Record<string, TSchema>
  const scope = spec.settingsScope ?? spec.name
  const lines = [`Usage: lanrage ${spec.name}${spec.positionals ? ' ' + spec.positionals : ''} [options]`, '', `  ${spec.summary}`]
  if (spec.description) lines.push('', ...spec.description.split('\n').map((l) => (l ? '  ' + l : '')))
  const where = spec.settingsFrom === 'server' ? ' (this server’s --db)' : ''
  lines.push('', spec.settingsFrom === false ? 'Options (flag > env > default):' : `Options (flag > env > settings database${where} > default):`)
  for (const [key, s] of Object.entries(props)) {
    const opts = s as TSchema & { env?: boolean; settings?: boolean }
    const t = typeLabel(s)
    const flag = `  --${kebab(key)}${t ? ` <${t}>` : ''}`
    const extra: string[] = []
    if (s.default !== undefined) extra.push(`default: ${JSON.stringify(s.default)}`)
    if (opts.env !== false) extra.push(`env ${envName(key)}`)
    if (opts.settings !== false && spec.settingsFrom !== false) extra.push(`setting ${settingsKey(scope, key)}`)
    lines.push(flag)
    lines.push(`        ${s.description ?? ''}${extra.length ? ` [${extra.join('; ')}]` : ''}`)
  }
  lines.push('  -h, --help', '        show this help')
  return lines.join('\n')
}
