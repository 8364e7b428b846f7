/**
 * The agent's files under $LANRAGE_HOME (default ~/.lanrage): its WireGuard private key (its identity at the
 * control server) and the status file the running agent keeps current for `lanrage status` and `lanrage down`.
 * The status file is replaced atomically (temp file + rename) so a reader never sees half of it.
 * Both files, like $LANRAGE_HOME itself, are the owner's only (0600 / 0700; looser ones are tightened with a warning).
 */
import { chmodSync, existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ensureLanrageHome, lanrageHome } from '../../shared/home.ts'
import { createLogger } from '../../shared/log.ts'
import { ensurePrivateFile, PRIVATE_FILE_MODE } from '../../shared/private-files.ts'
import { encodeKey, generatePrivateKey, parsePrivateKey } from '../wireguard/keys.ts'
import type { AgentStatus } from './agent.ts'

type Env = Record<string, string | undefined>
const warn = (m: string) => createLogger('home').warn(m)
export const keyPath = (env: Env = process.env) => join(lanrageHome(env), 'private.key')
export const statusPath = (env: Env = process.env) => join(lanrageHome(env), 'agent.json')

/** The agent's status file plus what `down` needs to clean up after an agent that died. */
export interface StatusFile extends AgentStatus {
  control: string
  /** `up --ca-file`, for `down` to reach an https:// control server with a private CA. */
  ca_file?: string
}

/** Loads the private key, creating one (mode 0600) on first use. */
export function loadOrCreateKey(env: Env = process.env): string {
  const path = keyPath(env)
  ensureLanrageHome(warn, env)
  if (existsSync(path)) {
    ensurePrivateFile(path, { warn })
    const text = readFileSync(path, 'utf8').trim()
    parsePrivateKey(text) // a corrupt key file is an error, never silently replaced (it is the peer's identity)
    return text
  }
  const key = encodeKey(generatePrivateKey())
  writeFileSync(path, key + '\n', { mode: PRIVATE_FILE_MODE })
  chmodSync(path, PRIVATE_FILE_MODE)
  return key
}

export function writeStatusFile(s: StatusFile, env: Env = process.env): void {
  const path = statusPath(env)
  ensureLanrageHome(warn, env)
  const tmp = `${path}.${process.pid}.tmp`
  writeFileSync(tmp, JSON.stringify(s, null, 2) + '\n', { mode: PRIVATE_FILE_MODE })
  renameSync(tmp, path)
}

export function readStatusFile(env: Env = process.env): StatusFile | null {
  try {
    return JSON.parse(readFileSync(statusPath(env), 'utf8')) as StatusFile
  } catch {
    return null
  }
}

export const removeStatusFile = (env: Env = process.env) => rmSync(statusPath(env), { force: true })

/**
 * Whether a process with this pid is running (signal 0 checks without sending anything). A zombie — exited, not
 * yet reaped by its parent — counts as gone: it holds no interface and no membership any more.
 */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false
  }
  try {
    // /proc/PID/stat: "pid (comm) S ..."; comm may contain spaces or parentheses, so read after the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return true // no /proc (not Linux): trust the signal check
  }
}
