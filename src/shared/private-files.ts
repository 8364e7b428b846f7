/**
 * Files and directories that hold keys or secrets — the server database (its X25519 and Ed25519 private keys),
 * settings.db (it may hold a relay secret), the agent's private key — are the owner's only: directories 0700,
 * files 0600, whatever the umask. One that an earlier version (or a hand-made copy) left open to other users is
 * tightened, with a warning naming it and its old mode.
 */
import { chmodSync, closeSync, mkdirSync, openSync, readFileSync, statSync } from 'node:fs'
import { ConfigError, LanrageError } from './errors.ts'

export const PRIVATE_DIR_MODE = 0o700
export const PRIVATE_FILE_MODE = 0o600

export type Warn = (message: string) => void

const openToOthers = (mode: number) => (mode & 0o077) !== 0
export const octalMode = (mode: number) => '0' + (mode & 0o777).toString(8)

function statOrNull(path: string) {
  try {
    return statSync(path)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw e
  }
}

/**
 * Creates `dir` (and any missing parent) with mode 0700. An existing directory is tightened to 0700 only when
 * `tighten` is set: that is for directories LANrage owns outright ($LANRAGE_HOME, the default ./data); a directory
 * an operator chose for a database may be shared (the current directory, /tmp) and is left as it is — the files in
 * it are 0600 either way.
 */
export function ensurePrivateDir(dir: string, o: { tighten: boolean; warn: Warn }): void {
  const st = statOrNull(dir)
  if (!st) {
    mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE })
    return
  }
  if (o.tighten && st.isDirectory() && openToOthers(st.mode)) {
    chmodSync(dir, PRIVATE_DIR_MODE)
    o.warn(`directory ${dir} was open to other users (mode ${octalMode(st.mode)}); set to 0700 because it holds keys or secrets`)
  }
}

/**
 * Makes `file` the owner's only. With `create`, a missing file is created empty at 0600 first, so that whoever
 * writes it next (SQLite gives its -wal and -shm files the main file's mode) never creates it with the umask's
 * 0644. An existing file open to group or others is set to 0600, with a warning.
 */
export function ensurePrivateFile(file: string, o: { create?: boolean; warn: Warn }): void {
  const st = statOrNull(file)
  if (!st) {
    if (o.create) {
      closeSync(openSync(file, 'a', PRIVATE_FILE_MODE))
      // The umask can only clear bits; set the exact mode anyway in case the file appeared in between.
      chmodSync(file, PRIVATE_FILE_MODE)
    }
    return
  }
  if (st.isFile() && openToOthers(st.mode)) {
    chmodSync(file, PRIVATE_FILE_MODE)
    o.warn(`file ${file} was readable by other users (mode ${octalMode(st.mode)}); set to 0600 because it holds keys or secrets`)
  }
}

/**
 * Reads a secret an operator keeps in a file (`--relay-secret-file`), so it stays out of the command line, which
 * every local user can read in /proc/PID/cmdline. The first line counts, without surrounding whitespace. The file is
 * the operator's and is not changed here; one that every local user may read is worth a warning.
 */
export function readSecretFile(path: string, flag: string, warn: Warn): string {
  let text: string
  try {
    const st = statSync(path)
    if ((st.mode & 0o007) !== 0) warn(`${flag} ${path} is readable by every local user (mode ${octalMode(st.mode)}); chmod 600 it`)
    text = readFileSync(path, 'utf8')
  } catch (e) {
    throw new LanrageError('SECRET_FILE', `${flag} ${path}: cannot read it: ${(e as Error).message}`)
  }
  const secret = (text.split(/\r?\n/, 1)[0] ?? '').trim()
  if (!secret) throw new LanrageError('SECRET_FILE', `${flag} ${path}: the first line is empty`)
  return secret
}

/** The relay secret in force: `--relay-secret` or the first line of `--relay-secret-file` (giving both is an error). */
export function relaySecretOf(c: { relaySecret: string; relaySecretFile: string }, warn: Warn): string {
  if (!c.relaySecretFile) return c.relaySecret
  if (c.relaySecret) throw new ConfigError(['--relay-secret and --relay-secret-file: give one of them, not both'])
  return readSecretFile(c.relaySecretFile, '--relay-secret-file', warn)
}
