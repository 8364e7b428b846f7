/**
 * `lanrage settings get|set|list|delete`: the typed settings database from the command line.
 *
 * `set` checks a key that a command reads (`<command>.<option>`) against that option's schema, the same one that
 * parses its flag: `settings set up.listen_port abc` is refused as `--listen-port abc` would be, and the value is
 * stored with the option's type. A key no command reads is refused unless --force (a typo would otherwise be
 * stored and silently ignored), and so is a server key (control.*, serve.*) without --db: the servers read their
 * own database, not $LANRAGE_HOME/settings.db.
 */
import type { TObject, TSchema } from '@sinclair/typebox'
import { Type } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { COMMANDS } from './commands.ts'
import { openSettingsDatabase } from '../db/client.ts'
import { SETTING_TYPES, type SettingType } from '../db/schema/settings.ts'
import { parseTyped, SettingsStore, type SettingRow } from '../db/settings.ts'
import { runCommand } from '../shared/command.ts'
import { coerce, describeProblem, expectedText, settingsKeys, type CommandSpec } from '../shared/config.ts'
import { LanrageError, UsageError } from '../shared/errors.ts'
import { defaultSettingsPath } from '../shared/home.ts'
import { closest, didYouMean } from '../shared/suggest.ts'
import { safeJson, safeText } from '../shared/terminal.ts'
import type { SettingValue } from '../shared/settings-codec.ts'

export const spec = {
  name: 'settings',
  summary: 'get, set, list or delete values in the typed settings database',
  positionals: '<get KEY | set KEY VALUE | list [PREFIX] | delete KEY>',
  description: [
    'Values keep their type: string, int, float, bool, json, null.',
    'Commands read option defaults from keys named <command>.<option>, e.g. relay.port or up.listen_port:',
    '`set` checks such a key against the option (type and range, like its flag) and stores it with that type.',
    'A key no command reads is refused unless --force, which stores any value unchecked: then --type (or the',
    'value: true/false → bool, 42 → int, 1.5 → float, {...}/[...] → json, else string) gives the type.',
    'control.* and serve.* are read by the servers from their own database: give its path with --db.',
  ].join('\n'),
  settingsFrom: false,
  schema: Type.Object({
    db: Type.String({ default: '', description: 'settings database path (default $LANRAGE_HOME/settings.db, ~/.lanrage)', settings: false }),
    type: Type.Optional(Type.Union(SETTING_TYPES.map((t) => Type.Literal(t)), { description: 'value type for set', settings: false, env: false })),
    force: Type.Boolean({ default: false, description: 'store the value without these checks (a key no command reads, a server key outside its database)', settings: false, env: false }),
    json: Type.Boolean({ default: false, description: 'print machine-readable JSON (snake_case, ISO 8601 times, like the API)', settings: false, env: false }),
  }),
} satisfies CommandSpec<any>

const show = (r: SettingRow) => safeText(`${r.key} = ${JSON.stringify(r.value)} (${r.type})`)
/** A row as --json prints it: the API's conventions (snake_case, ISO 8601 times). */
export const rowJson = (r: SettingRow) => ({ key: r.key, value: r.value, type: r.type, updated_at: new Date(r.updatedAt).toISOString() })

/** The settings type a value of this option is stored with (what the option parser reads back unchanged). */
function storageType(s: TSchema): SettingType {
  const kind = (s as { type?: unknown }).type
  if (kind === 'integer') return 'int'
  if (kind === 'number') return 'float'
  if (kind === 'boolean') return 'bool'
  if (kind === 'array' || kind === 'object') return 'json'
  return 'string'
}

interface KnownKey {
  command: string
  schema: TSchema
  from: 'home' | 'server'
}

/** What `key` is to the commands: the option it sets, or why none reads it (with a suggestion). */
async function lookUp(key: string): Promise<KnownKey | { unknown: string }> {
  const scope = key.split('.')[0]!
  const entry = COMMANDS[scope]
  if (!entry || !key.includes('.'))
    return { unknown: `no command reads ${JSON.stringify(key)}: keys are <command>.<option>${didYouMean(scope, Object.keys(COMMANDS), (c) => `${c}.*`)}` }
  const cmd = (await entry.load()) as { spec?: CommandSpec<TObject> }
  const known = cmd.spec ? settingsKeys(cmd.spec) : new Map<string, TSchema>()
  const schema = known.get(key)
  if (!schema) {
    if (!known.size) return { unknown: `lanrage ${scope} reads no settings` }
    const hint = closest(key, [...known.keys()])
    return { unknown: `lanrage ${scope} has no option ${JSON.stringify(key.slice(scope.length + 1))}${hint ? ` (did you mean ${hint}?)` : `; its keys: ${[...known.keys()].join(', ')}`}` }
  }
  return { command: scope, schema, from: cmd.spec?.settingsFrom === 'server' ? 'server' : 'home' }
}

/** The value to store for a known key, checked like its flag (`--listen-port abc` and `up.listen_port abc` fail alike). */
function valueFor(key: string, k: KnownKey, text: string, type: SettingType | undefined): { value: SettingValue; type: SettingType } {
  const want = storageType(k.schema)
  if (type && type !== want && !(type === 'int' && want === 'float'))
    throw new UsageError(`${key} is ${expectedText(k.schema)}, stored as ${want}; --type ${type} does not fit`)
  const value = coerce(k.schema, text)
  if (!Value.Check(k.schema, value)) throw new UsageError(describeProblem(key, k.schema, text, false))
  return { value: value as SettingValue, type: want }
}

/**
 * What `set KEY TEXT` stores in $LANRAGE_HOME/settings.db, with the same checks (the agent's page and local API
 * store settings through it): an option a command reads there is checked like its flag and stored with its type;
 * a key no command reads, or one a server reads from its own database, is refused (UsageError) unless `force`.
 */
export async function homeSetting(key: string, text: string, type: SettingType | undefined, force = false): Promise<{ value: SettingValue; type: SettingType }> {
  const known = await lookUp(key)
  if (!force && 'unknown' in known) throw new UsageError(known.unknown)
  if (!force && 'from' in known && known.from === 'server')
    throw new UsageError(`${key} is read by lanrage ${known.command} from its own database (its --db), not from $LANRAGE_HOME/settings.db`)
  if (force || 'unknown' in known) {
    try {
      return parseTyped(text, type)
    } catch (e) {
      throw new UsageError(`${key}: ${(e as Error).message}`)
    }
  }
  return valueFor(key, known, text, type)
}

export async function main(argv: string[]): Promise<number> {
  return runCommand(spec, { argv, env: process.env }, async (cfg, pos) => {
    const [verb, key, value] = pos
    const need = (n: number, usage: string) => {
      if (pos.length !== n) throw new UsageError(`usage: lanrage settings ${usage}`)
    }
    if (!verb || !['get', 'set', 'list', 'delete'].includes(verb))
      throw new UsageError(`expected get, set, list or delete${verb ? ` (got ${JSON.stringify(verb)})${didYouMean(verb, ['get', 'set', 'list', 'delete'])}` : ''}`)
    if (verb === 'get' || verb === 'delete') need(2, `${verb} KEY`)
    if (verb === 'set') need(3, 'set KEY VALUE')
    if (verb === 'list' && pos.length > 2) need(2, 'list [PREFIX]')
    const path = cfg.db || defaultSettingsPath()

    // `set` is checked before the file is opened, so a refused value leaves no file behind.
    let typed: { value: SettingValue; type: SettingType } | undefined
    if (verb === 'set') {
      const known = await lookUp(key!)
      if (cfg.force || 'unknown' in known) {
        if (!cfg.force && 'unknown' in known) throw new UsageError(`${known.unknown}. To store it anyway: --force`)
        try {
          typed = parseTyped(value!, cfg.type)
        } catch (e) {
          throw new UsageError(`${key}: ${(e as Error).message}`)
        }
      } else {
        if (known.from === 'server' && !cfg.db && !cfg.force)
          throw new UsageError(
            `${key} is read by lanrage ${known.command} from its own database (its --db, default ./data/lanrage.db), not from ${path}: ` +
              `give that file with --db, e.g. lanrage settings --db ./data/lanrage.db set ${key} ${value}`,
          )
        typed = valueFor(key!, known, value!, cfg.type)
      }
    }

    // The default file lives in $LANRAGE_HOME, LANrage's own directory (0700); a --db elsewhere keeps its directory.
    const open = openSettingsDatabase(path, { privateDir: !cfg.db })
    try {
      const store = new SettingsStore(open.db)
      switch (verb) {
        case 'get': {
          const row = store.getRow(key!)
          if (!row) throw new LanrageError('NOT_FOUND', `no setting named ${JSON.stringify(key)} in ${path}`, 404)
          console.log(cfg.json ? safeJson(rowJson(row)) : row.type === 'string' ? safeText(row.value as string) : safeText(JSON.stringify(row.value)))
          return 0
        }
        case 'set': {
          const row = store.set(key!, typed!.value, typed!.type)
          console.log(cfg.json ? safeJson(rowJson(row)) : show(row))
          return 0
        }
        case 'list': {
          const rows = store.list(key)
          console.log(cfg.json ? safeJson(rows.map(rowJson)) : rows.map(show).join('\n'))
          return 0
        }
        default: {
          if (!store.delete(key!)) throw new LanrageError('NOT_FOUND', `no setting named ${JSON.stringify(key)} in ${path}`, 404)
          return 0
        }
      }
    } finally {
      open.close()
    }
  })
}
