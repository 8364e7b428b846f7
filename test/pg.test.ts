// The PostgreSQL test cluster (test/pg.ts) itself: it starts, serves SQL over TCP and its Unix socket, makes
// databases, and leaves nothing behind.
import { expect, test } from 'bun:test'
import { existsSync } from 'node:fs'
import { pgSkipReason, startPgCluster } from './pg.ts'

const skip = pgSkipReason()

test.skipIf(!!skip)('a private cluster: SQL over TCP and the socket, a database of its own, nothing left after stop()', async () => {
  const pg = await startPgCluster()
  try {
    const url = await pg.createDatabase('cluster_check')
    const sql = new Bun.SQL(url)
    expect((await sql`select current_database() as db, current_user as who`)[0]).toEqual({ db: 'cluster_check', who: 'postgres' })
    await sql.close()
    const viaSocket = new Bun.SQL({ path: `${pg.socketDir}/.s.PGSQL.${pg.port}`, user: 'postgres', database: 'cluster_check' })
    expect((await viaSocket`select 1 + 1 as two`)[0]).toEqual({ two: 2 })
    await viaSocket.close()
    expect(pg.psql('select count(*) from pg_database where datname = $$cluster_check$$')).toBe('1\n')
  } finally {
    await pg.stop()
  }
  expect(existsSync(pg.socketDir)).toBe(false)
}, 60_000)
