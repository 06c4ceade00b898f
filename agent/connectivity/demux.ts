// What a datagram on the WireGuard UDP socket (or a packet from the relay) is, from its first bytes:
// WireGuard (types 1–4 then three zero bytes), STUN (magic cookie at offset 4) or disco (its magic
// prefix). Allocation-free; the device hands each kind to its own handler.
import { isStunPacket } from '../../wire/stun.js';
import { isDiscoPacket } from './disco.js';

export enum DatagramKind {
  Other = 0,
  WireGuard = 1,
  Stun = 2,
  Disco = 3,
}

export function classifyDatagram(b: Uint8Array, len = b.length): DatagramKind {
  if (len >= 4 && b[0]! >= 1 && b[0]! <= 4 && b[1] === 0 && b[2] === 0 && b[3] === 0) return DatagramKind.WireGuard;
  if (isStunPacket(b, len)) return DatagramKind.Stun;
  if (isDiscoPacket(b, len)) return DatagramKind.Disco;
  return DatagramKind.Other;
}
