/** `lanrage settings get|set|list|delete`: the typed settings database from the command line. */
import { Type } from '@sinclair/typebox'
import { openDatabase } from '../db/client.ts'
import { SETTING_TYPES } from '../db/schema/settings.ts'
import { parseTyped, SettingsError, SettingsStore, type SettingRow } from '../db/settings.ts'
import { runCommand } from '../shared/command.ts'
import type { CommandSpec } from '../shared/config.ts'
import { defaultSettingsPath } from '../shared/home.ts'

export const spec = {
  name: 'settings',
  summary: 'get, set, list or delete values in the typed settings database',
  positionals: '<get KEY | set KEY VALUE | list [PREFIX] | delete KEY>',
  description: [
    'Values keep their type: string, int, float, bool, json, null. Without --type, `set` infers it',
    '(true/false → bool, 42 → int, 1.5 → float, {...}/[...] → json, anything else → string).',
    'Servers read option defaults from keys named <command>.<option>, e.g. relay.port or control.port.',
  ].join('\n'),
  schema: Type.Object({
    db: Type.String({ default: '', description: 'settings database path (default $LANRAGE_HOME/settings.db, ~/.lanrage)', settings: false }),
    type: Type.Optional(Type.Union(SETTING_TYPES.map((t) => Type.Literal(t)), { description: 'value type for set', settings: false, env: false })),
    json: Type.Boolean({ default: false, description: 'print machine-readable JSON', settings: false, env: false }),
  }),
} satisfies CommandSpec<any>

const show = (r: SettingRow) => `${r.key} = ${r.type === 'string' ? JSON.stringify(r.value) : JSON.stringify(r.value)} (${r.type})`

export async function main(argv: string[]): Promise<number> {
  return runCommand(spec, { argv, env: process.env }, (cfg, pos) => {
    const [verb, key, value, ...extra] = pos
    const need = (n: number, usage: string) => {
      if (pos.length !== n) throw new SettingsError('USAGE', `usage: lanrage settings ${usage}`)
    }
    if (!verb || !['get', 'set', 'list', 'delete'].includes(verb)) throw new SettingsError('USAGE', `expected get, set, list or delete; see lanrage settings --help`)
    void extra
    // The default file lives in $LANRAGE_HOME, LANrage's own directory (0700); a --db elsewhere keeps its directory.
    const open = openDatabase(cfg.db || defaultSettingsPath(), { privateDir: !cfg.db })
    try {
      const store = new SettingsStore(open.db)
      switch (verb) {
        case 'get': {
          need(2, 'get KEY')
          const row = store.getRow(key!)
          if (!row) {
            console.error(`lanrage settings: no setting named ${JSON.stringify(key)}`)
            return 1
          }
          console.log(cfg.json ? JSON.stringify(row) : row.type === 'string' ? row.value : JSON.stringify(row.value))
          return 0
        }
        case 'set': {
          need(3, 'set KEY VALUE')
          const parsed = parseTyped(value!, cfg.type)
          const row = store.set(key!, parsed.value, parsed.type)
          console.log(cfg.json ? JSON.stringify(row) : show(row))
          return 0
        }
        case 'list': {
          if (pos.length > 2) need(2, 'list [PREFIX]')
          const rows = store.list(key)
          console.log(cfg.json ? JSON.stringify(rows) : rows.map(show).join('\n'))
          return 0
        }
        case 'delete': {
          need(2, 'delete KEY')
          if (!store.delete(key!)) {
            console.error(`lanrage settings: no setting named ${JSON.stringify(key)}`)
            return 1
          }
          return 0
        }
      }
      return 2
    } finally {
      open.close()
    }
  })
}
