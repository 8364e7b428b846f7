/**
 * A small line logger: `2026-11-26T06:40:00.000Z INFO  relay: session opened id=3 port=52001`.
 * One line per event, key=value pairs after the message so logs grep well. Level from LANRAGE_LOG_LEVEL.
 */
import { safeJson, safeText } from './terminal.ts'

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent'
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 99 }

export type Fields = Record<string, unknown>
export interface Logger {
  debug(msg: string, fields?: Fields): void
  info(msg: string, fields?: Fields): void
  warn(msg: string, fields?: Fields): void
  error(msg: string, fields?: Fields): void
  child(scope: string): Logger
}

// Values often come from the network (names, endpoints, server messages): written so they cannot drive the terminal.
function formatValue(v: unknown): string {
  if (v instanceof Error) return safeJson(v.message)
  if (typeof v === 'string') return /^[\w.:/@[\]-]*$/.test(v) && v !== '' ? v : safeJson(v)
  if (typeof v === 'object' && v !== null) return safeJson(v)
  return String(v)
}

export function formatLine(level: LogLevel, scope: string, msg: string, fields?: Fields, now = new Date()): string {
  let line = `${now.toISOString()} ${level.toUpperCase().padEnd(5)} ${scope ? scope + ': ' : ''}${safeText(msg)}`
  if (fields) for (const [k, v] of Object.entries(fields)) if (v !== undefined) line += ` ${k}=${formatValue(v)}`
  return line
}

export function createLogger(scope = '', level: LogLevel = envLevel(), write: (line: string) => void = defaultWrite): Logger {
  const min = ORDER[level]
  const at = (l: LogLevel) => (msg: string, fields?: Fields) => {
    if (ORDER[l] >= min) write(formatLine(l, scope, msg, fields))
  }
  return {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (s) => createLogger(scope ? `${scope}/${s}` : s, level, write),
  }
}

function envLevel(): LogLevel {
  const v = (typeof process !== 'undefined' ? process.env.LANRAGE_LOG_LEVEL : undefined)?.toLowerCase()
  return v && v in ORDER ? (v as LogLevel) : 'info'
}

// Logs go to stderr so that commands whose stdout is data (`status --json`, `pubkey`) stay clean.
function defaultWrite(line: string) {
  process.stderr.write(line + '\n')
}

export const silentLogger: Logger = createLogger('', 'silent')
