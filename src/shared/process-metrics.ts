/**
 * The metrics every LANrage process exposes beside its own (Prometheus text exposition 0.0.4): the standard
 * `process_*` set that Prometheus client libraries export (CPU seconds, resident and virtual memory, open and
 * maximum file descriptors, start time) and `lanrage_build_info{version,runtime,runtime_version} 1`.
 * Read at scrape time; on a system without /proc the figures it alone gives (fds, virtual memory) are left out.
 */
import { readdirSync, readFileSync } from 'node:fs'
import pkg from '../../package.json'

export const VERSION: string = pkg.version

function procFds(): { open: number; max: number } | undefined {
  try {
    // readdir opens one descriptor of its own on the directory: not counted.
    const open = readdirSync('/proc/self/fd').length - 1
    const limits = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'))
    return { open, max: limits && limits[1] !== 'unlimited' ? Number(limits[1]) : Number.NaN }
  } catch {
    return undefined
  }
}

/** Virtual memory size from /proc/self/stat (field 23, proc(5)); undefined elsewhere. */
function procVsize(): number | undefined {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8')
    // The command name (field 2) may contain spaces and parentheses: fields are counted after its closing ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const v = Number(fields[20])
    return Number.isFinite(v) ? v : undefined
  } catch {
    return undefined
  }
}

const runtime = () => {
  const bun = (globalThis as { Bun?: { version: string } }).Bun
  return bun ? { name: 'bun', version: bun.version } : { name: 'node', version: process.versions.node }
}

/** Prometheus text for the process_* metrics and lanrage_build_info (each family once per exposition). */
export function processMetrics(): string {
  const lines: string[] = []
  const metric = (name: string, type: 'gauge' | 'counter', help: string, value: number, labels = '') => {
    if (!Number.isFinite(value)) return
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name}${labels} ${value}`)
  }
  const cpu = process.cpuUsage()
  metric('process_cpu_seconds_total', 'counter', 'Total user and system CPU time spent in seconds.', (cpu.user + cpu.system) / 1e6)
  metric('process_resident_memory_bytes', 'gauge', 'Resident memory size in bytes.', process.memoryUsage.rss())
  const vsize = procVsize()
  if (vsize !== undefined) metric('process_virtual_memory_bytes', 'gauge', 'Virtual memory size in bytes.', vsize)
  const fds = procFds()
  if (fds) {
    metric('process_open_fds', 'gauge', 'Number of open file descriptors.', fds.open)
    metric('process_max_fds', 'gauge', 'Maximum number of open file descriptors.', fds.max)
  }
  metric('process_start_time_seconds', 'gauge', 'Start time of the process since unix epoch in seconds.', Math.round(performance.timeOrigin) / 1000)
  const rt = runtime()
  metric('lanrage_build_info', 'gauge', 'The running LANrage version and runtime; always 1.', 1, `{version="${VERSION}",runtime="${rt.name}",runtime_version="${rt.version}"}`)
  return lines.join('\n') + '\n'
}
