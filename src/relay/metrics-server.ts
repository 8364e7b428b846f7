/** The relay's HTTP endpoint: `GET /metrics` (Prometheus text) and `GET /health`, on its own port. */
import { isAddrInUse, PortInUseError } from '../shared/errors.ts'
import { processMetrics } from '../shared/process-metrics.ts'

export interface MetricsServer {
  readonly port: number
  stop(): Promise<void>
}

export function startMetricsServer(o: { host: string; port: number; metrics: () => string; health: () => Record<string, unknown> }): MetricsServer {
  let server: ReturnType<typeof Bun.serve>
  try {
    server = Bun.serve({
      hostname: o.host,
      port: o.port,
      // Bun shares a busy port with its other listener unless told not to: two relays would split the scrapes.
      reusePort: false,
      fetch(req) {
        const path = new URL(req.url).pathname
        if (path === '/metrics') return new Response(o.metrics() + processMetrics(), { headers: { 'content-type': 'text/plain; version=0.0.4' } })
        if (path === '/health') return Response.json({ status: 'ok', ...o.health() })
        return Response.json({ error: { code: 'ROUTE_NOT_FOUND', message: 'not found' } }, { status: 404 })
      },
    })
  } catch (e) {
    if (isAddrInUse(e)) throw new PortInUseError('relay metrics port', o.port, 'tcp', '--metrics-port', { cause: e })
    throw e
  }
  return { port: server.port!, stop: () => server.stop(true) }
}
