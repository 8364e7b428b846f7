// Import boundaries (DESIGN.md / STYLE.md §2.2), checked like tailscale's tstest/deptest: every forbidden
// edge carries the reason it is forbidden, so a failure explains itself.
import { describe, expect, test } from 'bun:test'
import { Glob } from 'bun'
import { dirname, join, relative, resolve } from 'node:path'

const ROOT = resolve(import.meta.dir, '..')
const SRC = join(ROOT, 'src')

interface Rule {
  layer: string
  bad: Record<string, string> // import prefix (package or src/ path) => why
  allow?: Record<string, string[]> // file => forbidden imports it may use anyway (with the reason in that file)
}
const RULES: Rule[] = [
  {
    layer: 'src/relay/',
    bad: {
      'src/control/': 'the relay is a separate process that talks to the control server over HTTP only',
      'src/client/': 'the relay does not embed the client library',
      'src/db/': 'the relay has no database: tickets are verified offline',
      elysia: 'no HTTP framework in the relay hot path',
      'drizzle-orm': 'no ORM in the relay',
      'bun:sqlite': 'no database in the relay',
    },
    // Reads the user's settings file once at start, read-only, without an ORM; never on the packet path.
    allow: { 'src/relay/settings-file.ts': ['bun:sqlite'] },
  },
  {
    layer: 'src/client/',
    bad: {
      'src/control/': 'the client library is embedded by game launchers and must not pull in the server stack',
      'src/relay/': 'the client talks to relays over UDP only',
      elysia: 'the client must not pull in the server framework',
    },
  },
  {
    layer: 'src/shared/',
    bad: {
      'src/control/': 'shared is the leaf layer',
      'src/relay/': 'shared is the leaf layer',
      'src/client/': 'shared is the leaf layer',
      'src/db/': 'shared is the leaf layer',
      elysia: 'shared code is used by the relay and client',
      'drizzle-orm': 'shared code is used by the relay and client',
      'bun:sqlite': 'shared code is used by the relay and client',
    },
  },
  {
    layer: 'src/db/schema/',
    bad: { bun: 'drizzle-kit loads the schema under Node (STYLE.md §4.3)', 'bun:sqlite': 'drizzle-kit loads the schema under Node' },
  },
]

const IMPORT_RE = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|(?:^|\n)\s*import\s*['"]([^'"]+)['"]/g

function importsOf(file: string, text: string): string[] {
  const out: string[] = []
  for (const m of text.matchAll(IMPORT_RE)) {
    const spec = m[1] ?? m[2] ?? m[3]
    if (!spec) continue
    out.push(spec.startsWith('.') ? relative(ROOT, resolve(dirname(file), spec)) : spec)
  }
  return out
}

const files = [...new Glob('**/*.ts').scanSync(SRC)].map((f) => join(SRC, f)).filter((f) => !f.endsWith('.test.ts'))

describe('import boundaries', () => {
  test('the scan sees the source tree', () => {
    expect(files.length).toBeGreaterThan(5)
  })

  test('finds imports of every form', () => {
    expect(importsOf(join(SRC, 'relay', 'x.ts'), `import { a } from '../control/app.ts'\nexport * from "elysia"\nconst m = await import('bun:sqlite')\nimport 'drizzle-orm'`)).toEqual([
      'src/control/app.ts',
      'elysia',
      'bun:sqlite',
      'drizzle-orm',
    ])
  })

  for (const rule of RULES) {
    test(`${rule.layer} imports nothing forbidden`, async () => {
      const violations: string[] = []
      for (const f of files) {
        const rel = relative(ROOT, f)
        if (!rel.startsWith(rule.layer)) continue
        for (const spec of importsOf(f, await Bun.file(f).text())) {
          for (const [bad, why] of Object.entries(rule.bad)) {
            if (rule.allow?.[rel]?.includes(bad)) continue
            const hit = bad.startsWith('src/') ? spec.startsWith(bad) : spec === bad || spec.startsWith(bad + '/')
            if (hit) violations.push(`${rel} imports ${spec}: ${why}`)
          }
        }
      }
      expect(violations).toEqual([])
    })
  }
})
