// The settings database's other tables: server_configs, favorite_servers, game_profiles, on a real SQLite file.
import { afterAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openSettingsDatabase } from '../../src/db/client.ts'
import { FavoriteServerStore, GameProfileStore, ServerConfigStore } from '../../src/db/settings.ts'

const dir = mkdtempSync(join(tmpdir(), 'lrc-settings-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
const fresh = (name: string) => openSettingsDatabase(join(dir, `${name}.db`))

const bad = (f: () => unknown) => {
  try {
    f()
  } catch (e) {
    return { code: (e as { code: string }).code, status: (e as { status: number }).status, message: (e as Error).message }
  }
  throw new Error('expected an error')
}

describe('server_configs', () => {
  test('save, replace, list by mode, enable/disable, delete; survives reopening the file', () => {
    let open = fresh('servers')
    let s = new ServerConfigStore(open.db)
    const home = s.save({ name: 'home', mode: 'serve', config: { port: 8667, relayPorts: '52000-52099' } }, 1000)
    expect(home).toMatchObject({ name: 'home', mode: 'serve', enabled: true, config: { port: 8667, relayPorts: '52000-52099' }, createdAt: 1000, updatedAt: 1000 })
    s.save({ name: 'eu-relay', mode: 'relay', config: { region: 'eu' }, enabled: false }, 2000)
    const replaced = s.save({ name: 'home', mode: 'control', config: { port: 9000 } }, 3000)
    expect(replaced).toMatchObject({ id: home.id, mode: 'control', config: { port: 9000 }, createdAt: 1000, updatedAt: 3000 })
    expect(s.list().map((r) => r.name)).toEqual(['eu-relay', 'home'])
    expect(s.list('relay').map((r) => r.name)).toEqual(['eu-relay'])
    expect(s.setEnabled('eu-relay', true, 4000)).toMatchObject({ enabled: true, updatedAt: 4000 })
    open.close()

    open = fresh('servers')
    s = new ServerConfigStore(open.db)
    expect(s.get('home')).toMatchObject({ mode: 'control', config: { port: 9000 } })
    expect(s.get('eu-relay')?.enabled).toBe(true)
    expect(s.delete('home')).toBe(true)
    expect(s.delete('home')).toBe(false)
    expect(s.get('home')).toBeUndefined()
    open.close()
  })

  test('bad input is refused with a clear error', () => {
    const open = fresh('servers-bad')
    const s = new ServerConfigStore(open.db)
    expect(bad(() => s.save({ name: '', mode: 'relay', config: {} }))).toEqual({ code: 'INVALID_NAME', status: 400, message: expect.stringContaining('server config name "" must be 1-64') })
    expect(bad(() => s.save({ name: 'x', mode: 'bogus' as never, config: {} }))).toEqual({
      code: 'INVALID_SETTING',
      status: 400,
      message: 'server config mode "bogus" must be one of control, relay, serve',
    })
    expect(bad(() => s.save({ name: 'x', mode: 'relay', config: [1, 2] as never }))).toEqual({ code: 'INVALID_SETTING', status: 400, message: 'server config x must be a JSON object, not an array' })
    expect(bad(() => s.setEnabled('nope', true))).toEqual({ code: 'NOT_FOUND', status: 404, message: 'no server config named "nope"' })
    open.close()
  })
})

describe('favorite_servers', () => {
  test('add, list (by game), remove; an address is a favorite once', () => {
    const open = fresh('favs')
    const f = new FavoriteServerStore(open.db)
    expect(f.add({ name: 'Bob CS', address: '10.66.0.2:27015', game: 'cs2' }, 1)).toMatchObject({ name: 'Bob CS', address: '10.66.0.2:27015', game: 'cs2', addedAt: 1 })
    f.add({ name: 'Alice MC', address: '10.66.0.3:25565', game: 'minecraft' })
    f.add({ name: 'Anything', address: '[fd00::5]:7777' })
    expect(f.list().map((r) => r.name)).toEqual(['Alice MC', 'Anything', 'Bob CS'])
    expect(f.list('cs2').map((r) => r.address)).toEqual(['10.66.0.2:27015'])
    expect(bad(() => f.add({ name: 'again', address: '10.66.0.2:27015' }))).toEqual({ code: 'ALREADY_EXISTS', status: 409, message: '10.66.0.2:27015 is already a favorite' })
    expect(bad(() => f.add({ name: 'x', address: '10.66.0.2' }))).toEqual({ code: 'INVALID_SETTING', status: 400, message: 'favorite server address "10.66.0.2" must be host:port (port 1-65535)' })
    expect(bad(() => f.add({ name: 'x', address: 'host:70000' })).message).toContain('port 1-65535')
    expect(f.remove('10.66.0.2:27015')).toBe(true)
    expect(f.remove('10.66.0.2:27015')).toBe(false)
    expect(f.list('cs2')).toEqual([])
    open.close()
  })
})

describe('game_profiles', () => {
  test('save, replace, get, list by game, delete; the JSON profile round-trips', () => {
    const open = fresh('profiles')
    const g = new GameProfileStore(open.db)
    const profile = { keepalive: 25, mtu: 1380, ports: [27015, 27016], broadcast: true, note: null }
    expect(g.save({ name: 'cs2-lan', game: 'cs2', profile }, 10)).toMatchObject({ name: 'cs2-lan', game: 'cs2', profile, createdAt: 10 })
    g.save({ name: 'mc', game: 'minecraft', profile: { ports: [25565] } })
    expect(g.save({ name: 'cs2-lan', game: 'cs2', profile: { mtu: 1280 } }, 20)).toMatchObject({ profile: { mtu: 1280 }, createdAt: 10, updatedAt: 20 })
    expect(g.get('cs2-lan')?.profile).toEqual({ mtu: 1280 })
    expect(g.list('minecraft').map((r) => r.name)).toEqual(['mc'])
    expect(bad(() => g.save({ name: 'x', game: '', profile: {} }))).toEqual({ code: 'INVALID_SETTING', status: 400, message: 'game profile x: game must be 1-64 characters' })
    expect(bad(() => g.save({ name: 'x', game: 'g', profile: 'fast' as never }))).toEqual({ code: 'INVALID_SETTING', status: 400, message: 'game profile x must be a JSON object, not "fast"' })
    expect(g.delete('mc')).toBe(true)
    expect(g.list().map((r) => r.name)).toEqual(['cs2-lan'])
    open.close()
  })
})
