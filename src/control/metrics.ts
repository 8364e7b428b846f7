/**
 * Prometheus text exposition (version 0.0.4) of the control server: requests by route and status, a request
 * latency histogram, and gauges read at scrape time.
 */
const BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]

export class Metrics {
  private readonly requests = new Map<string, number>()
  private readonly buckets = new Array<number>(BUCKETS_S.length).fill(0)
  private sum = 0
  private count = 0

  observe(method: string, route: string, status: number, seconds: number): void {
    const key = `method="${method}",route="${route.replace(/["\\\n]/g, '_')}",status="${status}"`
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1)
    this.sum += seconds
    this.count++
    for (let i = 0; i < BUCKETS_S.length; i++) if (seconds <= BUCKETS_S[i]!) this.buckets[i]!++
  }

  render(gauges: Record<string, { help: string; value: number }>): string {
    const out: string[] = ['# HELP lanrage_http_requests_total HTTP requests by method, route and status.', '# TYPE lanrage_http_requests_total counter']
    for (const [k, v] of this.requests) out.push(`lanrage_http_requests_total{${k}} ${v}`)
    out.push('# HELP lanrage_http_request_duration_seconds HTTP request latency.', '# TYPE lanrage_http_request_duration_seconds histogram')
    BUCKETS_S.forEach((b, i) => out.push(`lanrage_http_request_duration_seconds_bucket{le="${b}"} ${this.buckets[i]}`))
    out.push(`lanrage_http_request_duration_seconds_bucket{le="+Inf"} ${this.count}`)
    out.push(`lanrage_http_request_duration_seconds_sum ${this.sum}`, `lanrage_http_request_duration_seconds_count ${this.count}`)
    for (const [name, g] of Object.entries(gauges)) out.push(`# HELP ${name} ${g.help}`, `# TYPE ${name} gauge`, `${name} ${g.value}`)
    return out.join('\n') + '\n'
  }
}
