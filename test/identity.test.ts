// One identity for both ends: the client library's registration proof (pure-JS X25519) is what the control
// server's checker (node:crypto X25519) expects, and both read key text the same way.
import { expect, test } from 'bun:test'
import { x25519 } from '@noble/curves/ed25519.js'
import { registrationProof, peerIdOf as clientPeerId } from '../src/client/control/remote.ts'
import { generateKeyPair, parsePublicKey } from '../src/client/wireguard/keys.ts'
import { decodeKey as serverDecode, peerIdOf as serverPeerId, proofChecker } from '../src/control/crypto.ts'
import { encodeKey } from '../src/shared/identity.ts'

test("the client's proof is what the server's checker computes, for many key pairs; a wrong key's is not", () => {
  const server = x25519.keygen()
  const check = proofChecker(server.secretKey, server.publicKey)
  for (let i = 0; i < 20; i++) {
    const client = generateKeyPair()
    const challenge = crypto.getRandomValues(new Uint8Array(32))
    const proof = registrationProof(client.privateKey, encodeKey(server.publicKey), challenge)
    expect(proof).toBe(encodeKey(check(client.publicKey, challenge)!))
    expect(proof).not.toBe(encodeKey(check(generateKeyPair().publicKey, challenge)!))
    expect(clientPeerId(client.publicKey)).toBe(serverPeerId(client.publicKey))
  }
})

test('the server and the client accept exactly the same key texts', () => {
  const k = encodeKey(generateKeyPair().publicKey)
  for (const text of [k, k.slice(0, 42) + (k[42] === 'A' ? 'B' : 'A') + '=', k.slice(0, 43), '', 'x'.repeat(44)]) {
    const client = (() => {
      try {
        return parsePublicKey(text)
      } catch {
        return undefined
      }
    })()
    expect(serverDecode(text) === undefined).toBe(client === undefined)
  }
})
