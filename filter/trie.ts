// Prefix trie over source prefixes, one per address family, flattened into typed arrays.
//
// A multibit trie with 8-bit strides: a node at level L branches on address byte L. A prefix of
// length n > 0 lives at level ceil(n/8)-1 and covers 2^(8*ceil(n/8)-n) slots there (controlled prefix
// expansion); a /0 prefix lives in the root set. Every slot already holds the id of the set of ALL
// values (rule ids) whose prefix covers any address reaching that slot — its own prefixes plus
// everything inherited from above — so a lookup is a walk of at most 4 (IPv4) or 16 (IPv6) steps
// that keeps the last slot's set. Nodes are compressed: a 256-bit bitmap marks the slots that exist
// (covered by a prefix at this level or leading to a child), and a slot's index is the popcount of the
// bits before it. Paths are compressed too: a node that would have a single child and no prefix of
// its own is skipped; the child records its level and the address bytes above it, which the walk
// checks when it jumps more than one level (so 100,000 random IPv6 /128s do not make 1.3M nodes, and
// addresses sharing their first 12 bytes, as Tailscale's and ours do, start at level 12).
//
// Sets are interned in a SetPool shared by both families. A set id is its offset in the pool's data:
// data[id] is the member count, data[id+1 ..] the members (one cache line for small sets).

import { maskOf as maskWordsOf, type Family, type Prefix } from '../wire/addr.js';

/** Interned sorted sets of small integers (rule ids), in one flat array. Set id -1 is the empty set. */
export class SetPool {
  data: Int32Array = new Int32Array(0);

  /** The members of a set (allocates; not for the packet path). */
  members(id: number): number[] {
    if (id < 0) return [];
    return Array.from(this.data.subarray(id + 1, id + 1 + this.data[id]!));
  }
}

class SetBuilder {
  private readonly sets: number[][] = [];
  private readonly memo = new Map<string, number>();
  /** Memo of the common case, one value added to a set: key base * 2^24 + value. */
  private readonly memo1 = new Map<number, number>();

  /** The id of (set `base`) ∪ values. `values` may be unsorted and hold duplicates. */
  union(base: number, values: number[]): number {
    if (values.length === 1 && values[0]! < 1 << 24) {
      const k = (base + 1) * 16777216 + values[0]!;
      const known = this.memo1.get(k);
      if (known !== undefined) return known;
      const id = this.unionSlow(base, values);
      this.memo1.set(k, id);
      return id;
    }
    return this.unionSlow(base, values);
  }

  private unionSlow(base: number, values: number[]): number {
    const have = base < 0 ? [] : this.sets[base]!;
    const extra: number[] = [];
    const sorted = values.length > 1 ? [...new Set(values)].sort((a, b) => a - b) : values;
    for (const v of sorted) if (!sortedHas(have, v)) extra.push(v);
    if (extra.length === 0) return base;
    const key = `${base}|${extra.join(',')}`;
    const known = this.memo.get(key);
    if (known !== undefined) return known;
    const merged = mergeSorted(have, extra);
    const id = this.sets.length;
    this.sets.push(merged);
    this.memo.set(key, id);
    return id;
  }

  /** Fills the pool; returns each set's id (offset in the pool) by build-time index. */
  finish(pool: SetPool): Int32Array {
    let total = 0;
    for (const set of this.sets) total += set.length + 1;
    pool.data = new Int32Array(total);
    const ids = new Int32Array(this.sets.length);
    let at = 0;
    this.sets.forEach((set, i) => {
      ids[i] = at;
      pool.data[at] = set.length;
      pool.data.set(set, at + 1);
      at += set.length + 1;
    });
    return ids;
  }
}

function sortedHas(a: number[], v: number): boolean {
  let lo = 0;
  let hi = a.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const x = a[mid]!;
    if (x === v) return true;
    if (x < v) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}

function mergeSorted(a: number[], b: number[]): number[] {
  const out: number[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (j >= b.length || (i < a.length && a[i]! < b[j]!)) out.push(a[i++]!);
    else out.push(b[j++]!);
  }
  return out;
}

function byteAt(w: Uint32Array, i: number, level: number): number {
  return (w[4 * i + (level >> 2)]! >>> (24 - 8 * (level & 3))) & 255;
}

/** The entries to index: prefixes and the value (rule id) each stands for, in flat growable arrays. */
export class PrefixList {
  count = 0;
  family = new Uint8Array(64);
  len = new Uint8Array(64);
  value = new Int32Array(64);
  /** 4 uint32 words per entry. */
  words = new Uint32Array(256);

  add(family: Family, w: ArrayLike<number>, len: number, value: number): void {
    if (this.count === this.family.length) this.grow();
    const i = this.count++;
    this.family[i] = family;
    this.len[i] = len;
    this.value[i] = value;
    this.words[4 * i] = w[0]!;
    this.words[4 * i + 1] = w[1]!;
    this.words[4 * i + 2] = w[2]!;
    this.words[4 * i + 3] = w[3]!;
  }

  private grow(): void {
    const n = this.family.length * 2;
    const f = new Uint8Array(n);
    f.set(this.family);
    this.family = f;
    const l = new Uint8Array(n);
    l.set(this.len);
    this.len = l;
    const v = new Int32Array(n);
    v.set(this.value);
    this.value = v;
    const w = new Uint32Array(4 * n);
    w.set(this.words);
    this.words = w;
  }

  /** Entry i as a Prefix object (allocates; for tools and tests). */
  prefix(i: number): Prefix {
    return { family: this.family[i] as Family, w: Array.from(this.words.subarray(4 * i, 4 * i + 4)), len: this.len[i]! };
  }
}

/** Masks of the first L bytes (L = 0..16) as 4 int32 words each. */
const BYTE_MASKS = Int32Array.from({ length: 17 * 4 }, (_, i) => maskWordsOf(8 * (i >> 2))[i & 3]! | 0);

/** The flattened trie of one address family. */
export class PrefixTrie {
  /** Address bytes: 4 or 16. */
  readonly levels: number;
  /** Set of the /0 prefixes: the answer for addresses no other prefix covers. */
  rootSet = -1;
  /** Level of the root node (the number of leading bytes every other prefix shares); -1 = no nodes. */
  rootLevel = -1;
  /**
   * Per node, 16 words (one 64-byte cache line): the 256-bit slot bitmap (8 words), then for each
   * bitmap word the index of its first slot (8 words).
   */
  nodes: Int32Array = new Int32Array(0);
  /** Per node, 4 words: the address bytes above its level (masked), checked after a jump. */
  paths: Int32Array = new Int32Array(0);
  /** Per slot, 4 words: set id, child node (-1 = none), the child's level, unused. */
  slots: Int32Array = new Int32Array(0);

  constructor(family: Family) {
    this.levels = family === 4 ? 4 : 16;
  }

  /** The set id for an address given as four int32 words (IPv4: w0 only). -1 = empty. No allocation. */
  lookup(w0: number, w1: number, w2: number, w3: number): number {
    return this.levels === 4 ? this.lookup4(w0) : this.lookup6(w0, w1, w2, w3);
  }

  private lookup4(a: number): number {
    let set = this.rootSet;
    let level = this.rootLevel;
    if (level < 0) return set;
    const nodes = this.nodes;
    const slots = this.slots;
    const paths = this.paths;
    if (level > 0 && ((a ^ paths[0]!) & BYTE_MASKS[level << 2]!) !== 0) return set;
    let node = 0;
    for (;;) {
      const b = (a >>> (24 - (level << 3))) & 255;
      const wi = (node << 4) | (b >>> 5);
      const bits = nodes[wi]!;
      const bit = 1 << (b & 31);
      if ((bits & bit) === 0) return set;
      let x = bits & (bit - 1);
      x = x - ((x >>> 1) & 0x55555555);
      x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
      x = (x + (x >>> 4)) & 0x0f0f0f0f;
      const idx = (nodes[wi + 8]! + (Math.imul(x, 0x01010101) >>> 24)) << 2;
      set = slots[idx]!;
      node = slots[idx + 1]!;
      if (node < 0) return set;
      const next = slots[idx + 2]!;
      if (next !== level + 1 && ((a ^ paths[node << 2]!) & BYTE_MASKS[next << 2]!) !== 0) return set;
      level = next;
    }
  }

  private lookup6(w0: number, w1: number, w2: number, w3: number): number {
    let set = this.rootSet;
    let level = this.rootLevel;
    if (level < 0) return set;
    const nodes = this.nodes;
    const slots = this.slots;
    let node = 0;
    if (level > 0 && this.off(0, level, w0, w1, w2, w3)) return set;
    for (;;) {
      const q = level >> 2;
      const word = q === 0 ? w0 : q === 1 ? w1 : q === 2 ? w2 : w3;
      const b = (word >>> (24 - ((level & 3) << 3))) & 255;
      const wi = (node << 4) | (b >>> 5);
      const bits = nodes[wi]!;
      const bit = 1 << (b & 31);
      if ((bits & bit) === 0) return set;
      let x = bits & (bit - 1);
      x = x - ((x >>> 1) & 0x55555555);
      x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
      x = (x + (x >>> 4)) & 0x0f0f0f0f;
      const idx = (nodes[wi + 8]! + (Math.imul(x, 0x01010101) >>> 24)) << 2;
      set = slots[idx]!;
      node = slots[idx + 1]!;
      if (node < 0) return set;
      const next = slots[idx + 2]!;
      if (next !== level + 1 && this.off(node, next, w0, w1, w2, w3)) return set;
      level = next;
    }
  }

  /** Whether the address leaves node's path: differs from it in the first `level` bytes. */
  private off(node: number, level: number, w0: number, w1: number, w2: number, w3: number): boolean {
    const p = this.paths;
    const o = node << 2;
    const m = level << 2;
    if (this.levels === 4) return ((w0 ^ p[o]!) & BYTE_MASKS[m]!) !== 0;
    return (
      (((w0 ^ p[o]!) & BYTE_MASKS[m]!) |
        ((w1 ^ p[o + 1]!) & BYTE_MASKS[m + 1]!) |
        ((w2 ^ p[o + 2]!) & BYTE_MASKS[m + 2]!) |
        ((w3 ^ p[o + 3]!) & BYTE_MASKS[m + 3]!)) !==
      0
    );
  }

  /** Lookup of an address given as bytes (4 or 16); allocates, for tools and tests. */
  lookupBytes(a: Uint8Array): number {
    const w = [0, 0, 0, 0];
    for (let i = 0; i < a.length; i++) w[i >> 2] = w[i >> 2]! | (a[i]! << (24 - 8 * (i & 3)));
    return this.lookup(w[0]!, w[1]!, w[2]!, w[3]!);
  }
}

/**
 * Builds one trie per family over the entries, interning the sets in `pool` (which is filled).
 */
export function buildTries(entries: PrefixList, pool: SetPool): { v4: PrefixTrie; v6: PrefixTrie } {
  const sets = new SetBuilder();
  const v4 = buildFamily(4, entries, sets);
  const v6 = buildFamily(6, entries, sets);
  const ids = sets.finish(pool);
  for (const trie of [v4, v6]) {
    if (trie.rootSet >= 0) trie.rootSet = ids[trie.rootSet]!;
    const slots = trie.slots;
    for (let i = 0; i < slots.length; i += 4) if (slots[i]! >= 0) slots[i] = ids[slots[i]!]!;
  }
  return { v4, v6 };
}

/** Per-level scratch of the builder (a node at level L uses scratch[L] while its children use deeper ones). */
interface Scratch {
  count: Int32Array; // deeper entries per branch byte
  start: Int32Array; // their first position
  head: Int32Array; // per slot: first value of the prefixes ending here (-1 = none), list in vNext/vValue
  bits: Int32Array; // the slots in use (8 words), so that sparse nodes cost no 256-slot sweeps
}

function buildFamily(family: Family, all: PrefixList, sets: SetBuilder): PrefixTrie {
  const trie = new PrefixTrie(family);
  const rootValues: number[] = [];
  let n = 0;
  const entries = new Int32Array(all.count); // indexes into `all` of this family's non-/0 prefixes
  for (let i = 0; i < all.count; i++) {
    if (all.family[i] !== family) continue;
    if (all.len[i] === 0) rootValues.push(all.value[i]!);
    else entries[n++] = i;
  }
  trie.rootSet = sets.union(-1, rootValues);
  if (n === 0) return trie;
  const W = all.words;
  const L = all.len;
  const V = all.value;
  const spare = new Int32Array(n); // for partitioning entries by branch byte (an MSD radix sort)
  const scratch: Scratch[] = Array.from({ length: trie.levels }, () => ({
    count: new Int32Array(256),
    start: new Int32Array(256),
    head: new Int32Array(256).fill(-1),
    bits: new Int32Array(8),
  }));
  const vNext: number[] = [];
  const vValue: number[] = [];

  const nodes: number[] = [];
  const paths: number[] = [];
  const slotWords: number[] = [];

  /**
   * Builds the node for entries[lo..hi) (which share their bytes above `level`) and writes its id and
   * level into slotWords[out], [out+1] (the parent's slot; out < 0 for the root).
   */
  const build = (lo: number, hi: number, level: number, inherited: number, out: number): void => {
    // Skip levels where nothing ends and every entry takes the same branch.
    let minEnd = 15;
    for (let i = lo; i < hi; i++) minEnd = Math.min(minEnd, (L[entries[i]!]! - 1) >> 3);
    const first = entries[lo]!;
    for (; level < minEnd; level++) {
      const b = byteAt(W, first, level);
      let same = true;
      for (let i = lo + 1; i < hi && same; i++) same = byteAt(W, entries[i]!, level) === b;
      if (!same) break;
    }
    if (out >= 0) {
      slotWords[out] = nodes.length >> 4;
      slotWords[out + 1] = level;
    } else trie.rootLevel = level;
    const mask = maskWordsOf(8 * level);
    for (let k = 0; k < 4; k++) paths.push((W[4 * first + k]! & mask[k]!) | 0);

    // Prefixes ending here go to the slots they cover; the others are partitioned by branch byte.
    const { count, start, head, bits } = scratch[level]!;
    const listBase = vValue.length;
    for (let i = lo; i < hi; i++) {
      const e = entries[i]!;
      const b = byteAt(W, e, level);
      if ((L[e]! - 1) >> 3 === level) {
        const span = 1 << (8 * (level + 1) - L[e]!);
        for (let slot = b; slot < b + span; slot++) {
          vNext.push(head[slot]!);
          vValue.push(V[e]!);
          head[slot] = vValue.length - 1;
          bits[slot >>> 5] |= 1 << (slot & 31);
        }
      } else {
        count[b]!++;
        bits[b >>> 5] |= 1 << (b & 31);
      }
    }
    // Slots in ascending order, from the bitmap.
    const used: number[] = [];
    for (let k = 0; k < 8; k++) {
      let x = bits[k]!;
      while (x !== 0) {
        const low = x & -x;
        used.push(32 * k + 31 - Math.clz32(low));
        x ^= low;
      }
    }
    let at = lo;
    for (const b of used) {
      start[b] = at;
      at += count[b]!;
    }
    for (let i = lo; i < hi; i++) {
      const e = entries[i]!;
      if ((L[e]! - 1) >> 3 !== level) spare[start[byteAt(W, e, level)]!++] = e;
    }
    for (let i = lo; i < at; i++) entries[i] = spare[i]!;
    // start[b] now points past branch b's run: its run is [start[b] - count[b], start[b]).

    const firstSlot = slotWords.length >> 2;
    let running = firstSlot;
    for (let k = 0; k < 8; k++) nodes.push(bits[k]!);
    for (let k = 0; k < 8; k++) {
      nodes.push(running);
      let x = bits[k]!;
      while (x !== 0) {
        x &= x - 1;
        running++;
      }
    }
    bits.fill(0);
    for (let i = 0; i < used.length; i++) slotWords.push(-1, -1, 0, 0);
    let o = 4 * firstSlot;
    for (const b of used) {
      const c = count[b]!;
      let h = head[b]!;
      let set = inherited;
      if (h >= 0) {
        const values: number[] = [];
        for (; h >= 0; h = vNext[h]!) values.push(vValue[h]!);
        set = sets.union(inherited, values);
      }
      slotWords[o] = set;
      count[b] = 0;
      head[b] = -1;
      if (c > 0) build(start[b]! - c, start[b]!, level + 1, set, o + 1);
      o += 4;
    }
    vNext.length = listBase;
    vValue.length = listBase;
  };
  build(0, n, 0, trie.rootSet, -1);
  trie.nodes = Int32Array.from(nodes);
  trie.paths = Int32Array.from(paths);
  trie.slots = Int32Array.from(slotWords);
  return trie;
}
