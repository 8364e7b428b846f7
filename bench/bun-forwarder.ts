/**
 * Baseline for bench/relay-throughput.ts: the bare Bun.udpSocket forwarder, with no checks at all.
 *
 * Two sockets on 127.0.0.1 (one relay session: one port per side). Each remembers the source of the last
 * datagram it received; a datagram received on one socket goes out of the other to that socket's peer, as the
 * very object Bun handed to `data` (no copy). The relay with all its checks is measured against this.
 *
 *   node_modules/.bin/bun bench/bun-forwarder.ts     prints {"port_a":N,"port_b":N}, runs until SIGTERM
 */
export {} // a module, for top-level await

type Peer = { port: number; address: string } | undefined

let peerA: Peer
let peerB: Peer
let forwarded = 0
let dropped = 0

// Bun 1.4.4 calls a UDP `error` handler with the error alone, although its typings declare (socket, error).
// ICMP port unreachable (the generator has exited) lands here; it must not kill the forwarder.
const onError = (a: unknown, b?: unknown) => console.error(`bun-forwarder: ${String(b ?? a)}`)

const a = await Bun.udpSocket({
  hostname: '127.0.0.1',
  socket: {
    data(_s, data, port, address) {
      if (!peerA || peerA.port !== port || peerA.address !== address) peerA = { port, address }
      if (peerB) {
        b.send(data, peerB.port, peerB.address)
        forwarded++
      } else dropped++
    },
    error: onError,
  },
})
const b = await Bun.udpSocket({
  hostname: '127.0.0.1',
  socket: {
    data(_s, data, port, address) {
      if (!peerB || peerB.port !== port || peerB.address !== address) peerB = { port, address }
      if (peerA) {
        a.send(data, peerA.port, peerA.address)
        forwarded++
      } else dropped++
    },
    error: onError,
  },
})

console.log(JSON.stringify({ port_a: a.port, port_b: b.port }))
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    console.log(JSON.stringify({ forwarded, dropped }))
    a.close()
    b.close()
    process.exit(0)
  })
}
