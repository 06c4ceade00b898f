// The addon's batched ChaCha20-Poly1305 against node:crypto: same ciphertext and tag for WireGuard's nonce
// layout, in place, for every length; forgeries and wrong counters refused; clear errors.
import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AeadKey, nativeAvailable } from './index.js';

function nodeSeal(key: Buffer, counter: bigint, plain: Buffer): Buffer {
  const nonce = Buffer.alloc(12);
  nonce.writeBigUInt64LE(counter, 4);
  const c = crypto.createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
  return Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
}

/** Lays packets out in one buffer with gaps and room for tags, as a data path would. */
function layout(plains: Buffer[]) {
  const offsets = new Uint32Array(plains.length);
  const lengths = new Uint32Array(plains.length);
  let off = 16;
  for (let i = 0; i < plains.length; i++) {
    offsets[i] = off;
    lengths[i] = plains[i]!.length;
    off += plains[i]!.length + 16 + 32;
  }
  const buf = Buffer.alloc(off);
  plains.forEach((p, i) => p.copy(buf, offsets[i]));
  return { buf, offsets, lengths };
}

describe.skipIf(!nativeAvailable())('AeadKey (ChaCha20-Poly1305, batched, in place)', () => {
  const key = crypto.randomBytes(32);

  it('seals exactly as node:crypto does, for many lengths and counters, and opens its own output', () => {
    const sizes = [0, 1, 15, 16, 17, 63, 64, 65, 255, 1280, 1420, 1440, 9000, 65000];
    const counters = [0, 1, 2, 255, 256, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 7, Number.MAX_SAFE_INTEGER];
    const plains = sizes.map((n) => crypto.randomBytes(n));
    const ctrs = new Float64Array(sizes.map((_, i) => counters[i % counters.length]!));
    const { buf, offsets, lengths } = layout(plains);
    const aead = new AeadKey(key);
    aead.seal(buf, offsets, lengths, ctrs, plains.length);
    plains.forEach((p, i) => {
      const sealed = buf.subarray(offsets[i], offsets[i]! + p.length + 16);
      expect(sealed.equals(nodeSeal(key, BigInt(ctrs[i]!), p))).toBe(true);
    });
    // the gaps between packets are untouched
    expect(buf.subarray(0, 16).every((b) => b === 0)).toBe(true);

    const sealedLengths = lengths.map((n) => n + 16);
    const ok = new Uint8Array(plains.length);
    expect(aead.open(buf, offsets, sealedLengths, ctrs, plains.length, ok)).toBe(plains.length);
    expect([...ok]).toEqual(plains.map(() => 1));
    plains.forEach((p, i) => expect(buf.subarray(offsets[i], offsets[i]! + p.length).equals(p)).toBe(true));
  });

  it('opens what node:crypto sealed, and refuses forgeries, wrong counters, wrong keys and short packets', () => {
    const plains = Array.from({ length: 6 }, () => crypto.randomBytes(1420));
    const sealed = plains.map((p, i) => nodeSeal(key, BigInt(1000 + i), p));
    const { buf, offsets, lengths } = layout(sealed);
    const ctrs = new Float64Array([1000, 1001, 1002, 1003, 9999, 1005]); // packet 4: wrong counter
    buf[offsets[1]! + 100]! ^= 1; // packet 1: ciphertext flipped
    buf[offsets[2]! + lengths[2]! - 1]! ^= 0x80; // packet 2: tag flipped
    lengths[5] = 15; // packet 5: shorter than a tag
    const ok = new Uint8Array(6).fill(7);
    expect(new AeadKey(key).open(buf, offsets, lengths, ctrs, 6, ok)).toBe(2);
    expect([...ok]).toEqual([1, 0, 0, 1, 0, 0]);
    expect(buf.subarray(offsets[0], offsets[0]! + 1420).equals(plains[0]!)).toBe(true);
    expect(buf.subarray(offsets[3], offsets[3]! + 1420).equals(plains[3]!)).toBe(true);

    const again = layout([nodeSeal(key, 5n, plains[0]!)]);
    const otherKey = new AeadKey(crypto.randomBytes(32));
    expect(otherKey.open(again.buf, again.offsets, again.lengths, Float64Array.of(5), 1, ok)).toBe(0);
    expect(ok[0]).toBe(0);
  });

  it('refuses bad arguments and use after destroy with clear errors', () => {
    expect(() => new AeadKey(new Uint8Array(31))).toThrow(/key must be 32 bytes/);
    const aead = new AeadKey(key);
    const buf = new Uint8Array(100);
    const offsets = Uint32Array.of(0);
    const ctrs = Float64Array.of(1);
    expect(() => aead.seal(buf, offsets, Uint32Array.of(90), ctrs, 1)).toThrow(/16-byte tag extend beyond buf/);
    expect(() => aead.seal(buf, offsets, Uint32Array.of(10), Float64Array.of(-1), 1)).toThrow(/counter must be/);
    expect(() => aead.seal(buf, offsets, Uint32Array.of(10), Float64Array.of(1.5), 1)).toThrow(/counter must be/);
    expect(() => aead.seal(buf, offsets, Uint32Array.of(10), ctrs, 2)).toThrow(/count exceeds/);
    expect(() => aead.seal(buf, offsets, Uint32Array.of(10), new Uint32Array(1) as never, 1)).toThrow(
      /counters must be a Float64Array/,
    );
    expect(() => aead.open(buf, offsets, Uint32Array.of(101), ctrs, 1, new Uint8Array(1))).toThrow(/beyond buf/);
    aead.destroy();
    aead.destroy();
    expect(() => aead.seal(buf, offsets, Uint32Array.of(10), ctrs, 1)).toThrow(
      expect.objectContaining({ code: 'EBADF', message: expect.stringContaining('destroyed') }),
    );
  });
});
