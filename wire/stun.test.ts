import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  crc32,
  decodeStun,
  encodeBindingError,
  encodeBindingRequest,
  encodeBindingSuccess,
  formatEndpoint,
  isStunPacket,
  newTransactionId,
  STUN_BINDING_REQUEST,
  STUN_BINDING_SUCCESS,
} from './stun.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// RFC 5769 §2.2: sample IPv4 response (SOFTWARE "test vector ", XOR-MAPPED-ADDRESS 192.0.2.1:32853,
// MESSAGE-INTEGRITY, FINGERPRINT).
const RFC5769_V4_RESPONSE = hex(`
  0101 003c 2112a442 b7e7a701 bc34d686 fa87dfae
  8022 000b 74657374 20766563 746f7220
  0020 0008 0001a147 e112a643
  0008 0014 2b91f599 fd9e90c3 8c7489f9 2af9ba53 f06be7d7
  8028 0004 c07d4c96`);

describe('STUN codec', () => {
  it('decodes the RFC 5769 IPv4 response vector, fingerprint included', () => {
    const r = decodeStun(RFC5769_V4_RESPONSE);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.message.type).toBe(STUN_BINDING_SUCCESS);
    expect(r.message.mapped).toEqual({ address: '192.0.2.1', port: 32853, family: 4 });
    expect(r.message.software).toBe('test vector');
    expect(r.message.fingerprint).toBe(true);
    expect(r.message.transactionId.toString('hex')).toBe('b7e7a701bc34d686fa87dfae');
  });

  it('refuses a message whose fingerprint does not match', () => {
    const bad = Buffer.from(RFC5769_V4_RESPONSE);
    bad[bad.length - 1]! ^= 1;
    expect(decodeStun(bad)).toEqual({ ok: false, reason: 'FINGERPRINT mismatch' });
    const bad2 = Buffer.from(RFC5769_V4_RESPONSE);
    bad2[30]! ^= 0x20; // a byte of SOFTWARE: covered by the CRC
    expect(decodeStun(bad2)).toEqual({ ok: false, reason: 'FINGERPRINT mismatch' });
  });

  it('round-trips requests and answers for IPv4 and IPv6', () => {
    const id = newTransactionId();
    const req = decodeStun(encodeBindingRequest(id, { software: 'meshward' }));
    expect(req.ok && req.message.type === STUN_BINDING_REQUEST && req.message.fingerprint && req.message.rfc5389).toBe(true);
    expect(req.ok && req.message.transactionId.equals(id)).toBe(true);
    for (const address of ['203.0.113.7', '2001:db8::1', '2001:db8:1234:5678:11:2233:4455:6677', '::1', 'fe80::1:2', '::ffff:198.18.0.1']) {
      const buf = encodeBindingSuccess(id, { address, port: 41641 });
      expect(isStunPacket(buf)).toBe(true);
      const r = decodeStun(buf);
      expect(r.ok && r.message.mapped).toEqual({ address, port: 41641, family: address.includes(':') ? 6 : 4 });
    }
  });

  it('answers a classic RFC 3489 (16-byte id) request with MAPPED-ADDRESS and decodes it as a fallback', () => {
    const id = Buffer.alloc(16, 7);
    const buf = encodeBindingSuccess(id, { address: '198.51.100.2', port: 5000 });
    expect(buf.readUInt16BE(20)).toBe(0x0001); // MAPPED-ADDRESS, in the clear
    const r = decodeStun(buf);
    expect(r.ok && r.message.rfc5389).toBe(false);
    expect(r.ok && r.message.mapped).toEqual({ address: '198.51.100.2', port: 5000, family: 4 });
    expect(r.ok && r.message.transactionId.equals(id)).toBe(true);
  });

  it('prefers XOR-MAPPED-ADDRESS over MAPPED-ADDRESS, whatever the order', () => {
    const id = newTransactionId();
    const xor = encodeBindingSuccess(id, { address: '192.0.2.9', port: 9 }, { fingerprint: false });
    const plain = encodeBindingSuccess(Buffer.concat([xor.subarray(4, 8), id]), { address: '10.1.1.1', port: 1 });
    // MAPPED-ADDRESS first, then XOR-MAPPED-ADDRESS.
    const body = Buffer.concat([plain.subarray(20), xor.subarray(20)]);
    const msg = Buffer.concat([xor.subarray(0, 20), body]);
    msg.writeUInt16BE(body.length, 2);
    const r = decodeStun(msg);
    expect(r.ok && r.message.mapped?.address).toBe('192.0.2.9');
  });

  it('encodes error answers with UNKNOWN-ATTRIBUTES and reports unknown required attributes', () => {
    const id = newTransactionId();
    const r = decodeStun(encodeBindingError(id, 420, 'Unknown Attribute', [0x0003]));
    expect(r.ok && r.message.error).toEqual({ code: 420, reason: 'Unknown Attribute' });
    const req = Buffer.concat([encodeBindingRequest(id, { fingerprint: false }), hex('0007 0004 00000000')]);
    req.writeUInt16BE(8, 2);
    const d = decodeStun(req);
    expect(d.ok && d.message.unknownRequired).toEqual([0x0007]);
  });

  it('tells STUN from WireGuard by the first bytes and the cookie', () => {
    const stun = encodeBindingRequest(newTransactionId());
    expect(isStunPacket(stun)).toBe(true);
    expect(isStunPacket(stun, stun.length - 4)).toBe(false);
    for (const t of [1, 2, 3, 4]) {
      const wg = Buffer.alloc(148);
      wg[0] = t;
      wg.writeUInt32BE(0x2112a442, 4); // even with the cookie where WireGuard puts its sender index
      expect(isStunPacket(wg)).toBe(false);
      const short = Buffer.alloc(20);
      short[0] = t;
      short.writeUInt32BE(0x2112a442, 4);
      expect(isStunPacket(short)).toBe(false);
    }
  });

  it('computes the standard CRC-32', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
  });

  it('formats endpoints with brackets for IPv6', () => {
    expect(formatEndpoint({ address: '2001:db8::1', port: 3478 })).toBe('[2001:db8::1]:3478');
    expect(formatEndpoint({ address: '192.0.2.1', port: 3478 })).toBe('192.0.2.1:3478');
  });

  it('never throws on arbitrary input, and a truncated or extended message is refused', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
        const r = decodeStun(b);
        expect(typeof r.ok).toBe('boolean');
      }),
      { numRuns: 5000 },
    );
    // Mutations of a valid message: decode must not throw, and a changed length is refused.
    const valid = encodeBindingSuccess(newTransactionId(), { address: '2001:db8::5', port: 1 });
    fc.assert(
      fc.property(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 }), (i, v) => {
        const m = Buffer.from(valid);
        m[i] = v;
        decodeStun(m);
        isStunPacket(m);
      }),
      { numRuns: 5000 },
    );
    expect(decodeStun(valid.subarray(0, valid.length - 4)).ok).toBe(false);
    expect(decodeStun(Buffer.concat([valid, Buffer.alloc(4)])).ok).toBe(false);
  });
});
