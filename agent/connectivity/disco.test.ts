import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isStunPacket } from '../../wire/stun.js';
import { decodePayload, DiscoBox, DiscoKey, DISCO_MAGIC, encodePayload, isDiscoPacket, type DiscoMessage } from './disco.js';

const a = DiscoKey.generate();
const b = DiscoKey.generate();
const boxA = new DiscoBox(a);
const boxB = new DiscoBox(b);
const knownToB = (k: Buffer) => k.equals(a.publicKey);

const samples: DiscoMessage[] = [
  { type: 'ping', txId: randomBytes(12), nodeKey: randomBytes(32) },
  { type: 'pong', txId: randomBytes(12), src: { address: '198.18.3.4', port: 41641 } },
  { type: 'pong', txId: randomBytes(12), src: { address: '2001:db8::7', port: 1 } },
  { type: 'callMeMaybe', endpoints: [] },
  { type: 'callMeMaybe', endpoints: [{ address: '203.0.113.9', port: 65535 }, { address: 'fd00::1', port: 41641 }] },
];

describe('disco', () => {
  it('seals and opens every message type between two keys', () => {
    for (const m of samples) {
      const sealed = boxA.seal(b.publicKey, m);
      expect(isDiscoPacket(sealed)).toBe(true);
      expect(isStunPacket(sealed)).toBe(false);
      expect(sealed[0]).toBe(0xff); // never a WireGuard type 1–4
      const r = boxB.open(sealed, knownToB);
      expect(r).toEqual({ ok: true, from: a.publicKey, message: m });
    }
  });

  it('uses a fresh nonce each time: the same message never seals to the same bytes', () => {
    const m = samples[0]!;
    expect(boxA.seal(b.publicKey, m).equals(boxA.seal(b.publicKey, m))).toBe(false);
  });

  it('refuses the wrong receiver, an unknown sender, a forged sender key and any flipped bit', () => {
    const sealed = boxA.seal(b.publicKey, samples[1]!);
    const c = new DiscoBox(DiscoKey.generate());
    expect(c.open(sealed, () => true)).toEqual({ ok: false, reason: 'does not open' });
    expect(boxB.open(sealed, () => false)).toEqual({ ok: false, reason: 'unknown sender' });
    // An attacker who knows both public keys but neither private key: swap in its own key as sender.
    const mallory = DiscoKey.generate();
    const forged = new DiscoBox(mallory).seal(b.publicKey, samples[1]!);
    a.publicKey.copy(forged, DISCO_MAGIC.length);
    expect(boxB.open(forged, knownToB)).toEqual({ ok: false, reason: 'does not open' });
    for (let i = DISCO_MAGIC.length; i < sealed.length; i++) {
      const t = Buffer.from(sealed);
      t[i]! ^= 0x01;
      const r = boxB.open(t, () => true);
      expect(r.ok, `bit flipped at ${i}`).toBe(false);
    }
  });

  it('refuses low-order and invalid public keys without throwing', () => {
    const sealed = boxA.seal(b.publicKey, samples[0]!);
    Buffer.alloc(32).copy(sealed, DISCO_MAGIC.length); // the all-zero point
    expect(boxB.open(sealed, () => true)).toEqual({ ok: false, reason: 'unusable sender key' });
    expect(() => boxA.seal(Buffer.alloc(32), samples[0]!)).toThrow(/usable/);
  });

  it('decodes payloads strictly and never throws on malformed ones', () => {
    expect(decodePayload(Buffer.from([9, 1]))).toBe('unknown message type 9');
    expect(decodePayload(Buffer.from([1, 1, 0]))).toBe('ping too short');
    expect(decodePayload(Buffer.from([3, 1, 0]))).toBe('call-me-maybe of a bad length');
    const pong = encodePayload(samples[1]!);
    pong.writeUInt16BE(0, pong.length - 2);
    expect(decodePayload(pong)).toBe('pong with port 0');
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const r = decodePayload(Buffer.from(bytes));
        expect(typeof r === 'string' || typeof r.type === 'string').toBe(true);
      }),
      { numRuns: 3000 },
    );
  });

  it('fuzz: random and mutated datagrams never throw and never open', () => {
    const valid = boxA.seal(b.publicKey, samples[4]!);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), fc.boolean(), (bytes, withMagic) => {
        const d = withMagic ? Buffer.concat([DISCO_MAGIC, a.publicKey, bytes]) : Buffer.from(bytes);
        expect(boxB.open(d, () => true).ok).toBe(false);
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.nat(valid.length - 1), fc.integer({ min: 1, max: 255 }), fc.nat(valid.length), (i, x, cut) => {
        const m = Buffer.from(valid);
        m[i]! ^= x;
        expect(boxB.open(m, knownToB).ok).toBe(false);
        expect(boxB.open(valid.subarray(0, cut), knownToB).ok).toBe(cut === valid.length);
      }),
      { numRuns: 2000 },
    );
  });

  it('round-trips arbitrary messages (property)', () => {
    const endpoint = fc.record({
      address: fc.oneof(fc.ipV4(), fc.ipV6().filter((s) => !s.includes('.'))),
      port: fc.integer({ min: 1, max: 65535 }),
    });
    const message: fc.Arbitrary<DiscoMessage> = fc.oneof(
      fc.record({ type: fc.constant('ping' as const), txId: fc.uint8Array({ minLength: 12, maxLength: 12 }).map((u) => Buffer.from(u)), nodeKey: fc.uint8Array({ minLength: 32, maxLength: 32 }).map((u) => Buffer.from(u)) }),
      fc.record({ type: fc.constant('pong' as const), txId: fc.uint8Array({ minLength: 12, maxLength: 12 }).map((u) => Buffer.from(u)), src: endpoint }),
      fc.record({ type: fc.constant('callMeMaybe' as const), endpoints: fc.array(endpoint, { maxLength: 64 }) }),
    );
    fc.assert(
      fc.property(message, (m) => {
        const r = boxB.open(boxA.seal(b.publicKey, m), knownToB);
        expect(r.ok).toBe(true);
        if (!r.ok) return;
        // Addresses come back in canonical form; compare through a second round.
        const again = boxB.open(boxA.seal(b.publicKey, r.message), knownToB);
        expect(again.ok && again.message).toEqual(r.message);
        if (m.type === 'pong' && r.message.type === 'pong') expect(r.message.src.port).toBe(m.src.port);
      }),
      { numRuns: 500 },
    );
  });
});
