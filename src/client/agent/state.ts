/**
 * The agent's files under $LANRAGE_HOME (default ~/.lanrage): its WireGuard private key (its identity at the
 * control server) and the status file the running agent keeps current for `lanrage status` and `lanrage down`.
 * The status file is replaced atomically (temp file + rename) so a reader never sees half of it.
 * Both files, like $LANRAGE_HOME itself, are the owner's only (0600 / 0700; looser ones are tightened with a warning).
 */
import { randomBytes } from 'node:crypto'
import { chmodSync, existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ensureLanrageHome, lanrageHome } from '../../shared/home.ts'
import { createLogger } from '../../shared/log.ts'
import { ensurePrivateFile, PRIVATE_FILE_MODE } from '../../shared/private-files.ts'
import { encodeKey, generatePrivateKey, parsePrivateKey } from '../wireguard/keys.ts'
import type { AgentStatus } from './agent.ts'
import type { SessionState } from './session.ts'

type Env = Record<string, string | undefined>
const warn = (m: string) => createLogger('home').warn(m)
export const keyPath = (env: Env = process.env) => join(lanrageHome(env), 'private.key')
export const statusPath = (env: Env = process.env) => join(lanrageHome(env), 'agent.json')
export const apiKeyPath = (env: Env = process.env) => join(lanrageHome(env), 'api.key')

/** The agent's status file plus what `down` needs to clean up after an agent that died. */
export interface StatusFile extends AgentStatus {
  /** The running process's state (session.ts); absent in files of older agents, which always had a party. */
  state?: SessionState
  /** What the last request or the party's end came to, when there is something to tell. */
  message?: string | null
  /** The local API and page, when it runs (`http://127.0.0.1:8666/`). */
  api?: string | null
  control: string
  /** `up --ca-file`, for `down` to reach an https:// control server with a private CA. */
  ca_file?: string
}

/**
 * A one-line secret file under $LANRAGE_HOME (0600 in the 0700 directory): read back when there is one (`use`
 * checks it and returns the value, or undefined to replace it), else made with `make` and written.
 */
function secretFile(path: string, env: Env, use: (text: string) => string | undefined, make: () => string): string {
  ensureLanrageHome(warn, env)
  if (existsSync(path)) {
    ensurePrivateFile(path, { warn })
    const kept = use(readFileSync(path, 'utf8').trim())
    if (kept !== undefined) return kept
  }
  const value = make()
  writeFileSync(path, value + '\n', { mode: PRIVATE_FILE_MODE })
  chmodSync(path, PRIVATE_FILE_MODE)
  return value
}

/** Loads the private key, creating one (mode 0600) on first use. */
export function loadOrCreateKey(env: Env = process.env): string {
  return secretFile(
    keyPath(env),
    env,
    (text) => {
      parsePrivateKey(text) // a corrupt key file is an error, never silently replaced (it is the peer's identity)
      return text
    },
    () => encodeKey(generatePrivateKey()),
  )
}

/**
 * The local API's key for scripts (`Authorization: Bearer <key>`), created on first use: 32 random bytes as hex,
 * mode 0600 in the 0700 $LANRAGE_HOME. Anyone who can read it can drive the agent, like the private key beside it.
 * A file that holds no such key is replaced (it only authorizes, it identifies nothing).
 */
export function loadOrCreateApiKey(env: Env = process.env): string {
  const path = apiKeyPath(env)
  return secretFile(
    path,
    env,
    (text) => {
      if (/^[0-9a-f]{64}$/.test(text)) return text
      warn(`${path} does not hold a key (64 hex digits); writing a new one`)
      return undefined
    },
    () => randomBytes(32).toString('hex'),
  )
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
