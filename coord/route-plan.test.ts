import { describe, expect, it } from 'vitest';
import { parsePolicy, PolicyCompiler, type Topology, type TopoNode } from './policy/index.js';
import { canonicalPrefix, planRoutes, routerViewOf, type RouterView } from './route-plan.js';

const SUBNET = '10.1.0.0/24';
const EXIT = ['0.0.0.0/0', '::/0'];

const node = (n: number, user: string | null, tags: string[] = [], approved: string[] = []): TopoNode => ({
  hostname: `h${n}`, tags, ipv4: `100.64.0.${n}`, ipv6: `fd7a:115c:a1e0::${n}`, user, routable_ips: approved, approved_routes: approved,
});

const TOPO: Topology = {
  users: [
    { name: 'alice', email: 'alice@example.com' },
    { name: 'bob', email: 'bob@example.com' },
    { name: 'carol', email: 'carol@example.com' },
  ],
  nodes: {
    alice: node(1, 'alice'),
    bob: node(2, 'bob'),
    carol: node(3, 'carol'),
    ra: node(10, null, ['tag:ra'], [SUBNET]),
    rb: node(11, null, ['tag:rb'], [SUBNET, '10.2.0.0/24']),
    exitA: node(20, null, ['tag:exit-a'], EXIT),
    exitB: node(21, null, ['tag:exit-b'], EXIT),
  },
};

const DEFS = `"groups": {"group:a": ["alice@example.com"], "group:b": ["bob@example.com"]},
  "tagOwners": {"tag:ra": [], "tag:rb": [], "tag:exit-a": [], "tag:exit-b": []}`;

/** The route plan of every client of TOPO under a policy, with the routers in the given preference order. */
function plans(body: string, order = ['ra', 'rb', 'exitA', 'exitB'], topo = TOPO) {
  const c = new PolicyCompiler(parsePolicy(`{${DEFS}, ${body}}`), topo);
  const views = order
    .map((id) => routerViewOf(id, topo.nodes[id]!.tags, topo.nodes[id]!.approved_routes ?? [], c.filterFor(id)))
    .filter((v): v is RouterView => v !== null);
  const of = (id: string) => {
    const n = topo.nodes[id]!;
    const p = planRoutes({ addrs: [n.ipv4, n.ipv6], via: c.viaFor(id), own: n.approved_routes ?? [] }, views);
    return Object.fromEntries([...p].map(([r, x]) => [r, x]));
  };
  return { alice: of('alice'), bob: of('bob'), carol: of('carol'), ra: of('ra') };
}

describe('route planning', () => {
  it('one primary per prefix: the first router in preference order; the others still offer it', () => {
    const p = plans('"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]');
    expect(p.alice.ra).toEqual({ offered: [SUBNET], primary: [SUBNET], exitRoutes: [] });
    expect(p.alice.rb).toEqual({ offered: [SUBNET, '10.2.0.0/24'], primary: ['10.2.0.0/24'], exitRoutes: [] });
    // every exit node is an option ("*" includes the internet); the agent picks one
    expect(p.alice.exitA!.exitRoutes).toEqual(EXIT);
    expect(p.alice.exitB!.exitRoutes).toEqual(EXIT);
  });

  it('fails over: with ra no longer first (offline), rb is the primary for everyone', () => {
    const p = plans('"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]', ['rb', 'ra']);
    for (const c of [p.alice, p.bob, p.carol]) {
      expect(c.rb!.primary).toEqual([SUBNET, '10.2.0.0/24']);
      expect(c.ra).toEqual({ offered: [SUBNET], primary: [], exitRoutes: [] });
    }
  });

  it('never takes a prefix the device routes itself from a peer', () => {
    const p = plans('"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]');
    expect(p.ra.rb).toEqual({ offered: ['10.2.0.0/24'], primary: ['10.2.0.0/24'], exitRoutes: [] });
  });

  it('offers a route only to devices the policy lets reach into it (any port)', () => {
    const p = plans(`"acls": [
      {"action": "accept", "src": ["alice@example.com"], "dst": ["10.1.0.5:443"]},
      {"action": "accept", "src": ["bob@example.com"], "dst": ["tag:ra:22"]},
    ]`);
    expect(p.alice.ra!.primary).toEqual([SUBNET]);
    expect(p.alice.rb!.primary).toEqual([]); // rb offers it too; ra is first
    expect(p.alice.rb!.offered).toEqual([SUBNET]); // not 10.2.0.0/24
    expect(p.bob).toEqual({}); // bob may reach the router, not its subnet
    expect(p.carol).toEqual({});
  });

  it('via steers two groups through router A and router B for the same subnet', () => {
    const p = plans(`"grants": [
      {"src": ["group:a"], "dst": ["${SUBNET}"], "ip": ["*"], "via": ["tag:ra"]},
      {"src": ["group:b"], "dst": ["${SUBNET}"], "ip": ["*"], "via": ["tag:rb"]},
    ]`);
    expect(p.alice).toEqual({ ra: { offered: [SUBNET], primary: [SUBNET], exitRoutes: [] } });
    expect(p.bob).toEqual({ rb: { offered: [SUBNET], primary: [SUBNET], exitRoutes: [] } });
    expect(p.carol).toEqual({});
    // and whatever the preference order
    const q = plans(`"grants": [
      {"src": ["group:a"], "dst": ["${SUBNET}"], "ip": ["*"], "via": ["tag:ra"]},
      {"src": ["group:b"], "dst": ["${SUBNET}"], "ip": ["*"], "via": ["tag:rb"]},
    ]`, ['rb', 'ra']);
    expect(q.alice.ra!.primary).toEqual([SUBNET]);
    expect(q.bob.rb!.primary).toEqual([SUBNET]);
  });

  it('via restricts the routers even when another rule would allow the prefix through any', () => {
    const p = plans(`"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
      "grants": [{"src": ["group:b"], "dst": ["${SUBNET}"], "ip": ["*"], "via": ["tag:rb"]}]`);
    expect(p.bob.ra).toBeUndefined();
    expect(p.bob.rb!.primary).toEqual([SUBNET, '10.2.0.0/24']);
    expect(p.alice.ra!.primary).toEqual([SUBNET]); // not covered by the via grant
  });

  it('offers exit nodes only where the policy allows autogroup:internet, and via picks which', () => {
    const none = plans('"acls": [{"action": "accept", "src": ["*"], "dst": ["tag:exit-a:*", "tag:exit-b:*"]}]');
    expect(none.alice).toEqual({});
    const some = plans('"acls": [{"action": "accept", "src": ["group:a"], "dst": ["autogroup:internet:*"]}]');
    expect(some.alice.exitA!.exitRoutes).toEqual(EXIT);
    expect(some.alice.exitB!.exitRoutes).toEqual(EXIT);
    expect(some.bob).toEqual({});
    const via = plans(`"grants": [
      {"src": ["group:a"], "dst": ["autogroup:internet"], "ip": ["*"], "via": ["tag:exit-a"]},
      {"src": ["group:b"], "dst": ["autogroup:internet"], "ip": ["*"], "via": ["tag:exit-b"]},
    ]`);
    expect(Object.keys(via.alice)).toEqual(['exitA']);
    expect(Object.keys(via.bob)).toEqual(['exitB']);
    expect(via.carol).toEqual({});
  });

  it('a router view keeps approved prefixes only, canonical and once', () => {
    expect(canonicalPrefix('10.1.2.3/16')).toBe('10.1.0.0/16');
    expect(canonicalPrefix('nonsense')).toBeNull();
    const v = routerViewOf('r', [], ['10.1.0.1/24', '10.1.0.0/24', 'bad', '::/0'], [])!;
    expect(v.routes.map((r) => r.prefix)).toEqual(['10.1.0.0/24']);
    expect(v.exitRoutes).toEqual(['::/0']);
    expect(routerViewOf('r', [], [], [])).toBeNull();
  });
});
