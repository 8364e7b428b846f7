/**
 * Baseline for bench/relay-throughput.ts: the bare Bun.udpSocket forwarder, with no checks at all.
 *
 * Each pair is two sockets on 127.0.0.1 (one relay session: one port per side). Each socket remembers the
 * source of the last datagram it received; a datagram received on one socket goes out of the other to that
 * socket's peer, as the very object Bun handed to `data` (no copy). The relay with all its checks is measured
 * against this.
 *
 *   node_modules/.bin/bun bench/bun-forwarder.ts [PAIRS]   prints {"pairs":[[port_a,port_b],...]}, runs until SIGTERM
 */
export {} // a module, for top-level await

type Peer = { port: number; address: string } | undefined
interface Side {
  socket: Bun.udp.Socket<'buffer'>
  peer: Peer
}

let forwarded = 0
let dropped = 0

// Bun 1.4.4 calls a UDP `error` handler with the error alone, although its typings declare (socket, error).
// ICMP port unreachable (the generator has exited) lands here; it must not kill the forwarder.
const onError = (a: unknown, b?: unknown) => console.error(`bun-forwarder: ${String(b ?? a)}`)

async function side(other: () => Side): Promise<Side> {
  const self: Side = {
    peer: undefined,
    socket: await Bun.udpSocket({
      hostname: '127.0.0.1',
      socket: {
        data(_s, data, port, address) {
          if (!self.peer || self.peer.port !== port || self.peer.address !== address) self.peer = { port, address }
          const to = other()
          if (to.peer) {
            to.socket.send(data, to.peer.port, to.peer.address)
            forwarded++
          } else dropped++
        },
        error: onError,
      },
    }),
  }
  return self
}

const pairs: [Side, Side][] = []
for (let i = 0; i < Math.max(1, Number(process.argv[2] ?? 1)); i++) {
  let b: Side | undefined
  const a = await side(() => b!)
  b = await side(() => a)
  pairs.push([a, b])
}

console.log(JSON.stringify({ pairs: pairs.map(([a, b]) => [a.socket.port, b.socket.port]) }))
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    console.log(JSON.stringify({ forwarded, dropped }))
    for (const [a, b] of pairs) {
      a.socket.close()
      b.socket.close()
    }
    process.exit(0)
  })
}
