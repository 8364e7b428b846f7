/** Identity, token and proof primitives of the control server (DESIGN.md "Identity and auth"). */
import { sha256 } from '@noble/hashes/sha2.js'
import { createHash, createHmac, createPrivateKey, createPublicKey, diffieHellman, randomBytes, timingSafeEqual } from 'node:crypto'

/** Decodes standard base64 of exactly `len` bytes; undefined for anything else (wire input never throws). */
export function decodeKey(text: string, len = 32): Uint8Array | undefined {
  if (typeof text !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length !== Math.ceil(len / 3) * 4) return undefined
  const b = new Uint8Array(Buffer.from(text, 'base64'))
  return b.length === len ? b : undefined
}
export const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64')
export const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

/** peer_id = the first 16 hex digits of SHA-256(raw 32-byte public key): nobody can claim another's id. */
export const peerIdOf = (publicKey: Uint8Array) => hex(sha256(publicKey)).slice(0, 16)

/** Tokens are 32 random bytes, base64url; only SHA-256 of the token text is stored. */
export const newToken = () => randomBytes(32).toString('base64url')
export const hashToken = (token: string) => createHash('sha256').update(token).digest('hex')
export const randomHex = (bytes: number) => randomBytes(bytes).toString('hex')

/**
 * The registration proof: HMAC-SHA256 keyed by the X25519 shared secret, over the 32 raw challenge bytes.
 * Only the holder of the client's private key (or of ours) can compute it. X25519 runs in node:crypto (native,
 * about 13× faster than the pure-JS curve), with our private key parsed once.
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
    return new Uint8Array(createHmac('sha256', shared).update(challenge).digest())
  }
}
const b64url = (b: Uint8Array) => Buffer.from(b).toString('base64url')

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b)
}
