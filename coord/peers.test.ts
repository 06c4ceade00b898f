import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { FilterRule } from '../wire/types.js';
import { PeerIndex } from './peers.js';

// Brute force: X and Y are peers when one's address is among the other's sources.
function ip4n(s: string): number {
  return s.split('.').reduce((a, b) => a * 256 + Number(b), 0);
}
function srcMatches(src: string, ip4: string, ip6: string): boolean {
  if (src === '*') return true;
  if (src.includes('-')) {
    const [a, b] = src.split('-');
    if (a!.includes(':')) return false; // the generator below makes only IPv4 ranges
    return ip4n(a!) <= ip4n(ip4) && ip4n(ip4) <= ip4n(b!);
  }
  if (src.includes('/')) {
    const [a, bits] = src.split('/');
    if (a!.includes(':')) return Number(bits) <= 48 && ip6.startsWith('fd7a:115c:a1e0:');
    const size = 2 ** (32 - Number(bits));
    return Math.floor(ip4n(a!) / size) === Math.floor(ip4n(ip4) / size);
  }
  return src === ip4 || src === ip6;
}

const addr = (i: number) => ({ v4: `100.64.${i >> 8}.${(i & 255) + 1}`, v6: `fd7a:115c:a1e0::${(i + 1).toString(16)}` });

describe('PeerIndex', () => {
  it('agrees with brute force through joins, leaves and filter changes', () => {
    const srcGen = (n: number) =>
      fc.oneof(
        fc.constant('*'),
        fc.integer({ min: 0, max: n - 1 }).map((i) => addr(i).v4),
        fc.integer({ min: 0, max: n - 1 }).map((i) => addr(i).v6),
        fc.constant('100.64.0.0/10'),
        fc.constant('fd7a:115c:a1e0::/48'),
        fc.integer({ min: 0, max: n - 1 }).map((i) => `100.64.0.0/${24 + (i % 8)}`),
        fc.tuple(fc.integer({ min: 0, max: n - 1 }), fc.integer({ min: 0, max: 5 })).map(([i, w]) => `${addr(i).v4}-${addr(Math.min(n - 1, i + w)).v4}`),
      );
    const N = 12;
    const op = fc.oneof(
      fc.record({ kind: fc.constant('join' as const), i: fc.integer({ min: 0, max: N - 1 }) }),
      fc.record({ kind: fc.constant('leave' as const), i: fc.integer({ min: 0, max: N - 1 }) }),
      fc.record({ kind: fc.constant('filter' as const), i: fc.integer({ min: 0, max: N - 1 }), srcs: fc.array(srcGen(N), { maxLength: 4 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const idx = new PeerIndex();
        const live = new Set<number>();
        const filters = new Map<number, string[]>();
        for (const o of ops) {
          if (o.kind === 'join') {
            idx.addDevice(`d${o.i}`, addr(o.i).v4, addr(o.i).v6);
            live.add(o.i);
            idx.setFilter(`d${o.i}`, filters.has(o.i) ? [{ SrcIPs: filters.get(o.i)!, DstPorts: [] }] : []);
          } else if (o.kind === 'leave') {
            idx.removeDevice(`d${o.i}`);
            live.delete(o.i);
          } else {
            filters.set(o.i, o.srcs);
            if (live.has(o.i)) idx.setFilter(`d${o.i}`, o.srcs.length ? [{ SrcIPs: o.srcs, DstPorts: [] } as FilterRule] : []);
          }
          for (const x of live) {
            const want = [...live]
              .filter((y) => y !== x)
              .filter((y) => (filters.get(x) ?? []).some((s) => srcMatches(s, addr(y).v4, addr(y).v6)) || (filters.get(y) ?? []).some((s) => srcMatches(s, addr(x).v4, addr(x).v6)))
              .map((y) => `d${y}`)
              .sort();
            expect(idx.peersOf(`d${x}`).sort()).toEqual(want);
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});
