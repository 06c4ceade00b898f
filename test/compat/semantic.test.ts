import { describe, expect, it } from 'vitest';
import { diffFilters, parseCapturedAddress } from './semantic.js';

const r = (src: string[], ip: string, first: number, last: number, proto?: number[]) => ({
  SrcIPs: src, DstPorts: [{ IP: ip, Ports: { First: first, Last: last } }], ...(proto ? { IPProto: proto } : {}),
});

describe('semantic filter comparison', () => {
  it('ignores ranges versus prefixes, splitting and order', () => {
    expect(diffFilters([r(['100.64.0.0-100.127.255.255'], '*', 0, 65535)], [r(['100.64.0.0/10'], '*', 0, 65535)])).toEqual([]);
    expect(diffFilters(
      [r(['100.64.0.1', '100.64.0.2'], '100.64.0.9', 20, 30)],
      [r(['100.64.0.2'], '100.64.0.9/32', 20, 25), r(['100.64.0.1'], '100.64.0.9', 20, 30), r(['100.64.0.2'], '100.64.0.9', 26, 30)],
    )).toEqual([]);
    expect(diffFilters([r(['1.2.3.4'], '*', 1, 1)], [r(['1.2.3.4'], '*', 1, 1, [6, 17, 1, 58])])).toEqual([]);
  });

  it('sees a missing source, port or protocol', () => {
    expect(diffFilters([r(['100.64.0.1', '100.64.0.2'], '*', 22, 22)], [r(['100.64.0.1'], '*', 22, 22)])).toHaveLength(4); // once per default protocol
    expect(diffFilters([r(['100.64.0.1'], '*', 22, 23)], [r(['100.64.0.1'], '*', 22, 22)])).not.toEqual([]);
    expect(diffFilters([r(['100.64.0.1'], '*', 22, 22)], [r(['100.64.0.1'], '*', 22, 22, [6])])).not.toEqual([]);
    expect(diffFilters([], [r(['100.64.0.1'], '100.64.0.2', 1, 1)])).not.toEqual([]);
  });

  it('compares capability grants by name, value, sources and destinations', () => {
    const cap = (src: string[], dsts: string[], capMap: Record<string, unknown[] | null>) => ({ SrcIPs: src, CapGrant: [{ Dsts: dsts, CapMap: capMap }] });
    expect(diffFilters([cap(['1.1.1.1'], ['100.64.0.1/32'], { 'a.com/x': [{ v: 1 }, { v: 2 }] })],
      [cap(['1.1.1.1'], ['100.64.0.1/32'], { 'a.com/x': [{ v: 2 }] }), cap(['1.1.1.1'], ['100.64.0.1'], { 'a.com/x': [{ v: 1 }] })])).toEqual([]);
    expect(diffFilters([cap(['1.1.1.1'], ['100.64.0.1/32'], { 'a.com/x': [{ v: 1 }] })], [cap(['1.1.1.1'], ['100.64.0.1/32'], { 'a.com/x': [{ v: 3 }] })])).not.toEqual([]);
    expect(diffFilters([cap(['1.1.1.1'], ['100.64.0.1/32'], { 'a.com/y': null })], [])).not.toEqual([]);
  });

  it("reads the captured side with its own parser: addresses, prefixes (host bits masked), ranges, IPv6 forms", () => {
    const V6 = 1n << 32n;
    expect(parseCapturedAddress('100.64.0.1')).toEqual([0x64400001n, 0x64400001n]);
    expect(parseCapturedAddress('100.64.0.0/10')).toEqual([0x64400000n, 0x647fffffn]);
    expect(parseCapturedAddress('100.64.1.7/24')).toEqual([0x64400100n, 0x644001ffn]);
    expect(parseCapturedAddress('0.0.0.0/0')).toEqual([0n, 0xffffffffn]);
    expect(parseCapturedAddress('100.64.0.0-100.115.91.255')).toEqual([0x64400000n, 0x64735bffn]);
    expect(parseCapturedAddress('fd7a:115c:a1e0::1')).toEqual([V6 + 0xfd7a115ca1e000000000000000000001n, V6 + 0xfd7a115ca1e000000000000000000001n]);
    expect(parseCapturedAddress('fd7a:115c:a1e0::/48')).toEqual([V6 + 0xfd7a115ca1e000000000000000000000n, V6 + 0xfd7a115ca1e0ffffffffffffffffffffn]);
    expect(parseCapturedAddress('::/0')).toEqual([V6, V6 + (1n << 128n) - 1n]);
    expect(parseCapturedAddress('::ffff:1.2.3.4')).toEqual([V6 + 0xffff01020304n, V6 + 0xffff01020304n]);
    expect(parseCapturedAddress('1:2:3:4:5:6:7:8/128')).toEqual([V6 + 0x00010002000300040005000600070008n, V6 + 0x00010002000300040005000600070008n]);
    expect(() => parseCapturedAddress('100.64.0.300')).toThrow(/not an IP address/);
    expect(() => parseCapturedAddress('100.64.0.0/33')).toThrow(/bad length/);
  });
});
