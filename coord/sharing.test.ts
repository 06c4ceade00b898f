import { describe, expect, it } from 'vitest';
import type { FilterRule } from '../wire/types.js';
import { carveSources, excludedOf, rulesBetween, sourcesContain } from './sharing.js';

const ALL: FilterRule = { SrcIPs: ['100.64.0.0/10', 'fd7a:115c:a1e0::/48'], DstPorts: [{ IP: '*', Ports: { First: 0, Last: 65535 } }] };
const D = ['100.90.1.7', 'fd7a:115c:a1e0::5a01:107'];

describe('carveSources', () => {
  it('removes the shared device from a tailnet-wide source and keeps every other address', () => {
    const [r] = carveSources([ALL], excludedOf(D.map((a) => a + (a.includes(':') ? '/128' : '/32'))));
    for (const a of D) expect(sourcesContain(r!.SrcIPs, a)).toBe(false);
    for (const a of ['100.64.0.0', '100.90.1.6', '100.90.1.8', '100.127.255.255', 'fd7a:115c:a1e0::', 'fd7a:115c:a1e0::5a01:106', 'fd7a:115c:a1e0:ffff:ffff:ffff:ffff:ffff']) {
      expect(sourcesContain(r!.SrcIPs, a), a).toBe(true);
    }
    expect(sourcesContain(r!.SrcIPs, '100.128.0.0')).toBe(false);
    expect(r!.SrcIPs.length).toBe(22 + 80); // one CIDR per bit below the prefix length
    expect(r!.DstPorts).toBe(ALL.DstPorts);
  });

  it('splits "*", ranges and drops an exact match; leaves rules without the address as they are', () => {
    const rules: FilterRule[] = [
      { SrcIPs: ['*'], DstPorts: ALL.DstPorts },
      { SrcIPs: ['100.90.1.0-100.90.1.9'], DstPorts: ALL.DstPorts },
      { SrcIPs: ['100.90.1.7'], DstPorts: ALL.DstPorts },
      { SrcIPs: ['100.64.0.1', '100.90.1.7'], DstPorts: ALL.DstPorts },
    ];
    const out = carveSources(rules, excludedOf(D));
    expect(out).toHaveLength(3); // the rule that had only the shared device is gone
    expect(sourcesContain(out[0]!.SrcIPs, '8.8.8.8')).toBe(true);
    expect(sourcesContain(out[0]!.SrcIPs, D[0]!)).toBe(false);
    expect(sourcesContain(out[0]!.SrcIPs, D[1]!)).toBe(false);
    expect(out[1]!.SrcIPs).toEqual(['100.90.1.0/30', '100.90.1.4/31', '100.90.1.6', '100.90.1.8/31']);
    expect(out[2]!.SrcIPs).toEqual(['100.64.0.1']);
    const untouched = [{ SrcIPs: ['100.64.0.1'], DstPorts: ALL.DstPorts }];
    expect(carveSources(untouched, excludedOf(D))).toBe(untouched);
    expect(carveSources(rules, excludedOf([]))).toBe(rules);
  });
});

describe('rulesBetween', () => {
  it('narrows sources to the device and destinations to the shared device, keeping ports and protocols', () => {
    const rules: FilterRule[] = [
      { SrcIPs: ['*'], DstPorts: [{ IP: '*', Ports: { First: 22, Last: 22 } }], IPProto: [6] },
      { SrcIPs: ['100.64.0.0/10'], DstPorts: [{ IP: '100.64.0.0/10', Ports: { First: 80, Last: 80 } }, { IP: '100.64.0.9', Ports: { First: 81, Last: 81 } }] },
      { SrcIPs: ['100.64.0.5'], DstPorts: [{ IP: '*', Ports: { First: 443, Last: 443 } }] },
      { SrcIPs: ['*'], CapGrant: [{ Dsts: ['*'], CapMap: {} }] },
    ];
    const out = rulesBetween(rules, ['100.64.0.2/32', 'fd7a:115c:a1e0::2/128'], D);
    expect(out).toEqual([
      { SrcIPs: ['100.64.0.2', 'fd7a:115c:a1e0::2'], DstPorts: [{ IP: D[0], Ports: { First: 22, Last: 22 } }, { IP: D[1], Ports: { First: 22, Last: 22 } }], IPProto: [6] },
      { SrcIPs: ['100.64.0.2'], DstPorts: [{ IP: D[0], Ports: { First: 80, Last: 80 } }] },
    ]);
  });
});

