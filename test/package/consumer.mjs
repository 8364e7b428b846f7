// A game launcher using the client library from an installed package, run by consumer.test.ts under Node and
// under Bun. Plain JavaScript (Node runs it as is); it imports nothing but the package entry it is given.
//
//   node consumer.mjs ENTRY CONTROL_URL [CA_FILE]     ENTRY: lanrage-client | lanrage/client | lanrage
//
// Two clients (host and guest): the host registers and opens its live channel, creates a party, and hears
// `peer_joined` over the WebSocket when the guest joins; the host asks for a relay session towards the guest,
// ALLOCATEs its side at the relay, and learns its NAT type from the relay's two STUN ports (main and alt).
// Prints one JSON line with what it saw; any failure exits 1 with the error on stderr.
const [entry, controlUrl, caFile] = process.argv.slice(2)
const lib = await import(entry)
const { RemoteControlPlane, generateKeyPair, readCaFile, allocate, listRelays, detectNatFromPort } = lib

const within = (p, ms, what) =>
  Promise.race([p, new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms).unref?.())])

const tls = caFile ? readCaFile(caFile) : undefined
const retry = { attempts: 3, baseMs: 50, maxMs: 200 }
const host = new RemoteControlPlane({ url: controlUrl, privateKey: generateKeyPair().privateKey, tls, retry })
const guest = new RemoteControlPlane({ url: controlUrl, privateKey: generateKeyPair().privateKey, tls, retry })
let code = 0
try {
  await within(host.connect(), 10_000, 'host connect (registration + live channel)')
  const party = await host.createParty('consumer test')
  const joined = host.next('peer_joined', (e) => e.party_id === party.party_id, 10_000)
  await guest.register()
  await guest.joinParty(party.party_id)
  const event = await joined

  const offer = await host.requestRelay(party.party_id, guest.peerId)
  const sessionPort = await allocate({ host: offer.relay.public_ip, port: offer.relay.port }, offer.ticket)

  const [relay] = await listRelays(host.url, host.token, tls)
  const nat = await detectNatFromPort(0, [`${relay.host}:${relay.port}`, `${relay.host}:${relay.stunAltPort}`], { hostname: '127.0.0.1' })

  console.log(
    JSON.stringify({
      runtime: typeof globalThis.Bun === 'undefined' ? `node ${process.versions.node}` : `bun ${globalThis.Bun.version}`,
      entry,
      party: party.party_id,
      joined: event.peer.peer_id === guest.peerId,
      relay: { side: offer.side, sessionPort, stunPorts: [relay.port, relay.stunAltPort] },
      nat: { type: nat.natType, publicEndpoint: nat.publicEndpoint, mappings: nat.mappings.length, failures: nat.failures },
    }),
  )
} catch (e) {
  console.error(`consumer (${entry}) failed:`, e)
  code = 1
} finally {
  await host.close()
  await guest.close()
}
process.exit(code)
