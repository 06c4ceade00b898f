// The outbound check towards quarantined (shared-in) peers: the recipient network's own policy,
// enforced on the way out. Replies and continuing flows pass; new connections need an outbound rule.
import { describe, expect, it } from 'vitest';
import type { FilterRule } from '../wire/types.js';
import { craft, type PacketSpec } from './craft.js';
import { dropReasonName, Filter, FilterConfigError, type FilterConfig } from './index.js';

const FAM = {
  v4: { self: '100.64.0.1', shared: '100.90.0.7', other: '100.64.0.2', echo: 8, echoReply: 0, unreachable: 3 },
  v6: { self: 'fd7a:115c:a1e0::1', shared: 'fd7a:115c:a1e0::5a00:7', other: 'fd7a:115c:a1e0::2', echo: 128, echoReply: 129, unreachable: 1 },
} as const;

const ALLOW_22_AND_53: FilterRule[] = [
  { SrcIPs: [FAM.v4.self, FAM.v6.self], DstPorts: [{ IP: FAM.v4.shared, Ports: { First: 22, Last: 22 } }, { IP: FAM.v6.shared, Ports: { First: 22, Last: 22 } }] },
  { SrcIPs: [FAM.v4.self, FAM.v6.self], DstPorts: [{ IP: FAM.v4.shared, Ports: { First: 53, Last: 53 } }, { IP: FAM.v6.shared, Ports: { First: 53, Last: 53 } }], IPProto: [17] },
];

function setup(cfg: Partial<FilterConfig>) {
  const f = Filter.build({
    rules: [{ SrcIPs: ['*'], DstPorts: [{ IP: '*', Ports: { First: 0, Last: 65535 } }] }],
    localAddrs: [FAM.v4.self, FAM.v6.self],
    quarantined: [`${FAM.v4.shared}/32`, `${FAM.v6.shared}/128`],
    ...cfg,
  });
  const out = (spec: Partial<PacketSpec> & { src: string; dst: string }) => {
    const p = craft({ proto: 'tcp', ...spec });
    return dropReasonName(f.runOut(p, 0, p.length));
  };
  const inp = (spec: Partial<PacketSpec> & { src: string; dst: string }) => {
    const p = craft({ proto: 'tcp', ...spec });
    return dropReasonName(f.runIn(p, 0, p.length));
  };
  return { f, out, inp };
}

for (const [name, A] of Object.entries(FAM)) {
  describe(`outbound rules towards quarantined peers (${name})`, () => {
    it('lets a new TCP connection out only on an allowed port', () => {
      const { out, f } = setup({ outbound: ALLOW_22_AND_53 });
      expect(out({ src: A.self, dst: A.shared, dport: 22 })).toBe('accepted');
      expect(out({ src: A.self, dst: A.shared, dport: 80 })).toBe('shared-denied');
      // continuing segments (ACK, FIN, RST) of any connection pass
      expect(out({ src: A.self, dst: A.shared, dport: 80, flags: 0x10 })).toBe('accepted');
      expect(out({ src: A.self, dst: A.shared, dport: 80, flags: 0x12 })).toBe('accepted');
      expect(f.counters().out.dropped['shared-denied']).toBe(1);
    });

    it('checks UDP by protocol and port, and lets a started flow continue', () => {
      const { out, inp } = setup({ outbound: ALLOW_22_AND_53 });
      expect(out({ src: A.self, dst: A.shared, proto: 'udp', sport: 5000, dport: 53 })).toBe('accepted');
      expect(out({ src: A.self, dst: A.shared, proto: 'udp', sport: 5000, dport: 53 })).toBe('accepted');
      // the reply of the quarantined peer gets in (flow recorded)
      expect(inp({ src: A.shared, dst: A.self, proto: 'udp', sport: 53, dport: 5000 })).toBe('accepted');
      expect(out({ src: A.self, dst: A.shared, proto: 'udp', sport: 5001, dport: 54 })).toBe('shared-denied');
      // a denied packet records no flow: the peer cannot use it to get in
      expect(inp({ src: A.shared, dst: A.self, proto: 'udp', sport: 54, dport: 5001 })).toBe('quarantined');
      // TCP-only port 22 does not allow UDP 22 ... rule 0 has no IPProto: default includes UDP
      expect(out({ src: A.self, dst: A.shared, proto: 'udp', sport: 5002, dport: 22 })).toBe('accepted');
    });

    it('checks ICMP echo requests (ports ignored) and lets replies and errors out', () => {
      const { out } = setup({ outbound: ALLOW_22_AND_53 });
      expect(out({ src: A.self, dst: A.shared, proto: 'icmp', icmpType: A.echo })).toBe('accepted');
      const none = setup({ outbound: [] });
      expect(none.out({ src: A.self, dst: A.shared, proto: 'icmp', icmpType: A.echo })).toBe('shared-denied');
      expect(none.out({ src: A.self, dst: A.shared, proto: 'icmp', icmpType: A.echoReply })).toBe('accepted');
      expect(none.out({ src: A.self, dst: A.shared, proto: 'icmp', icmpType: A.unreachable })).toBe('accepted');
    });

    it('needs an all-ports entry naming the protocol for other protocols', () => {
      const { out } = setup({ outbound: ALLOW_22_AND_53 });
      expect(out({ src: A.self, dst: A.shared, proto: 47 })).toBe('shared-denied');
      const gre = setup({ outbound: [{ SrcIPs: ['*'], DstPorts: [{ IP: '*', Ports: { First: 0, Last: 65535 } }], IPProto: [47] }] });
      expect(gre.out({ src: A.self, dst: A.shared, proto: 47 })).toBe('accepted');
    });

    it('matches the source: a rule for another of our addresses does not apply', () => {
      const { out } = setup({ outbound: [{ SrcIPs: [A.other], DstPorts: [{ IP: '*', Ports: { First: 0, Last: 65535 } }] }] });
      expect(out({ src: A.self, dst: A.shared, dport: 22 })).toBe('shared-denied');
    });

    it('leaves packets to other peers alone, and does nothing without `outbound`', () => {
      const { out } = setup({ outbound: [] });
      expect(out({ src: A.self, dst: A.other, dport: 80 })).toBe('accepted');
      const plain = setup({});
      expect(plain.out({ src: A.self, dst: A.shared, dport: 80 })).toBe('accepted');
    });

    it('keeps the quarantine inbound whatever the outbound rules say', () => {
      const { inp } = setup({ outbound: [{ SrcIPs: ['*'], DstPorts: [{ IP: '*', Ports: { First: 0, Last: 65535 } }] }] });
      expect(inp({ src: A.shared, dst: A.self, dport: 22 })).toBe('quarantined');
      expect(inp({ src: A.shared, dst: A.self, dport: 22, flags: 0x12 })).toBe('accepted');
    });
  });
}

describe('outbound configuration', () => {
  it('refuses a bad outbound rule, naming it', () => {
    expect(() => setup({ outbound: [{ SrcIPs: ['nope'], DstPorts: [{ IP: '*', Ports: { First: 1, Last: 1 } }] }] })).toThrow(FilterConfigError);
  });

  it('keeps flows and counters across a swap that adds outbound rules', () => {
    const { f, out } = setup({});
    expect(out({ src: FAM.v4.self, dst: FAM.v4.shared, proto: 'udp', sport: 7000, dport: 9999 })).toBe('accepted');
    const g = Filter.build(
      { rules: [], localAddrs: [FAM.v4.self], quarantined: [FAM.v4.shared], outbound: [] },
      f,
    );
    const p = craft({ src: FAM.v4.self, dst: FAM.v4.shared, proto: 'udp', sport: 7000, dport: 9999 });
    expect(dropReasonName(g.runOut(p, 0, p.length))).toBe('accepted'); // a flow started before the swap continues
    const q = craft({ src: FAM.v4.self, dst: FAM.v4.shared, proto: 'udp', sport: 7001, dport: 9999 });
    expect(dropReasonName(g.runOut(q, 0, q.length))).toBe('shared-denied');
  });
});
