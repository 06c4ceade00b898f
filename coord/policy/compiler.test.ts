import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileFilters, parsePolicy, PolicyCompiler, type Topology, type TopoNode } from './index.js';
import { PeerIndex } from '../peers.js';
import { INTERNET_PREFIXES } from './internet.js';
import { filterAccepts } from './tests.js';

const TOPO: Topology = {
  users: [
    { name: 'alice', email: 'alice@example.com', role: 'admin' },
    { name: 'bob', email: 'bob@example.com' },
    { name: 'carol', email: 'carol@other.org', role: 'auditor' },
  ],
  nodes: {
    a1: { hostname: 'a1', tags: [], ipv4: '100.64.0.1', ipv6: 'fd7a:115c:a1e0::1', user: 'alice', posture: { 'node:os': 'linux', 'node:tsVersion': '1.62.0' } },
    a2: { hostname: 'a2', tags: [], ipv4: '100.64.0.2', ipv6: 'fd7a:115c:a1e0::2', user: 'alice', posture: { 'node:os': 'macos' } },
    b1: { hostname: 'b1', tags: [], ipv4: '100.64.0.3', ipv6: 'fd7a:115c:a1e0::3', user: 'bob' },
    c1: { hostname: 'c1', tags: [], ipv4: '100.64.0.4', ipv6: 'fd7a:115c:a1e0::4', user: 'carol' },
    web: { hostname: 'web', tags: ['tag:web'], ipv4: '100.64.0.10', ipv6: 'fd7a:115c:a1e0::10', user: null },
    router: { hostname: 'router', tags: ['tag:router'], ipv4: '100.64.0.20', ipv6: 'fd7a:115c:a1e0::20', user: null,
      routable_ips: ['10.1.0.0/16', '10.2.0.0/16'], approved_routes: ['10.1.0.0/16'] },
    exit: { hostname: 'exit', tags: ['tag:exit'], ipv4: '100.64.0.30', ipv6: 'fd7a:115c:a1e0::30', user: null,
      routable_ips: ['0.0.0.0/0', '::/0'], approved_routes: ['0.0.0.0/0', '::/0'] },
  },
};

const DEFS = `"groups": {"group:eng": ["alice@example.com", "bob@example.com"]},
  "hosts": {"lan": "10.1.0.0/16", "far": "10.2.0.0/16"},
  "tagOwners": {"tag:web": ["group:eng"], "tag:router": ["group:eng"], "tag:exit": ["group:eng"]}`;

function compile(body: string, topo: Topology = TOPO) {
  return compileFilters(parsePolicy(`{${DEFS}, ${body}}`), topo);
}

/** Does node `to` accept a TCP connection from node/address `from` on `port` (to its own IPv4 or `dst`)? */
function reach(f: ReturnType<typeof compile>, from: string, to: string, port: number, dst?: string): boolean {
  const src = TOPO.nodes[from]?.ipv4 ?? from;
  return filterAccepts(f[to]!, src, dst ?? TOPO.nodes[to]!.ipv4, port, 6);
}

describe('compile: selectors', () => {
  it('users, groups and tags on either side', () => {
    const f = compile(`"acls": [
      {"action": "accept", "src": ["group:eng"], "dst": ["tag:web:443"]},
      {"action": "accept", "src": ["tag:web"], "dst": ["bob@example.com:5432"]},
    ]`);
    expect(reach(f, 'a1', 'web', 443)).toBe(true);
    expect(reach(f, 'b1', 'web', 443)).toBe(true);
    expect(reach(f, 'c1', 'web', 443)).toBe(false);
    expect(reach(f, 'a1', 'web', 80)).toBe(false);
    expect(reach(f, 'web', 'b1', 5432)).toBe(true);
    expect(reach(f, 'web', 'a1', 5432)).toBe(false);
    expect(f.a1).toEqual([]);
  });

  it('"*" is the tailnet plus approved subnet routes; danger-all is everything', () => {
    const f = compile('"acls": [{"action": "accept", "src": ["*"], "dst": ["tag:web:80"]}, {"action": "accept", "src": ["autogroup:danger-all"], "dst": ["tag:web:81"]}]');
    expect(f.web![0]!.SrcIPs.sort()).toEqual(['10.1.0.0/16', '100.115.94.0-100.127.255.255', '100.64.0.0-100.115.91.255', 'fd7a:115c:a1e0::/48']);
    expect(reach(f, '10.2.0.1', 'web', 80)).toBe(false);
    expect(reach(f, '8.8.8.8', 'web', 81)).toBe(true);
  });

  it('autogroup:member, autogroup:tagged and role autogroups', () => {
    const f = compile(`"acls": [
      {"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:tagged:22"]},
      {"action": "accept", "src": ["autogroup:admin"], "dst": ["autogroup:member:3389"]},
      {"action": "accept", "src": ["autogroup:auditor"], "dst": ["tag:web:9100"]},
    ]`);
    expect(reach(f, 'c1', 'router', 22)).toBe(true);
    expect(reach(f, 'web', 'router', 22)).toBe(false);
    expect(reach(f, 'a2', 'b1', 3389)).toBe(true);
    expect(reach(f, 'b1', 'a1', 3389)).toBe(false);
    expect(reach(f, 'c1', 'web', 9100)).toBe(true);
    expect(reach(f, 'a1', 'web', 9100)).toBe(false);
  });

  it('user:*@domain', () => {
    const f = compile('"grants": [{"src": ["user:*@example.com"], "dst": ["tag:web"], "ip": ["tcp:22"]}]');
    expect(reach(f, 'a1', 'web', 22) && reach(f, 'b1', 'web', 22)).toBe(true);
    expect(reach(f, 'c1', 'web', 22)).toBe(false);
  });

  it('autogroup:self expands per user', () => {
    const f = compile('"acls": [{"action": "accept", "src": ["*"], "dst": ["autogroup:self:*"]}]');
    expect(reach(f, 'a2', 'a1', 22)).toBe(true);
    expect(reach(f, 'a1', 'a2', 22)).toBe(true);
    expect(reach(f, 'b1', 'a1', 22)).toBe(false);
    expect(reach(f, 'b1', 'b1', 22)).toBe(true);
    expect(f.web).toEqual([]);
  });

  it('hosts and CIDRs reach the router that serves them, and only approved routes count', () => {
    const f = compile('"acls": [{"action": "accept", "src": ["group:eng"], "dst": ["lan:22", "far:22", "100.64.0.10:80"]}]');
    expect(reach(f, 'a1', 'router', 22, '10.1.2.3')).toBe(true);
    expect(f.router!.flatMap((r) => r.DstPorts!.map((d) => d.IP))).toEqual(['10.1.0.0/16']);
    expect(reach(f, 'a1', 'web', 80)).toBe(true);
    expect(f.exit).toEqual([]);
  });

  it('via sends a subnet grant through the named routers only', () => {
    const topo: Topology = structuredClone(TOPO);
    topo.nodes.router2 = { hostname: 'router2', tags: ['tag:web'], ipv4: '100.64.0.21', ipv6: '', user: null, approved_routes: ['10.1.0.0/16'] };
    const f = compile('"grants": [{"src": ["bob@example.com"], "dst": ["lan"], "ip": ["*"], "via": ["tag:router"]}]', topo);
    expect(filterAccepts(f.router!, '100.64.0.3', '10.1.0.5', 1, 17)).toBe(true);
    expect(f.router2).toEqual([]);
  });

  it('viaFor: the via grants a node is a source of, with what they steer and through which tags', () => {
    const c = new PolicyCompiler(parsePolicy(`{${DEFS}, "grants": [
      {"src": ["bob@example.com"], "dst": ["lan", "far"], "ip": ["*"], "via": ["tag:router"]},
      {"src": ["group:eng"], "dst": ["autogroup:internet"], "ip": ["tcp:443"], "via": ["tag:exit", "tag:web"]},
      {"src": ["group:eng"], "dst": ["lan"], "ip": ["*"]},
    ]}`), TOPO);
    const steer = (name: string) => c.viaFor(name).map((v) => ({ line: v.line, n: v.prefixes.length, internet: v.internet, all: v.all, tags: v.tags }));
    expect(steer('b1')).toEqual([
      { line: 4, n: 2, internet: false, all: false, tags: ['tag:router'] },
      { line: 5, n: 0, internet: true, all: false, tags: ['tag:exit', 'tag:web'] },
    ]);
    expect(steer('a1')).toEqual([{ line: 5, n: 0, internet: true, all: false, tags: ['tag:exit', 'tag:web'] }]);
    expect(steer('c1')).toEqual([]);
    expect(steer('nonexistent')).toEqual([]);
  });

  it('autogroup:internet reaches approved exit nodes only', () => {
    const f = compile('"acls": [{"action": "accept", "src": ["bob@example.com"], "dst": ["autogroup:internet:443"]}]');
    expect(reach(f, 'b1', 'exit', 443, '1.1.1.1')).toBe(true);
    expect(reach(f, 'b1', 'exit', 443, '192.168.1.1')).toBe(false);
    expect(f.exit!.flatMap((r) => r.DstPorts!.map((d) => d.IP))).toEqual(INTERNET_PREFIXES);
    const topo: Topology = structuredClone(TOPO);
    topo.nodes.exit!.approved_routes = [];
    expect(compile('"acls": [{"action": "accept", "src": ["*"], "dst": ["autogroup:internet:*"]}]', topo).exit).toEqual([]);
  });

  it('protocols: proto in ACLs, tcp:/udp: in grants, none means the default four', () => {
    const f = compile(`"acls": [{"action": "accept", "src": ["bob@example.com"], "dst": ["tag:web:53"], "proto": "udp"}],
      "grants": [{"src": ["bob@example.com"], "dst": ["tag:web"], "ip": ["tcp:80", "icmp:*"]}]`);
    const b = '100.64.0.3';
    const w = '100.64.0.10';
    expect(filterAccepts(f.web!, b, w, 53, 17)).toBe(true);
    expect(filterAccepts(f.web!, b, w, 53, 6)).toBe(false);
    expect(filterAccepts(f.web!, b, w, 80, 6)).toBe(true);
    expect(filterAccepts(f.web!, b, w, 0, 1)).toBe(true);
    expect(filterAccepts(f.web!, b, w, 80, 17)).toBe(false);
  });

  it('app grants become CapGrant on the destination device; companion capabilities go the other way', () => {
    const f = compile('"grants": [{"src": ["group:eng"], "dst": ["tag:web"], "app": {"tailscale.com/cap/drive": [{"shares": ["*"]}]}}]');
    expect(f.web).toEqual([
      { SrcIPs: ['100.64.0.1', '100.64.0.2', '100.64.0.3', 'fd7a:115c:a1e0::1', 'fd7a:115c:a1e0::2', 'fd7a:115c:a1e0::3'],
        CapGrant: [{ Dsts: ['100.64.0.10/32', 'fd7a:115c:a1e0::10/128'], CapMap: { 'tailscale.com/cap/drive': [{ shares: ['*'] }] } }] },
    ]);
    expect(f.b1).toEqual([
      { SrcIPs: ['100.64.0.10', 'fd7a:115c:a1e0::10'], CapGrant: [{ Dsts: ['100.64.0.3/32', 'fd7a:115c:a1e0::3/128'], CapMap: { 'tailscale.com/cap/drive-sharer': null } }] },
    ]);
    expect(f.c1).toEqual([]);
  });

  it('srcPosture keeps only the devices whose posture matches', () => {
    const f = compile(`"postures": {"posture:new-linux": ["node:os == 'linux'", "node:tsVersion >= '1.60'"]},
      "grants": [{"src": ["*"], "dst": ["tag:web"], "ip": ["tcp:22"], "srcPosture": ["posture:new-linux"]}]`);
    expect(reach(f, 'a1', 'web', 22)).toBe(true);
    expect(reach(f, 'a2', 'web', 22)).toBe(false);
    expect(reach(f, 'b1', 'web', 22)).toBe(false);
  });

  it('autogroup:shared names the users a device was shared with, on that device only', () => {
    const topo: Topology = { ...TOPO, sharedUsers: [{ email: 'dan@elsewhere.net', addrs: ['100.99.0.1'], sharedNodes: ['web'] }] };
    const f = compile('"acls": [{"action": "accept", "src": ["autogroup:shared"], "dst": ["tag:web:22", "tag:router:22"]}]', topo);
    expect(reach(f, '100.99.0.1', 'web', 22)).toBe(true);
    expect(reach(f, '100.99.0.1', 'router', 22)).toBe(false);
  });

  it('a shared subnet router lets shared-in users reach the router itself, never "*" or its subnets', () => {
    const topo: Topology = { ...TOPO, sharedUsers: [{ email: 'dan@elsewhere.net', addrs: ['100.99.0.1', 'fd7a:115c:a1e0::99:1'], sharedNodes: ['router'] }] };
    const f = compile('"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}, {"action": "accept", "src": ["autogroup:shared"], "dst": ["lan:22", "tag:router:80"]}]', topo);
    const router = TOPO.nodes.router!;
    expect(reach(f, '100.99.0.1', 'router', 443)).toBe(true);
    expect(reach(f, '100.99.0.1', 'router', 443, '10.1.2.3')).toBe(false);
    expect(reach(f, '100.99.0.1', 'router', 22, '10.1.2.3')).toBe(false);
    expect(reach(f, '100.99.0.1', 'router', 443, '100.64.0.1')).toBe(false);
    // The network's own devices keep "*" (the router's subnets included).
    expect(reach(f, 'a1', 'router', 443, '10.1.2.3')).toBe(true);
    // Every rule that names a shared-in source names only the router's own addresses as destinations.
    for (const r of f.router!) {
      if (!r.SrcIPs.includes('100.99.0.1')) continue;
      expect(r.SrcIPs.every((s) => s === '100.99.0.1' || s === 'fd7a:115c:a1e0::99:1')).toBe(true);
      for (const d of r.DstPorts ?? []) expect([router.ipv4, router.ipv6]).toContain(d.IP);
    }
  });
});

describe('PolicyCompiler: incremental', () => {
  const POLICY = parsePolicy(`{${DEFS},
    "acls": [
      {"action": "accept", "src": ["group:eng"], "dst": ["tag:web:443", "autogroup:self:*"]},
      {"action": "accept", "src": ["tag:web"], "dst": ["lan:5432"]},
      {"action": "accept", "src": ["*"], "dst": ["*:80"]},
      {"action": "accept", "src": ["autogroup:admin"], "dst": ["tag:router:8080", "autogroup:self:22"]},
    ],
    "grants": [
      {"src": ["autogroup:member"], "dst": ["tag:router"], "app": {"example.com/cap/x": [{}]}},
      {"src": ["group:eng", "tag:router", "autogroup:shared"], "dst": ["tag:exit"], "ip": ["tcp:22"]},
      {"src": ["*"], "dst": ["tag:web", "lan"], "ip": ["tcp:2222"], "srcPosture": ["posture:linux"]},
    ],
    "postures": {"posture:linux": ["node:os == 'linux'"]},
  }`);

  it('one device joining changes exactly the filters it should', () => {
    const c = new PolicyCompiler(POLICY, TOPO);
    const before = Object.fromEntries(c.nodeNames().map((n) => [n, JSON.stringify(c.filterFor(n))]));
    const affected = c.setNode('web2', { hostname: 'web2', tags: ['tag:web'], ipv4: '100.64.0.11', ipv6: '', user: null });
    expect(affected.has('web2')).toBe(true);
    expect(affected.has('router')).toBe(true); // tag:web is a source of the lan rule
    expect(affected.has('a1')).toBe(false);
    const fresh = compileFilters(POLICY, { ...TOPO, nodes: { ...TOPO.nodes, web2: { hostname: 'web2', tags: ['tag:web'], ipv4: '100.64.0.11', ipv6: '', user: null } } });
    for (const n of Object.keys(fresh)) {
      expect(c.filterFor(n), n).toEqual(fresh[n]);
      if (!affected.has(n)) expect(JSON.stringify(c.filterFor(n)), n).toBe(before[n]);
    }
  });

  it.each([false, true])('random joins, leaves and retags always match a full compile (shared users: %s)', (withShared) => {
    const node = fc.record({
      tags: fc.subarray(['tag:web', 'tag:router', 'tag:exit'], { maxLength: 2 }),
      user: fc.constantFrom('alice', 'bob', 'carol'),
      routes: fc.subarray(['10.1.0.0/16', '10.1.5.0/24', '0.0.0.0/0'], { maxLength: 2 }),
      os: fc.constantFrom('linux', 'macos'),
    });
    const op = fc.oneof(
      fc.record({ kind: fc.constant('set' as const), name: fc.constantFrom('a1', 'b1', 'web', 'n1', 'n2', 'router'), node }),
      fc.record({ kind: fc.constant('remove' as const), name: fc.constantFrom('a1', 'web', 'n1', 'router') }),
      fc.record({ kind: fc.constant('role' as const), user: fc.constantFrom('alice', 'bob'), role: fc.constantFrom('admin' as const, 'member' as const) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 12 }), (ops) => {
        const topo: Topology = structuredClone(TOPO);
        if (withShared) topo.sharedUsers = [{ email: 'bob@example.com', addrs: ['100.99.0.1'], sharedNodes: ['exit', 'web', 'n1'] }];
        const c = new PolicyCompiler(POLICY, topo);
        let i = 0;
        for (const o of ops) {
          const before = new Map(c.nodeNames().map((n) => [n, JSON.stringify(c.filterFor(n))]));
          let affected: Set<string>;
          if (o.kind === 'set') {
            i++;
            const n: TopoNode = {
              hostname: o.name, tags: o.node.tags, ipv4: `100.80.0.${i}`, ipv6: `fd7a:115c:a1e0::80:${i}`,
              user: o.node.tags.length ? null : o.node.user, approved_routes: o.node.routes, posture: { 'node:os': o.node.os },
            };
            topo.nodes[o.name] = n;
            affected = c.setNode(o.name, n);
          } else if (o.kind === 'remove') {
            delete topo.nodes[o.name];
            affected = c.removeNode(o.name);
          } else {
            topo.users = topo.users.map((u) => (u.name === o.user ? { ...u, role: o.role } : u));
            affected = c.setUsers(topo.users);
          }
          const fresh = compileFilters(POLICY, topo);
          expect(new Set(c.nodeNames())).toEqual(new Set(Object.keys(fresh)));
          for (const n of Object.keys(fresh)) {
            expect(c.filterFor(n)).toEqual(fresh[n]);
            if (!affected.has(n) && before.has(n)) expect(JSON.stringify(fresh[n])).toBe(before.get(n));
          }
        }
      }),
      { numRuns: Number(process.env.POLICY_FC_RUNS ?? 100) },
    );
  });

  it('setPolicy and setUsers report the nodes whose filter changed', () => {
    const c = new PolicyCompiler(POLICY, TOPO);
    const changed = c.setPolicy(parsePolicy(`{${DEFS}, "acls": [{"action": "accept", "src": ["autogroup:admin"], "dst": ["tag:web:22"]}]}`));
    expect(changed).toEqual(new Set(Object.keys(TOPO.nodes)));
    expect(c.setPolicy(parsePolicy(`{${DEFS}, "acls": [{"action": "accept", "src": ["autogroup:admin"], "dst": ["tag:web:22", "tag:web:23"]}]}`))).toEqual(new Set(['web']));
    const users = TOPO.users.map((u) => (u.name === 'bob' ? { ...u, role: 'admin' as const } : u));
    expect(c.setUsers(users)).toEqual(new Set(['web']));
    expect(reach({ web: c.filterFor('web') }, 'b1', 'web', 22)).toBe(true);
  });

  it('peers (PeerIndex, what coord serves, over the compiled filters): who may talk to whom in either direction', () => {
    const peers = PeerIndex.of(TOPO.nodes, compile(`"acls": [{"action": "accept", "src": ["bob@example.com"], "dst": ["tag:web:443", "lan:22"]}]`));
    expect(peers.peersOf('b1').sort()).toEqual(['router', 'web']);
    expect(peers.peersOf('web')).toEqual(['b1']);
    expect(peers.peersOf('a1')).toEqual([]);
  });
});
