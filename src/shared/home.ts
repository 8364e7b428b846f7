/** Where LANrage keeps per-user state: $LANRAGE_HOME, default ~/.lanrage (keys, settings.db, agent state). The client
 * and the standalone relay read their settings from settings.db there. */
import { homedir } from 'node:os'
import { join } from 'node:path'

export function lanrageHome(env: Record<string, string | undefined> = process.env): string {
  return env.LANRAGE_HOME || join(homedir(), '.lanrage')
}
export const defaultSettingsPath = (env: Record<string, string | undefined> = process.env) => join(lanrageHome(env), 'settings.db')
