/**
 * `npm test`: runs `bun test` with the given arguments, passes its output through, and ends with one line that
 * says how many tests were skipped and why:
 *
 *   skipped: 35 tests (33 needs root (network namespaces, WireGuard interfaces): test/e2e/agent.test.ts, ...; 2 ...)
 *
 * Reasons come from the `skip: <reason>` line a test file prints (test/needs.ts); bun prints a file's name, then
 * its output and one `(skip) <name>` line per skipped test, all on stderr. bun's own "N skip" also counts the
 * hooks of skipped groups; this line counts tests only. A skipped test in a file that printed no
 * reason fails the run. The exit code is bun's, or 1 for an unexplained skip.
 */
import { SKIP_PREFIX } from './needs.ts'

export interface SkipTally {
  total: number
  byReason: Map<string, { count: number; files: string[] }>
  unexplained: Map<string, number>
}

/** Folds bun test's stderr lines into per-reason skip counts (pure: also used by the tests of this file). */
export class SkipCounter {
  private file = '(no file)'
  private reasons = new Map<string, string>()
  private skips = new Map<string, number>()
  private recap = false

  line(raw: string) {
    // bun colours its output on a terminal; the lines are parsed without the escapes
    const line = raw.replace(/\x1b\[[0-9;]*m/g, '')
    // After the last file bun lists the skipped tests once more ("39 tests skipped:"): counted already.
    if (/^\d+ tests? skipped:$/.test(line)) this.recap = true
    if (this.recap) return
    const header = /^(\S.*\.test\.[cm]?[jt]sx?):$/.exec(line)
    if (header) this.file = header[1]!
    else if (line.startsWith(SKIP_PREFIX) && !this.reasons.has(this.file)) this.reasons.set(this.file, line.slice(SKIP_PREFIX.length).trim())
    // "(unnamed)" entries are the beforeAll/afterAll hooks of a skipped group, which bun lists (and counts in
    // its "N skip") as well; they are not tests.
    else if (/^\(skip\) /.test(line) && !line.endsWith(' > (unnamed)')) this.skips.set(this.file, (this.skips.get(this.file) ?? 0) + 1)
  }

  tally(): SkipTally {
    const t: SkipTally = { total: 0, byReason: new Map(), unexplained: new Map() }
    for (const [file, n] of this.skips) {
      t.total += n
      const reason = this.reasons.get(file)
      if (reason === undefined) {
        t.unexplained.set(file, n)
        continue
      }
      const r = t.byReason.get(reason) ?? { count: 0, files: [] }
      r.count += n
      r.files.push(file)
      t.byReason.set(reason, r)
    }
    return t
  }
}

const plural = (n: number) => `${n} test${n === 1 ? '' : 's'}`

/** The one closing line. */
export function summaryLine(t: SkipTally): string {
  if (t.total === 0) return 'skipped: 0 tests'
  const parts = [...t.byReason].map(([reason, r]) => `${r.count} ${reason}: ${r.files.join(', ')}`)
  for (const [file, n] of t.unexplained) parts.push(`${n} in ${file} WITHOUT A REASON (call needs() from test/needs.ts)`)
  return `skipped: ${plural(t.total)} (${parts.join('; ')})`
}

if (import.meta.main) {
  const proc = Bun.spawn([process.execPath, 'test', ...process.argv.slice(2)], { stdin: 'inherit', stdout: 'inherit', stderr: 'pipe' })
  // The runner owns its children: a ^C reaches bun too (same process group); wait for its summary.
  process.on('SIGINT', () => {})
  const counter = new SkipCounter()
  const dec = new TextDecoder()
  let rest = ''
  for await (const chunk of proc.stderr) {
    process.stderr.write(chunk)
    const lines = (rest + dec.decode(chunk, { stream: true })).split('\n')
    rest = lines.pop()!
    for (const l of lines) counter.line(l)
  }
  if (rest) counter.line(rest)
  const code = await proc.exited
  const t = counter.tally()
  console.error(summaryLine(t))
  process.exit(code !== 0 ? code : t.unexplained.size > 0 ? 1 : 0)
}
