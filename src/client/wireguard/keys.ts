/**
 * WireGuard keys: X25519 key pairs (RFC 7748) in the text form `wg` uses — standard base64 of 32 bytes.
 *
 * `wg genkey` prints an already clamped scalar (RFC 7748 §5: clear bits 0-2 of byte 0, clear bit 7 and set bit 6
 * of byte 31). X25519 clamps on use anyway, so the public key is the same either way; we clamp when generating
 * so our private keys are byte-identical in form to wg's, and `wg pubkey` of ours equals ours.
 */
import { x25519 } from '@noble/curves/ed25519.js'
import { LanrageError } from '../../shared/errors.ts'
import { decodeKey, encodeKey, KEY_LEN } from '../../shared/identity.ts'

export { encodeKey, KEY_LEN }

export type WgPrivateKey = Uint8Array & { readonly __brand: 'WgPrivateKey' }
export type WgPublicKey = Uint8Array & { readonly __brand: 'WgPublicKey' }
export interface WgKeyPair {
  privateKey: WgPrivateKey
  publicKey: WgPublicKey
}

export class InvalidKeyError extends LanrageError {
  constructor(message: string) {
    super('INVALID_KEY', message, 400)
  }
}

/** RFC 7748 §5 decodeScalar25519 clamping, on a copy. */
export function clamp(raw: Uint8Array): Uint8Array {
  const k = Uint8Array.from(raw)
  k[0]! &= 248
  k[31]! &= 127
  k[31]! |= 64
  return k
}

export function generatePrivateKey(): WgPrivateKey {
  return clamp(crypto.getRandomValues(new Uint8Array(KEY_LEN))) as WgPrivateKey
}

export function publicKeyOf(priv: WgPrivateKey): WgPublicKey {
  return x25519.getPublicKey(priv) as WgPublicKey
}

export function generateKeyPair(): WgKeyPair {
  const privateKey = generatePrivateKey()
  return { privateKey, publicKey: publicKeyOf(privateKey) }
}

/** X25519(priv, pub): the shared secret used for the control server's registration proof. */
export function sharedSecret(priv: WgPrivateKey, pub: WgPublicKey): Uint8Array {
  return x25519.getSharedSecret(priv, pub)
}

/** Parses the 44-character base64 text `wg` prints (whitespace around it is ignored, as `wg pubkey` does). */
function parseKey(text: string, what: string): Uint8Array {
  const k = decodeKey(text.trim())
  if (!k) throw new InvalidKeyError(`${what} must be 44 characters of base64 encoding 32 bytes (as wg prints it)`)
  return k
}

export const parsePrivateKey = (text: string) => parseKey(text, 'private key') as WgPrivateKey
export const parsePublicKey = (text: string) => parseKey(text, 'public key') as WgPublicKey

/** Constant-time comparison (keys are secrets or identities; never compare them with an early exit). */
export function keysEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  let d = 0
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!
  return d === 0
}
