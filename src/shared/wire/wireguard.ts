/**
 * WireGuard messages as the relay sees them (WireGuard whitepaper §5.4, "Messages"). The relay never decrypts:
 * it tells the four message types apart and checks mac1 on handshake messages, which anyone who knows the
 * receiver's static public key can compute (§5.4.4), and nobody without it can forge.
 *
 *   type  message                 size        mac1 at   (all: type u8, reserved 3 zero bytes, then fields)
 *   1     handshake initiation    148 bytes   116       sender u32le, ephemeral, static, timestamp, mac1, mac2
 *   2     handshake response       92 bytes    60       sender, receiver, ephemeral, empty, mac1, mac2
 *   3     cookie reply             64 bytes     -       receiver, nonce, cookie
 *   4     transport data          >= 32 bytes  -       receiver, counter u64le, packet (multiple of 16)
 *
 * mac1 (§5.4.4): mac1 = MAC(HASH(LABEL_MAC1 ‖ Spub_m'), msg_α) where msg_α is the message up to mac1,
 * HASH = BLAKE2s-256, MAC = keyed BLAKE2s-128, LABEL_MAC1 = "mac1----", Spub_m' the receiver's static key.
 * The relay checks mac1 with the key of the side the message is addressed to (the other side's key).
 */
import { blake2s } from '@noble/hashes/blake2.js'

export const WG_HANDSHAKE_INITIATION = 1
export const WG_HANDSHAKE_RESPONSE = 2
export const WG_COOKIE_REPLY = 3
export const WG_TRANSPORT_DATA = 4

export const WG_INITIATION_LEN = 148
export const WG_RESPONSE_LEN = 92
export const WG_COOKIE_REPLY_LEN = 64
export const WG_TRANSPORT_MIN_LEN = 32
/** Offsets of mac1 in the two handshake messages (§5.4.2, §5.4.3). */
export const WG_INITIATION_MAC1_AT = 116
export const WG_RESPONSE_MAC1_AT = 60
export const WG_MAC_LEN = 16

const LABEL_MAC1 = new TextEncoder().encode('mac1----')

export type WgMessageType = 'initiation' | 'response' | 'cookie' | 'data'

/**
 * The WireGuard message type from the first four bytes and the length, or null when the datagram cannot be
 * a well-formed WireGuard message (the relay drops and counts those).
 */
export function wgMessageType(b: Uint8Array): WgMessageType | null {
  if (b.length < 4 || b[1] !== 0 || b[2] !== 0 || b[3] !== 0) return null
  switch (b[0]) {
    case WG_HANDSHAKE_INITIATION:
      return b.length === WG_INITIATION_LEN ? 'initiation' : null
    case WG_HANDSHAKE_RESPONSE:
      return b.length === WG_RESPONSE_LEN ? 'response' : null
    case WG_COOKIE_REPLY:
      return b.length === WG_COOKIE_REPLY_LEN ? 'cookie' : null
    case WG_TRANSPORT_DATA:
      // wireguard-go pads plaintext to 16 bytes, but the receiver's AEAD check is what rejects a bad one; the
      // relay only needs "could be data", so it does not insist on the padding.
      return b.length >= WG_TRANSPORT_MIN_LEN ? 'data' : null
  }
  return null
}

/** HASH(LABEL_MAC1 ‖ Spub): the mac1 key for messages sent TO the holder of `receiverPublicKey`. Precompute it once. */
export function mac1Key(receiverPublicKey: Uint8Array): Uint8Array {
  if (receiverPublicKey.length !== 32) throw new TypeError('a WireGuard public key is 32 bytes')
  const m = new Uint8Array(LABEL_MAC1.length + 32)
  m.set(LABEL_MAC1, 0)
  m.set(receiverPublicKey, LABEL_MAC1.length)
  return blake2s(m)
}

/** mac1 of a handshake message (initiation or response) computed with a precomputed mac1 key. */
export function computeMac1(msg: Uint8Array, key: Uint8Array): Uint8Array | null {
  const at = mac1Offset(msg)
  if (at < 0) return null
  return blake2s(msg.subarray(0, at), { key, dkLen: WG_MAC_LEN })
}

function mac1Offset(msg: Uint8Array): number {
  const t = wgMessageType(msg)
  return t === 'initiation' ? WG_INITIATION_MAC1_AT : t === 'response' ? WG_RESPONSE_MAC1_AT : -1
}

/** True when `msg` is a handshake initiation or response whose mac1 is valid for the receiver's mac1 key. */
export function checkMac1(msg: Uint8Array, key: Uint8Array): boolean {
  const at = mac1Offset(msg)
  if (at < 0) return false
  const want = blake2s(msg.subarray(0, at), { key, dkLen: WG_MAC_LEN })
  let diff = 0
  for (let i = 0; i < WG_MAC_LEN; i++) diff |= want[i]! ^ msg[at + i]!
  return diff === 0
}
