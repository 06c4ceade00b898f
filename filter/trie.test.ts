// Property tests: the trie-based filter answers exactly like plain linear matchers.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { FilterRule } from '../wire/types.js';
import { DEFAULT_IPPROTO } from '../wire/types.js';
import { parseEntry, prefixContains, type Addr } from '../wire/addr.js';
import { craft } from './craft.js';
import { DropReason, Filter } from './index.js';
import { LinearFilter } from './linear.js';
import { buildTries, PrefixList, SetPool } from './trie.js';

// Addresses drawn near a few bases, so that random prefixes nest and overlap at every depth.
const V4_BASES = [0x0a000000, 0x0a0000ff, 0x64400000, 0xc0a80100];
const V6_BASES = [
  [0xfd7a115c, 0xa1e00000, 0, 0x64400001],
  [0xfd7a115c, 0xa1e00000, 0, 0x64400102],
  [0xfd000000, 0, 0, 0],
  [0x20010db8, 0x12340000, 0, 0],
];

const v4Word = fc
  .tuple(fc.constantFrom(...V4_BASES), fc.integer({ min: 0, max: 31 }), fc.boolean(), fc.integer({ min: 0, max: 2 ** 32 - 1 }))
  .map(([base, bit, flip, random]) => (flip ? (base ^ (1 << bit)) >>> 0 : bit === 31 ? random : base));

const v6Words = fc
  .tuple(fc.constantFrom(...V6_BASES), fc.integer({ min: 0, max: 127 }), fc.boolean())
  .map(([base, bit, flip]) => {
    const w = base.slice();
    if (flip) w[bit >> 5] = (w[bit >> 5]! ^ (1 << (31 - (bit & 31)))) >>> 0;
    return w;
  });

function fmt4(w: number): string {
  return [w >>> 24, (w >>> 16) & 255, (w >>> 8) & 255, w & 255].join('.');
}
function fmt6(w: number[]): string {
  const g: string[] = [];
  for (const x of w) g.push((x >>> 16).toString(16), (x & 0xffff).toString(16));
  return g.join(':');
}

const srcEntry = fc.oneof(
  { weight: 1, arbitrary: fc.constant('*') },
  { weight: 6, arbitrary: fc.tuple(v4Word, fc.integer({ min: 0, max: 32 })).map(([w, l]) => `${fmt4(w)}/${l}`) },
  { weight: 3, arbitrary: v4Word.map(fmt4) },
  { weight: 6, arbitrary: fc.tuple(v6Words, fc.integer({ min: 0, max: 128 })).map(([w, l]) => `${fmt6(w)}/${l}`) },
  { weight: 3, arbitrary: v6Words.map(fmt6) },
  {
    weight: 2,
    arbitrary: fc.tuple(v4Word, fc.integer({ min: 0, max: 3000 })).map(([w, n]) => `${fmt4(w)}-${fmt4(Math.min(w + n, 2 ** 32 - 1))}`),
  },
);

const LOCAL4 = ['10.0.0.255', '100.64.0.0/24'];
const LOCAL6 = ['fd7a:115c:a1e0::6440:1', 'fd00::/64'];
const DSTS = ['*', '10.0.0.255', '100.64.0.0/25', '100.64.0.7', 'fd7a:115c:a1e0::6440:1', 'fd00::/80', 'fd00::1'];
const PROTOS = [1, 6, 17, 47, 58, 132];

const rule: fc.Arbitrary<FilterRule> = fc.record(
  {
    SrcIPs: fc.array(srcEntry, { minLength: 1, maxLength: 6 }),
    DstPorts: fc.array(
      fc.record({
        IP: fc.constantFrom(...DSTS),
        Ports: fc.oneof(
          fc.constant({ First: 0, Last: 65535 }),
          fc.tuple(fc.integer({ min: 0, max: 100 }), fc.integer({ min: 0, max: 30 })).map(([a, n]) => ({ First: a, Last: a + n })),
        ),
      }),
      { minLength: 0, maxLength: 3 },
    ),
    IPProto: fc.uniqueArray(fc.constantFrom(...PROTOS), { minLength: 1, maxLength: 3 }),
  },
  { requiredKeys: ['SrcIPs', 'DstPorts'] },
);

/** The reference: rule r's sources contain `a`, by scanning its entries. */
function srcMatches(r: FilterRule, a: Addr): boolean {
  return r.SrcIPs.some((s) => parseEntry(s).some((p) => prefixContains(p, a)));
}

function dstMatches(r: FilterRule, a: Addr, port: number, kind: 'port' | 'ip' | 'all'): boolean {
  return (r.DstPorts ?? []).some(
    (d) =>
      parseEntry(d.IP).some((p) => prefixContains(p, a)) &&
      (kind === 'ip' || (kind === 'port' ? port >= d.Ports.First && port <= d.Ports.Last : d.Ports.First === 0 && d.Ports.Last === 65535)),
  );
}

function addrOf(s: string): Addr {
  return parseEntry(s)[0]!;
}

function bytesOf(a: Addr): Uint8Array {
  const n = a.family === 4 ? 1 : 4;
  const out = new Uint8Array(4 * n);
  for (let k = 0; k < n; k++) {
    out[4 * k] = a.w[k]! >>> 24;
    out[4 * k + 1] = (a.w[k]! >>> 16) & 255;
    out[4 * k + 2] = (a.w[k]! >>> 8) & 255;
    out[4 * k + 3] = a.w[k]! & 255;
  }
  return out;
}

const probe = fc.oneof(v4Word.map(fmt4), v6Words.map(fmt6));

describe('source trie', () => {
  it('yields exactly the rules whose SrcIPs contain the address', () => {
    fc.assert(
      fc.property(fc.array(rule, { minLength: 0, maxLength: 12 }), fc.array(probe, { minLength: 1, maxLength: 40 }), (rules, probes) => {
        const f = Filter.build({ rules, localAddrs: [] });
        for (const p of probes) {
          const a = addrOf(p);
          const want = rules.flatMap((r, i) => ((r.DstPorts ?? []).length > 0 && srcMatches(r, a) ? [i] : []));
          expect(f.sourceCandidates(bytesOf(a)), p).toEqual(want);
        }
      }),
      { numRuns: 400 },
    );
  });

  it('handles prefixes at every length and /0 alongside others', () => {
    const entries = new PrefixList();
    for (let len = 0; len <= 32; len++) {
      const p = parseEntry(`10.255.255.255/${len}`)[0]!;
      entries.add(p.family, p.w, p.len, len);
    }
    const pool = new SetPool();
    const { v4 } = buildTries(entries, pool);
    for (let len = 0; len <= 32; len++) {
      // An address that agrees with 10.255.255.255 on exactly `len` leading bits.
      const w = len === 32 ? 0x0affffff : (0x0affffff ^ (1 << (31 - len))) | 0;
      expect(pool.members(v4.lookup(w, 0, 0, 0))).toEqual(Array.from({ length: len + 1 }, (_, i) => i));
    }
  });
});

describe('path compression', () => {
  const build = (list: string[]) => {
    const entries = new PrefixList();
    list.forEach((s, i) => {
      for (const p of parseEntry(s)) entries.add(p.family, p.w, p.len, i);
    });
    const pool = new SetPool();
    const t = buildTries(entries, pool);
    return (addr: string) => {
      const a = parseEntry(addr)[0]!;
      const trie = a.family === 4 ? t.v4 : t.v6;
      return pool.members(trie.lookup(a.w[0]! | 0, a.w[1]! | 0, a.w[2]! | 0, a.w[3]! | 0));
    };
  };
  it('checks the skipped bytes at the root and after jumps', () => {
    const look = build(['2001:db8::1:0:0:1', '2001:db8::2:0:0:1', '2001:db8::2:0:0:2', '2001:db8::/32']);
    expect(look('2001:db8::1:0:0:1')).toEqual([0, 3]);
    expect(look('2001:db8::2:0:0:2')).toEqual([2, 3]);
    expect(look('2001:db8::2:0:1:2')).toEqual([3]); // differs inside the jump below byte 9
    expect(look('2001:db8::3:0:0:1')).toEqual([3]);
    expect(look('2001:db9::1:0:0:1')).toEqual([]); // differs in the root's skipped bytes
    const v4 = build(['10.1.2.3', '10.1.2.4', '10.200.0.0/16']);
    expect(v4('10.1.2.3')).toEqual([0]);
    expect(v4('10.1.3.3')).toEqual([]);
    expect(v4('11.1.2.3')).toEqual([]);
    expect(v4('10.200.9.9')).toEqual([2]);
  });
  it('keeps 100,000 random IPv6 /128s small', () => {
    const list: string[] = [];
    let x = 12345;
    const r = () => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 16).toString(16);
    for (let i = 0; i < 100_000; i++) list.push(`2001:${r()}:${r()}:${r()}:${r()}:${r()}:${r()}:${r()}`);
    const entries = new PrefixList();
    list.forEach((s, i) => {
      const p = parseEntry(s)[0]!;
      entries.add(p.family, p.w, p.len, i);
    });
    const { v6 } = buildTries(entries, new SetPool());
    // Without path compression this is ~1.3M nodes; with it, about one per address.
    expect(v6.nodes.length / 16).toBeLessThan(150_000);
    for (let i = 0; i < 100_000; i += 997) {
      const a = parseEntry(list[i]!)[0]!;
      expect(v6.lookup(a.w[0]! | 0, a.w[1]! | 0, a.w[2]! | 0, a.w[3]! | 0)).toBeGreaterThanOrEqual(0);
      expect(v6.lookup(a.w[0]! | 0, a.w[1]! | 0, a.w[2]! | 0, (a.w[3]! ^ 1) | 0)).toBe(-1);
    }
  });
});

describe('filter decisions', () => {
  it('equal a plain linear matcher and the linear baseline', () => {
    const packet = fc.record({
      src: probe,
      fromRule: fc.nat(), // odd: take the source and port from the rules, to hit their edges
      portEdge: fc.nat(),
      dstIndex: fc.nat(),
      proto: fc.constantFrom(...PROTOS, 50),
      dport: fc.integer({ min: 0, max: 140 }),
      syn: fc.boolean(),
      icmpType: fc.constantFrom(0, 3, 8, 13, 128, 129, 135),
    });
    fc.assert(
      fc.property(fc.array(rule, { minLength: 0, maxLength: 12 }), fc.array(packet, { minLength: 1, maxLength: 30 }), (rules, packets) => {
        const localAddrs = [...LOCAL4, ...LOCAL6];
        const f = Filter.build({ rules, localAddrs });
        const lin = new LinearFilter(rules, localAddrs);
        const ruleSrcs = rules.flatMap((r) => r.SrcIPs.filter((x) => x !== '*').map((x) => parseEntry(x)[0]!));
        const edges = rules.flatMap((r) => (r.DstPorts ?? []).flatMap((d) => [d.Ports.First - 1, d.Ports.First, d.Ports.Last, d.Ports.Last + 1]));
        for (const p of packets) {
          if (p.fromRule % 2 === 1 && ruleSrcs.length > 0) {
            const a = ruleSrcs[p.fromRule % ruleSrcs.length]!;
            p.src = a.family === 4 ? fmt4(a.w[0]!) : fmt6(a.w);
          }
          if (p.portEdge % 2 === 1 && edges.length > 0) p.dport = Math.max(0, Math.min(65535, edges[p.portEdge % edges.length]!));
          const src = addrOf(p.src);
          const dsts = src.family === 4 ? ['10.0.0.255', '100.64.0.7', '100.64.0.200'] : ['fd7a:115c:a1e0::6440:1', 'fd00::1', 'fd00::1:0:0:1'];
          const dstText = dsts[p.dstIndex % dsts.length]!;
          const dst = addrOf(dstText);
          const isIcmp = (p.proto === 1 && src.family === 4) || (p.proto === 58 && src.family === 6);
          const buf = craft({ src: p.src, dst: dstText, proto: p.proto, dport: p.dport, flags: p.syn ? 0x02 : 0x10, icmpType: p.icmpType });
          const got = f.runIn(buf, 0, buf.length);
          expect(lin.runIn(buf, 0, buf.length)).toBe(got);

          // Reference decision, written out plainly.
          let want: number;
          const reply = isIcmp && (src.family === 4 ? [0, 3, 11, 12] : [1, 2, 3, 4, 129]).includes(p.icmpType);
          if (p.proto === 6 && !p.syn) want = DropReason.ACCEPT;
          else if (reply) want = DropReason.ACCEPT;
          else {
            const kind = p.proto === 6 || p.proto === 17 || p.proto === 132 ? 'port' : isIcmp ? 'ip' : 'all';
            const ok = rules.some(
              (r) => (r.IPProto && r.IPProto.length ? r.IPProto : DEFAULT_IPPROTO).includes(p.proto) && srcMatches(r, src) && dstMatches(r, dst, p.dport, kind),
            );
            want = ok ? DropReason.ACCEPT : DropReason.NO_RULE;
          }
          expect(got, JSON.stringify({ p, dstText })).toBe(want);
        }
      }),
      { numRuns: 300 },
    );
  });
});
