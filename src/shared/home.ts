/** Where LANrage keeps per-user state: $LANRAGE_HOME, default ~/.lanrage (keys, settings.db, agent state). The client
 * and the standalone relay read their settings from settings.db there. It holds the agent's private key and maybe a
 * relay secret, so it is the owner's only (0700; a looser one is tightened with a warning). */
import { homedir } from 'node:os'
import { join } from 'node:path'
import { ensurePrivateDir, type Warn } from './private-files.ts'

type Env = Record<string, string | undefined>

export function lanrageHome(env: Env = process.env): string {
  return env.LANRAGE_HOME || join(homedir(), '.lanrage')
}
export const defaultSettingsPath = (env: Env = process.env) => join(lanrageHome(env), 'settings.db')

/** Creates $LANRAGE_HOME (0700) before anything is written there, or tightens an existing one open to others. */
export function ensureLanrageHome(warn: Warn, env: Env = process.env): string {
  const dir = lanrageHome(env)
  ensurePrivateDir(dir, { tighten: true, warn })
  return dir
}
