import ipaddr from 'ipaddr.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  AddrError, addrFromBig, addrFromBytes, addrToBig, addrToBytes, bareAddr, canonicalAddr, entriesContain, entryRanges, familyOf, formatAddr,
  formatIPv4, formatPrefix, hostPrefix, isFullRange, isTailnetAddr, parseAddr, parseEntry, parseIPv4, parsePrefix, parseRange, prefixContains,
  prefixWithin, rangeContains, rangesOverlap, rangeToCidrs, rangeToPrefixes, SERVICE_IPV4, SERVICE_IPV6, tailnetIPv6For, TAILNET_ROUTES,
  TAILNET_SOURCES,
} from './addr.js';

const hex = (w: number[]): string => w.map((x) => x.toString(16).padStart(8, '0')).join('');

describe('parseAddr', () => {
  it('parses IPv4 and IPv6 forms', () => {
    expect(parseAddr('100.64.0.1')).toEqual({ family: 4, w: [0x64400001, 0, 0, 0] });
    expect(parseAddr('::')).toEqual({ family: 6, w: [0, 0, 0, 0] });
    expect(parseAddr('::1')!.w).toEqual([0, 0, 0, 1]);
    expect(hex(parseAddr('fd7a:115c:a1e0::6440:1')!.w)).toBe('fd7a115ca1e000000000000064400001');
    expect(hex(parseAddr('::ffff:1.2.3.4')!.w)).toBe('00000000000000000000ffff01020304');
    expect(hex(parseAddr('1::')!.w)).toBe('00010000000000000000000000000000');
    expect(hex(parseAddr('FE80::ABCD')!.w)).toBe('fe80000000000000000000000000abcd');
  });
  it('refuses what is not an address', () => {
    for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1.2.3.-4', ':::', '1::2::3', '1:2:3:4:5:6:7:8:9', '12345::', 'g::', '1:', 'fe80::1%eth0', '::1.2.3']) {
      expect(parseAddr(bad), bad).toBeNull();
    }
  });
  it('agrees with ipaddr.js on random addresses', () => {
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), (s) => {
        // ipaddr.js reads "::a.b.c.d" as IPv4-mapped (::ffff:a.b.c.d); RFC 4291 does not. Embedded
        // IPv4 forms are checked by hand above.
        if (s.includes(':') && s.includes('.')) return;
        const a = parseAddr(s);
        expect(a).not.toBeNull();
        const bytes = ipaddr.parse(s).toByteArray();
        const ours: number[] = [];
        for (const w of a!.w.slice(0, a!.family === 4 ? 1 : 4)) ours.push(w >>> 24, (w >>> 16) & 255, (w >>> 8) & 255, w & 255);
        expect(ours).toEqual(bytes);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('parseEntry', () => {
  it('handles "*", addresses, prefixes (masked) and ranges', () => {
    expect(parseEntry('*').map((p) => [p.family, p.len])).toEqual([
      [4, 0],
      [6, 0],
    ]);
    expect(parseEntry('10.1.2.3/8')).toEqual([{ family: 4, w: [0x0a000000, 0, 0, 0], len: 8 }]);
    expect(parseEntry('fd00::1/16')[0]!.w).toEqual([0xfd000000, 0, 0, 0]);
    expect(parseEntry('10.0.0.1-10.0.0.6').map((p) => p.len)).toEqual([32, 31, 31, 32]);
    expect(parseEntry('10.0.0.0-10.0.1.255').map((p) => p.len)).toEqual([23]);
    expect(parseEntry('0.0.0.0-255.255.255.255')).toEqual([{ family: 4, w: [0, 0, 0, 0], len: 0 }]);
    expect(parseEntry('::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff')).toHaveLength(1);
  });
  it('refuses bad entries with AddrError', () => {
    for (const bad of ['10.0.0.0/33', '::/129', '10.0.0.0/', '10.0.0.0/x', '10.0.0.5-10.0.0.1', '10.0.0.1-::1', 'host']) {
      expect(() => parseEntry(bad), bad).toThrow(AddrError);
    }
  });
  it('a range covers exactly its addresses', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.integer({ min: 0, max: 5000 }), fc.integer({ min: -10, max: 5010 }), (lo, span, probe) => {
        const hi = Math.min(lo + span, 2 ** 32 - 1);
        const a = { family: 4 as const, w: [lo, 0, 0, 0] };
        const b = { family: 4 as const, w: [hi, 0, 0, 0] };
        const ps = rangeToPrefixes(a, b);
        const x = lo + probe;
        if (x < 0 || x > 2 ** 32 - 1) return;
        const inside = ps.some((p) => prefixContains(p, { family: 4, w: [x, 0, 0, 0] }));
        expect(inside).toBe(x >= lo && x <= hi);
      }),
      { numRuns: 3000 },
    );
  });
});

/** Any IPv6 address as words, with long zero runs common (so "::" placement gets exercised). */
const v6Words = fc.array(fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 0xffff })), { minLength: 8, maxLength: 8 })
  .map((g) => [0, 1, 2, 3].map((k) => ((g[2 * k]! << 16) | g[2 * k + 1]!) >>> 0));

describe('formatting', () => {
  it('writes RFC 5952 text', () => {
    const f = (s: string) => formatAddr(parseAddr(s)!);
    expect(f('100.64.0.1')).toBe('100.64.0.1');
    expect(f('FD7A:115C:A1E0:0000:0000:0000:0000:0001')).toBe('fd7a:115c:a1e0::1');
    expect(f('0:0:0:0:0:0:0:0')).toBe('::');
    expect(f('1:0:0:1:0:0:0:1')).toBe('1:0:0:1::1'); // the longest run
    expect(f('1:0:0:1:0:0:1:1')).toBe('1::1:0:0:1:1'); // the first of equal runs
    expect(f('1:0:1:1:1:1:1:1')).toBe('1:0:1:1:1:1:1:1'); // one zero group stays
    expect(f('::ffff:1.2.3.4')).toBe('::ffff:102:304');
    expect(formatPrefix(parsePrefix('10.1.2.3/8')!)).toBe('10.0.0.0/8');
  });
  it('agrees with ipaddr.js, and text → address → text is the identity on canonical text', () => {
    fc.assert(
      fc.property(v6Words, (w) => {
        const text = formatAddr({ family: 6, w });
        expect(text).toBe(ipaddr.fromByteArray([...addrToBytes({ family: 6, w })]).toString());
        expect(parseAddr(text)).toEqual({ family: 6, w });
        expect(canonicalAddr(text.toUpperCase())).toBe(text);
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 32 - 1 }), (n) => {
        expect(parseIPv4(formatIPv4(n))).toBe(n);
      }),
    );
  });
  it('converts to and from bytes and numbers', () => {
    fc.assert(
      fc.property(v6Words, (w) => {
        const a = { family: 6 as const, w };
        expect(addrFromBytes(addrToBytes(a), 0, 6)).toEqual(a);
        expect(addrFromBig(6, addrToBig(a))).toEqual(a);
      }),
    );
    const v4 = parseAddr('192.168.1.20')!;
    expect([...addrToBytes(v4)]).toEqual([192, 168, 1, 20]);
    expect(addrToBig(v4)).toBe(0xc0a80114n);
    expect(addrFromBytes(Uint8Array.of(9, 9, 192, 168, 1, 20), 2, 4)).toEqual(v4);
  });
  it('names addresses the way callers spell them', () => {
    expect(hostPrefix('100.64.0.1')).toBe('100.64.0.1/32');
    expect(hostPrefix('fd7a::1')).toBe('fd7a::1/128');
    expect(hostPrefix('10.0.0.0/8')).toBe('10.0.0.0/8');
    expect(bareAddr('100.64.0.1/32')).toBe('100.64.0.1');
    expect(bareAddr('fd7a::1')).toBe('fd7a::1');
    expect(canonicalAddr('not an address')).toBe('not an address');
    expect([familyOf('1.2.3.4'), familyOf('::1'), familyOf('1.2.3.4/32'), familyOf('fe80::1%eth0')]).toEqual([4, 6, 0, 0]);
  });
});

describe('prefixes', () => {
  it('parses CIDR text, masking host bits; a bare address only when asked', () => {
    expect(parsePrefix('10.1.2.3/16')).toEqual({ family: 4, w: [0x0a010000, 0, 0, 0], len: 16 });
    expect(parsePrefix('10.1.2.3')).toBeNull();
    expect(parsePrefix('10.1.2.3', { bare: true })).toEqual({ family: 4, w: [0x0a010203, 0, 0, 0], len: 32 });
    expect(parsePrefix('fd7a::1', { bare: true })!.len).toBe(128);
    for (const bad of ['10.0.0.0/33', '::/129', '10.0.0.0/', '/8', '10.0.0.0/1/2', '10.0.0.0/-1', '10.0.0.0/0008', 'x/8']) expect(parsePrefix(bad), bad).toBeNull();
  });
  it('tells whether one prefix lies within another', () => {
    const p = (s: string) => parsePrefix(s)!;
    expect(prefixWithin(p('10.0.3.0/24'), p('10.0.0.0/16'))).toBe(true);
    expect(prefixWithin(p('10.0.0.0/16'), p('10.0.0.0/16'))).toBe(true);
    expect(prefixWithin(p('10.0.0.0/8'), p('10.0.0.0/16'))).toBe(false);
    expect(prefixWithin(p('10.1.0.0/24'), p('10.0.0.0/16'))).toBe(false);
    expect(prefixWithin(p('::/0'), p('0.0.0.0/0'))).toBe(false);
  });
});

describe('ranges', () => {
  it('parses addresses, prefixes and ranges', () => {
    expect(parseRange('100.64.0.1')).toEqual({ v6: false, lo: 0x64400001n, hi: 0x64400001n });
    expect(parseRange('fd7a:115c:a1e0::1')!.lo).toBe(0xfd7a115ca1e000000000000000000001n);
    expect(parseRange('::ffff:1.2.3.4')!.lo).toBe(0xffff01020304n);
    expect(parseRange('10.1.2.3/16')).toEqual({ v6: false, lo: 0x0a010000n, hi: 0x0a01ffffn });
    expect(parseRange('100.64.0.0-100.115.91.255')).toEqual({ v6: false, lo: 0x64400000n, hi: 0x64735bffn });
    expect(parseRange('fd7a:115c:a1e0::/48')!.hi).toBe(0xfd7a115ca1e0ffffffffffffffffffffn);
    for (const bad of ['1.2.3', '1.2.3.256', '010.0.0.1', '1::2::3', 'x', '10.0.0.0/33', '2.0.0.0-1.0.0.0', '1.2.3.4-::1', '', '*']) expect(parseRange(bad), bad).toBeNull();
    expect(entryRanges('*')!.map((r) => isFullRange(r))).toEqual([true, true]);
    expect(entryRanges('nonsense')).toBeNull();
  });
  it('compares ranges', () => {
    const r = (s: string) => parseRange(s)!;
    expect(rangesOverlap(r('10.0.0.0/8'), r('10.33.0.0/16'))).toBe(true);
    expect(rangesOverlap(r('10.0.0.0/8'), r('11.0.0.0/8'))).toBe(false);
    expect(rangesOverlap(r('::/0'), r('10.0.0.0/8'))).toBe(false);
    expect(rangeContains(r('10.0.0.0/8'), r('10.1.0.0/16'))).toBe(true);
    expect(rangeContains(r('10.1.0.0/16'), r('10.0.0.0/8'))).toBe(false);
    expect(isFullRange(r('0.0.0.0/0')) && isFullRange(r('::/0')) && !isFullRange(r('0.0.0.0/1'))).toBe(true);
  });
  it('writes a range as the fewest CIDRs, single addresses bare', () => {
    expect(rangeToCidrs(parseRange('10.0.0.5-10.0.0.15')!)).toEqual(['10.0.0.5', '10.0.0.6/31', '10.0.0.8/29']);
    expect(rangeToCidrs(parseRange('0.0.0.0-255.255.255.255')!)).toEqual(['0.0.0.0/0']);
    expect(rangeToCidrs(parseRange('fd7a::1-fd7a::3')!)).toEqual(['fd7a::1', 'fd7a::2/127']);
    expect(rangeToCidrs(parseRange('::/0')!)).toEqual(['::/0']);
  });
  it('CIDRs of a range cover exactly the range, with the fewest aligned blocks', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }), fc.bigInt({ min: 0n, max: 1n << 70n }), fc.bigInt({ min: -3n, max: 3n }), (lo, span, d) => {
        const max = (1n << 128n) - 1n;
        const hi = lo + span > max ? max : lo + span;
        const cidrs = rangeToCidrs({ v6: true, lo, hi });
        const rs = cidrs.map((c) => parseRange(c)!);
        // Contiguous, in order, from lo to hi.
        expect(rs[0]!.lo).toBe(lo);
        expect(rs[rs.length - 1]!.hi).toBe(hi);
        for (let i = 1; i < rs.length; i++) expect(rs[i]!.lo).toBe(rs[i - 1]!.hi + 1n);
        // No two neighbours could be one block (else the cover is not the smallest).
        for (let i = 1; i < rs.length; i++) {
          const a = rs[i - 1]!, b = rs[i]!;
          const size = a.hi - a.lo + 1n;
          expect(size === b.hi - b.lo + 1n && a.lo % (2n * size) === 0n).toBe(false);
        }
        for (const x of [lo + d, hi + d]) {
          if (x < 0n || x > max) continue;
          expect(entriesContain(cidrs, formatAddr(addrFromBig(6, x)))).toBe(x >= lo && x <= hi);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('entriesContain', () => {
  it('answers "do these SrcIPs contain this address"', () => {
    const src = ['100.64.0.1', '10.0.0.0/8', '192.168.0.1-192.168.0.9', 'fd7a:115c:a1e0::/48', 'garbage'];
    expect(entriesContain(src, '100.64.0.1')).toBe(true);
    expect(entriesContain(src, '100.64.0.1/32')).toBe(true);
    expect(entriesContain(src, '100.64.0.2')).toBe(false);
    expect(entriesContain(src, '10.200.0.1')).toBe(true);
    expect(entriesContain(src, '192.168.0.9')).toBe(true);
    expect(entriesContain(src, '192.168.0.10')).toBe(false);
    expect(entriesContain(src, 'FD7A:115C:A1E0::99')).toBe(true);
    expect(entriesContain(src, 'garbage')).toBe(false);
    expect(entriesContain(['*'], '::1')).toBe(true);
    expect(entriesContain(['*'], 'nonsense')).toBe(false);
    expect(entriesContain([42 as unknown as string, '1.2.3.4'], '1.2.3.4')).toBe(true);
  });
  it('agrees with the filter\'s prefixes on random entries and addresses', () => {
    const entry = fc.oneof(
      fc.integer({ min: 0, max: 2 ** 32 - 1 }).map(formatIPv4),
      fc.tuple(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.integer({ min: 0, max: 32 })).map(([n, l]) => `${formatIPv4(n)}/${l}`),
      fc.tuple(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.integer({ min: 0, max: 1 << 20 })).map(([n, s]) => `${formatIPv4(n)}-${formatIPv4(Math.min(n + s, 2 ** 32 - 1))}`),
    );
    fc.assert(
      fc.property(fc.array(entry, { maxLength: 4 }), fc.integer({ min: 0, max: 2 ** 32 - 1 }), (entries, n) => {
        const a = { family: 4 as const, w: [n, 0, 0, 0] };
        const byPrefixes = entries.some((e) => parseEntry(e).some((p) => prefixContains(p, a)));
        expect(entriesContain(entries, formatIPv4(n))).toBe(byPrefixes);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('the tailnet\'s ranges', () => {
  it('knows the CGNAT and ULA ranges and the service addresses', () => {
    expect(TAILNET_ROUTES).toEqual(['100.64.0.0/10', 'fd7a:115c:a1e0::/48']);
    const inside = (s: string) => isTailnetAddr(parseAddr(s)!);
    expect(['100.64.0.0', '100.127.255.255', SERVICE_IPV4, SERVICE_IPV6, 'fd7a:115c:a1e0:ffff::1'].every(inside)).toBe(true);
    expect(['100.63.255.255', '100.128.0.0', '10.0.0.1', 'fd7a:115c:a1e1::1', '::1'].some(inside)).toBe(false);
    expect(tailnetIPv6For(parseIPv4('100.100.2.3')!)).toBe('fd7a:115c:a1e0::6464:203');
  });
  it('writes "every device" as the CGNAT range without the ChromeOS VM range, and the ULA prefix', () => {
    const src = TAILNET_SOURCES;
    expect(entriesContain(src, '100.64.0.1') && entriesContain(src, '100.115.91.255') && entriesContain(src, '100.115.94.0')).toBe(true);
    expect(entriesContain(src, '100.115.92.0') || entriesContain(src, '100.115.93.255') || entriesContain(src, '100.128.0.0')).toBe(false);
    expect(entriesContain(src, 'fd7a:115c:a1e0::1')).toBe(true);
  });
});
