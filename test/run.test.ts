// `npm test`'s runner (test/run.ts): the closing line counts skipped tests by reason, and a test that skips
// without saying why fails the run. The real check runs bun on test files written to a temporary directory.
import { afterAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { missing, TOOLS } from './needs.ts'
import { SkipCounter, summaryLine } from './run.ts'

const dir = mkdtempSync(join(tmpdir(), 'lr-run-test-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('skip summary', () => {
  test('counts (skip) lines per file and groups them by the reason the file printed', () => {
    const c = new SkipCounter()
    for (const l of [
      'test/a.test.ts:',
      'skip: needs root (network namespaces, WireGuard interfaces)',
      '(skip) lab > (unnamed)',
      '(skip) lab > one',
      '(skip) lab > two',
      '(skip) lab > (unnamed)',
      '(pass) plain [0.10ms]',
      '\x1b[0m\x1b[1mtest/b.test.ts\x1b[0m:',
      'skip: needs root (network namespaces, WireGuard interfaces)',
      'skip: printed twice, the first reason counts',
      '\x1b[33m(skip)\x1b[0m wg',
      'test/c.test.ts:',
      'skip: needs turnserver (apt-get install coturn)',
      '(skip) coturn',
      '',
      '4 tests skipped:',
      '(skip) lab > one',
      '(skip) lab > two',
    ])
      c.line(l)
    const t = c.tally()
    expect(t.total).toBe(4)
    expect(t.unexplained.size).toBe(0)
    expect(summaryLine(t)).toBe(
      'skipped: 4 tests (3 needs root (network namespaces, WireGuard interfaces): test/a.test.ts, test/b.test.ts; 1 needs turnserver (apt-get install coturn): test/c.test.ts)',
    )
  })

  test('a skip in a file that gave no reason is named as such', () => {
    const c = new SkipCounter()
    for (const l of ['test/quiet.test.ts:', '(skip) hidden']) c.line(l)
    const t = c.tally()
    expect(t.unexplained.get('test/quiet.test.ts')).toBe(1)
    expect(summaryLine(t)).toContain('1 in test/quiet.test.ts WITHOUT A REASON')
  })

  test('nothing skipped says so', () => {
    expect(summaryLine(new SkipCounter().tally())).toBe('skipped: 0 tests')
  })

  test('missing() names the Debian package of a missing command, and root', () => {
    const r = missing(['root', 'wg'])
    if (process.getuid?.() === 0 && Bun.which('wg')) expect(r).toBeNull()
    else expect(r).toMatch(/^needs /)
    expect(missing([])).toBeNull()
  })
})

describe('npm test runner on real bun runs', () => {
  const runner = join(import.meta.dir, 'run.ts')
  const needsTs = join(import.meta.dir, 'needs.ts')
  const run = (files: string[]) => {
    const p = Bun.spawnSync([process.execPath, runner, ...files], { cwd: dir, stdout: 'pipe', stderr: 'pipe', timeout: 30_000 })
    const err = p.stderr.toString()
    return { code: p.exitCode, err, last: err.trimEnd().split('\n').at(-1) }
  }

  test('a file that announces its skip: the last line counts its tests (not its hooks) with the reason; exit 0', () => {
    writeFileSync(
      join(dir, 'told.test.ts'),
      `import { beforeAll, describe, test } from 'bun:test'\nimport { announce } from ${JSON.stringify(needsTs)}\n` +
        `const skip = announce('needs a unicorn')\n` +
        `describe.skipIf(!!skip)('x', () => { beforeAll(() => {}); test('a', () => {}); test('b', () => {}) })\ntest('runs', () => {})\n`,
    )
    const r = run(['./told.test.ts'])
    expect(r.last).toBe('skipped: 2 tests (2 needs a unicorn: told.test.ts)')
    expect(r.code).toBe(0)
  })

  test('a file that skips silently fails the run, and the last line names it', () => {
    writeFileSync(join(dir, 'silent.test.ts'), `import { test } from 'bun:test'\ntest.skipIf(true)('hidden', () => {})\ntest('runs', () => {})\n`)
    const r = run(['./silent.test.ts'])
    expect(r.last).toBe('skipped: 1 test (1 in silent.test.ts WITHOUT A REASON (call needs() from test/needs.ts))')
    expect(r.code).toBe(1)
  })

  test("a failing test keeps bun's exit code", () => {
    writeFileSync(join(dir, 'fails.test.ts'), `import { expect, test } from 'bun:test'\ntest('no', () => { expect(1).toBe(2) })\n`)
    const r = run(['./fails.test.ts'])
    expect(r.code).toBe(1)
    expect(r.err).toContain('1 fail')
    expect(r.last).toBe('skipped: 0 tests')
  })
})

test('.ci/run installs the Debian package of every command a test needs (node and npm run .ci/run itself)', () => {
  const ci = readFileSync(join(import.meta.dir, '..', '.ci', 'run'), 'utf8')
  const pkgs = new Set(/^PKGS=\(([^)]*)\)/m.exec(ci)![1]!.split(/\s+/))
  const needed = new Set(Object.values(TOOLS).filter((p) => p !== 'nodejs' && p !== 'npm'))
  expect([...needed].filter((p) => !pkgs.has(p))).toEqual([])
})
