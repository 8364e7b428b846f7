/**
 * Baseline for bench/control-ws-fanout.ts: a bare Bun.serve WebSocket server. Every socket subscribes to one
 * topic; `POST /join` publishes a `peer_joined` message with the posted peer to it. No auth, no database.
 *
 *   node_modules/.bin/bun bench/bare-ws.ts     prints {"port":N}, runs until SIGTERM
 */
export {} // a module

const server = Bun.serve({
  hostname: '127.0.0.1',
  port: 0,
  async fetch(req, srv) {
    const url = new URL(req.url)
    if (url.pathname === '/ws') return srv.upgrade(req, { data: undefined }) ? undefined : new Response('upgrade failed', { status: 400 })
    if (url.pathname === '/join' && req.method === 'POST') {
      const peer = await req.json()
      srv.publish('party', JSON.stringify({ type: 'peer_joined', party_id: 'bench', peer }))
      return Response.json({ status: 'ok' })
    }
    return new Response('not found', { status: 404 })
  },
  websocket: {
    open(ws) {
      ws.subscribe('party')
      ws.send(JSON.stringify({ type: 'hello' }))
    },
    message() {},
  },
})
console.log(JSON.stringify({ port: server.port }))
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    void server.stop(true)
    process.exit(0)
  })
}
