import { describe, expect, it } from 'vitest';
import type { FilterRule } from '../wire/types.js';
import { craft, type PacketSpec } from './craft.js';
import { capGrantsFor, DropReason, dropReasonName, Filter, FilterConfigError, type FilterConfig } from './index.js';

const FAMILIES = {
  v4: {
    self: '100.64.0.1',
    self2: '100.64.0.5',
    peer: '100.64.0.2',
    stranger: '100.70.0.2',
    notLocal: '100.64.0.9',
    route: '10.1.0.0/16',
    inRoute: '10.1.2.3',
    mcast: '224.0.0.251',
    linkLocal: '169.254.10.1',
    range: '100.64.0.2-100.64.0.4',
    echoReply: 0,
    unreachable: 3,
    timeExceeded: 11,
    otherIcmp: 13, // timestamp request
  },
  v6: {
    self: 'fd7a:115c:a1e0::1',
    self2: 'fd7a:115c:a1e0::5',
    peer: 'fd7a:115c:a1e0::2',
    stranger: 'fd7a:115c:a1e0::99:2',
    notLocal: 'fd7a:115c:a1e0::9',
    route: 'fd00:1::/64',
    inRoute: 'fd00:1::1234',
    mcast: 'ff02::fb',
    linkLocal: 'fe80::1',
    range: 'fd7a:115c:a1e0::2-fd7a:115c:a1e0::4',
    echoReply: 129,
    unreachable: 1,
    timeExceeded: 3,
    otherIcmp: 139, // node information query
  },
} as const;

type Fam = (typeof FAMILIES)[keyof typeof FAMILIES];

function ports(IP: string, First: number, Last = First) {
  return { IP, Ports: { First, Last } };
}

/** A filter plus helpers to run crafted packets through it. */
function setup(cfg: Partial<FilterConfig> & { rules: FilterRule[] }, A: Fam, clock?: { now: number }) {
  const f = Filter.build({
    localAddrs: [FAMILIES.v4.self, FAMILIES.v4.self2, FAMILIES.v4.route, FAMILIES.v6.self, FAMILIES.v6.self2, FAMILIES.v6.route],
    ...cfg,
    ...(clock ? { flows: { clock: () => clock.now } } : {}),
  });
  const inp = (spec: Partial<PacketSpec>): string => {
    const p = craft({ src: A.peer, dst: A.self, proto: 'tcp', ...spec });
    return dropReasonName(f.runIn(p, 0, p.length));
  };
  const out = (spec: Partial<PacketSpec>): string => {
    const p = craft({ src: A.self, dst: A.peer, proto: 'udp', ...spec });
    return dropReasonName(f.runOut(p, 0, p.length));
  };
  return { f, inp, out };
}

describe.each(Object.entries(FAMILIES))('filter (%s)', (_name, A) => {
  const ssh: FilterRule = { SrcIPs: [A.peer], DstPorts: [ports(A.self, 22)] };

  describe('TCP', () => {
    it('accepts a SYN that a rule allows (source, destination, port, protocol)', () => {
      const { inp } = setup({ rules: [ssh] }, A);
      expect(inp({ dport: 22 })).toBe('accepted');
    });
    it('drops a SYN to another port, from another source, to another own address', () => {
      const { inp } = setup({ rules: [ssh] }, A);
      expect(inp({ dport: 23 })).toBe('no-rule');
      expect(inp({ src: A.stranger, dport: 22 })).toBe('no-rule');
      expect(inp({ dst: A.self2, dport: 22 })).toBe('no-rule');
    });
    it('port ranges are inclusive', () => {
      const { inp } = setup({ rules: [{ SrcIPs: [A.peer], DstPorts: [ports(A.self, 1000, 2000)] }] }, A);
      expect(inp({ dport: 999 })).toBe('no-rule');
      expect(inp({ dport: 1000 })).toBe('accepted');
      expect(inp({ dport: 2000 })).toBe('accepted');
      expect(inp({ dport: 2001 })).toBe('no-rule');
    });
    it('needs the protocol in IPProto', () => {
      const { inp } = setup({ rules: [{ ...ssh, IPProto: [17] }] }, A);
      expect(inp({ dport: 22 })).toBe('no-rule');
      const t = setup({ rules: [{ ...ssh, IPProto: [6] }] }, A);
      expect(t.inp({ dport: 22 })).toBe('accepted');
    });
    it('accepts packets that are not a bare SYN from anyone', () => {
      const { inp } = setup({ rules: [] }, A);
      expect(inp({ src: A.stranger, dport: 5, flags: 0x10 })).toBe('accepted'); // ACK
      expect(inp({ src: A.stranger, dport: 5, flags: 0x12 })).toBe('accepted'); // SYN-ACK
      expect(inp({ src: A.stranger, dport: 5, flags: 0x04 })).toBe('accepted'); // RST
      expect(inp({ src: A.stranger, dport: 5, flags: 0x11 })).toBe('accepted'); // FIN-ACK
      expect(inp({ src: A.stranger, dport: 5, flags: 0x02 })).toBe('no-rule'); // SYN
      expect(inp({ src: A.stranger, dport: 5, flags: 0x03 })).toBe('no-rule'); // SYN-FIN still opens
    });
  });

  describe('rule sources and destinations', () => {
    it('"*" source and destination', () => {
      const { inp } = setup({ rules: [{ SrcIPs: ['*'], DstPorts: [ports('*', 80)] }] }, A);
      expect(inp({ src: A.stranger, dport: 80 })).toBe('accepted');
      expect(inp({ src: A.stranger, dst: A.inRoute, dport: 80 })).toBe('accepted');
      expect(inp({ src: A.stranger, dport: 81 })).toBe('no-rule');
    });
    it('CIDR source, range source and CIDR destination', () => {
      const { inp } = setup(
        {
          rules: [
            { SrcIPs: [A.range], DstPorts: [ports(A.route, 443)] },
            { SrcIPs: [A === FAMILIES.v4 ? '100.70.0.0/16' : 'fd7a:115c:a1e0::99:0/112'], DstPorts: [ports(A.self, 25)] },
          ],
        },
        A,
      );
      expect(inp({ dst: A.inRoute, dport: 443 })).toBe('accepted');
      expect(inp({ dst: A.self, dport: 443 })).toBe('no-rule');
      expect(inp({ src: A.stranger, dport: 25 })).toBe('accepted');
      expect(inp({ src: A.stranger, dst: A.inRoute, dport: 443 })).toBe('no-rule');
    });
    it('rules with only CapGrant match no packets', () => {
      const { inp } = setup({ rules: [{ SrcIPs: ['*'], CapGrant: [{ Dsts: ['*'], CapMap: { 'x/y': [] } }] }] }, A);
      expect(inp({ dport: 22 })).toBe('no-rule');
    });
  });

  describe('UDP and SCTP', () => {
    it('need a rule or a tracked flow', () => {
      const { inp, out } = setup({ rules: [{ SrcIPs: [A.peer], DstPorts: [ports(A.self, 53)] }] }, A);
      expect(inp({ proto: 'udp', sport: 5353, dport: 53 })).toBe('accepted');
      expect(inp({ proto: 'udp', sport: 53, dport: 40000 })).toBe('no-rule');
      expect(out({ proto: 'udp', sport: 40000, dport: 53 })).toBe('accepted');
      expect(inp({ proto: 'udp', sport: 53, dport: 40000 })).toBe('accepted');
      // Only that exact flow: other port, other peer, other protocol stay closed.
      expect(inp({ proto: 'udp', sport: 53, dport: 40001 })).toBe('no-rule');
      expect(inp({ proto: 'udp', sport: 54, dport: 40000 })).toBe('no-rule');
      expect(inp({ src: A.stranger, proto: 'udp', sport: 53, dport: 40000 })).toBe('no-rule');
      expect(inp({ proto: 'sctp', sport: 53, dport: 40000 })).toBe('no-rule');
    });
    it('SCTP flows and rules', () => {
      const { inp, out } = setup({ rules: [{ SrcIPs: [A.peer], DstPorts: [ports(A.self, 3868)], IPProto: [132] }] }, A);
      expect(inp({ proto: 'sctp', sport: 9, dport: 3868 })).toBe('accepted');
      expect(inp({ proto: 'sctp', sport: 9, dport: 3869 })).toBe('no-rule');
      out({ proto: 'sctp', sport: 3869, dport: 9 });
      expect(inp({ proto: 'sctp', sport: 9, dport: 3869 })).toBe('accepted');
    });
    it('flows expire when idle, and replies keep them alive', () => {
      const clock = { now: 1000 };
      const { inp, out } = setup({ rules: [] }, A, clock);
      out({ sport: 40000, dport: 53 });
      clock.now += 100_000;
      expect(inp({ proto: 'udp', sport: 53, dport: 40000 })).toBe('accepted'); // refreshes
      clock.now += 100_000;
      expect(inp({ proto: 'udp', sport: 53, dport: 40000 })).toBe('accepted');
      clock.now += 120_001;
      expect(inp({ proto: 'udp', sport: 53, dport: 40000 })).toBe('no-rule');
    });
  });

  describe('ICMP', () => {
    it('echo requests need a rule for source and destination, ports ignored', () => {
      const { inp } = setup({ rules: [ssh] }, A);
      expect(inp({ proto: 'icmp' })).toBe('accepted');
      expect(inp({ proto: 'icmp', src: A.stranger })).toBe('no-rule');
      expect(inp({ proto: 'icmp', dst: A.self2 })).toBe('no-rule');
      expect(inp({ proto: 'icmp', icmpType: A.otherIcmp, src: A.stranger })).toBe('no-rule');
      expect(inp({ proto: 'icmp', icmpType: A.otherIcmp })).toBe('accepted');
    });
    it('echo replies and errors are accepted from anyone', () => {
      const { inp } = setup({ rules: [] }, A);
      for (const t of [A.echoReply, A.unreachable, A.timeExceeded]) {
        expect(inp({ proto: 'icmp', icmpType: t, src: A.stranger })).toBe('accepted');
      }
    });
    it('a rule without ICMP in IPProto does not allow pings', () => {
      const { inp } = setup({ rules: [{ ...ssh, IPProto: [6] }] }, A);
      expect(inp({ proto: 'icmp' })).toBe('no-rule');
    });
  });

  describe('other protocols', () => {
    it('need a rule naming the protocol with all ports', () => {
      const gre = { proto: 47 } as const;
      expect(setup({ rules: [ssh] }, A).inp(gre)).toBe('no-rule');
      expect(setup({ rules: [{ SrcIPs: [A.peer], DstPorts: [ports(A.self, 0, 65535)] }] }, A).inp(gre)).toBe('no-rule');
      expect(setup({ rules: [{ ...ssh, IPProto: [47] }] }, A).inp(gre)).toBe('no-rule');
      const ok = setup({ rules: [{ SrcIPs: [A.peer], DstPorts: [ports(A.self, 0, 65535)], IPProto: [47] }] }, A);
      expect(ok.inp(gre)).toBe('accepted');
      expect(ok.inp({ ...gre, src: A.stranger })).toBe('no-rule');
    });
  });

  describe('destinations', () => {
    it('must be own addresses or routes', () => {
      const { inp } = setup({ rules: [{ SrcIPs: ['*'], DstPorts: [ports('*', 0, 65535)] }] }, A);
      expect(inp({ dst: A.notLocal })).toBe('not-local');
      expect(inp({ dst: A.notLocal, flags: 0x10 })).toBe('not-local');
      expect(inp({ dst: A.inRoute })).toBe('accepted');
    });
    it('multicast and link-local are dropped both ways', () => {
      const { f, inp } = setup({ rules: [{ SrcIPs: ['*'], DstPorts: [ports('*', 0, 65535)] }] }, A);
      expect(inp({ dst: A.mcast, proto: 'udp' })).toBe('multicast');
      expect(inp({ dst: A.linkLocal })).toBe('link-local');
      const p = craft({ src: A.self, dst: A.mcast, proto: 'udp' });
      expect(f.runOut(p, 0, p.length)).toBe(DropReason.MULTICAST);
      const q = craft({ src: A.self, dst: A.linkLocal, proto: 'udp' });
      expect(f.runOut(q, 0, q.length)).toBe(DropReason.LINK_LOCAL);
    });
  });

  describe('quarantine', () => {
    it('lets only replies in from a quarantined peer, whatever the rules say', () => {
      const all: FilterRule = { SrcIPs: ['*'], DstPorts: [ports('*', 0, 65535)] };
      const { inp, out } = setup({ rules: [all], quarantined: [A.peer] }, A);
      expect(inp({ dport: 22 })).toBe('quarantined');
      expect(inp({ dport: 22, flags: 0x12 })).toBe('accepted');
      expect(inp({ dport: 22, flags: 0x10 })).toBe('accepted');
      expect(inp({ proto: 'udp', sport: 53, dport: 40000 })).toBe('quarantined');
      expect(out({ sport: 40000, dport: 53 })).toBe('accepted');
      expect(inp({ proto: 'udp', sport: 53, dport: 40000 })).toBe('accepted');
      expect(inp({ proto: 'icmp' })).toBe('quarantined');
      expect(inp({ proto: 'icmp', icmpType: A.echoReply })).toBe('accepted');
      expect(inp({ proto: 47 })).toBe('quarantined');
      // Others are unaffected.
      expect(inp({ src: A.stranger, dport: 22 })).toBe('accepted');
    });
  });

  describe('swapping filters', () => {
    it('a new filter inherits flows and counters', () => {
      const { f, out } = setup({ rules: [] }, A);
      out({ sport: 40000, dport: 53 });
      const g = Filter.build({ rules: [], localAddrs: [A.self] }, f);
      const p = craft({ src: A.peer, dst: A.self, proto: 'udp', sport: 53, dport: 40000 });
      expect(g.runIn(p, 0, p.length)).toBe(DropReason.ACCEPT);
      const q = craft({ src: A.peer, dst: A.self, proto: 'tcp', dport: 22 });
      expect(g.runIn(q, 0, q.length)).toBe(DropReason.NO_RULE);
      const c = g.counters();
      expect(c.out.accepted).toBe(1);
      expect(c.in.accepted).toBe(1);
      expect(c.dropped['no-rule']).toBe(1);
      expect(c.accepted).toBe(2);
      expect(f.counters()).toEqual(c); // shared, not copied
    });
  });

  describe('parsing', () => {
    const rules = [{ SrcIPs: ['*'], DstPorts: [ports('*', 0, 65535)] }];
    it('reads a packet inside a larger batch buffer', () => {
      const { f } = setup({ rules: [ssh] }, A);
      const a = craft({ src: A.peer, dst: A.self, proto: 'tcp', dport: 22 });
      const b = craft({ src: A.peer, dst: A.self, proto: 'tcp', dport: 23 });
      const batch = new Uint8Array(7 + a.length + b.length + 5).fill(0xee);
      batch.set(a, 7);
      batch.set(b, 7 + a.length);
      expect(f.runIn(batch, 7, a.length)).toBe(DropReason.ACCEPT);
      expect(f.runIn(batch, 7 + a.length, b.length)).toBe(DropReason.NO_RULE);
      expect(f.runIn(batch, 7 + a.length, b.length + 6)).toBe(DropReason.MALFORMED); // past the buffer
      expect(f.runIn(batch, -1, 10)).toBe(DropReason.MALFORMED);
    });
    it('drops truncated packets', () => {
      const { f } = setup({ rules }, A);
      const p = craft({ src: A.peer, dst: A.self, proto: 'tcp', dport: 22 });
      expect(f.runIn(p, 0, 0)).toBe(DropReason.TOO_SHORT);
      for (let n = 1; n < p.length; n++) expect(f.runIn(p, 0, n)).toBe(DropReason.TOO_SHORT);
      const u = craft({ src: A.peer, dst: A.self, proto: 'udp', payload: 4 });
      expect(f.runIn(u, 0, u.length - 1)).toBe(DropReason.TOO_SHORT);
    });
    it('drops inconsistent headers', () => {
      const { f } = setup({ rules }, A);
      const p = craft({ src: A.peer, dst: A.self, proto: 'tcp', dport: 22 });
      const bad = p.slice();
      bad[0] = 0x55; // version 5
      expect(f.runIn(bad, 0, bad.length)).toBe(DropReason.MALFORMED);
      const l4 = A === FAMILIES.v4 ? 20 : 40;
      const tcp = p.slice();
      tcp[l4 + 12] = 0x40; // data offset 16 bytes
      expect(f.runIn(tcp, 0, tcp.length)).toBe(DropReason.MALFORMED);
      const u = craft({ src: A.peer, dst: A.self, proto: 'udp', payload: 4 });
      u[l4 + 5] = 4; // UDP length below 8
      expect(f.runIn(u, 0, u.length)).toBe(DropReason.MALFORMED);
    });
    it('trailing bytes after the IP packet are ignored', () => {
      const { f } = setup({ rules: [ssh] }, A);
      const p = craft({ src: A.peer, dst: A.self, proto: 'tcp', dport: 22 });
      const padded = new Uint8Array(p.length + 10);
      padded.set(p);
      expect(f.runIn(padded, 0, padded.length)).toBe(DropReason.ACCEPT);
    });
  });
});

describe('IPv4 specifics', () => {
  const A = FAMILIES.v4;
  it('bad IHL and total length', () => {
    const { f } = setup({ rules: [] }, A);
    const p = craft({ src: A.peer, dst: A.self, proto: 'tcp', flags: 0x10 });
    const ihl = p.slice();
    ihl[0] = 0x44;
    expect(f.runIn(ihl, 0, ihl.length)).toBe(DropReason.MALFORMED);
    const total = p.slice();
    total[3] = 10; // total length below the header
    expect(f.runIn(total, 0, total.length)).toBe(DropReason.MALFORMED);
    const long = p.slice();
    long[3] = p.length + 1; // claims more than we have
    expect(f.runIn(long, 0, long.length)).toBe(DropReason.TOO_SHORT);
  });
  it('a non-first fragment is accepted; a tiny-offset one or a tiny first one is dropped', () => {
    const { f } = setup({ rules: [] }, A);
    const later = craft({ src: A.stranger, dst: A.self, proto: 'tcp', fragOffset: 1480, payload: 100 });
    expect(f.runIn(later, 0, later.length)).toBe(DropReason.ACCEPT);
    const tinyOffset = craft({ src: A.stranger, dst: A.self, proto: 'tcp', fragOffset: 8, payload: 100 });
    expect(f.runIn(tinyOffset, 0, tinyOffset.length)).toBe(DropReason.FRAGMENT);
    const tinyFirst = craft({ src: A.stranger, dst: A.self, proto: 'tcp', flags: 0x10, moreFragments: true, payload: 8 });
    expect(f.runIn(tinyFirst, 0, tinyFirst.length)).toBe(DropReason.FRAGMENT);
    const first = craft({ src: A.stranger, dst: A.self, proto: 'tcp', moreFragments: true, payload: 1000 });
    expect(f.runIn(first, 0, first.length)).toBe(DropReason.NO_RULE); // judged like a whole packet
    const notLocal = craft({ src: A.stranger, dst: A.notLocal, proto: 'tcp', fragOffset: 1480, payload: 100 });
    expect(f.runIn(notLocal, 0, notLocal.length)).toBe(DropReason.NOT_LOCAL);
  });
});

describe('IPv6 specifics', () => {
  const A = FAMILIES.v6;
  const ssh: FilterRule = { SrcIPs: [A.peer], DstPorts: [ports(A.self, 22)] };
  it('walks hop-by-hop, routing, destination-options and fragment headers', () => {
    const { inp } = setup({ rules: [ssh] }, A);
    expect(inp({ dport: 22, ext: [0, 43, 60] })).toBe('accepted');
    expect(inp({ dport: 23, ext: [0, 43, 60] })).toBe('no-rule');
    expect(inp({ dport: 22, ext: [0, 44] })).toBe('accepted'); // an unfragmented fragment header
    expect(inp({ dport: 22, ext: [60, 44], moreFragments: true, payload: 200 })).toBe('accepted');
    expect(inp({ src: A.stranger, dport: 22, ext: [44], moreFragments: true, payload: 10 })).toBe('fragment');
    expect(inp({ src: A.stranger, ext: [0, 44], fragOffset: 1232, payload: 100 })).toBe('accepted');
    expect(inp({ src: A.stranger, ext: [44], fragOffset: 16, payload: 100 })).toBe('fragment');
  });
  it('bounds the extension header walk', () => {
    const { inp } = setup({ rules: [ssh] }, A);
    expect(inp({ dport: 22, ext: [0, 60, 60, 60, 60, 60, 60, 60] })).toBe('accepted');
    expect(inp({ dport: 22, ext: [0, 60, 60, 60, 60, 60, 60, 60, 60] })).toBe('malformed');
  });
  it('a truncated extension header is dropped', () => {
    const { f } = setup({ rules: [ssh] }, A);
    const p = craft({ src: A.peer, dst: A.self, proto: 'tcp', dport: 22, ext: [0] });
    p[41] = 3; // claims 32 bytes
    expect(f.runIn(p, 0, p.length)).toBe(DropReason.TOO_SHORT);
    const q = craft({ src: A.peer, dst: A.self, proto: 'tcp', dport: 22 });
    q[5] = q[5]! + 1; // payload length beyond the packet
    expect(f.runIn(q, 0, q.length)).toBe(DropReason.TOO_SHORT);
  });
  it('ICMPv6 packet-too-big is an error (accepted), ICMP proto 1 in IPv6 is just another protocol', () => {
    const { inp } = setup({ rules: [ssh] }, A);
    expect(inp({ proto: 'icmp', icmpType: 2, src: A.stranger })).toBe('accepted');
    expect(inp({ proto: 1 })).toBe('no-rule');
  });
});

describe('configuration', () => {
  it('refuses bad entries, naming them', () => {
    const base = { localAddrs: ['100.64.0.1'] };
    expect(() => Filter.build({ ...base, rules: [{ SrcIPs: ['100.64.0.300'], DstPorts: [ports('*', 1)] }] })).toThrow(
      /rule 0 SrcIPs\[0\]: invalid address "100.64.0.300"/,
    );
    expect(() => Filter.build({ ...base, rules: [{ SrcIPs: ['*'], DstPorts: [ports('*', 5, 4)] }] })).toThrow(
      /rule 0 DstPorts\[0\]: invalid port range/,
    );
    expect(() => Filter.build({ ...base, rules: [{ SrcIPs: ['*'], DstPorts: [ports('1.2.3.0/33', 1)] }] })).toThrow(
      FilterConfigError,
    );
    expect(() => Filter.build({ rules: [], localAddrs: ['nope'] })).toThrow(/localAddrs\[0\]/);
    expect(() => Filter.build({ rules: [], localAddrs: [], quarantined: ['1.2.3.4-1.2.3.1'] })).toThrow(/quarantined\[0\]/);
    expect(() => Filter.build({ ...base, rules: [{ SrcIPs: ['*'], DstPorts: [ports('*', 1)], IPProto: [256] }] })).toThrow(
      /IPProto/,
    );
  });
  it('dropReasonName', () => {
    expect(dropReasonName(0)).toBe('accepted');
    expect(dropReasonName(DropReason.NOT_LOCAL)).toBe('not-local');
    expect(dropReasonName(99)).toBe('unknown');
  });
});

describe('capGrantsFor', () => {
  const rules: FilterRule[] = [
    { SrcIPs: ['100.64.0.2', 'fd7a:115c:a1e0::2'], CapGrant: [{ Dsts: ['100.64.0.1/32'], CapMap: { 'example.com/cap/a': [{ x: 1 }] } }] },
    { SrcIPs: ['100.64.0.0/24'], CapGrant: [{ Dsts: ['*'], CapMap: { 'example.com/cap/b': null } }] },
    { SrcIPs: ['*'], DstPorts: [ports('*', 22)] },
  ];
  it('returns the CapMaps for a source towards a destination', () => {
    expect(capGrantsFor(rules, '100.64.0.2', '100.64.0.1')).toEqual([
      { 'example.com/cap/a': [{ x: 1 }] },
      { 'example.com/cap/b': null },
    ]);
    expect(capGrantsFor(rules, '100.64.0.3', '100.64.0.1')).toEqual([{ 'example.com/cap/b': null }]);
    expect(capGrantsFor(rules, '100.64.1.3', '100.64.0.1')).toEqual([]);
    expect(capGrantsFor(rules, 'fd7a:115c:a1e0::2', 'fd7a:115c:a1e0::1')).toEqual([]); // no v6 destination named
    expect(capGrantsFor(rules, 'fd7a:115c:a1e0::2', '100.64.0.1')).toEqual([{ 'example.com/cap/a': [{ x: 1 }] }]);
    expect(capGrantsFor(rules, 'garbage', '100.64.0.1')).toEqual([]);
    const f = Filter.build({ rules, localAddrs: ['100.64.0.1'] });
    expect(f.capGrantsFor('100.64.0.2', '100.64.0.1')).toHaveLength(2);
  });
});
