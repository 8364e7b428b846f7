/**
 * Baseline for bench/control-heartbeat.ts: a bare Bun.serve endpoint answering the heartbeat's response body,
 * with no framework, no auth and no database. It does read the request body, as any real endpoint must.
 *
 *   node_modules/.bin/bun bench/bare-http.ts     prints {"port":N}, runs until SIGTERM
 */
export {} // a module

const server = Bun.serve({
  hostname: '127.0.0.1',
  port: 0,
  async fetch(req) {
    await req.arrayBuffer()
    return Response.json({ status: 'ok' })
  },
})
console.log(JSON.stringify({ port: server.port }))
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    void server.stop(true)
    process.exit(0)
  })
}
