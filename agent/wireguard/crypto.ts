// The primitives WireGuard's Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s construction is built from.
// node:crypto does X25519, ChaCha20-Poly1305, BLAKE2s-256 and HMAC-BLAKE2s (OpenSSL, fast);
// @noble does the two node lacks: keyed BLAKE2s (MAC) and XChaCha20-Poly1305 (cookie replies).
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  randomFillSync,
  timingSafeEqual,
  type KeyObject,
} from 'node:crypto';
import { blake2s } from '@noble/hashes/blake2';
import { xchacha20poly1305 } from '@noble/ciphers/chacha';

export const KEY_LEN = 32;
export const TAG_LEN = 16;

const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_X25519 = Buffer.from('302a300506032b656e032100', 'hex');

/** An X25519 private key with its public key and the KeyObject node:crypto needs, built once. */
export class PrivateKey {
  readonly raw: Buffer;
  readonly publicKey: PublicKey;
  readonly object: KeyObject;

  constructor(raw: Uint8Array) {
    if (raw.length !== KEY_LEN) throw new Error('private key must be 32 bytes');
    this.raw = Buffer.from(raw);
    clamp(this.raw);
    this.object = createPrivateKey({ key: Buffer.concat([PKCS8_X25519, this.raw]), format: 'der', type: 'pkcs8' });
    const spki = createPublicKey(this.object).export({ format: 'der', type: 'spki' });
    this.publicKey = new PublicKey(spki.subarray(spki.length - KEY_LEN));
  }

  static generate(): PrivateKey {
    const raw = Buffer.alloc(KEY_LEN);
    randomFillSync(raw);
    return new PrivateKey(raw);
  }

  /** X25519; null when the result is all zeros (a low-order point), which WireGuard refuses. */
  dh(pub: PublicKey): Buffer | null {
    try {
      const out = diffieHellman({ privateKey: this.object, publicKey: pub.object });
      return isZero(out) ? null : out;
    } catch {
      return null;
    }
  }

  /** Keeps a private key out of logs and JSON by accident. */
  toJSON(): string {
    return '<private key>';
  }
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return 'PrivateKey(<redacted>)';
  }
}

export class PublicKey {
  readonly raw: Buffer;
  readonly object: KeyObject;
  readonly hex: string;

  constructor(raw: Uint8Array) {
    if (raw.length !== KEY_LEN) throw new Error('public key must be 32 bytes');
    this.raw = Buffer.from(raw);
    this.hex = this.raw.toString('hex');
    this.object = createPublicKey({ key: Buffer.concat([SPKI_X25519, this.raw]), format: 'der', type: 'spki' });
  }

  equals(other: PublicKey): boolean {
    return timingSafeEqual(this.raw, other.raw);
  }
}

/** An ephemeral X25519 pair for one handshake. */
export function generateEphemeral(): { priv: KeyObject; pub: Buffer } {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  const spki = publicKey.export({ format: 'der', type: 'spki' });
  return { priv: privateKey, pub: spki.subarray(spki.length - KEY_LEN) };
}

export function dhObjects(priv: KeyObject, pubRaw: Uint8Array): Buffer | null {
  try {
    const pub = createPublicKey({ key: Buffer.concat([SPKI_X25519, pubRaw]), format: 'der', type: 'spki' });
    const out = diffieHellman({ privateKey: priv, publicKey: pub });
    return isZero(out) ? null : out;
  } catch {
    return null;
  }
}

export function clamp(k: Buffer): void {
  k[0] &= 248;
  k[31] = (k[31] & 127) | 64;
}

export function isZero(b: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < b.length; i++) acc |= b[i];
  return acc === 0;
}

/** Constant-time equality of two equal-length byte strings (false if lengths differ). */
export function ctEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** HASH(a || b || ...) = BLAKE2s-256. */
export function hash(...parts: Uint8Array[]): Buffer {
  const h = createHash('blake2s256');
  for (const p of parts) h.update(p);
  return h.digest();
}

export function hmac(key: Uint8Array, ...parts: Uint8Array[]): Buffer {
  const h = createHmac('blake2s256', key);
  for (const p of parts) h.update(p);
  return h.digest();
}

/** MAC(key, input) = keyed BLAKE2s with a 16-byte output. */
export function mac(key: Uint8Array, input: Uint8Array): Buffer {
  const out = blake2s(input, { key, dkLen: 16 });
  return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
}

const ONE = Buffer.from([1]);
const TWO = Buffer.from([2]);
const THREE = Buffer.from([3]);

/** HKDF with HMAC-BLAKE2s, as WireGuard's KDF1/KDF2/KDF3. */
export function kdf(n: 1 | 2 | 3, ck: Uint8Array, input: Uint8Array): Buffer[] {
  const prk = hmac(ck, input);
  const t1 = hmac(prk, ONE);
  if (n === 1) return [t1];
  const t2 = hmac(prk, t1, TWO);
  if (n === 2) return [t1, t2];
  return [t1, t2, hmac(prk, t2, THREE)];
}

const ZERO_NONCE = Buffer.alloc(12);

/** Handshake AEAD: ChaCha20-Poly1305 with counter 0 (each handshake key is used once). */
export function aeadSeal(key: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Buffer {
  const c = createCipheriv('chacha20-poly1305', key, ZERO_NONCE, { authTagLength: TAG_LEN });
  c.setAAD(ad, { plaintextLength: plaintext.length });
  const body = c.update(plaintext);
  c.final();
  return Buffer.concat([body, c.getAuthTag()]);
}

export function aeadOpen(key: Uint8Array, ciphertext: Uint8Array, ad: Uint8Array): Buffer | null {
  if (ciphertext.length < TAG_LEN) return null;
  try {
    const d = createDecipheriv('chacha20-poly1305', key, ZERO_NONCE, { authTagLength: TAG_LEN });
    d.setAAD(ad, { plaintextLength: ciphertext.length - TAG_LEN });
    d.setAuthTag(ciphertext.subarray(ciphertext.length - TAG_LEN));
    const body = d.update(ciphertext.subarray(0, ciphertext.length - TAG_LEN));
    d.final();
    return body;
  } catch {
    return null;
  }
}

export function xaeadSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Buffer {
  return Buffer.from(xchacha20poly1305(key, nonce, ad).encrypt(plaintext));
}

export function xaeadOpen(key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, ad: Uint8Array): Buffer | null {
  try {
    return Buffer.from(xchacha20poly1305(key, nonce, ad).decrypt(ciphertext));
  } catch {
    return null;
  }
}

export function randomBytes(n: number): Buffer {
  const b = Buffer.alloc(n);
  randomFillSync(b);
  return b;
}

/** Overwrites key material in place. */
export function wipe(b: Uint8Array | null | undefined): void {
  if (b) b.fill(0);
}
