/**
 * The control server's access line (issue 11 item 5): the hand-written logger (src/shared/log.ts) against pino
 * on the same line, same fields, same sink, in one run. It decides which logger the project uses.
 *
 *   node_modules/.bin/bun bench/logger.ts [--lines=50000] [--rounds=5]
 *
 * Cases, each as ns per access line (best round, median in brackets), rounds alternating between the loggers:
 * - off: the heartbeat path as it runs by default (--log-level info, the access line is debug): the check only.
 * - json: the line written as JSON to /dev/null with a synchronous write per line (what a journald/docker
 *   stderr pipe costs); pino also with its buffered writer (sonic-boom, 4 KiB), which the hand-written one lacks.
 * pino is set up to write the same JSON (ISO time, level name, component, message key "message"); it redacts
 * the same field names through its `redact` paths but, unlike the hand-written logger, does not scrub tokens out
 * of free text (no such option), so its json figure is a lower bound. Every loop is bounded in count.
 */
import { closeSync, openSync, writeSync } from 'node:fs'
import pino from 'pino'
import { createLogger } from '../src/shared/log.ts'
import { flags, machine, median } from './lib/common.ts'

const opt = flags({ lines: 50_000, rounds: 5 })
const fd = openSync('/dev/null', 'w')
const write = (line: string) => void writeSync(fd, line + '\n')

// The fields of one access line, fresh per call as in the server.
let n = 0
const fields = () => ({ method: 'POST', route: '/parties/:party_id/peers/:peer_id/heartbeat', status: 200, duration_ms: 0.412 + (n++ & 7), client: '203.0.113.7' })

const ours = (level: 'info' | 'debug') => createLogger('control/http', level, write, 'json')
const pinoOpts = (level: string) => ({
  level,
  base: undefined,
  messageKey: 'message',
  timestamp: pino.stdTimeFunctions.isoTime,
  formatters: { level: (label: string) => ({ level: label }) },
  redact: { paths: ['token', 'secret', 'password', 'authorization', 'proof', 'private_key'], censor: '[redacted]' },
})
const pinoSync = (level: string) => pino(pinoOpts(level), pino.destination({ dest: '/dev/null', sync: true })).child({ component: 'control/http' })
const pinoBuffered = pino(pinoOpts('debug'), pino.destination({ dest: '/dev/null', sync: false, minLength: 4096 })).child({ component: 'control/http' })

const cases: Record<string, Record<string, () => void>> = {
  off: (() => {
    const h = ours('info')
    const p = pinoSync('info')
    return {
      'hand-written': () => h.enabled('debug') && h.debug('request', fields()),
      pino: () => p.isLevelEnabled('debug') && p.debug(fields(), 'request'),
    }
  })(),
  json: (() => {
    const h = ours('debug')
    const p = pinoSync('debug')
    return {
      'hand-written': () => h.enabled('debug') && h.debug('request', fields()),
      pino: () => p.isLevelEnabled('debug') && p.debug(fields(), 'request'),
      'pino buffered': () => pinoBuffered.isLevelEnabled('debug') && pinoBuffered.debug(fields(), 'request'),
    }
  })(),
}

function round(fn: () => void): number {
  const t0 = performance.now()
  for (let i = 0; i < opt.lines; i++) fn()
  return ((performance.now() - t0) * 1e6) / opt.lines
}

console.log(`# logger: access line, ${opt.lines} lines × ${opt.rounds} rounds — ${machine()}`)
for (const [name, loggers] of Object.entries(cases)) {
  const results: Record<string, number[]> = Object.fromEntries(Object.keys(loggers).map((k) => [k, []]))
  for (const fn of Object.values(loggers)) round(fn) // warm-up
  for (let r = 0; r < opt.rounds; r++) for (const [k, fn] of Object.entries(loggers)) results[k]!.push(round(fn))
  const best = (k: string) => Math.min(...results[k]!)
  const fmt = (x: number) => (x < 100 ? x.toFixed(1) : x.toFixed(0))
  console.log(`\n${name}: ns per line, best (median)`)
  for (const k of Object.keys(loggers)) console.log(`  ${k.padEnd(14)} ${fmt(best(k)).padStart(8)} (${fmt(median(results[k]!))})`)
  for (const k of Object.keys(loggers).filter((x) => x !== 'hand-written'))
    console.log(`  ${k} / hand-written: best ${(best(k) / best('hand-written')).toFixed(2)}, median ${(median(results[k]!) / median(results['hand-written']!)).toFixed(2)}`)
}
pinoBuffered.flush()
closeSync(fd)
