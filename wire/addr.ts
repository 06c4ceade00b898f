// IP addresses and prefixes, parsed and formatted in one place (as Go's net/netip), and the address
// ranges a tailnet uses (as Tailscale's net/tsaddr). Pure and I/O-free; the filter builds its packed
// forms from this module, so nothing here may do I/O, and the *Into functions allocate nothing.
//
// Three forms of an address, for three kinds of user:
// - words: four uint32 words, most significant first (IPv4 uses word 0 only). parseAddrInto and
//   parseEntryInto fill caller-owned words; the packet filter's tries are built from them.
// - bigint ranges {v6, lo, hi} (inclusive): set logic off the packet path (policy, peers, sharing).
// - bytes (4 or 16): WireGuard's AllowedIPs and the native socket address arrays.
//
// Text in is strict, like netip: dotted quads without leading zeros (an ambiguous octal), IPv6 with at
// most one "::" and an optional trailing dotted quad, no zone. Text out is RFC 5952: lowercase hex,
// the longest run of two or more zero groups (the first of equal runs) written "::".

export type Family = 4 | 6;

/** Four uint32 words, most significant first. */
export type Words = number[] | Uint32Array;

export interface Addr {
  family: Family;
  /** Four uint32 words; for IPv4 only w[0] is used, the rest are 0. */
  w: number[];
}

export interface Prefix extends Addr {
  /** Prefix length in bits (0..32 for IPv4, 0..128 for IPv6). Host bits of w are zero. */
  len: number;
}

/** An inclusive range of addresses of one family, as numbers. */
export interface Range {
  v6: boolean;
  lo: bigint;
  hi: bigint;
}

export class AddrError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AddrError';
  }
}

const V4_MAX = (1n << 32n) - 1n;
const V6_MAX = (1n << 128n) - 1n;

export function bitsOf(family: Family): number {
  return family === 4 ? 32 : 128;
}

// ---- Parsing text ----

/** A dotted quad as a uint32, or null when it is not one. */
export function parseIPv4(s: string): number | null {
  let value = 0;
  let part = 0;
  let digits = 0;
  let parts = 0;
  for (let i = 0; i <= s.length; i++) {
    const c = i < s.length ? s.charCodeAt(i) : 46; // treat end as '.'
    if (c === 46) {
      if (digits === 0 || part > 255) return null;
      value = ((value << 8) | part) >>> 0;
      parts++;
      part = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && part === 0) return null; // no leading zeros (ambiguous octal)
      part = part * 10 + (c - 48);
      if (++digits > 3) return null;
    } else {
      return null;
    }
  }
  return parts === 4 ? value : null;
}

const groups = new Int32Array(8);

/** Parses an IPv6 address into w[0..3] (uint32); false when it is not one. */
function parseIPv6Into(s: string, w: Words): boolean {
  let n = 0; // groups read
  let gap = -1;
  let i = 0;
  const len = s.length;
  if (len >= 2 && s.charCodeAt(0) === 58 && s.charCodeAt(1) === 58) {
    gap = 0;
    i = 2;
  }
  const dot = s.indexOf('.');
  while (i < len) {
    if (dot >= 0 && s.indexOf(':', i) < 0) {
      // Embedded IPv4 in the last 32 bits.
      const v4 = parseIPv4(s.slice(i));
      if (v4 === null || n > 6) return false;
      groups[n++] = v4 >>> 16;
      groups[n++] = v4 & 0xffff;
      i = len;
      break;
    }
    let j = i;
    let g = 0;
    while (j < len && j - i < 5) {
      const c = s.charCodeAt(j);
      let d: number;
      if (c >= 48 && c <= 57) d = c - 48;
      else if (c >= 97 && c <= 102) d = c - 87;
      else if (c >= 65 && c <= 70) d = c - 55;
      else break;
      g = g * 16 + d;
      j++;
    }
    if (j === i || j - i > 4 || n === 8) return false;
    groups[n++] = g;
    if (j === len) {
      i = j;
      break;
    }
    if (s.charCodeAt(j) !== 58) return false;
    if (s.charCodeAt(j + 1) === 58) {
      if (gap >= 0) return false;
      gap = n;
      i = j + 2;
    } else {
      i = j + 1;
      if (i === len) return false; // trailing single colon
    }
  }
  if (gap >= 0) {
    if (n > 7) return false;
    const shift = 8 - n;
    for (let k = n - 1; k >= gap; k--) groups[k + shift] = groups[k]!;
    for (let k = gap; k < gap + shift; k++) groups[k] = 0;
    n = 8;
  }
  if (n !== 8) return false;
  for (let k = 0; k < 4; k++) w[k] = ((groups[2 * k]! << 16) | groups[2 * k + 1]!) >>> 0;
  return true;
}

/** Parses an address into w (4 uint32 words); returns its family, or 0 when it is not an address. */
export function parseAddrInto(s: string, w: Words): Family | 0 {
  if (s.indexOf(':') >= 0) return parseIPv6Into(s, w) ? 6 : 0;
  const v = parseIPv4(s);
  if (v === null) return 0;
  w[0] = v;
  w[1] = w[2] = w[3] = 0;
  return 4;
}

/** Parses an IPv4 or IPv6 address; null when it is not one. */
export function parseAddr(s: string): Addr | null {
  const w = [0, 0, 0, 0];
  const family = parseAddrInto(s, w);
  return family === 0 ? null : { family, w };
}

const scratch = [0, 0, 0, 0];

/** The family of an address's text, or 0 when it is not an address (like node:net's isIP). */
export function familyOf(s: string): Family | 0 {
  return parseAddrInto(s, scratch);
}

export function isAddr(s: string): boolean {
  return familyOf(s) !== 0;
}

/** The prefix length written at s[from..] (one to three digits), or -1 when there is none. */
function parseLen(s: string, from: number): number {
  if (from >= s.length || s.length - from > 3) return -1;
  let len = 0;
  for (let i = from; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return -1;
    len = len * 10 + (c - 48);
  }
  return len;
}

/** Clears the bits after `len` (in place) and returns the words. */
export function maskWords<W extends Words>(w: W, len: number): W {
  for (let k = 0; k < 4; k++) {
    const keep = len - 32 * k;
    if (keep >= 32) continue;
    w[k] = keep <= 0 ? 0 : (w[k]! & (~0 << (32 - keep))) >>> 0;
  }
  return w;
}

/** The mask words of a prefix length (as uint32). */
export function maskOf(len: number): number[] {
  return maskWords([0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], len);
}

/**
 * Parses "addr/len" into w with host bits cleared. With `bare`, an address without "/len" is its own
 * full-length prefix. Returns family << 8 | len (a number, to allocate nothing), or -1 when malformed.
 */
function parsePrefixInto(s: string, w: Words, bare: boolean): number {
  const slash = s.indexOf('/');
  if (slash < 0) {
    const family = bare ? parseAddrInto(s, w) : 0;
    return family === 0 ? -1 : (family << 8) | bitsOf(family);
  }
  const family = parseAddrInto(s.slice(0, slash), w);
  const len = parseLen(s, slash + 1);
  if (family === 0 || len < 0 || len > bitsOf(family)) return -1;
  maskWords(w, len);
  return (family << 8) | len;
}

/**
 * Parses a CIDR prefix "addr/len" (host bits are cleared: "10.1.2.3/8" is 10.0.0.0/8); null when
 * malformed. With `{ bare: true }` a plain address is accepted as its full-length prefix.
 */
export function parsePrefix(s: string, opts: { bare?: boolean } = {}): Prefix | null {
  const w = [0, 0, 0, 0];
  const p = parsePrefixInto(s, w, opts.bare === true);
  return p < 0 ? null : { family: (p >> 8) as Family, w, len: p & 255 };
}

// ---- Formatting ----

export function formatIPv4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** RFC 5952 text of an address given as words. */
export function formatWords(family: Family, w: Words): string {
  if (family === 4) return formatIPv4(w[0]!);
  const g: number[] = [];
  for (let k = 0; k < 4; k++) g.push(w[k]! >>> 16, w[k]! & 0xffff);
  // The longest run of zero groups, at least two long; the first one on a tie.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (from: number, to: number) => g.slice(from, to).map((x) => x.toString(16)).join(':');
  return best < 0 ? hex(0, 8) : `${hex(0, best)}::${hex(best + bestLen, 8)}`;
}

export function formatAddr(a: Addr): string {
  return formatWords(a.family, a.w);
}

export function formatPrefix(p: Prefix): string {
  return `${formatAddr(p)}/${p.len}`;
}

/** The canonical text of an address ("FD7A:0::1" → "fd7a::1"); text that is no address comes back as is. */
export function canonicalAddr(s: string): string {
  const a = parseAddr(s);
  return a ? formatAddr(a) : s;
}

/** "100.64.0.1/32" → "100.64.0.1"; an address without a length comes back as is. */
export function bareAddr(cidr: string): string {
  const slash = cidr.indexOf('/');
  return slash < 0 ? cidr : cidr.slice(0, slash);
}

/**
 * The single-address prefix of an address, as Tailscale writes them (CapGrant Dsts, AllowedIPs):
 * "100.64.0.1" → "100.64.0.1/32", "fd7a::1" → "fd7a::1/128". Text with a length comes back as is.
 */
export function hostPrefix(addr: string): string {
  if (addr.includes('/')) return addr;
  return addr.includes(':') ? `${addr}/128` : `${addr}/32`;
}

// ---- Bytes ----

/** The 4 or 16 bytes of an address. */
export function addrToBytes(a: Addr): Uint8Array {
  const n = a.family === 4 ? 1 : 4;
  const out = new Uint8Array(4 * n);
  for (let k = 0; k < n; k++) {
    const x = a.w[k]!;
    out[4 * k] = x >>> 24;
    out[4 * k + 1] = (x >>> 16) & 255;
    out[4 * k + 2] = (x >>> 8) & 255;
    out[4 * k + 3] = x & 255;
  }
  return out;
}

/** The address in b[off..off+4) (family 4) or b[off..off+16) (family 6). */
export function addrFromBytes(b: Uint8Array, off: number, family: Family): Addr {
  const w = [0, 0, 0, 0];
  for (let k = 0; k < (family === 4 ? 1 : 4); k++) {
    const o = off + 4 * k;
    w[k] = ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
  }
  return { family, w };
}

/**
 * Any address as 16 bytes, IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d), for binary formats with one
 * fixed-size address field (disco); a zone (%eth0) is ignored. Null when the text is no address.
 */
export function addrTo16(text: string): Uint8Array | null {
  const zone = text.indexOf('%');
  const a = parseAddr(zone < 0 ? text : text.slice(0, zone));
  if (!a) return null;
  if (a.family === 6) return addrToBytes(a);
  const out = new Uint8Array(16);
  out[10] = 0xff;
  out[11] = 0xff;
  out.set(addrToBytes(a), 12);
  return out;
}

/** The text of 16 address bytes; an IPv4-mapped address comes back as plain dotted IPv4. */
export function addrFrom16(b: Uint8Array, off = 0): string {
  let mapped = b[off + 10] === 0xff && b[off + 11] === 0xff;
  for (let i = 0; mapped && i < 10; i++) mapped = b[off + i] === 0;
  return mapped ? formatAddr(addrFromBytes(b, off + 12, 4)) : formatAddr(addrFromBytes(b, off, 6));
}

// ---- Numbers and ranges ----

export function addrToBig(a: Addr): bigint {
  if (a.family === 4) return BigInt(a.w[0]!);
  let v = 0n;
  for (let k = 0; k < 4; k++) v = (v << 32n) | BigInt(a.w[k]!);
  return v;
}

export function addrFromBig(family: Family, v: bigint): Addr {
  if (family === 4) return { family, w: [Number(v & 0xffffffffn), 0, 0, 0] };
  const w = [0, 0, 0, 0];
  for (let k = 0; k < 4; k++) w[k] = Number((v >> BigInt(32 * (3 - k))) & 0xffffffffn);
  return { family, w };
}

/** The range holding exactly one address. */
export function rangeOfAddr(a: Addr): Range {
  const n = addrToBig(a);
  return { v6: a.family === 6, lo: n, hi: n };
}

/** The addresses of a prefix as a range. */
export function rangeOfPrefix(p: Prefix): Range {
  const lo = addrToBig(p);
  const hostMask = (1n << BigInt(bitsOf(p.family) - p.len)) - 1n;
  return { v6: p.family === 6, lo, hi: lo | hostMask };
}

const rangeWords = [0, 0, 0, 0];

/** Parses "addr", "addr/len" (host bits masked) or "a-b" (one family, a ≤ b) into a range; null when malformed. */
export function parseRange(s: string): Range | null {
  const dash = s.indexOf('-');
  if (dash > 0) {
    const a = parseAddr(s.slice(0, dash));
    const b = parseAddr(s.slice(dash + 1));
    if (!a || !b || a.family !== b.family) return null;
    const lo = addrToBig(a);
    const hi = addrToBig(b);
    return lo <= hi ? { v6: a.family === 6, lo, hi } : null;
  }
  const p = parsePrefixInto(s, rangeWords, true);
  return p < 0 ? null : rangeOfPrefix({ family: (p >> 8) as Family, w: rangeWords, len: p & 255 });
}

/** The ranges of a SrcIPs / Dsts / DstPorts IP entry: "*" is all of both families; null when malformed. */
export function entryRanges(s: string): Range[] | null {
  if (s === '*') return [{ v6: false, lo: 0n, hi: V4_MAX }, { v6: true, lo: 0n, hi: V6_MAX }];
  const r = parseRange(s);
  return r && [r];
}

/** True when the range is every address of its family (0.0.0.0/0, ::/0). */
export function isFullRange(r: Range): boolean {
  return r.lo === 0n && r.hi === (r.v6 ? V6_MAX : V4_MAX);
}

export function rangesOverlap(a: Range, b: Range): boolean {
  return a.v6 === b.v6 && a.lo <= b.hi && b.lo <= a.hi;
}

export function rangeContains(outer: Range, inner: Range): boolean {
  return outer.v6 === inner.v6 && outer.lo <= inner.lo && inner.hi <= outer.hi;
}

/**
 * Whether one of the entries ("*", addresses, prefixes, ranges: a rule's SrcIPs, or a DstPorts IP)
 * contains the address (text, a "/len" suffix ignored). Malformed entries contain nothing.
 */
export function entriesContain(entries: readonly string[], addr: string): boolean {
  const a = parseAddr(bareAddr(addr));
  if (!a) return false;
  const x = rangeOfAddr(a);
  for (const e of entries) {
    if (e === '*') return true;
    if (typeof e !== 'string') continue; // rules arrive as JSON
    const r = parseRange(e);
    if (r && rangeContains(r, x)) return true;
  }
  return false;
}

/**
 * The smallest list of prefixes covering exactly lo..hi (inclusive, one family), as
 * (start, prefix length) pairs in ascending order.
 */
function forEachBlock(v6: boolean, lo: bigint, hi: bigint, each: (start: bigint, len: number) => void): void {
  const width = v6 ? 128n : 32n;
  const max = v6 ? V6_MAX : V4_MAX;
  let a = lo;
  while (a <= hi) {
    let size = 0n; // log2 of the block: grow it while it stays aligned and inside the range
    while (size < width) {
      const block = 1n << (size + 1n);
      if ((a & (block - 1n)) !== 0n || a + block - 1n > hi) break;
      size++;
    }
    each(a, Number(width - size));
    a += 1n << size;
    if (a > max) break;
  }
}

/** The smallest list of prefixes covering exactly the addresses lo..hi (inclusive). */
export function rangeToPrefixes(lo: Addr, hi: Addr): Prefix[] {
  if (lo.family !== hi.family) throw new AddrError('range mixes IPv4 and IPv6');
  const a = addrToBig(lo);
  const b = addrToBig(hi);
  if (a > b) throw new AddrError('range start is after its end');
  const out: Prefix[] = [];
  forEachBlock(lo.family === 6, a, b, (start, len) => out.push({ ...addrFromBig(lo.family, start), len }));
  return out;
}

/**
 * The smallest list of CIDRs covering exactly the range, as text; a single address is written bare
 * ("10.0.0.5", "10.0.0.6/31", "10.0.0.8/29").
 */
export function rangeToCidrs(r: Range): string[] {
  const family: Family = r.v6 ? 6 : 4;
  const out: string[] = [];
  forEachBlock(r.v6, r.lo, r.hi, (start, len) => {
    const text = formatAddr(addrFromBig(family, start));
    out.push(len === bitsOf(family) ? text : `${text}/${len}`);
  });
  return out;
}

// ---- Filter entries (words) ----

/** Whether prefix p contains address a (same family). */
export function prefixContains(p: Prefix, a: Addr): boolean {
  if (p.family !== a.family) return false;
  const m = maskOf(p.len);
  for (let k = 0; k < 4; k++) if (((a.w[k]! & m[k]!) >>> 0) !== p.w[k]) return false;
  return true;
}

/** Whether prefix `inner` lies within prefix `outer`. */
export function prefixWithin(inner: Prefix, outer: Prefix): boolean {
  return inner.len >= outer.len && prefixContains(outer, inner);
}

/** Receives the prefixes of an entry: words are uint32 with host bits cleared. */
export type PrefixSink = (family: Family, w: number[], len: number) => void;

const entryWords = [0, 0, 0, 0];

/**
 * Parses a SrcIPs / Dsts / DstPorts IP entry: "*" (everything, both families), an address, a CIDR
 * prefix, or a range "a-b", handing each prefix to `sink` (the words array is reused between calls).
 * Throws AddrError naming the entry when it is none of those.
 */
export function parseEntryInto(s: string, sink: PrefixSink): void {
  const w = entryWords;
  if (s === '*') {
    w[0] = w[1] = w[2] = w[3] = 0;
    sink(4, w, 0);
    sink(6, w, 0);
    return;
  }
  const dash = s.indexOf('-');
  if (dash > 0) {
    const lo = parseAddr(s.slice(0, dash));
    const hi = parseAddr(s.slice(dash + 1));
    if (!lo || !hi) throw new AddrError(`invalid address range "${s}"`);
    let ps: Prefix[];
    try {
      ps = rangeToPrefixes(lo, hi);
    } catch (err) {
      throw new AddrError(`invalid address range "${s}": ${(err as Error).message}`);
    }
    for (const p of ps) sink(p.family, p.w, p.len);
    return;
  }
  const p = parsePrefixInto(s, w, true);
  if (p < 0) throw new AddrError(s.includes('/') ? `invalid prefix "${s}"` : `invalid address "${s}"`);
  sink((p >> 8) as Family, w, p & 255);
}

/** parseEntryInto, collecting the prefixes. */
export function parseEntry(s: string): Prefix[] {
  const out: Prefix[] = [];
  parseEntryInto(s, (family, w, len) => out.push({ family, w: w.slice(), len }));
  return out;
}

// ---- The tailnet's address space (Tailscale's tsaddr) ----

/** The CGNAT range devices get their IPv4 addresses from. */
export const TAILNET_IPV4_RANGE = '100.64.0.0/10';
/** The ULA prefix devices get their IPv6 addresses from. */
export const TAILNET_IPV6_RANGE = 'fd7a:115c:a1e0::/48';
/** Inside the CGNAT range but never a device's: ChromeOS uses it for its VMs. */
export const CHROMEOS_VM_RANGE = '100.115.92.0/23';
/** The quad-100 service address (the device's DNS resolver), and its IPv6 twin. */
export const SERVICE_IPV4 = '100.100.100.100';
export const SERVICE_IPV6 = 'fd7a:115c:a1e0::53';

/** The ranges routed through the TUN device. */
export const TAILNET_ROUTES: readonly string[] = [TAILNET_IPV4_RANGE, TAILNET_IPV6_RANGE];

/** Every device address, as Tailscale writes "*" in SrcIPs: the CGNAT range without the ChromeOS VM range, and the ULA prefix. */
export const TAILNET_SOURCES: readonly string[] = [
  '100.64.0.0-100.115.91.255',
  '100.115.94.0-100.127.255.255',
  TAILNET_IPV6_RANGE,
];

const tailnetPrefixes = TAILNET_ROUTES.map((p) => parsePrefix(p)!);

/** Whether the address is inside the tailnet's ranges (100.64.0.0/10 or fd7a:115c:a1e0::/48). */
export function isTailnetAddr(a: Addr): boolean {
  return tailnetPrefixes.some((p) => prefixContains(p, a));
}

const ipv6Base = parsePrefix(TAILNET_IPV6_RANGE)!;

/** A device's IPv6 address from its IPv4 one: fd7a:115c:a1e0::XXXX:XXXX, the low 32 bits the IPv4 address. */
export function tailnetIPv6For(ipv4: number): string {
  return formatWords(6, [ipv6Base.w[0]!, ipv6Base.w[1]!, 0, ipv4 >>> 0]);
}
