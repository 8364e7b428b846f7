// WireGuard keys against the real `wg` tool: both directions, plus our CLI as a user pipes it.
import { describe, expect, test } from 'bun:test'
import { clamp, encodeKey, generateKeyPair, keysEqual, parsePrivateKey, parsePublicKey, publicKeyOf, sharedSecret } from '../../src/client/wireguard/keys.ts'
import { runLanrage as lanrage } from './helpers.ts'
import { needs } from '../needs.ts'

const hasWg = needs('wg') === null

function wg(args: string[], stdin?: string): string {
  const p = Bun.spawnSync(['wg', ...args], { stdin: stdin === undefined ? 'ignore' : Buffer.from(stdin) })
  if (p.exitCode !== 0) throw new Error(`wg ${args.join(' ')} failed: ${p.stderr.toString()}`)
  return p.stdout.toString().trim()
}

describe('keys', () => {
  test('RFC 7748 §6.1 test vector (Alice)', () => {
    const priv = Buffer.from('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a', 'hex')
    expect(Buffer.from(publicKeyOf(priv as never)).toString('hex')).toBe('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a')
  })

  test('generated private keys are clamped like wg genkey', () => {
    for (let i = 0; i < 50; i++) {
      const { privateKey } = generateKeyPair()
      expect(privateKey[0]! & 7).toBe(0)
      expect(privateKey[31]! & 0xc0).toBe(0x40)
    }
  })

  test('text form round-trips and bad text is refused with INVALID_KEY', () => {
    const { privateKey, publicKey } = generateKeyPair()
    expect(keysEqual(parsePrivateKey(encodeKey(privateKey)), privateKey)).toBe(true)
    expect(keysEqual(parsePublicKey(' ' + encodeKey(publicKey) + '\n'), publicKey)).toBe(true)
    for (const bad of ['', 'abc', encodeKey(publicKey).slice(0, 43), encodeKey(new Uint8Array(31)), encodeKey(new Uint8Array(33))]) {
      expect(() => parsePublicKey(bad)).toThrow(expect.objectContaining({ code: 'INVALID_KEY', message: expect.stringContaining('public key must be 44 characters') }))
    }
  })

  test('shared secrets agree (X25519 DH)', () => {
    const a = generateKeyPair()
    const b = generateKeyPair()
    expect(keysEqual(sharedSecret(a.privateKey, b.publicKey), sharedSecret(b.privateKey, a.publicKey))).toBe(true)
  })

  test.skipIf(!hasWg)('our public key equals `wg pubkey` of our private key', () => {
    for (let i = 0; i < 10; i++) {
      const { privateKey, publicKey } = generateKeyPair()
      expect(wg(['pubkey'], encodeKey(privateKey) + '\n')).toBe(encodeKey(publicKey))
    }
  })

  test.skipIf(!hasWg)('our public key of `wg genkey` output equals `wg pubkey`', () => {
    for (let i = 0; i < 10; i++) {
      const priv = wg(['genkey'])
      expect(encodeKey(publicKeyOf(parsePrivateKey(priv)))).toBe(wg(['pubkey'], priv + '\n'))
    }
  })

  test.skipIf(!hasWg)('an unclamped private key gives the same public key as wg (X25519 clamps on use)', () => {
    const raw = new Uint8Array(32).fill(0xff)
    expect(encodeKey(publicKeyOf(raw as never))).toBe(wg(['pubkey'], encodeKey(raw)))
    expect(encodeKey(publicKeyOf(clamp(raw) as never))).toBe(encodeKey(publicKeyOf(raw as never)))
  })
})

describe('lanrage keygen / pubkey', () => {
  test.skipIf(!hasWg)('keygen output is accepted by wg pubkey, and lanrage pubkey agrees with it', () => {
    const k = lanrage(['keygen'])
    expect(k.code).toBe(0)
    expect(k.out).toMatch(/^[A-Za-z0-9+/]{43}=\n$/)
    const ours = lanrage(['pubkey'], {}, k.out)
    expect(ours.code).toBe(0)
    expect(ours.out.trim()).toBe(wg(['pubkey'], k.out))
    const fromWg = wg(['genkey'])
    expect(lanrage(['pubkey'], {}, fromWg + '\n').out.trim()).toBe(wg(['pubkey'], fromWg))
  })

  test('pubkey refuses garbage on stdin with exit 1 and says why', () => {
    const r = lanrage(['pubkey'], {}, 'not a key\n')
    expect(r.code).toBe(1)
    expect(r.err).toContain('private key must be 44 characters of base64')
    expect(r.err).toContain('INVALID_KEY')
    expect(r.out).toBe('')
  })

  test('keygen refuses arguments', () => {
    const r = lanrage(['keygen', 'extra'])
    expect(r.code).toBe(2)
    expect(r.err).toContain('takes no arguments')
  })
})
