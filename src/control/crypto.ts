/**
 * Token and proof primitives of the control server. Key text, peer ids and the proof's MAC come from
 * src/shared/identity.ts, the same definitions the client library uses.
 */
import { createHash, createPrivateKey, createPublicKey, diffieHellman, randomBytes, timingSafeEqual } from 'node:crypto'
import { decodeKey, encodeKey, peerIdOf, registrationMac } from '../shared/identity.ts'

export { decodeKey, peerIdOf }
export const b64 = encodeKey
export const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

/** Tokens are 32 random bytes, base64url; only SHA-256 of the token text is stored. */
export const newToken = () => randomBytes(32).toString('base64url')
export const hashToken = (token: string) => createHash('sha256').update(token).digest('hex')
export const randomHex = (bytes: number) => randomBytes(bytes).toString('hex')

/**
 * Checks registration proofs (`registrationMac` of the shared secret and the challenge). X25519 runs in
 * node:crypto here (native, about 13× faster than the pure-JS curve the client uses), with our private key
 * parsed once.
 */
export function proofChecker(serverSecret: Uint8Array, serverPublic: Uint8Array) {
  const privateKey = createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: b64url(serverSecret), x: b64url(serverPublic) }, format: 'jwk' })
  return (clientPublic: Uint8Array, challenge: Uint8Array): Uint8Array | undefined => {
    let shared: Buffer
    try {
      const publicKey = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: b64url(clientPublic) }, format: 'jwk' })
      shared = diffieHellman({ privateKey, publicKey })
    } catch {
      return undefined // a low-order point gives an all-zero secret, which the native X25519 refuses
    }
    return registrationMac(new Uint8Array(shared), challenge)
  }
}
const b64url = (b: Uint8Array) => Buffer.from(b).toString('base64url')

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b)
}
