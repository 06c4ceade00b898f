// X25519 key pairs from raw 32-byte keys, for the protocols both programs speak (disco, the relay's
// client proof). node:crypto does the arithmetic; it wants keys wrapped in DER, which this hides.
import { createPrivateKey, createPublicKey, diffieHellman, randomBytes, type KeyObject } from 'node:crypto';

export const X25519_KEY_LEN = 32;
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_X25519 = Buffer.from('302a300506032b656e032100', 'hex');

export class X25519Key {
  readonly publicKey: Buffer;
  private readonly object: KeyObject;

  constructor(privateRaw: Uint8Array) {
    if (privateRaw.length !== X25519_KEY_LEN) throw new Error('an X25519 private key has 32 bytes');
    this.object = createPrivateKey({ key: Buffer.concat([PKCS8_X25519, privateRaw]), format: 'der', type: 'pkcs8' });
    const spki = createPublicKey(this.object).export({ format: 'der', type: 'spki' });
    this.publicKey = Buffer.from(spki.subarray(spki.length - X25519_KEY_LEN));
  }

  static generate(): X25519Key {
    return new X25519Key(randomBytes(X25519_KEY_LEN));
  }

  /** The shared secret with a public key; null for bytes that are no usable key or a low-order point. */
  shared(peerPublic: Uint8Array): Buffer | null {
    if (peerPublic.length !== X25519_KEY_LEN) return null;
    try {
      const pub = createPublicKey({ key: Buffer.concat([SPKI_X25519, peerPublic]), format: 'der', type: 'spki' });
      const out = diffieHellman({ privateKey: this.object, publicKey: pub });
      return out.every((b) => b === 0) ? null : out;
    } catch {
      return null;
    }
  }

  toJSON(): string {
    return '<private key>';
  }
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return 'X25519Key(<redacted>)';
  }
}
