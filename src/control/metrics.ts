/**
 * Prometheus text exposition (version 0.0.4) of the control server: requests by method, route template and
 * status, a latency histogram per method and route template, gauges read at scrape time, the process metrics,
 * and whatever other parts of the process add (`lanrage serve` adds its relay's).
 */
import { processMetrics } from '../shared/process-metrics.ts'

const BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]

interface Histogram {
  labels: string
  buckets: number[]
  sum: number
  count: number
}

// Route templates come from the app's own route table ("/parties/:party_id"), never from a request's path.
const label = (v: string) => v.replace(/["\\\n]/g, '_')

export class Metrics {
  private readonly requests = new Map<string, number>()
  private readonly latency = new Map<string, Histogram>()
  private readonly sources: (() => string)[] = []

  observe(method: string, route: string, status: number, seconds: number): void {
    const route_ = `method="${label(method)}",route="${label(route)}"`
    const key = `${route_},status="${status}"`
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1)
    let h = this.latency.get(route_)
    if (!h) this.latency.set(route_, (h = { labels: route_, buckets: new Array<number>(BUCKETS_S.length).fill(0), sum: 0, count: 0 }))
    h.sum += seconds
    h.count++
    for (let i = 0; i < BUCKETS_S.length; i++) if (seconds <= BUCKETS_S[i]!) h.buckets[i]!++
  }

  /** Adds another part's metrics text (its own metric names) to every scrape. */
  addSource(render: () => string): void {
    this.sources.push(render)
  }

  render(gauges: Record<string, { help: string; value: number }>): string {
    const out: string[] = ['# HELP lanrage_http_requests_total HTTP requests by method, route template and status (a WebSocket upgrade is 101).', '# TYPE lanrage_http_requests_total counter']
    for (const [k, v] of this.requests) out.push(`lanrage_http_requests_total{${k}} ${v}`)
    out.push('# HELP lanrage_http_request_duration_seconds HTTP request latency by method and route template.', '# TYPE lanrage_http_request_duration_seconds histogram')
    for (const h of this.latency.values()) {
      BUCKETS_S.forEach((b, i) => out.push(`lanrage_http_request_duration_seconds_bucket{${h.labels},le="${b}"} ${h.buckets[i]}`))
      out.push(`lanrage_http_request_duration_seconds_bucket{${h.labels},le="+Inf"} ${h.count}`)
      out.push(`lanrage_http_request_duration_seconds_sum{${h.labels}} ${h.sum}`, `lanrage_http_request_duration_seconds_count{${h.labels}} ${h.count}`)
    }
    for (const [name, g] of Object.entries(gauges)) out.push(`# HELP ${name} ${g.help}`, `# TYPE ${name} gauge`, `${name} ${g.value}`)
    return out.join('\n') + '\n' + processMetrics() + this.sources.map((s) => s()).join('')
  }
}
