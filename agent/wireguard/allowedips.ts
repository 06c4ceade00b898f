// Cryptokey routing: a binary trie per address family mapping prefixes to peers. Outbound, the
// destination picks the peer; inbound, the source of a decrypted packet must map to its sender.
// Lookups walk the address bytes in place (no allocation); a prefix belongs to at most one peer.
import { isIP } from 'node:net';

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

export function parseIP(text: string): Buffer | null {
  const family = isIP(text);
  if (family === 4) return Buffer.from(text.split('.').map(Number));
  if (family !== 6) return null;
  let s = text;
  let tail: number[] = [];
  const lastColon = s.lastIndexOf(':');
  if (s.includes('.', lastColon)) {
    tail = s.slice(lastColon + 1).split('.').map(Number);
    s = s.slice(0, lastColon + 1) + '0:0';
  }
  const [head, rest] = s.split('::');
  const hs = head ? head.split(':') : [];
  const rs = rest !== undefined ? (rest ? rest.split(':') : []) : [];
  const groups = rest !== undefined ? [...hs, ...Array(8 - hs.length - rs.length).fill('0'), ...rs] : hs;
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  if (tail.length === 4) out.set(tail, 12);
  return out;
}

export function formatIP(b: Uint8Array): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i] << 8) | b[i + 1]).toString(16));
  // Compress the longest run of zero groups (RFC 5952).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/** Parses "10.0.0.0/24", "fd00::/64" or a bare address (full-length prefix); masks host bits. */
export function parsePrefix(text: string): Prefix | null {
  const slash = text.indexOf('/');
  const bytes = parseIP(slash < 0 ? text : text.slice(0, slash));
  if (!bytes) return null;
  const max = bytes.length * 8;
  let bits = max;
  if (slash >= 0) {
    const b = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(b)) return null;
    bits = Number(b);
    if (bits > max) return null;
  }
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, bits - i * 8));
    bytes[i] &= (0xff << (8 - keep)) & 0xff;
  }
  return { bytes, bits };
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
