// Raw IP packet parsing for the filter: reads a packet in place inside a batch buffer and writes what
// the filter needs into a preallocated scratch array. Never throws, never allocates.

import { DropReason } from './reasons.js';

/** Scratch slots written by parsePacket. */
export const P_FAMILY = 0; // 4 or 6
export const P_PROTO = 1; // upper-layer protocol (after IPv6 extension headers)
export const P_SPORT = 2; // TCP/UDP/SCTP source port, else 0
export const P_DPORT = 3; // destination port, else 0
export const P_INFO = 4; // TCP flags, or ICMP/ICMPv6 type
export const P_FRAG = 5; // 1 for a non-first fragment (no L4 header)
export const P_SRC = 6; // buffer offset of the source address
export const P_DST = 7; // buffer offset of the destination address

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_ACK = 0x10;

export const PROTO_ICMP = 1;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const PROTO_ICMPV6 = 58;
export const PROTO_SCTP = 132;

/**
 * Fragments must not be able to overwrite or hide an L4 header: a non-first fragment must start at
 * byte 80 or later (10 blocks of 8 bytes: a maximal 60-byte TCP header plus margin, the same bound
 * Tailscale uses), and a first fragment that has more fragments after it must carry at least that much.
 */
const MIN_FRAG_BYTES = 80;
/** Bound on the IPv6 extension headers walked. */
const MAX_EXT_HEADERS = 8;

/** Parses the packet at buf[offset .. offset+length) into `out`; returns 0 or a DropReason. */
export function parsePacket(buf: Uint8Array, offset: number, length: number, out: Int32Array): number {
  if (!(offset >= 0 && length >= 0 && offset + length <= buf.length) || (offset | 0) !== offset || (length | 0) !== length) {
    return DropReason.MALFORMED;
  }
  if (length < 1) return DropReason.TOO_SHORT;
  const version = buf[offset]! >>> 4;
  if (version === 4) return parse4(buf, offset, length, out);
  if (version === 6) return parse6(buf, offset, length, out);
  return DropReason.MALFORMED;
}

function parse4(buf: Uint8Array, off: number, length: number, out: Int32Array): number {
  if (length < 20) return DropReason.TOO_SHORT;
  const ihl = (buf[off]! & 15) << 2;
  if (ihl < 20) return DropReason.MALFORMED;
  const total = (buf[off + 2]! << 8) | buf[off + 3]!;
  if (total < ihl) return DropReason.MALFORMED;
  if (total > length) return DropReason.TOO_SHORT;
  out[P_FAMILY] = 4;
  out[P_SRC] = off + 12;
  out[P_DST] = off + 16;
  const proto = buf[off + 9]!;
  out[P_PROTO] = proto;
  const frag = (buf[off + 6]! << 8) | buf[off + 7]!;
  const more = (frag & 0x2000) !== 0;
  const fragOffset = (frag & 0x1fff) << 3;
  out[P_SPORT] = 0;
  out[P_DPORT] = 0;
  out[P_INFO] = 0;
  if (fragOffset !== 0) {
    if (fragOffset < MIN_FRAG_BYTES) return DropReason.FRAGMENT;
    out[P_FRAG] = 1;
    return 0;
  }
  out[P_FRAG] = 0;
  const l4len = total - ihl;
  if (more && l4len < MIN_FRAG_BYTES) return DropReason.FRAGMENT;
  return parseL4(buf, off + ihl, l4len, proto, more, out);
}

function parse6(buf: Uint8Array, off: number, length: number, out: Int32Array): number {
  if (length < 40) return DropReason.TOO_SHORT;
  const payload = (buf[off + 4]! << 8) | buf[off + 5]!;
  if (40 + payload > length) return DropReason.TOO_SHORT;
  const end = off + 40 + payload;
  out[P_FAMILY] = 6;
  out[P_SRC] = off + 8;
  out[P_DST] = off + 24;
  out[P_SPORT] = 0;
  out[P_DPORT] = 0;
  out[P_INFO] = 0;
  out[P_FRAG] = 0;
  let next = buf[off + 6]!;
  let p = off + 40;
  let more = false;
  for (let n = 0; ; n++) {
    if (next !== 0 && next !== 43 && next !== 60 && next !== 44) break; // upper layer reached
    if (n === MAX_EXT_HEADERS) return DropReason.MALFORMED;
    if (next === 44) {
      if (p + 8 > end) return DropReason.TOO_SHORT;
      const fo = (buf[p + 2]! << 8) | buf[p + 3]!;
      const fragOffset = fo & 0xfff8; // already in bytes: 13-bit offset in 8-byte units << 3
      more = (fo & 1) !== 0;
      next = buf[p]!;
      p += 8;
      if (fragOffset !== 0) {
        if (fragOffset < MIN_FRAG_BYTES) return DropReason.FRAGMENT;
        out[P_PROTO] = next;
        out[P_FRAG] = 1;
        return 0;
      }
      if (more && end - p < MIN_FRAG_BYTES) return DropReason.FRAGMENT;
    } else {
      if (p + 8 > end) return DropReason.TOO_SHORT;
      const hlen = (buf[p + 1]! + 1) << 3;
      if (p + hlen > end) return DropReason.TOO_SHORT;
      next = buf[p]!;
      p += hlen;
    }
  }
  out[P_PROTO] = next;
  return parseL4(buf, p, end - p, next, more, out);
}

function parseL4(buf: Uint8Array, p: number, len: number, proto: number, fragmented: boolean, out: Int32Array): number {
  switch (proto) {
    case PROTO_TCP: {
      if (len < 20) return DropReason.TOO_SHORT;
      const dataOffset = (buf[p + 12]! >>> 4) << 2;
      if (dataOffset < 20) return DropReason.MALFORMED;
      if (dataOffset > len) return DropReason.TOO_SHORT;
      out[P_SPORT] = (buf[p]! << 8) | buf[p + 1]!;
      out[P_DPORT] = (buf[p + 2]! << 8) | buf[p + 3]!;
      out[P_INFO] = buf[p + 13]!;
      return 0;
    }
    case PROTO_UDP: {
      if (len < 8) return DropReason.TOO_SHORT;
      const ulen = (buf[p + 4]! << 8) | buf[p + 5]!;
      // A first fragment carries only part of the datagram its UDP length describes.
      if (ulen < 8 || (!fragmented && ulen > len)) return DropReason.MALFORMED;
      out[P_SPORT] = (buf[p]! << 8) | buf[p + 1]!;
      out[P_DPORT] = (buf[p + 2]! << 8) | buf[p + 3]!;
      return 0;
    }
    case PROTO_SCTP: {
      if (len < 12) return DropReason.TOO_SHORT;
      out[P_SPORT] = (buf[p]! << 8) | buf[p + 1]!;
      out[P_DPORT] = (buf[p + 2]! << 8) | buf[p + 3]!;
      return 0;
    }
    case PROTO_ICMP:
    case PROTO_ICMPV6: {
      if (len < 8) return DropReason.TOO_SHORT;
      out[P_INFO] = buf[p]!;
      return 0;
    }
    default:
      return 0;
  }
}

/** Reads the address at buf[at] into w[i..i+3] as int32 words (IPv4: word 0, rest 0). */
export function loadAddr(buf: Uint8Array, at: number, family: number, w: Int32Array, i: number): void {
  w[i] = (buf[at]! << 24) | (buf[at + 1]! << 16) | (buf[at + 2]! << 8) | buf[at + 3]!;
  if (family === 4) {
    w[i + 1] = 0;
    w[i + 2] = 0;
    w[i + 3] = 0;
    return;
  }
  w[i + 1] = (buf[at + 4]! << 24) | (buf[at + 5]! << 16) | (buf[at + 6]! << 8) | buf[at + 7]!;
  w[i + 2] = (buf[at + 8]! << 24) | (buf[at + 9]! << 16) | (buf[at + 10]! << 8) | buf[at + 11]!;
  w[i + 3] = (buf[at + 12]! << 24) | (buf[at + 13]! << 16) | (buf[at + 14]! << 8) | buf[at + 15]!;
}
