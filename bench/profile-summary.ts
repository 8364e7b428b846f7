/**
 * Summarises CPU profiles written with BENCH_PROFILE=1 (bun --cpu-prof-md) by sample count per function.
 * The markdown's "Self" times weight each sample by the wall time until the next one, so idle stretches land on
 * whatever ran last; sample counts say where the busy process really was.
 *
 *   node_modules/.bin/bun bench/profile-summary.ts bench/out/profiles/*.md [--top=15]
 */
import { readFileSync } from 'node:fs'
import { basename } from 'node:path'

const args = process.argv.slice(2)
const top = Number(args.find((a) => a.startsWith('--top='))?.slice(6) ?? 15)
for (const file of args.filter((a) => !a.startsWith('--'))) {
  const text = readFileSync(file, 'utf8')
  const total = Number(/\| [\d.]+m?s \| (\d+) \|/.exec(text)?.[1] ?? NaN)
  const byFn = new Map<string, number>()
  for (const m of text.matchAll(/### `([^`]+)`\n`([^`]+)` \| Self: [^|]+\| Total: [^|]+\| Samples: (\d+)/g)) {
    const key = `${m[1]} (${basename(m[2]!).replace(/:\d+$/, '')})`
    byFn.set(key, (byFn.get(key) ?? 0) + Number(m[3]))
  }
  console.log(`${basename(file)}: ${total} samples`)
  for (const [k, n] of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${String(n).padStart(6)} ${((100 * n) / total).toFixed(1).padStart(5)}%  ${k}`)
}
