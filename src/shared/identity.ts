/**
 * A peer's identity, one definition for the control server and the client library: the text form of keys
 * (standard base64 of 32 bytes, as `wg` prints them), the peer_id derived from a public key, and the MAC of the
 * registration proof. Pure, and never throwing on input from the network.
 */
import { hmac } from '@noble/hashes/hmac.js'
import { sha256 } from '@noble/hashes/sha2.js'

/** X25519 keys, WireGuard's, are 32 bytes (RFC 7748 §5). */
export const KEY_LEN = 32

/** Standard base64 with padding: the form `wg genkey` / `wg pubkey` print and the API carries. */
export const encodeKey = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64')

/**
 * Standard base64 of exactly `len` bytes, else undefined. Base64 can spell the same bytes in more than one way
 * (the unused low bits of the last character); every spelling gives the same bytes, so the same key: compare
 * keys as bytes, or as `encodeKey` text, which has one spelling.
 */
export function decodeKey(text: unknown, len = KEY_LEN): Uint8Array | undefined {
  if (typeof text !== 'string' || text.length !== Math.ceil(len / 3) * 4 || !/^[A-Za-z0-9+/]+={0,2}$/.test(text)) return undefined
  const bytes = new Uint8Array(Buffer.from(text, 'base64'))
  return bytes.length === len ? bytes : undefined
}

/** peer_id: the first 16 hex digits of SHA-256 of the raw 32-byte public key, so no one can claim another's id. */
export const peerIdOf = (publicKey: Uint8Array): string => Buffer.from(sha256(publicKey)).toString('hex').slice(0, 16)

/**
 * The registration proof (`proof` of POST /auth/register, base64): HMAC-SHA256 keyed by the X25519 shared secret
 * of the client's key pair and the server's, over the 32 raw challenge bytes. Only a holder of one of the two
 * private keys can compute it; the client derives the secret with its private key, the server with its own.
 */
export const registrationMac = (sharedSecret: Uint8Array, challenge: Uint8Array): Uint8Array => hmac(sha256, sharedSecret, challenge)
