// The page of `lanrage up` in headless Chromium, in the natlab: two gamers behind real NATs, each with the agent
// started without a party and its page on 127.0.0.1:8666 of its own machine (namespace), each with a Chromium
// running on that machine. The first creates a party on its page, the second joins on its page with the id; both
// pages show each other with name, path and latency, within the CLI tests' times. Then a page on another origin
// and a DNS name pointed at 127.0.0.1 try the local API, and a member leaving from its page disappears from the
// other's. Screenshots go to test-output/page/ (git-ignored).
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import { type Natlab, natlabSkipReason, type NatKind, type NsProcess } from './natlab.ts'
import { type IdleAgent, scenario } from './scenario.ts'

const skip = natlabSkipReason('chromium')
if (skip) console.warn(`skipping the page's end-to-end tests: ${skip}`)

const OUT = join(import.meta.dir, '..', '..', 'test-output', 'page')
const HOSTILE = join(import.meta.dir, 'fixtures', 'hostile-page.ts')
/** The flags a browser needs on this closed network (no sync, no component updates, no background fetches). */
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']

/**
 * A Chromium on gamer n's machine: a wrapper that runs /usr/bin/chromium inside the namespace, so its 127.0.0.1 is
 * that machine's and the page it opens is that agent's. Playwright drives it over the pipes it inherits.
 */
async function browserIn(ns: string, dir: string, extraArgs: string[] = []): Promise<Browser> {
  const wrapper = join(dir, `chromium-${ns}.sh`)
  writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${ns} /usr/bin/chromium "$@"\n`)
  chmodSync(wrapper, 0o755)
  return chromium.launch({ executablePath: wrapper, args: [...CHROMIUM_ARGS, ...extraArgs], timeout: 60_000 })
}

async function shot(page: Page, name: string) {
  mkdirSync(OUT, { recursive: true })
  await page.screenshot({ path: join(OUT, `${name}.png`), fullPage: true })
}

// What runs in the page is written as source text: this project's TypeScript has no DOM types.

/** The member rows of a page: name, path and latency as shown. */
const rows = (page: Page) =>
  page.evaluate(`[...document.querySelectorAll('#member-rows tr')].map((tr) => ({
    id: tr.dataset.peerId,
    name: tr.querySelector('.name').textContent,
    path: tr.querySelector('.path').dataset.path,
    latency: tr.querySelector('.latency').textContent,
  }))`) as Promise<{ id: string; name: string; path: string; latency: string }[]>

/** Waits until `js` (an expression) is true in the page, bounded by `ms`. */
const until = (page: Page, js: string, ms: number) => page.waitForFunction(js, undefined, { timeout: ms, polling: 100 })

/** Waits until the page lists exactly one member, `name`, on `path`, with a latency; bounded by `ms`. */
async function seesMember(page: Page, name: string, path: 'direct' | 'relay', ms: number) {
  await until(
    page,
    `(() => {
      const trs = document.querySelectorAll('#member-rows tr')
      if (trs.length !== 1) return false
      const tr = trs[0]
      return tr.querySelector('.name').textContent === ${JSON.stringify(name)} && tr.querySelector('.path').dataset.path === ${JSON.stringify(path)} &&
        /^[0-9.]+ ms$/.test(tr.querySelector('.latency').textContent)
    })()`,
    ms,
  )
}

/** The agent's status through its API, as a script on the gamer's machine reads it (with the key in $LANRAGE_HOME). */
function apiStatus(lab: Natlab, a: IdleAgent) {
  const key = readFileSync(join(a.home, 'api.key'), 'utf8').trim()
  const probe = `console.log(await fetch(process.argv[1] + 'api/status', { headers: { authorization: 'Bearer ' + process.argv[2] } }).then((r) => r.text()))`
  const r = lab.exec(a.ns, [process.execPath, '-e', probe, a.page, key])
  return JSON.parse(r.out) as { state: string; party: { party_id: string } | null; peers: { peer_id: string }[] }
}

function pageScenario(kinds: NatKind[], budgetMs: number, path: 'direct' | 'relay') {
  const s = scenario(kinds)
  const t = { dir: '', browsers: [] as Browser[], a: [] as IdleAgent[], pages: [] as Page[], partyId: '' }
  beforeAll(async () => {
    t.dir = mkdtempSync(join(tmpdir(), 'lra-page-'))
    // The agents start idle, each with its page; a browser on each gamer's machine opens it.
    t.a = [await s.idle(1, ['--name', 'Ana 🎮']), await s.idle(2, ['--name', 'bob'])]
    t.browsers = await Promise.all(t.a.map((a) => browserIn(a.ns, t.dir)))
    for (const [i, b] of t.browsers.entries()) {
      // bypassCSP lets the test's own probes (evaluated source text) run in the gamers' pages; the page's policy
      // still holds for every other page (the hostile one below opens in a context of its own).
      const ctx = await b.newContext({ viewport: { width: 1200, height: 760 }, bypassCSP: true })
      await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: 'http://127.0.0.1:8666' })
      const page = await ctx.newPage()
      await page.goto(t.a[i]!.page)
      t.pages.push(page)
    }
  }, 90_000)
  afterAll(async () => {
    await Promise.all(t.browsers.map((b) => Promise.race([b.close(), Bun.sleep(5000)])))
    if (t.dir) rmSync(t.dir, { recursive: true, force: true })
  }, 30_000)
  const tag = kinds.join('-')

  test(`gamer 1 creates a party on its page, gamer 2 joins with the id on its page; both show each other ${path} with a latency within ${budgetMs / 1000} s`, s.logged(async () => {
    const [p1, p2] = t.pages as [Page, Page]
    for (const p of [p1, p2]) await p.waitForSelector('#create-form', { state: 'visible', timeout: 10_000 })
    await shot(p1, `${tag}-1-idle`)
    await p1.fill('#create-form input[name=name]', 'lan night')
    await p1.click('#create-form button[type=submit]')
    await p1.waitForSelector('#party', { state: 'visible', timeout: 10_000 })
    t.partyId = (await p1.textContent('#party-id'))!
    expect(t.partyId).toMatch(/^[0-9a-f]{12}$/)
    expect(await p1.textContent('#party-name')).toBe('lan night')
    expect(await p1.isVisible('#alone')).toBe(true)
    // One click copies the id.
    await p1.click('#copy')
    await until(p1, `document.getElementById('copied').textContent === 'copied'`, 2000)
    expect(await p1.evaluate('navigator.clipboard.readText()')).toBe(t.partyId)
    await shot(p1, `${tag}-2-created`)

    // Gamer 2 with the keyboard only: the id, Tab, Tab to the button, Enter.
    await p2.focus('#join-form input[name=party_id]')
    await p2.keyboard.type(t.partyId)
    await p2.keyboard.press('Tab')
    await p2.keyboard.press('Tab')
    expect(await p2.evaluate('document.activeElement.textContent')).toBe('Join party')
    const started = Date.now()
    await p2.keyboard.press('Enter')
    await p2.waitForSelector('#party', { state: 'visible', timeout: budgetMs })
    expect(await p2.textContent('#party-id')).toBe(t.partyId)
    await seesMember(p2, 'Ana 🎮 (host)', path, budgetMs - (Date.now() - started))
    await seesMember(p1, 'bob', path, Math.max(2000, budgetMs - (Date.now() - started)))
    const [r1, r2] = [await rows(p1), await rows(p2)]
    expect(r1[0]).toMatchObject({ name: 'bob', path })
    expect(r2[0]).toMatchObject({ name: 'Ana 🎮 (host)', path })
    await shot(p1, `${tag}-3-host-sees-member`)
    await shot(p2, `${tag}-3-member-sees-host`)
  }), 60_000)

  return { s, t, tag }
}

describe.skipIf(!!skip)('the page: cone / cone', () => {
  const { s, t, tag } = pageScenario(['cone', 'cone'], 10_000, 'direct')

  test('another page on this machine and a DNS name pointed at 127.0.0.1 get nothing: no status, no token, no leave, no create', s.logged(async () => {
    const lab = s.ctx.lab!
    const [a1] = t.a as [IdleAgent]
    // The attacker's page, served on another loopback port of gamer 1's machine, opened in gamer 1's browser.
    const hostile: NsProcess = lab.spawn(a1.ns, [process.execPath, HOSTILE, '9666', 'http://127.0.0.1:8666'], {}, 'hostile-page')
    await hostile.waitFor(/hostile page on/, 10_000)
    const evil = await t.browsers[0]!.newPage()
    await evil.goto('http://127.0.0.1:9666/')
    await until(evil, `document.getElementById('results').textContent !== ''`, 20_000)
    const results = JSON.parse((await evil.textContent('#results'))!) as Record<string, string>
    await shot(evil, `${tag}-4-hostile-page`)
    expect(results).toMatchObject({
      'read status': 'failed: TypeError',
      'read the page (token)': 'failed: TypeError',
      'leave with a guessed token header': 'failed: TypeError', // the preflight is refused
      'leave, no-cors': 'succeeded: opaque', // sent, refused by the agent (below), answer unreadable
      'create, no-cors': 'succeeded: opaque',
      'form post': 'sent',
    })
    expect(results['framed page readable']).not.toContain('lanrage-token')
    // Nothing happened: gamer 1 is still in the party, and the agent refused every one of those requests.
    expect(apiStatus(lab, a1)).toMatchObject({ state: 'in_party', party: { party_id: t.partyId } })
    expect(a1.proc.out + a1.proc.err).not.toMatch(new RegExp(`left party|party_id: (?!${t.partyId})`))

    // DNS rebinding: a name the attacker controls, resolved to 127.0.0.1. The page and the API answer 403.
    const rebound = await browserIn(a1.ns, t.dir, ['--host-resolver-rules=MAP rebind.test 127.0.0.1'])
    try {
      const page = await rebound.newPage()
      const res = await page.goto('http://rebind.test:8666/')
      expect(res!.status()).toBe(403)
      expect(await page.textContent('body')).toContain('BAD_HOST')
      expect(await page.content()).not.toContain('lanrage-token')
      const api = await page.evaluate(`fetch('/api/party/leave', { method: 'POST' }).then((r) => r.status)`)
      expect(api).toBe(403)
      await shot(page, `${tag}-5-dns-rebinding`)
    } finally {
      await Promise.race([rebound.close(), Bun.sleep(5000)])
    }
    expect(apiStatus(lab, a1)).toMatchObject({ state: 'in_party', party: { party_id: t.partyId } })
  }), 60_000)

  test('the settings view: the name for the next party, a typed setting and a favorite, saved in the settings database', s.logged(async () => {
    const p1 = t.pages[0]!
    await p1.click('#tab-settings')
    await p1.waitForSelector('#view-settings', { state: 'visible' })
    await p1.fill('#name-form input[name=name]', 'Ana')
    await p1.click('#name-form button[type=submit]')
    await p1.fill('#setting-form input[name=key]', 'up.heartbeat_interval')
    await p1.selectOption('#setting-form select[name=type]', 'float')
    await p1.fill('#setting-form input[name=text]', '15')
    await p1.click('#setting-form button[type=submit]')
    await p1.fill('#favorite-form input[name=name]', 'cs server')
    await p1.fill('#favorite-form input[name=address]', '10.66.0.1:27015')
    await p1.click('#favorite-form button[type=submit]')
    await until(p1, `document.querySelectorAll('#favorite-rows tr').length === 1`, 5000)
    const settings = await p1.evaluate(`[...document.querySelectorAll('#setting-rows tr')].map((tr) => [...tr.querySelectorAll('td')].slice(0, 3).map((td) => td.textContent))`)
    expect(settings).toEqual([
      ['up.heartbeat_interval', 'float', '15'],
      ['up.name', 'string', 'Ana'],
    ])
    // A value `lanrage up` could not start with is refused, with the reason shown.
    await p1.fill('#setting-form input[name=key]', 'up.listen_port')
    await p1.selectOption('#setting-form select[name=type]', '')
    await p1.fill('#setting-form input[name=text]', 'many')
    await p1.click('#setting-form button[type=submit]')
    await p1.waitForSelector('#error:not([hidden])', { timeout: 5000 })
    expect(await p1.textContent('#error')).toBe('up.listen_port must be an integer from 0 to 65535 (got "many")')
    await shot(p1, `${tag}-6-settings`)
    await p1.click('#tab-party')
  }), 30_000)

  test('a member leaving from its page disappears from the other page; the page is ready for the next party', s.logged(async () => {
    const [p1, p2] = t.pages as [Page, Page]
    await p2.click('#leave')
    await p2.waitForSelector('#idle', { state: 'visible', timeout: 10_000 })
    expect(await p2.textContent('#notice')).toContain(`left party ${t.partyId}`)
    await until(p1, `document.querySelectorAll('#member-rows tr').length === 0`, 5000)
    expect(await p1.isVisible('#alone')).toBe(true)
    await shot(p1, `${tag}-7-member-left`)
    await shot(p2, `${tag}-7-left`)
    // The interface is gone with the party; the agent is still there for the next one.
    expect(s.ctx.lab!.exec(t.a[1]!.ns, ['ip', 'link', 'show', 'dev', t.a[1]!.iface]).code).not.toBe(0)
    expect(apiStatus(s.ctx.lab!, t.a[1]!)).toMatchObject({ state: 'idle', party: null })
  }), 30_000)
})

describe.skipIf(!!skip)('the page: cone / symmetric', () => {
  pageScenario(['cone', 'symmetric'], 15_000, 'relay')
})
