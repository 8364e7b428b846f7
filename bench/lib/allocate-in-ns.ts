/**
 * ALLOCATE from inside a network namespace, for bench/relay-offload.ts: a side is locked to the address its
 * ALLOCATE came from, so each peer namespace allocates its own sides. Run as
 *
 *   ip netns exec NS bun bench/lib/allocate-in-ns.ts BIND_ADDR RELAY_ADDR MAIN_PORT < tickets
 *
 * stdin: one ticket (hex) a line; stdout: one JSON array of the session ports, in the same order.
 */
import { pool } from './common.ts'
import { Allocator } from './relay-session.ts'

const [bind, relay, mainPort] = process.argv.slice(2)
const tickets = (await new Response(Bun.stdin.stream()).text()).split('\n').filter(Boolean)
const alloc = await Allocator.open({ bind, relay })
try {
  const ports = await pool(tickets, 32, (hex) => alloc.allocate(Number(mainPort), new Uint8Array(Buffer.from(hex, 'hex'))))
  console.log(JSON.stringify(ports))
} finally {
  alloc.close()
}
