// Address and prefix parsing for building a filter (off the packet path; may allocate).
// An address is four uint32 words, most significant first; IPv4 uses word 0 only.

export type Family = 4 | 6;

export interface Addr {
  family: Family;
  /** Four uint32 words; for IPv4 only w[0] is used, the rest are 0. */
  w: number[];
}

export interface Prefix extends Addr {
  /** Prefix length in bits (0..32 for IPv4, 0..128 for IPv6). Host bits of w are zero. */
  len: number;
}

export class AddrError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AddrError';
  }
}

function parseIPv4Words(s: string): number | null {
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
function parseIPv6Into(s: string, w: number[]): boolean {
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
      const v4 = parseIPv4Words(s.slice(i));
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
export function parseAddrInto(s: string, w: number[]): Family | 0 {
  if (s.indexOf(':') >= 0) return parseIPv6Into(s, w) ? 6 : 0;
  const v = parseIPv4Words(s);
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

export function bitsOf(family: Family): number {
  return family === 4 ? 32 : 128;
}

/** Clears the bits after `len` (in place) and returns the words. */
export function maskWords(w: number[], len: number): number[] {
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

function toBig(a: Addr): bigint {
  let v = 0n;
  for (let k = 0; k < 4; k++) v = (v << 32n) | BigInt(a.w[k]!);
  return a.family === 4 ? v >> 96n : v;
}

function fromBig(family: Family, v: bigint): number[] {
  if (family === 4) return [Number(v & 0xffffffffn), 0, 0, 0];
  const w: number[] = [];
  for (let k = 3; k >= 0; k--) w.push(Number((v >> BigInt(32 * k)) & 0xffffffffn));
  return w;
}

/** The smallest list of prefixes covering exactly the addresses lo..hi (inclusive). */
export function rangeToPrefixes(lo: Addr, hi: Addr): Prefix[] {
  if (lo.family !== hi.family) throw new AddrError('range mixes IPv4 and IPv6');
  const family = lo.family;
  const bits = BigInt(bitsOf(family));
  let a = toBig(lo);
  const b = toBig(hi);
  if (a > b) throw new AddrError('range start is after its end');
  const out: Prefix[] = [];
  const max = (1n << bits) - 1n;
  while (a <= b) {
    let size = 0n; // log2 of block size
    while (size < bits) {
      const next = size + 1n;
      const block = 1n << next;
      if ((a & (block - 1n)) !== 0n || a + block - 1n > b) break;
      size = next;
    }
    out.push({ family, w: fromBig(family, a), len: Number(bits - size) });
    a += 1n << size;
    if (a > max) break;
  }
  return out;
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
  const slash = s.indexOf('/');
  if (slash >= 0) {
    const family = parseAddrInto(s.slice(0, slash), w);
    let len = -1;
    if (slash + 1 < s.length && s.length - slash <= 4) {
      len = 0;
      for (let i = slash + 1; i < s.length; i++) {
        const c = s.charCodeAt(i);
        if (c < 48 || c > 57) {
          len = -1;
          break;
        }
        len = len * 10 + (c - 48);
      }
    }
    if (family === 0 || len < 0 || len > bitsOf(family)) throw new AddrError(`invalid prefix "${s}"`);
    sink(family, maskWords(w, len), len);
    return;
  }
  const family = parseAddrInto(s, w);
  if (family === 0) throw new AddrError(`invalid address "${s}"`);
  sink(family, w, bitsOf(family));
}

/** parseEntryInto, collecting the prefixes. */
export function parseEntry(s: string): Prefix[] {
  const out: Prefix[] = [];
  parseEntryInto(s, (family, w, len) => out.push({ family, w: w.slice(), len }));
  return out;
}

/** Whether prefix p contains address a (same family). */
export function prefixContains(p: Prefix, a: Addr): boolean {
  if (p.family !== a.family) return false;
  const m = maskOf(p.len);
  for (let k = 0; k < 4; k++) if (((a.w[k]! & m[k]!) >>> 0) !== p.w[k]) return false;
  return true;
}
