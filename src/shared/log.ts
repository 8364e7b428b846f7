/**
 * The project's line logger, on stderr (so commands whose stdout is data, `status --json` or `pubkey`, stay clean).
 *
 *   text  2026-11-26T06:40:00.000Z INFO  relay: session opened id=3 port=52001
 *   json  {"time":"2026-11-26T06:40:00.000Z","level":"info","component":"relay","message":"session opened","id":3,"port":52001}
 *
 * One event per line; fields after the message (text: key=value, json: keys of the same object). The level and
 * format are process-wide, set by every command from `--log-level` / `--log-format` (src/shared/command.ts);
 * a logger created without an explicit level follows them, even one created before they were set.
 *
 * Secrets never reach a line: fields named like a credential (token, secret, password, authorization, proof,
 * private key) are written as "[redacted]", and in every string (message and values) a bearer token, a
 * `token=` query parameter and a `bearer.<token>` WebSocket subprotocol lose their value.
 *
 * Hand-written rather than pino: bench/logger.ts measures both on the same lines (README "Logs").
 */
import { safeJson, safeText } from './terminal.ts'

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const
export const LOG_FORMATS = ['text', 'json'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]
export type LogFormat = (typeof LOG_FORMATS)[number]
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 99 }

export type Fields = Record<string, unknown>
export interface Logger {
  debug(msg: string, fields?: Fields): void
  info(msg: string, fields?: Fields): void
  warn(msg: string, fields?: Fields): void
  error(msg: string, fields?: Fields): void
  /** Whether a line at `level` would be written: callers skip building costly fields (the access log) when not. */
  enabled(level: Exclude<LogLevel, 'silent'>): boolean
  child(scope: string): Logger
}

export const REDACTED = '[redacted]'
/** Field names whose values are credentials, whatever their content (snake_case, camelCase or kebab-case). */
const SECRET_KEY = /token|secret|passw|authoriz|proof|private[_-]?key|privatekey|cookie|ticket/i
/**
 * Credentials inside free text: `Bearer <token>` (RFC 6750 §2.1), `token=<value>` in a URL or form, and the
 * `bearer.<token>` WebSocket subprotocol. A bearer value is at least 8 token characters (RFC 6750 §2.1 b64token),
 * so prose such as "Bearer <token>" stays readable; a `token=` value ends at whitespace, `&`, `,`, `;` or a quote.
 */
const SECRET_IN_TEXT = /(\bbearer[ .])[\w.~+/=-]{8,}|([?&;\s"']token=)[^\s&,;"']+/gi
const CORE_KEYS = new Set(['time', 'level', 'component', 'message'])

/** `s` with every credential pattern's value replaced (pure; also used by the tests of the access log). */
export function redactText(s: string): string {
  return s.replace(SECRET_IN_TEXT, (_m, bearer: string | undefined, query: string | undefined) => (bearer ?? query) + REDACTED)
}

function redactValue(key: string, v: unknown): unknown {
  if (v === undefined || v === null) return v
  // A count (ticket_checks, tokens_revoked) is no credential; a string or object under such a name may be.
  if (SECRET_KEY.test(key) && typeof v !== 'number' && typeof v !== 'boolean') return REDACTED
  if (v instanceof Error) return redactText(v.message)
  if (typeof v === 'string') return redactText(v)
  if (typeof v === 'object') return JSON.parse(redactText(JSON.stringify(v, (k, x) => (k && SECRET_KEY.test(k) && typeof x !== 'number' && typeof x !== 'boolean' ? REDACTED : x))))
  return v
}

// Values often come from the network (names, endpoints, server messages): written so they cannot drive the terminal.
function formatValue(v: unknown): string {
  if (typeof v === 'string') return /^[\w.:/@[\]-]*$/.test(v) && v !== '' ? v : safeJson(v)
  if (typeof v === 'object' && v !== null) return safeJson(v)
  return String(v)
}

export function formatLine(level: LogLevel, scope: string, msg: string, fields?: Fields, now = new Date()): string {
  let line = `${now.toISOString()} ${level.toUpperCase().padEnd(5)} ${scope ? scope + ': ' : ''}${safeText(redactText(msg))}`
  if (fields)
    for (const k in fields) {
      const v = redactValue(k, fields[k])
      if (v !== undefined) line += ` ${k}=${formatValue(v)}`
    }
  return line
}

/** One JSON object: time, level, component, message, then the fields (a field named like one of those gets a `_`). */
export function formatJson(level: LogLevel, scope: string, msg: string, fields?: Fields, now = new Date()): string {
  const o: Record<string, unknown> = { time: now.toISOString(), level, component: scope, message: redactText(msg) }
  if (fields)
    for (const k in fields) {
      const v = redactValue(k, fields[k])
      if (v !== undefined) o[CORE_KEYS.has(k) ? k + '_' : k] = v
    }
  return safeJson(o)
}

/** The process-wide settings every logger without explicit ones follows. */
const current: { level: LogLevel; format: LogFormat; write: (line: string) => void } = { level: envLevel(), format: 'text', write: defaultWrite }

/** Sets the level, format or destination of every logger that was not given its own (what commands call). */
export function configureLogging(o: { level?: LogLevel; format?: LogFormat; write?: (line: string) => void }): void {
  if (o.level) current.level = o.level
  if (o.format) current.format = o.format
  if (o.write) current.write = o.write
}

export function loggingSettings(): { level: LogLevel; format: LogFormat } {
  return { level: current.level, format: current.format }
}

/**
 * A logger for `scope` (the component). `level`, `write` and `format` fix that logger's own (tests capture lines
 * this way); left out, the process-wide settings apply at each call.
 */
export function createLogger(scope = '', level?: LogLevel, write?: (line: string) => void, format?: LogFormat): Logger {
  const min = () => ORDER[level ?? current.level]
  const at = (l: Exclude<LogLevel, 'silent'>) => (msg: string, fields?: Fields) => {
    if (ORDER[l] < min()) return
    const line = (format ?? current.format) === 'json' ? formatJson(l, scope, msg, fields) : formatLine(l, scope, msg, fields)
    ;(write ?? current.write)(line)
  }
  return {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    enabled: (l) => ORDER[l] >= min(),
    child: (s) => createLogger(scope ? `${scope}/${s}` : s, level, write, format),
  }
}

/** LANRAGE_LOG_LEVEL for programs that embed the library without a command (commands validate it as --log-level). */
function envLevel(): LogLevel {
  const v = (typeof process !== 'undefined' ? process.env.LANRAGE_LOG_LEVEL : undefined)?.toLowerCase()
  return v && v in ORDER ? (v as LogLevel) : 'info'
}

function defaultWrite(line: string) {
  process.stderr.write(line + '\n')
}

export const silentLogger: Logger = createLogger('', 'silent')
