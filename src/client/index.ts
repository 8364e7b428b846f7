/**
 * The LANrage client library: what a game launcher imports.
 *
 *   const keys = generateKeyPair()
 *   const cp = new RemoteControlPlane({ url: 'https://control.example:8667', privateKey: keys.privateKey })
 *   // a server certificate from a private CA: { ..., tls: readCaFile('/etc/lanrage/ca.pem') }
 *   await cp.connect()                                  // registers (key proof) and opens the live channel
 *   cp.on('peer_joined', (e) => ...)                    // live events
 *   const nat = await detectNatFromPort(51820, ['stun1:3478', 'stun2:3478'])
 *   const party = await cp.createParty('friday', { peer_info: { public_endpoint: nat.publicEndpoint, nat_type: nat.natType } })
 *   const conf = renderWgQuick(wireguardConfigForParty(party, { peerId: cp.peerId!, privateKey: encodeKey(keys.privateKey), listenPort: 51820 }))
 *
 * No server on the LAN? `await LocalControlPlane.open({ dir, publicKey })` has the same ControlPlane interface.
 */
export * from './control/types.ts'
export * from './control/errors.ts'
export { RemoteControlPlane, registrationProof, peerIdOf, type RemoteControlPlaneOptions, type TokenInfo } from './control/remote.ts'
export { readCaFile, tlsInit, controlUrls, type ControlTls } from '../shared/tls.ts'
export { LocalControlPlane, LocalStateError, type LocalControlPlaneOptions } from './control/local.ts'
export { backoffDelay, isRetryable, DEFAULT_RETRY, DEFAULT_RECONNECT, type BackoffPolicy } from './control/backoff.ts'
export { StunClient, StunTimeoutError, StunErrorResponseError, StunSocketError, parseStunServer, type StunServer, type BindingResult } from './stun/client.ts'
export { RFC8489_RETRANSMIT, retransmitSchedule, type RetransmitPolicy } from './stun/transaction.ts'
export { classifyNat, detectNat, detectNatFromPort, localEndpoints, type NatReport } from './nat/detect.ts'
export * from './wireguard/keys.ts'
export * from './wireguard/config.ts'
export { WireGuardInterface, WireGuardError, spawnRunner, type Runner, type InterfaceOptions, type Backend } from './wireguard/iface.ts'
export { wireguardConfigForParty, DEFAULT_KEEPALIVE_S, DEFAULT_MTU, type PartyConfigOptions } from './wireguard/party.ts'
export { allocate, listRelays, RelayError, ticketBytes } from './agent/relay-client.ts'
export type { RelayEndpoint } from './agent/agent.ts'
export { openUdpSocket, type UdpSocket, type UdpSocketOptions } from './net/udp.ts'
