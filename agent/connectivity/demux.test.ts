import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeBindingRequest, encodeBindingSuccess, isStunPacket, newTransactionId } from '../../wire/stun.js';
import { classifyDatagram, DatagramKind } from './demux.js';
import { DiscoBox, DiscoKey, isDiscoPacket } from './disco.js';

describe('classifyDatagram', () => {
  it('tells WireGuard, STUN and disco apart', () => {
    const wg = (type: number, size: number) => {
      const b = randomBytes(size);
      b[0] = type;
      b[1] = b[2] = b[3] = 0;
      return b;
    };
    expect(classifyDatagram(wg(1, 148))).toBe(DatagramKind.WireGuard);
    expect(classifyDatagram(wg(2, 92))).toBe(DatagramKind.WireGuard);
    expect(classifyDatagram(wg(3, 64))).toBe(DatagramKind.WireGuard);
    expect(classifyDatagram(wg(4, 1452))).toBe(DatagramKind.WireGuard);
    expect(classifyDatagram(encodeBindingRequest(newTransactionId()))).toBe(DatagramKind.Stun);
    expect(classifyDatagram(encodeBindingSuccess(newTransactionId(), { address: '2001:db8::1', port: 9 }))).toBe(DatagramKind.Stun);
    const b = DiscoKey.generate();
    const sealed = new DiscoBox(DiscoKey.generate()).seal(b.publicKey, { type: 'callMeMaybe', endpoints: [] });
    expect(classifyDatagram(sealed)).toBe(DatagramKind.Disco);
    expect(classifyDatagram(Buffer.from('hello'))).toBe(DatagramKind.Other);
    expect(classifyDatagram(Buffer.alloc(0))).toBe(DatagramKind.Other);
  });

  it('no WireGuard-shaped datagram passes for STUN or disco, whatever follows (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }), fc.oneof(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.uint8Array({ maxLength: 200 })), fc.boolean(), (type, rest, cookie) => {
        const b = Buffer.concat([Buffer.from([type, 0, 0, 0]), Buffer.from(rest)]);
        if (cookie && b.length >= 8) b.writeUInt32BE(0x2112a442, 4);
        if (b.length >= 4) b.writeUInt16BE(Math.max(0, b.length - 20) & 0xfffc, 2); // even a fitting length
        b[1] = 0;
        b[2] = b[3] = 0;
        expect(isStunPacket(b)).toBe(false);
        expect(isDiscoPacket(b)).toBe(false);
        expect(classifyDatagram(b)).toBe(DatagramKind.WireGuard);
      }),
      { numRuns: 3000 },
    );
  });
});
