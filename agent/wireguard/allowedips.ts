// Cryptokey routing: a binary trie per address family mapping prefixes to peers. Outbound, the
// destination picks the peer; inbound, the source of a decrypted packet must map to its sender.
// Lookups walk the address bytes in place (no allocation); a prefix belongs to at most one peer.
import { addrFromBytes, addrToBytes, formatAddr, parseAddr, parsePrefix as parseCidr } from '../../wire/addr.js';

interface Node<P> {
  zero: Node<P> | null;
  one: Node<P> | null;
  peer: P | null;
}

export interface Prefix {
  /** 4 or 16 bytes, host bits cleared. */
  bytes: Buffer;
  bits: number;
}

const asBuffer = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.length);

/** The 4 or 16 bytes of an address; null when the text is not one. */
export function parseIP(text: string): Buffer | null {
  const a = parseAddr(text);
  return a && asBuffer(addrToBytes(a));
}

/** An address of 4 or 16 bytes as text (RFC 5952 for IPv6). */
export function formatIP(b: Uint8Array): string {
  return formatAddr(addrFromBytes(b, 0, b.length === 4 ? 4 : 6));
}

/** Parses "10.0.0.0/24", "fd00::/64" or a bare address (full-length prefix); masks host bits. */
export function parsePrefix(text: string): Prefix | null {
  const p = parseCidr(text, { bare: true });
  return p && { bytes: asBuffer(addrToBytes(p)), bits: p.len };
}

export function formatPrefix(p: Prefix): string {
  return `${formatIP(p.bytes)}/${p.bits}`;
}

export class AllowedIPs<P> {
  private v4: Node<P> = { zero: null, one: null, peer: null };
  private v6: Node<P> = { zero: null, one: null, peer: null };

  /** Maps the prefix to `peer`, taking it from any peer that had it. */
  insert(p: Prefix, peer: P): void {
    let n = p.bytes.length === 4 ? this.v4 : this.v6;
    for (let i = 0; i < p.bits; i++) {
      const bit = (p.bytes[i >> 3] >> (7 - (i & 7))) & 1;
      let next = bit ? n.one : n.zero;
      if (!next) {
        next = { zero: null, one: null, peer: null };
        if (bit) n.one = next;
        else n.zero = next;
      }
      n = next;
    }
    n.peer = peer;
  }

  /** Removes the exact prefix if it belongs to `peer`. */
  remove(p: Prefix, peer: P): void {
    let n: Node<P> | null = p.bytes.length === 4 ? this.v4 : this.v6;
    for (let i = 0; i < p.bits && n; i++) {
      const bit = (p.bytes[i >> 3] >> (7 - (i & 7))) & 1;
      n = bit ? n.one : n.zero;
    }
    if (n && n.peer === peer) n.peer = null;
  }

  removePeer(peer: P): void {
    const walk = (n: Node<P> | null): void => {
      if (!n) return;
      if (n.peer === peer) n.peer = null;
      walk(n.zero);
      walk(n.one);
    };
    walk(this.v4);
    walk(this.v6);
  }

  /** Every prefix of `peer`. */
  prefixesOf(peer: P): Prefix[] {
    const out: Prefix[] = [];
    const walk = (n: Node<P> | null, bytes: Buffer, depth: number): void => {
      if (!n) return;
      if (n.peer === peer) out.push({ bytes: Buffer.from(bytes), bits: depth });
      if (depth === bytes.length * 8) return;
      const byte = depth >> 3;
      const mask = 1 << (7 - (depth & 7));
      walk(n.zero, bytes, depth + 1);
      bytes[byte] |= mask;
      walk(n.one, bytes, depth + 1);
      bytes[byte] &= ~mask;
    };
    walk(this.v4, Buffer.alloc(4), 0);
    walk(this.v6, Buffer.alloc(16), 0);
    return out;
  }

  /** Longest-prefix match of the address at buf[off..off+len) (len 4 or 16). */
  lookup(buf: Uint8Array, off: number, len: number): P | null {
    let n: Node<P> | null = len === 4 ? this.v4 : this.v6;
    let best: P | null = n.peer;
    const bits = len * 8;
    for (let i = 0; i < bits; i++) {
      n = (buf[off + (i >> 3)] >> (7 - (i & 7))) & 1 ? n.one : n.zero;
      if (!n) break;
      if (n.peer !== null) best = n.peer;
    }
    return best;
  }
}

/** Where the source or destination address of an IP packet sits: [offset, length], or null. */
export function ipSource(buf: Uint8Array, off: number, len: number): number {
  if (len < 20) return -1;
  const v = buf[off] >> 4;
  if (v === 4) return off + 12;
  if (v === 6 && len >= 40) return off + 8;
  return -1;
}

export function ipDestination(buf: Uint8Array, off: number, len: number): number {
  if (len < 20) return -1;
  const v = buf[off] >> 4;
  if (v === 4) return off + 16;
  if (v === 6 && len >= 40) return off + 24;
  return -1;
}
