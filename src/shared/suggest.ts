/**
 * "Did you mean" for mistyped commands, options and settings keys (pure). A candidate is suggested when its edit
 * distance (Damerau-Levenshtein: insert, delete, substitute, swap two neighbours) is small for the word's length,
 * or when the word is a prefix of exactly one candidate.
 */

/** Optimal string alignment distance between `a` and `b`. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)])
  for (let j = 0; j <= b.length; j++) d[0]![j] = j
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1)
      d[i]![j] = v
    }
  return d[a.length]![b.length]!
}

/** The candidate `word` most likely meant, or undefined when none is close enough. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  const w = word.toLowerCase()
  const limit = Math.max(1, Math.min(3, Math.floor(w.length / 3)))
  let best: string | undefined
  let bestD = Infinity
  for (const c of candidates) {
    const dist = editDistance(w, c.toLowerCase())
    if (dist < bestD) [best, bestD] = [c, dist]
  }
  if (best !== undefined && bestD <= limit) return best
  const prefixed = candidates.filter((c) => w.length >= 2 && c.toLowerCase().startsWith(w))
  return prefixed.length === 1 ? prefixed[0] : undefined
}

/** " (did you mean X?)" for appending to an error line, or "" when nothing is close. */
export function didYouMean(word: string, candidates: readonly string[], show: (c: string) => string = (c) => c): string {
  const c = closest(word, candidates)
  return c === undefined ? '' : ` (did you mean ${show(c)}?)`
}
