import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { AllowedIPs, formatIP, formatPrefix, parseIP, parsePrefix } from './allowedips.js';
import { PrivateKey, PublicKey, aeadOpen, aeadSeal, ctEqual, hash, mac, xaeadOpen, xaeadSeal } from './crypto.js';

const hex = (s: string) => Buffer.from(s, 'hex');

describe('primitives', () => {
  it('X25519 matches RFC 7748 section 6.1', () => {
    const alice = new PrivateKey(hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a'));
    const bob = new PrivateKey(hex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb'));
    expect(alice.publicKey.hex).toBe('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
    expect(bob.publicKey.hex).toBe('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
    const shared = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';
    expect(alice.dh(bob.publicKey)!.toString('hex')).toBe(shared);
    expect(bob.dh(alice.publicKey)!.toString('hex')).toBe(shared);
  });

  it('refuses a low-order public key (all-zero shared secret)', () => {
    expect(PrivateKey.generate().dh(new PublicKey(Buffer.alloc(32)))).toBeNull();
  });

  it('BLAKE2s-256 of "abc" is the RFC 7693 value', () => {
    expect(hash(Buffer.from('abc')).toString('hex')).toBe('508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982');
  });

  it('MAC is keyed BLAKE2s with 16 bytes of output', () => {
    const m = mac(Buffer.alloc(32, 1), Buffer.from('x'));
    expect(m).toHaveLength(16);
    expect(mac(Buffer.alloc(32, 2), Buffer.from('x'))).not.toEqual(m);
  });

  it('AEADs open what they seal and refuse tampering', () => {
    const key = Buffer.alloc(32, 3);
    const sealed = aeadSeal(key, Buffer.from('secret'), Buffer.from('ad'));
    expect(aeadOpen(key, sealed, Buffer.from('ad'))!.toString()).toBe('secret');
    expect(aeadOpen(key, sealed, Buffer.from('other ad'))).toBeNull();
    const nonce = Buffer.alloc(24, 4);
    const x = xaeadSeal(key, nonce, Buffer.from('cookie'), Buffer.from('mac1'));
    expect(xaeadOpen(key, nonce, x, Buffer.from('mac1'))!.toString()).toBe('cookie');
    x[0] ^= 1;
    expect(xaeadOpen(key, nonce, x, Buffer.from('mac1'))).toBeNull();
  });

  it('compares in constant time, and keeps private keys out of logs', () => {
    expect(ctEqual(Buffer.from([1, 2]), Buffer.from([1, 2]))).toBe(true);
    expect(ctEqual(Buffer.from([1, 2]), Buffer.from([1, 3]))).toBe(false);
    expect(ctEqual(Buffer.from([1]), Buffer.from([1, 2]))).toBe(false);
    const k = new PrivateKey(Buffer.alloc(32, 0x5a));
    expect(inspect(k)).not.toContain('5a5a');
    expect(JSON.stringify({ k })).not.toMatch(/5a5a|Wlpa/);
  });
});

describe('allowed IPs', () => {
  it('parses and formats addresses and prefixes, masking host bits', () => {
    expect(formatIP(parseIP('fd00::1')!)).toBe('fd00::1');
    expect(formatIP(parseIP('2001:db8:0:0:1:0:0:1')!)).toBe('2001:db8::1:0:0:1');
    expect(formatIP(parseIP('::ffff:10.0.0.1')!)).toBe('::ffff:a00:1');
    expect(formatPrefix(parsePrefix('10.1.2.3/8')!)).toBe('10.0.0.0/8');
    expect(formatPrefix(parsePrefix('fd00:1:ffff::/33')!)).toBe('fd00:1:8000::/33');
    expect(formatPrefix(parsePrefix('0.0.0.0/0')!)).toBe('0.0.0.0/0');
    expect(formatPrefix(parsePrefix('::/0')!)).toBe('::/0');
    for (const bad of ['10.0.0.0/33', 'fd00::/129', '10.0.0/8', 'nope', '10.0.0.0/x', '']) expect(parsePrefix(bad)).toBeNull();
  });

  it('finds the longest matching prefix and falls back to default routes', () => {
    const t = new AllowedIPs<string>();
    t.insert(parsePrefix('0.0.0.0/0')!, 'default');
    t.insert(parsePrefix('10.0.0.0/8')!, 'ten');
    t.insert(parsePrefix('10.1.0.0/16')!, 'ten-one');
    t.insert(parsePrefix('::/0')!, 'default6');
    const look = (ip: string) => {
      const b = parseIP(ip)!;
      return t.lookup(b, 0, b.length);
    };
    expect(look('10.1.2.3')).toBe('ten-one');
    expect(look('10.2.2.3')).toBe('ten');
    expect(look('192.0.2.1')).toBe('default');
    expect(look('2001:db8::1')).toBe('default6');
    t.removePeer('ten');
    expect(look('10.2.2.3')).toBe('default');
    expect(t.prefixesOf('ten-one').map(formatPrefix)).toEqual(['10.1.0.0/16']);
  });
});
