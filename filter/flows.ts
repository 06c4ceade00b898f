// Flow table: the UDP/SCTP flows this device started, so that their replies are let in.
//
// Preallocated open-addressing hash (linear probing, backward-shift deletion, so no tombstones) in
// typed arrays, with an intrusive doubly-linked LRU list through the slots. Bounded in size (the least
// recently used flow is evicted when full) and in time (a flow idle for longer than its protocol's
// timeout is gone). Nothing here allocates after construction.
//
// A flow's key is written from the reply's point of view: (protocol+family, remote address, local
// address, remote port << 16 | local port). runOut records (dst, src, dport, sport) of the outgoing
// packet; runIn looks up (src, dst, sport, dport) of the incoming one.

import { randomBytes } from 'node:crypto';

export interface FlowOptions {
  /** Maximum number of flows (default 16384). */
  capacity?: number;
  /** Idle timeout of UDP flows in ms (default 120 s, as Linux conntrack's udp stream timeout). */
  udpIdleMs?: number;
  /** Idle timeout of SCTP flows in ms (default 600 s; SCTP heartbeats every 30 s). */
  sctpIdleMs?: number;
  /**
   * Millisecond clock, injectable for tests. By default a coarse monotonic clock (see `coarseNow`):
   * Date.now()/performance.now() cost ~40 ns per call here and may box their result.
   */
  clock?: () => number;
}


// Coarse monotonic milliseconds, refreshed every 100 ms by an unref'd timer (started by the first
// FlowTable): reading it costs nothing and allocates nothing. If the event loop is blocked, time
// stands still, so flows can only expire late, never early.
const coarse = new Float64Array(1);
let coarseTimer: ReturnType<typeof setInterval> | null = null;
function startCoarseClock(): void {
  if (coarseTimer !== null) return;
  coarse[0] = performance.now();
  coarseTimer = setInterval(() => {
    coarse[0] = performance.now();
  }, 100);
  coarseTimer.unref();
}

/** The coarse clock's current value (ms). */
export function coarseNow(): number {
  return coarse[0]!;
}
const SCTP = 132;

// Slot layout: one 64-byte row of 16 int32 words per slot, so a lookup touches one cache line.
const ROW = 16;
const USED = 0; // 1 when the slot holds a flow
const HASH = 1;
const K = 2; // key: words K .. K+9
const SEEN = 12; // last use, clock ms as int32 (compared with wrap-around arithmetic)
const PREV = 13; // LRU neighbours (slot indexes, -1 = none)
const NEXT = 14;

export class FlowTable {
  readonly capacity: number;
  private readonly mask: number;
  private readonly rows: Int32Array;
  private head = -1; // most recently used
  private tail = -1; // least recently used
  private count = 0;
  private readonly seed: number;
  udpIdleMs: number;
  sctpIdleMs: number;
  clock: (() => number) | null;
  /** Flows evicted because the table was full (not idle). */
  evictions = 0;

  constructor(opts: FlowOptions = {}) {
    const capacity = Math.max(16, Math.floor(opts.capacity ?? 16384));
    let slots = 32;
    while (slots < capacity * 2) slots *= 2;
    this.capacity = capacity;
    this.mask = slots - 1;
    this.rows = new Int32Array(slots * ROW);
    this.udpIdleMs = opts.udpIdleMs ?? 120_000;
    this.sctpIdleMs = opts.sctpIdleMs ?? 600_000;
    this.clock = opts.clock ?? null;
    if (this.clock === null) startCoarseClock();
    this.seed = randomBytes(4).readInt32LE(0); // against hash flooding by chosen ports/addresses
  }

  get size(): number {
    return this.count;
  }

  /** The clock as int32 ms (wraps every ~50 days; idle times are compared modulo 2^32). */
  private now(): number {
    return (this.clock === null ? coarse[0]! : this.clock()) | 0;
  }

  private expired(slot: number, now: number): boolean {
    const r = this.rows;
    const o = slot * ROW;
    const idle = (r[o + K]! & 0xff) === SCTP ? this.sctpIdleMs : this.udpIdleMs;
    return ((now - r[o + SEEN]!) | 0) > idle;
  }

  /** Looks up a flow (and refreshes it). `k` holds the key: words 0..9 as described above. */
  lookup(k: Int32Array): boolean {
    const slot = this.find(k, this.hash(k));
    if (slot < 0) return false;
    const now = this.now();
    if (this.expired(slot, now)) {
      this.remove(slot);
      return false;
    }
    this.touch(slot, now);
    return true;
  }

  /** Records (or refreshes) a flow. */
  record(k: Int32Array): void {
    const h = this.hash(k);
    const now = this.now();
    let slot = this.find(k, h);
    if (slot >= 0) {
      this.touch(slot, now);
      return;
    }
    // Drop a few expired flows from the old end, then make room if still full.
    for (let n = 0; n < 4 && this.tail >= 0; n++) {
      if (!this.expired(this.tail, now)) break;
      this.remove(this.tail);
    }
    if (this.count >= this.capacity) {
      this.remove(this.tail);
      this.evictions++;
    }
    const r = this.rows;
    slot = h & this.mask;
    while (r[slot * ROW + USED] === 1) slot = (slot + 1) & this.mask;
    const o = slot * ROW;
    for (let i = 0; i < 10; i++) r[o + K + i] = k[i]!;
    r[o + USED] = 1;
    r[o + HASH] = h;
    r[o + SEEN] = now;
    r[o + PREV] = -1;
    r[o + NEXT] = this.head;
    if (this.head >= 0) r[this.head * ROW + PREV] = slot;
    this.head = slot;
    if (this.tail < 0) this.tail = slot;
    this.count++;
  }

  /** Forgets every flow. */
  clear(): void {
    this.rows.fill(0);
    this.head = this.tail = -1;
    this.count = 0;
  }

  private hash(k: Int32Array): number {
    let h = this.seed;
    for (let i = 0; i < 10; i++) {
      h = Math.imul(h ^ k[i]!, 0x9e3779b1);
      h ^= h >>> 15;
    }
    h = Math.imul(h ^ (h >>> 13), 0x85ebca6b);
    return h ^ (h >>> 16);
  }

  private find(k: Int32Array, h: number): number {
    const r = this.rows;
    const mask = this.mask;
    let slot = h & mask;
    for (;;) {
      const o = slot * ROW;
      if (r[o + USED] !== 1) return -1;
      if (
        r[o + HASH] === h &&
        r[o + K] === k[0] &&
        r[o + K + 1] === k[1] &&
        r[o + K + 2] === k[2] &&
        r[o + K + 3] === k[3] &&
        r[o + K + 4] === k[4] &&
        r[o + K + 5] === k[5] &&
        r[o + K + 6] === k[6] &&
        r[o + K + 7] === k[7] &&
        r[o + K + 8] === k[8] &&
        r[o + K + 9] === k[9]
      ) {
        return slot;
      }
      slot = (slot + 1) & mask;
    }
  }

  /** Marks a flow used now: moves it to the front of the LRU list (not twice in one clock tick). */
  private touch(slot: number, now: number): void {
    const r = this.rows;
    const o = slot * ROW;
    if (r[o + SEEN] === now && this.head === slot) return;
    r[o + SEEN] = now;
    if (this.head === slot) return;
    this.unlink(slot);
    r[o + PREV] = -1;
    r[o + NEXT] = this.head;
    if (this.head >= 0) r[this.head * ROW + PREV] = slot;
    this.head = slot;
    if (this.tail < 0) this.tail = slot;
  }

  private unlink(slot: number): void {
    const r = this.rows;
    const p = r[slot * ROW + PREV]!;
    const n = r[slot * ROW + NEXT]!;
    if (p >= 0) r[p * ROW + NEXT] = n;
    else this.head = n;
    if (n >= 0) r[n * ROW + PREV] = p;
    else this.tail = p;
  }

  private remove(slot: number): void {
    this.unlink(slot);
    this.count--;
    // Backward-shift: pull later members of the probe run into the hole.
    const r = this.rows;
    const mask = this.mask;
    let hole = slot;
    let j = slot;
    for (;;) {
      j = (j + 1) & mask;
      if (r[j * ROW + USED] !== 1) break;
      const home = r[j * ROW + HASH]! & mask;
      // Move j into the hole unless its home lies cyclically in (hole, j].
      const inRange = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (inRange) continue;
      this.move(j, hole);
      hole = j;
    }
    r[hole * ROW + USED] = 0;
  }

  /** Moves the flow in slot `from` to the empty slot `to`, keeping its place in the LRU list. */
  private move(from: number, to: number): void {
    const r = this.rows;
    r.copyWithin(to * ROW, from * ROW, from * ROW + ROW);
    const p = r[to * ROW + PREV]!;
    const n = r[to * ROW + NEXT]!;
    if (p >= 0) r[p * ROW + NEXT] = to;
    else this.head = to;
    if (n >= 0) r[n * ROW + PREV] = to;
    else this.tail = to;
  }
}
