import { describe, expect, it } from 'vitest';
import { diffFilters } from './semantic.js';

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
});
