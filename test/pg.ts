/**
 * A private PostgreSQL cluster for the tests: `initdb` into a temporary directory, `pg_ctl start` on a free port
 * of 127.0.0.1 and a socket directory of its own, stopped (`pg_ctl stop -m fast`) and removed afterwards, and
 * killed even when the test process dies first. Real PostgreSQL from Debian's `postgresql` package (.ci/run
 * installs it), never a mock. As root the cluster runs as the `postgres` user (PostgreSQL refuses root).
 *
 *   const skip = pgSkipReason()                      // null, or why this machine cannot run it (announced)
 *   const pg = await startPgCluster()                // beforeAll
 *   const url = await pg.createDatabase('contract')  // postgres://postgres@127.0.0.1:PORT/contract
 *   await pg.stop()                                  // afterAll
 */
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { announce, isRoot } from './needs.ts'

/** The newest PostgreSQL's programs (Debian keeps them off PATH, in /usr/lib/postgresql/<major>/bin). */
export function pgBinDir(): string | undefined {
  const root = '/usr/lib/postgresql'
  if (!existsSync(root)) return undefined
  const majors = readdirSync(root).filter((v) => /^\d+$/.test(v) && existsSync(join(root, v, 'bin', 'initdb')))
  const newest = majors.sort((a, b) => Number(b) - Number(a))[0]
  return newest ? join(root, newest, 'bin') : undefined
}

/** Why the PostgreSQL tests cannot run here (announced as the calling file's skip), or null. */
export function pgSkipReason(): string | null {
  if (!pgBinDir()) return announce('needs PostgreSQL (apt-get install postgresql)')
  if (isRoot && Bun.spawnSync(['id', '-u', 'postgres'], { stdout: 'ignore', stderr: 'ignore' }).exitCode !== 0)
    return announce('needs the postgres user to run PostgreSQL as root (apt-get install postgresql)')
  return announce(null)
}

export interface PgCluster {
  /** The maintenance database's URL (user postgres, trust authentication on 127.0.0.1). */
  url: string
  host: string
  port: number
  /** The directory of its Unix socket (reachable from every network namespace: it is a file). */
  socketDir: string
  /** Creates a database and returns its URL. */
  createDatabase(name: string): Promise<string>
  /** psql-like: runs one SQL text against `db` (default postgres) as the superuser; returns stdout. */
  psql(sql: string, db?: string): string
  /** Stops the server (fast shutdown: connections closed) and removes its files. */
  stop(): Promise<void>
}

const running = new Set<{ data: string; pid?: number }>()
// A test that dies must not leave a postmaster behind.
process.once('exit', () => {
  for (const c of running) if (c.pid) try { process.kill(c.pid, 'SIGKILL') } catch {}
})

function freePort(): number {
  const s = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
  const p = s.port
  s.stop(true)
  return p
}

/** Runs a PostgreSQL program as the cluster's owner (the postgres user when we are root). */
function asOwner(cmd: string[]): string[] {
  return isRoot ? ['runuser', '-u', 'postgres', '--', ...cmd] : cmd
}

export async function startPgCluster(o: { maxConnections?: number } = {}): Promise<PgCluster> {
  const bin = pgBinDir()
  if (!bin) throw new Error('PostgreSQL is not installed (apt-get install postgresql)')
  const dir = mkdtempSync(join(tmpdir(), 'lrpg-'))
  const data = join(dir, 'data')
  if (isRoot) {
    const uid = Number(Bun.spawnSync(['id', '-u', 'postgres']).stdout.toString())
    const gid = Number(Bun.spawnSync(['id', '-g', 'postgres']).stdout.toString())
    chownSync(dir, uid, gid)
  }
  const run = (cmd: string[], what: string) => {
    const r = Bun.spawnSync(asOwner(cmd), { stdout: 'pipe', stderr: 'pipe', env: { ...process.env, LC_ALL: 'C' } })
    if (r.exitCode !== 0) throw new Error(`${what} failed (${r.exitCode}): ${r.stderr.toString()}${r.stdout.toString()}`)
    return r.stdout.toString()
  }
  run([join(bin, 'initdb'), '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--no-sync', '-D', data], 'initdb')
  const entry: { data: string; pid?: number } = { data }
  running.add(entry)
  // Tests need no durability: fsync off makes a cluster start and commit in milliseconds. A port taken since we
  // looked is the one start-up failure worth a retry.
  let port = 0
  for (let attempt = 0; ; attempt++) {
    port = freePort()
    const opts = [`-p ${port}`, `-k ${dir}`, '-c listen_addresses=127.0.0.1', '-c fsync=off', '-c synchronous_commit=off', '-c full_page_writes=off', `-c max_connections=${o.maxConnections ?? 200}`]
    try {
      run([join(bin, 'pg_ctl'), '-D', data, '-l', join(dir, 'log'), '-o', opts.join(' '), '-w', '-t', '30', 'start'], 'pg_ctl start')
      break
    } catch (e) {
      if (attempt >= 2) {
        running.delete(entry)
        rmSync(dir, { recursive: true, force: true })
        throw e
      }
    }
  }
  entry.pid = Number((await Bun.file(join(data, 'postmaster.pid')).text()).split('\n')[0])
  const url = (db: string) => `postgres://postgres@127.0.0.1:${port}/${db}`
  const psql = (sql: string, db = 'postgres') => run([join(bin, 'psql'), '-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-h', dir, '-p', String(port), '-U', 'postgres', '-d', db, '-c', sql], 'psql')
  let stopped = false
  return {
    url: url('postgres'),
    host: '127.0.0.1',
    port,
    socketDir: dir,
    psql,
    async createDatabase(name: string) {
      if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`bad database name ${name}`)
      psql(`CREATE DATABASE ${name}`)
      return url(name)
    },
    async stop() {
      if (stopped) return
      stopped = true
      Bun.spawnSync(asOwner([join(bin, 'pg_ctl'), '-D', data, 'stop', '-m', 'fast', '-w', '-t', '20']), { stdout: 'ignore', stderr: 'ignore' })
      if (entry.pid) try { process.kill(entry.pid, 'SIGKILL') } catch {}
      running.delete(entry)
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
