// The architecture as the import graph of src/ shows it, checked three ways:
//   1. the boundary table: which layer may not import which (every forbidden edge says why, so a failure explains
//      itself, like tailscale's tstest/deptest),
//   2. what each package entry point reaches, transitively: the client library must run on Node, so nothing
//      reachable from its entry imports a `bun` module or server code,
//   3. no import cycles between modules (runtime imports; `import type` leaves nothing at run time).
import { describe, expect, test } from 'bun:test'
import { Glob } from 'bun'
import { readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'

const ROOT = resolve(import.meta.dir, '..')
const SRC = join(ROOT, 'src')

interface Edge {
  /** src/... path for a relative import, else the specifier as written (package, node:, bun:). */
  to: string
  /** `import type` / `export type`: erased from the JavaScript, kept in the .d.ts. */
  typeOnly: boolean
  /** `import(...)`: loaded when reached at run time, not at start. */
  dynamic: boolean
}

const STATIC_RE = /(?:^|\n)[ \t]*(import|export)(\s+type)?\s[^'"]*?from\s*['"]([^'"]+)['"]|(?:^|\n)[ \t]*import\s*['"]([^'"]+)['"]/g
const DYNAMIC_RE = /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g

/** The imports of one file (comments removed first, so examples in them do not count). */
export function importsOf(file: string, source: string): Edge[] {
  const text = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1')
  const norm = (spec: string) => (spec.startsWith('.') ? relative(ROOT, resolve(dirname(file), spec)) : spec)
  const out: Edge[] = []
  for (const m of text.matchAll(STATIC_RE)) {
    const spec = m[3] ?? m[4]
    if (spec) out.push({ to: norm(spec), typeOnly: !!m[2], dynamic: false })
  }
  for (const m of text.matchAll(DYNAMIC_RE)) out.push({ to: norm(m[1]!), typeOnly: false, dynamic: true })
  return out
}

const files = [...new Glob('**/*.ts').scanSync(SRC)].filter((f) => !f.endsWith('.test.ts')).map((f) => `src/${f}`)
const graph = new Map(files.map((f) => [f, importsOf(join(ROOT, f), readFileSync(join(ROOT, f), 'utf8'))]))

const isBun = (spec: string) => spec === 'bun' || spec.startsWith('bun:')
const matches = (spec: string, bad: string) => (bad.startsWith('src/') ? spec.startsWith(bad) : bad === 'bun:*' ? isBun(spec) : spec === bad || spec.startsWith(bad + '/'))

interface Rule {
  layer: string
  bad: Record<string, string> // import prefix (src/ path, package, or bun:* for `bun` and every bun: module) => why
  allow?: Record<string, string[]> // file => forbidden imports it may use anyway (the file says why)
}
const CLIENT_WHY = 'the client library is embedded by game launchers on Node and Bun: '
const RULES: Rule[] = [
  {
    layer: 'src/client/',
    bad: {
      'src/control/': CLIENT_WHY + 'it must not pull in the server stack',
      'src/relay/': CLIENT_WHY + 'it talks to relays over UDP only',
      'src/db/': CLIENT_WHY + 'it has no database (the settings database is lanrage/settings, Bun only)',
      'src/cmd/': 'commands use the library, not the other way round',
      elysia: CLIENT_WHY + 'no server framework',
      'drizzle-orm': CLIENT_WHY + 'no ORM',
      'bun:*': CLIENT_WHY + 'Bun APIs only through src/client/net/ (a `bun` import fails under Node)',
    },
  },
  {
    layer: 'src/control/',
    bad: {
      'src/client/': 'the control server does not embed the client library',
      'src/relay/': 'the control server talks to relays over HTTP and tickets only',
      'src/cmd/': 'commands use the server, not the other way round',
    },
  },
  {
    layer: 'src/relay/',
    bad: {
      'src/control/': 'the relay is a separate process that talks to the control server over HTTP only',
      'src/client/': 'the relay does not embed the client library',
      'src/db/': 'the relay has no database: tickets are verified offline',
      'src/cmd/': 'commands use the relay, not the other way round',
      elysia: 'no HTTP framework in the relay hot path',
      'drizzle-orm': 'no ORM in the relay',
      'bun:sqlite': 'no database in the relay',
    },
    // Reads the user's settings file once at start, read-only, without an ORM; never on the packet path.
    allow: { 'src/relay/settings-file.ts': ['bun:sqlite'] },
  },
  {
    layer: 'src/db/',
    bad: {
      'src/control/': 'the database layer serves the control server, it does not know it',
      'src/client/': 'the database layer does not know its users',
      'src/relay/': 'the database layer does not know its users',
      'src/cmd/': 'commands use the database, not the other way round',
      elysia: 'no HTTP in the database layer',
    },
  },
  {
    layer: 'src/shared/',
    bad: {
      'src/control/': 'shared is the leaf layer',
      'src/relay/': 'shared is the leaf layer',
      'src/client/': 'shared is the leaf layer',
      'src/db/': 'shared is the leaf layer',
      'src/cmd/': 'shared is the leaf layer',
      elysia: 'shared code is used by the relay and the client',
      'drizzle-orm': 'shared code is used by the relay and the client',
      'bun:*': 'shared code is used by the client library, which runs on Node too',
    },
  },
]

/** Everything reachable from `entry` (type-only and dynamic imports included: the .d.ts and lazy paths count). */
function reach(entry: string): { files: Set<string>; external: Map<string, string> } {
  const seen = new Set<string>()
  const external = new Map<string, string>() // specifier => first file importing it
  const todo = [entry]
  while (todo.length) {
    const f = todo.pop()!
    if (seen.has(f)) continue
    seen.add(f)
    for (const e of graph.get(f) ?? []) {
      if (e.to.startsWith('src/')) todo.push(e.to)
      else if (!external.has(e.to)) external.set(e.to, f)
    }
  }
  return { files: seen, external }
}

/** Package entry points (package.json `exports` and lanrage-client's) and what each must never reach. */
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'))
const clientPkg = JSON.parse(readFileSync(join(ROOT, 'packages', 'lanrage-client', 'package.json'), 'utf8'))
const srcOf = (dist: string) => dist.replace(/^\.\/dist\//, 'src/').replace(/\.js$/, '.ts')
const NODE_SAFE = { files: ['src/control/', 'src/relay/', 'src/db/', 'src/cmd/'], external: ['elysia', 'drizzle-orm', '@elysiajs/', 'bun:*'] }
const ENTRIES: { name: string; src: string; never: { files: string[]; external: string[] } }[] = [
  { name: 'lanrage', src: srcOf(pkg.exports['.'].default), never: NODE_SAFE },
  { name: 'lanrage/client', src: srcOf(pkg.exports['./client'].default), never: NODE_SAFE },
  { name: 'lanrage-client', src: srcOf(clientPkg.exports['.'].default), never: NODE_SAFE },
  { name: 'lanrage/settings', src: srcOf(pkg.exports['./settings'].bun), never: { files: ['src/client/', 'src/control/', 'src/relay/', 'src/cmd/'], external: ['elysia', '@elysiajs/'] } },
  { name: 'lanrage/control', src: srcOf(pkg.exports['./control'].bun), never: { files: ['src/client/', 'src/relay/', 'src/cmd/'], external: [] } },
  { name: 'lanrage/relay', src: srcOf(pkg.exports['./relay'].bun), never: { files: ['src/client/', 'src/control/', 'src/db/', 'src/cmd/'], external: ['elysia', 'drizzle-orm'] } },
]

describe('import graph', () => {
  test('the scan sees the source tree and every entry point', () => {
    expect(files.length).toBeGreaterThan(40)
    for (const e of ENTRIES) expect(graph.has(e.src)).toBe(true)
  })

  test('finds imports of every form, and not the ones in comments', () => {
    const src = [
      "import { a } from '../control/app.ts'",
      'export * from "elysia"',
      "import type { T } from './types.ts'",
      "const m = await import('bun:sqlite')",
      "import 'drizzle-orm'",
      "// import { x } from 'in-a-comment'",
      "/** import { y } from 'in-a-doc-comment' */",
    ].join('\n')
    expect(importsOf(join(SRC, 'relay', 'x.ts'), src)).toEqual([
      { to: 'src/control/app.ts', typeOnly: false, dynamic: false },
      { to: 'elysia', typeOnly: false, dynamic: false },
      { to: 'src/relay/types.ts', typeOnly: true, dynamic: false },
      { to: 'drizzle-orm', typeOnly: false, dynamic: false },
      { to: 'bun:sqlite', typeOnly: false, dynamic: true },
    ])
  })

  test('every relative import names a file that exists', () => {
    const missing = [...graph].flatMap(([f, es]) => es.filter((e) => e.to.startsWith('src/') && !graph.has(e.to)).map((e) => `${f} → ${e.to}`))
    expect(missing).toEqual([])
  })
})

describe('boundaries', () => {
  for (const rule of RULES) {
    test(`${rule.layer} imports nothing forbidden`, () => {
      const violations: string[] = []
      for (const [f, edges] of graph) {
        if (!f.startsWith(rule.layer)) continue
        for (const e of edges)
          for (const [bad, why] of Object.entries(rule.bad)) {
            if (matches(e.to, bad) && !rule.allow?.[f]?.includes(e.to)) violations.push(`${f} imports ${e.to}: ${why}`)
          }
      }
      expect(violations).toEqual([])
    })
  }

  test('the boundary check finds a violation when there is one', () => {
    const edges = importsOf(join(SRC, 'client', 'x.ts'), "import { Database } from 'bun:sqlite'\nimport { createApp } from '../control/app.ts'")
    const rule = RULES.find((r) => r.layer === 'src/client/')!
    const hits = edges.flatMap((e) => Object.keys(rule.bad).filter((b) => matches(e.to, b)))
    expect(hits).toEqual(['bun:*', 'src/control/'])
  })
})

describe('package entry points', () => {
  for (const entry of ENTRIES) {
    test(`${entry.name} (${entry.src}) reaches nothing it must not`, () => {
      const r = reach(entry.src)
      const bad = [
        ...[...r.files].filter((f) => entry.never.files.some((p) => f.startsWith(p))).map((f) => `reaches ${f}`),
        ...[...r.external].filter(([spec]) => entry.never.external.some((b) => matches(spec, b) || (b.endsWith('/') && spec.startsWith(b)))).map(([spec, from]) => `reaches ${spec} (imported by ${from})`),
      ]
      expect(bad).toEqual([])
    })
  }

  test('what the client entry imports from npm is exactly what lanrage-client depends on', () => {
    const r = reach(ENTRIES.find((e) => e.name === 'lanrage-client')!.src)
    const packages = new Set([...r.external.keys()].filter((s) => !s.startsWith('node:')).map((s) => (s.startsWith('@') ? s.split('/').slice(0, 2).join('/') : s.split('/')[0]!)))
    expect([...packages].sort()).toEqual(Object.keys(clientPkg.dependencies).sort())
    // and at the versions the repository itself is built and tested with
    for (const [name, range] of Object.entries(clientPkg.dependencies)) expect(`${name}@${range}`).toBe(`${name}@${pkg.dependencies[name]}`)
    expect(clientPkg.version).toBe(pkg.version)
  })
})

describe('cycles', () => {
  /** Strongly connected components of the runtime import graph with more than one module (Tarjan). */
  function cycles(): string[][] {
    const index = new Map<string, number>()
    const low = new Map<string, number>()
    const stack: string[] = []
    const on = new Set<string>()
    const out: string[][] = []
    let i = 0
    const visit = (v: string) => {
      index.set(v, i)
      low.set(v, i++)
      stack.push(v)
      on.add(v)
      for (const e of graph.get(v) ?? []) {
        if (e.typeOnly || e.dynamic || !graph.has(e.to)) continue
        if (!index.has(e.to)) {
          visit(e.to)
          low.set(v, Math.min(low.get(v)!, low.get(e.to)!))
        } else if (on.has(e.to)) low.set(v, Math.min(low.get(v)!, index.get(e.to)!))
      }
      if (low.get(v) === index.get(v)) {
        const scc: string[] = []
        let w: string
        do {
          w = stack.pop()!
          on.delete(w)
          scc.push(w)
        } while (w !== v)
        if (scc.length > 1) out.push(scc.sort())
      }
    }
    for (const f of graph.keys()) if (!index.has(f)) visit(f)
    return out
  }

  test('no module imports itself through others (runtime imports)', () => {
    expect(cycles()).toEqual([])
  })
})
