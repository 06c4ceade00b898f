import { describe, expect, it } from 'vitest';
import { FakeClock } from './clock.js';
import { CookieChecker, CookieGenerator } from './cookie.js';
import { PrivateKey, hash, kdf } from './crypto.js';
import { INITIATION_SIZE, RESPONSE_SIZE, messageType, MSG_INITIATION, MSG_RESPONSE } from './messages.js';
import {
  HANDSHAKE_INITIATION_RATE_MS,
  Handshake,
  INITIAL_CHAIN_KEY,
  consumeInitiation,
  consumeResponse,
  createInitiation,
  createResponse,
  deriveKeypair,
  tai64n,
  type NoiseHost,
} from './noise.js';

// Fixed keys so failures reproduce.
const keyA = new PrivateKey(Buffer.alloc(32, 0x11));
const keyB = new PrivateKey(Buffer.alloc(32, 0x22));
const psk = Buffer.alloc(32, 0x33);

function host(key: PrivateKey, peerKey: PrivateKey, clock: FakeClock, withPsk: boolean) {
  const hs = new Handshake(peerKey.publicKey);
  hs.precompute(key);
  if (withPsk) psk.copy(hs.presharedKey);
  let next = 1;
  const h: NoiseHost & { hs: Handshake } = {
    hs,
    staticKey: key,
    lookupByStatic: (pub) => (pub.equals(peerKey.publicKey.raw) ? hs : undefined),
    allocateIndex: () => next++,
    now: () => clock.now(),
    wallNow: () => clock.wallNow(),
  };
  return h;
}

function handshake(initiator: ReturnType<typeof host>, responder: ReturnType<typeof host>, clock: FakeClock) {
  const init = createInitiation(initiator, initiator.hs)!;
  expect(init.length).toBe(INITIATION_SIZE);
  expect(messageType(init, 0, init.length)).toBe(MSG_INITIATION);
  const res = consumeInitiation(responder, init);
  if ('error' in res) throw new Error(res.error);
  const resp = createResponse(responder, res.hs)!;
  expect(resp.length).toBe(RESPONSE_SIZE);
  expect(messageType(resp, 0, resp.length)).toBe(MSG_RESPONSE);
  expect(consumeResponse(initiator, initiator.hs, resp)).toBe(true);
  return {
    init,
    i: deriveKeypair(initiator.hs, clock.now())!,
    r: deriveKeypair(responder.hs, clock.now())!,
  };
}

describe('Noise_IKpsk2 handshake', () => {
  it('uses the constants WireGuard specifies', () => {
    expect(INITIAL_CHAIN_KEY).toEqual(hash(Buffer.from('Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s')));
    // X25519 of the fixed keys is symmetric.
    expect(keyA.dh(keyB.publicKey)).toEqual(keyB.dh(keyA.publicKey));
  });

  for (const withPsk of [false, true]) {
    it(`derives matching transport keys in both directions (psk ${withPsk})`, () => {
      const clock = new FakeClock();
      const a = host(keyA, keyB, clock, withPsk);
      const b = host(keyB, keyA, clock, withPsk);
      const ab = handshake(a, b, clock);
      expect(ab.i.isInitiator).toBe(true);
      expect(ab.r.isInitiator).toBe(false);
      expect(ab.i.sendKey).toEqual(ab.r.recvKey);
      expect(ab.i.recvKey).toEqual(ab.r.sendKey);
      expect(ab.i.sendKey).not.toEqual(ab.i.recvKey);
      expect(ab.i.remoteIndex).toBe(ab.r.localIndex);
      expect(ab.r.remoteIndex).toBe(ab.i.localIndex);

      clock.advance(1000);
      const ba = handshake(b, a, clock);
      expect(ba.i.sendKey).toEqual(ba.r.recvKey);
      expect(ba.i.sendKey).not.toEqual(ab.i.sendKey);
    });
  }

  it('fails when the preshared keys differ', () => {
    const clock = new FakeClock();
    const a = host(keyA, keyB, clock, true);
    const b = host(keyB, keyA, clock, false);
    const init = createInitiation(a, a.hs)!;
    const res = consumeInitiation(b, init);
    if ('error' in res) throw new Error(res.error);
    const resp = createResponse(b, res.hs)!;
    expect(consumeResponse(a, a.hs, resp)).toBe(false);
  });

  it('refuses an initiation for a different responder key or an unknown initiator', () => {
    const clock = new FakeClock();
    const a = host(keyA, keyB, clock, false);
    const c = host(new PrivateKey(Buffer.alloc(32, 0x44)), keyA, clock, false);
    expect(consumeInitiation(c, createInitiation(a, a.hs)!)).toEqual({ error: 'decrypt' });
    const b = host(keyB, new PrivateKey(Buffer.alloc(32, 0x55)), clock, false);
    expect(consumeInitiation(b, createInitiation(a, a.hs)!)).toEqual({ error: 'unknown-peer' });
  });

  it('refuses replayed initiations and initiations faster than 50/s', () => {
    const clock = new FakeClock();
    const a = host(keyA, keyB, clock, false);
    const b = host(keyB, keyA, clock, false);
    const first = createInitiation(a, a.hs)!;
    expect('hs' in consumeInitiation(b, first)).toBe(true);
    clock.advance(1000);
    expect(consumeInitiation(b, Buffer.from(first))).toEqual({ error: 'replay' });
    // A fresh one arriving too soon after the last accepted one is a flood.
    const second = createInitiation(a, a.hs)!;
    expect('hs' in consumeInitiation(b, second)).toBe(true);
    clock.advance(HANDSHAKE_INITIATION_RATE_MS / 2);
    clock.shiftWall(1000); // a later timestamp, so only the rate refuses it
    expect(consumeInitiation(b, createInitiation(a, a.hs)!)).toEqual({ error: 'flood' });
    clock.advance(HANDSHAKE_INITIATION_RATE_MS);
    expect('hs' in consumeInitiation(b, createInitiation(a, a.hs)!)).toBe(true);
  });

  it('refuses a response to no initiation, or a tampered one', () => {
    const clock = new FakeClock();
    const a = host(keyA, keyB, clock, false);
    const b = host(keyB, keyA, clock, false);
    const init = createInitiation(a, a.hs)!;
    const res = consumeInitiation(b, init);
    if ('error' in res) throw new Error(res.error);
    const resp = createResponse(b, res.hs)!;
    const bad = Buffer.from(resp);
    bad[50] ^= 1;
    expect(consumeResponse(a, a.hs, bad)).toBe(false);
    expect(consumeResponse(a, a.hs, resp)).toBe(true);
    expect(consumeResponse(a, a.hs, resp)).toBe(false); // state moved on
  });

  it('encodes TAI64N timestamps big-endian with whitened nanoseconds', () => {
    const t = tai64n(Date.UTC(2020, 0, 1) + 123.456789);
    expect(t.readBigUInt64BE(0)).toBe(0x400000000000000an + BigInt(Date.UTC(2020, 0, 1) / 1000));
    expect(t.readUInt32BE(8) % 0x1000000).toBe(0);
    expect(Buffer.compare(tai64n(1_000_000), tai64n(1_001_000))).toBeLessThan(0);
  });

  it('HKDF matches its definition', () => {
    const ck = Buffer.alloc(32, 1);
    const [t1, t2, t3] = kdf(3, ck, Buffer.from('x'));
    expect(kdf(1, ck, Buffer.from('x'))[0]).toEqual(t1);
    expect(kdf(2, ck, Buffer.from('x'))[1]).toEqual(t2);
    expect(t3).toHaveLength(32);
  });
});

describe('mac1, mac2 and cookie replies', () => {
  it('checks mac1, and mac2 after a cookie reply', () => {
    const clock = new FakeClock();
    const a = host(keyA, keyB, clock, false);
    const gen = new CookieGenerator(keyB.publicKey, () => clock.now());
    const checker = new CookieChecker(() => clock.now());
    checker.init(keyB.publicKey);
    const src = Buffer.from([10, 0, 0, 1, 0x39, 0x30]);

    const init = createInitiation(a, a.hs)!;
    gen.addMacs(init);
    expect(checker.checkMac1(init)).toBe(true);
    expect(checker.checkMac2(init, src)).toBe(false);
    const tampered = Buffer.from(init);
    tampered[10] ^= 1;
    expect(checker.checkMac1(tampered)).toBe(false);

    const reply = checker.createReply(init, src)!;
    expect(reply.readUInt32LE(4)).toBe(init.readUInt32LE(4));
    expect(gen.consumeReply(reply)).toBe(true);
    expect(gen.consumeReply(reply)).toBe(false); // answers one message only

    const retry = createInitiation(a, a.hs)!;
    gen.addMacs(retry);
    expect(checker.checkMac1(retry)).toBe(true);
    expect(checker.checkMac2(retry, src)).toBe(true);
    // The cookie is bound to the source address.
    expect(checker.checkMac2(retry, Buffer.from([10, 0, 0, 2, 0x39, 0x30]))).toBe(false);
    // And expires with the secret.
    clock.advance(121_000);
    expect(checker.checkMac2(retry, src)).toBe(false);
  });

  it('ignores a cookie reply sealed for another message', () => {
    const clock = new FakeClock();
    const a = host(keyA, keyB, clock, false);
    const gen = new CookieGenerator(keyB.publicKey, () => clock.now());
    const checker = new CookieChecker(() => clock.now());
    checker.init(keyB.publicKey);
    const m1 = createInitiation(a, a.hs)!;
    gen.addMacs(m1);
    const m2 = createInitiation(a, a.hs)!;
    const reply = checker.createReply(m2.fill(7, 116, 132), Buffer.from([1, 2, 3, 4, 5, 6]))!;
    expect(gen.consumeReply(reply)).toBe(false);
  });
});
