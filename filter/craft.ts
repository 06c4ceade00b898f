// Builds raw IPv4/IPv6 packets from a description: for tests, benchmarks and diagnostics (allocates;
// not for the packet path). Checksums are left zero: the filter does not look at them.

import { parseAddr } from '../wire/addr.js';

export interface PacketSpec {
  src: string;
  dst: string;
  /** Protocol name or number. */
  proto: 'tcp' | 'udp' | 'sctp' | 'icmp' | number;
  sport?: number;
  dport?: number;
  /** TCP flags byte (default SYN = 0x02). */
  flags?: number;
  /** ICMP/ICMPv6 type (default echo request). */
  icmpType?: number;
  /** Payload bytes after the L4 header (default 0). */
  payload?: number;
  /** Fragment offset in bytes (multiple of 8) and more-fragments flag. */
  fragOffset?: number;
  moreFragments?: boolean;
  /** IPv6 only: extension headers to put before the upper layer (0, 43, 60; 44 = fragment header). */
  ext?: number[];
}

const PROTOS = { tcp: 6, udp: 17, sctp: 132, icmp: -1 } as const;

function l4HeaderLength(proto: number): number {
  if (proto === 6) return 20;
  if (proto === 17) return 8;
  if (proto === 132) return 12;
  if (proto === 1 || proto === 58) return 8;
  return 0;
}

export function craft(spec: PacketSpec): Uint8Array {
  const src = parseAddr(spec.src);
  const dst = parseAddr(spec.dst);
  if (!src || !dst || src.family !== dst.family) throw new Error(`craft: bad addresses ${spec.src} ${spec.dst}`);
  const v6 = src.family === 6;
  let proto = typeof spec.proto === 'number' ? spec.proto : PROTOS[spec.proto];
  if (proto === -1) proto = v6 ? 58 : 1;
  const frag = (spec.fragOffset ?? 0) !== 0;
  const l4 = frag ? 0 : l4HeaderLength(proto);
  const payload = spec.payload ?? 0;
  const ext = v6 ? (spec.ext ?? []) : [];
  const extLen = ext.length * 8;
  const ipLen = v6 ? 40 : 20;
  const total = ipLen + extLen + l4 + payload;
  const b = new Uint8Array(total);
  const words = (w: number[], at: number, n: number): void => {
    for (let k = 0; k < n; k++) {
      b[at + 4 * k] = w[k]! >>> 24;
      b[at + 4 * k + 1] = (w[k]! >>> 16) & 255;
      b[at + 4 * k + 2] = (w[k]! >>> 8) & 255;
      b[at + 4 * k + 3] = w[k]! & 255;
    }
  };
  if (!v6) {
    b[0] = 0x45;
    b[2] = total >>> 8;
    b[3] = total & 255;
    const fo = ((spec.fragOffset ?? 0) >>> 3) | (spec.moreFragments ? 0x2000 : 0);
    b[6] = fo >>> 8;
    b[7] = fo & 255;
    b[8] = 64;
    b[9] = proto;
    words(src.w, 12, 1);
    words(dst.w, 16, 1);
  } else {
    b[0] = 0x60;
    const plen = total - 40;
    b[4] = plen >>> 8;
    b[5] = plen & 255;
    b[6] = ext.length > 0 ? ext[0]! : proto;
    b[7] = 64;
    words(src.w, 8, 4);
    words(dst.w, 24, 4);
    for (let i = 0; i < ext.length; i++) {
      const at = 40 + 8 * i;
      b[at] = i + 1 < ext.length ? ext[i + 1]! : proto;
      if (ext[i] === 44) {
        const fo = (spec.fragOffset ?? 0) | (spec.moreFragments ? 1 : 0);
        b[at + 2] = fo >>> 8;
        b[at + 3] = fo & 255;
      } else {
        b[at + 1] = 0; // 8 bytes: (0 + 1) * 8
      }
    }
  }
  const p = ipLen + extLen;
  if (l4 > 0) {
    if (proto === 6 || proto === 17 || proto === 132) {
      const sport = spec.sport ?? 40000;
      const dport = spec.dport ?? 80;
      b[p] = sport >>> 8;
      b[p + 1] = sport & 255;
      b[p + 2] = dport >>> 8;
      b[p + 3] = dport & 255;
    }
    if (proto === 6) {
      b[p + 12] = 5 << 4;
      b[p + 13] = spec.flags ?? 0x02;
    } else if (proto === 17) {
      const ulen = 8 + payload;
      b[p + 4] = ulen >>> 8;
      b[p + 5] = ulen & 255;
    } else if (proto === 1 || proto === 58) {
      b[p] = spec.icmpType ?? (proto === 1 ? 8 : 128);
    }
  }
  return b;
}
