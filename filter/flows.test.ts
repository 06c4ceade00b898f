import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FlowTable } from './flows.js';

function key(n: number, proto = 17): Int32Array {
  const k = new Int32Array(10);
  k[0] = proto | (4 << 8);
  k[1] = 0x64400000 + (n % 1000);
  k[5] = 0x64400001;
  k[9] = ((n >>> 0) & 0xffff) | (53 << 16);
  return k;
}

describe('FlowTable', () => {
  it('records and finds flows', () => {
    const t = new FlowTable({ capacity: 100, clock: () => 0 });
    expect(t.lookup(key(1))).toBe(false);
    t.record(key(1));
    expect(t.lookup(key(1))).toBe(true);
    expect(t.lookup(key(2))).toBe(false);
    expect(t.lookup(key(1, 132))).toBe(false);
    t.record(key(1));
    expect(t.size).toBe(1);
  });

  it('evicts the least recently used flow when full', () => {
    const t = new FlowTable({ capacity: 16, clock: () => 0 });
    for (let i = 0; i < 16; i++) t.record(key(i));
    expect(t.lookup(key(0))).toBe(true); // 0 is now the most recent; 1 is the oldest
    t.record(key(100));
    expect(t.size).toBe(16);
    expect(t.lookup(key(1))).toBe(false);
    expect(t.lookup(key(0))).toBe(true);
    expect(t.lookup(key(100))).toBe(true);
    expect(t.evictions).toBe(1);
  });

  it('expires idle flows per protocol', () => {
    let now = 0;
    const t = new FlowTable({ udpIdleMs: 1000, sctpIdleMs: 5000, clock: () => now });
    t.record(key(1, 17));
    t.record(key(1, 132));
    now = 1000;
    expect(t.lookup(key(1, 17))).toBe(true); // refreshed at 1000
    now = 2001;
    expect(t.lookup(key(1, 17))).toBe(false);
    expect(t.lookup(key(1, 132))).toBe(true);
    now = 8000;
    expect(t.lookup(key(1, 132))).toBe(false);
    expect(t.size).toBe(0);
  });

  it('behaves like a model LRU map under random operations (deletions keep probe runs intact)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom('record', 'lookup', 'tick'), fc.integer({ min: 0, max: 60 })), { maxLength: 400 }),
        (ops) => {
          let now = 0;
          const cap = 16;
          const idle = 50;
          const t = new FlowTable({ capacity: cap, udpIdleMs: idle, clock: () => now });
          const model = new Map<number, number>(); // key -> last seen, in LRU order (oldest first)
          const touch = (k: number) => {
            model.delete(k);
            model.set(k, now);
          };
          for (const [op, n] of ops) {
            if (op === 'tick') {
              now += n;
              continue;
            }
            const seen = model.get(n);
            const alive = seen !== undefined && now - seen <= idle;
            if (op === 'lookup') {
              expect(t.lookup(key(n))).toBe(alive);
              if (alive) touch(n);
              else model.delete(n);
            } else {
              if (seen !== undefined) touch(n); // re-recording refreshes, even an expired flow
              else {
                // The table drops up to 4 expired flows from the old end, then evicts if still full.
                let dropped = 0;
                for (const [k, s] of model) {
                  if (dropped === 4 || now - s <= idle) break;
                  model.delete(k);
                  dropped++;
                }
                if (model.size >= cap) model.delete(model.keys().next().value!);
                model.set(n, now);
              }
              t.record(key(n));
            }
            expect(t.size).toBe(model.size);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
