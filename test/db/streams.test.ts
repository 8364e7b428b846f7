// The two migration streams on real SQLite files: a settings file holds the settings tables only, a server's
// database both; and files made before the split (one stream that created every table everywhere) keep working:
// a server database keeps everything and gets only the newer control migrations, a settings file keeps its
// settings and loses the control tables it never used.
import { afterAll, describe, expect, test } from 'bun:test'
import { Database } from 'bun:sqlite'
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { drizzle } from 'drizzle-orm/bun-sqlite'
import { migrate } from 'drizzle-orm/bun-sqlite/migrator'
import { openDatabase, openSettingsDatabase } from '../../src/db/client.ts'
import { CONTROL_TABLES, STREAMS } from '../../src/db/migrations.ts'
import { openSettings, SettingsStore } from '../../src/db/settings.ts'

const dir = mkdtempSync(join(tmpdir(), 'lr-streams-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let n = 0
const file = () => join(dir, `db${n++}.db`)

const SETTINGS_TABLES = ['favorite_servers', 'game_profiles', 'server_configs', 'settings']
const tables = (path: string) => {
  const db = new Database(path, { readonly: true })
  try {
    return (db.query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").all() as { name: string }[]).map((r) => r.name)
  } finally {
    db.close()
  }
}
const rows = (path: string, sql: string) => {
  const db = new Database(path, { readonly: true })
  try {
    return db.query(sql).all()
  } finally {
    db.close()
  }
}
const journal = (stream: 'settings' | 'control') =>
  JSON.parse(readFileSync(join(STREAMS[stream].folder, 'meta', '_journal.json'), 'utf8')).entries as { idx: number; when: number; tag: string }[]

/**
 * A database as the single stream made it: the settings migration and the first `controlCount` control migrations,
 * under their old names and order, applied by drizzle's migrator into `__drizzle_migrations`, as the code before
 * the split did (same SQL files, same `when`s, so the same records).
 */
function singleStreamDatabase(path: string, controlCount: number): void {
  const legacy = join(dir, `legacy-${n++}`)
  mkdirSync(join(legacy, 'meta'), { recursive: true })
  const entries: { idx: number; version: string; when: number; tag: string; breakpoints: boolean }[] = []
  const add = (stream: 'settings' | 'control', e: { when: number; tag: string }) => {
    const tag = `${String(entries.length).padStart(4, '0')}_${e.tag.slice(5)}`
    copyFileSync(join(STREAMS[stream].folder, `${e.tag}.sql`), join(legacy, `${tag}.sql`))
    entries.push({ idx: entries.length, version: '6', when: e.when, tag, breakpoints: true })
  }
  add('settings', journal('settings')[0]!)
  for (const e of journal('control').slice(0, controlCount)) add('control', e)
  writeFileSync(join(legacy, 'meta', '_journal.json'), JSON.stringify({ version: '7', dialect: 'sqlite', entries }))
  const sqlite = new Database(path, { create: true })
  migrate(drizzle(sqlite), { migrationsFolder: legacy })
  sqlite.close()
}

describe('fresh files', () => {
  test('a settings file holds the settings tables and their migration record, nothing of the control server', () => {
    const path = file()
    openSettingsDatabase(path).close()
    expect(tables(path)).toEqual(['__drizzle_migrations', ...SETTINGS_TABLES])
  })

  test("a server's database holds both, each stream recording its own migrations", () => {
    const path = file()
    openDatabase(path).close()
    expect(tables(path)).toEqual(['__drizzle_migrations', '__drizzle_migrations_control', ...[...SETTINGS_TABLES, ...CONTROL_TABLES].sort()])
    expect(rows(path, 'SELECT created_at FROM __drizzle_migrations').length).toBe(journal('settings').length)
    expect(rows(path, 'SELECT created_at FROM __drizzle_migrations_control').length).toBe(journal('control').length)
  })

  test('the streams are what they say: the settings stream creates no control table and the other way round', () => {
    const sql = (s: 'settings' | 'control') => journal(s).map((e) => readFileSync(join(STREAMS[s].folder, `${e.tag}.sql`), 'utf8')).join('\n')
    for (const t of CONTROL_TABLES) expect(sql('settings')).not.toContain(`\`${t}\``)
    for (const t of SETTINGS_TABLES) expect(sql('control')).not.toContain(`\`${t}\``)
    expect(CONTROL_TABLES).toContain('parties')
  })
})

describe('files made by the single stream, before the split', () => {
  test("a user's settings file keeps its settings and loses the empty control tables; it stays that way", () => {
    const path = file()
    singleStreamDatabase(path, journal('control').length)
    expect(tables(path)).toContain('parties')
    const before = new Database(path)
    before.run("INSERT INTO settings (key, value, type, updated_at) VALUES ('relay.port', '51820', 'int', 1)")
    before.close()

    const s = openSettings(path)
    expect(s.settings.get('relay.port')).toBe(51820)
    s.favorites.add({ name: 'box', address: '10.66.0.5:27015' })
    s.close()
    expect(tables(path)).toEqual(['__drizzle_migrations', ...SETTINGS_TABLES])
    expect(rows(path, 'SELECT created_at FROM __drizzle_migrations')).toEqual([{ created_at: journal('settings')[0]!.when }])

    const again = openSettings(path)
    expect(again.settings.get('relay.port')).toBe(51820)
    expect(again.favorites.list().map((f) => f.address)).toEqual(['10.66.0.5:27015'])
    again.close()
    expect(tables(path)).toEqual(['__drizzle_migrations', ...SETTINGS_TABLES])
  })

  test('a settings file whose control tables hold anything keeps them (it served as a server database)', () => {
    const path = file()
    singleStreamDatabase(path, journal('control').length)
    const db = new Database(path)
    db.run("INSERT INTO server_keys (name, secret_key, public_key, created_at) VALUES ('x25519', 's', 'p', 1)")
    db.close()
    openSettings(path).close()
    expect(tables(path)).toContain('server_keys')
    expect(rows(path, 'SELECT name FROM server_keys')).toEqual([{ name: 'x25519' }])
  })

  test("a server's database keeps every row, and its control migrations are adopted, not run again", () => {
    const path = file()
    singleStreamDatabase(path, journal('control').length)
    const db = new Database(path)
    db.run("INSERT INTO server_keys (name, secret_key, public_key, created_at) VALUES ('ed25519', 's', 'p', 1)")
    db.run("INSERT INTO settings (key, value, type, updated_at) VALUES ('control.port', '9000', 'int', 1)")
    db.close()

    const open = openDatabase(path)
    expect(new SettingsStore(open.db).get('control.port')).toBe(9000)
    open.close()
    expect(rows(path, 'SELECT name FROM server_keys')).toEqual([{ name: 'ed25519' }])
    expect(rows(path, 'SELECT CAST(created_at AS INTEGER) AS w FROM __drizzle_migrations_control ORDER BY created_at')).toEqual(journal('control').map((e) => ({ w: e.when })))
    openDatabase(path).close() // and again: nothing more to do
    expect(rows(path, 'SELECT created_at FROM __drizzle_migrations_control').length).toBe(journal('control').length)
  })

  test("a server's database from an older version gets the control migrations it lacks, with its data", () => {
    const path = file()
    singleStreamDatabase(path, 2) // before the later control migrations existed
    const db = new Database(path)
    db.run("INSERT INTO server_keys (name, secret_key, public_key, created_at) VALUES ('ed25519', 's', 'p', 1)")
    db.close()
    expect(tables(path)).not.toContain('party_bans')
    openDatabase(path).close()
    expect(tables(path)).toContain('party_bans')
    expect(rows(path, "SELECT name FROM pragma_table_info('memberships') WHERE name = 'name'")).toEqual([{ name: 'name' }])
    expect(rows(path, 'SELECT name FROM server_keys')).toEqual([{ name: 'ed25519' }])
    expect(rows(path, 'SELECT created_at FROM __drizzle_migrations_control').length).toBe(journal('control').length)
  })
})
