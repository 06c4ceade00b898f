import type { NetworkInterfaceInfo } from 'node:os';
import { describe, expect, it } from 'vitest';
import { Filter } from '../../filter/index.js';
import { craft } from '../../filter/craft.js';
import type { Netmap, PeerNode } from '../../wire/protocol.js';
import { filterConfigOf } from '../daemon/netmap.js';
import { DEFAULT_ROUTE_PREFS, exitNodeProblem, findPeer, localNetsOf, planRouting, withExitRoutes, type RoutePrefs } from './plan.js';
import { advertisedRoutesOf, parseExitNode, parseRoute, parseRouteList } from './prefixes.js';
import { exitNodeDnsRule, isExitDnsClient } from './exit-dns.js';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StateDir } from '../state.js';
import type { Runner } from './host.js';
import { Routing } from './index.js';

const key = (n: number) => Buffer.alloc(32, n).toString('base64');
const user = { id: 'u1', loginName: 'alice@example.com', displayName: 'Alice' };

function peer(n: number, name: string, routes: string[] = [], over: Partial<PeerNode> = {}): PeerNode {
  const addresses = [`100.64.0.${n}/32`, `fd7a:115c:a1e0::${n}/128`];
  return {
    id: `n${n}`, name: `${name}.example-com.meshward.internal`, addresses, nodeKey: key(n), endpoints: [], allowedIPs: [...addresses, ...routes],
    user, tags: [], os: 'linux', online: true, lastSeen: null, shared: false, quarantined: false, ...over,
  };
}

function netmap(peers: PeerNode[], self: Partial<Netmap['self']> = {}): Netmap {
  return {
    version: 1,
    self: {
      id: 'n1', name: 'me.example-com.meshward.internal', hostname: 'me', addresses: ['100.64.0.1/32', 'fd7a:115c:a1e0::1/128'], user, tags: [],
      network: { name: 'example.com', domain: 'example-com.meshward.internal' }, nodeKey: key(1), authorized: true, expires: null, ...self,
    },
    peers,
    packetFilter: [],
    dns: { domain: 'example-com.meshward.internal', magicDNS: true, nameservers: [], searchPaths: [] },
  };
}

const prefs = (over: Partial<RoutePrefs>): RoutePrefs => ({ ...DEFAULT_ROUTE_PREFS, ...over });
const lan = [{ prefix: '192.168.1.0/24', iface: 'eth0' }];

describe('route flags', () => {
  it('takes CIDR prefixes in canonical form and says what is wrong with the others', () => {
    expect(parseRouteList('10.1.0.0/24, fd00:AB::/64,10.1.0.0/24,')).toEqual(['10.1.0.0/24', 'fd00:ab::/64']);
    expect(parseRouteList('')).toEqual([]);
    expect(() => parseRoute('10.1.0.1')).toThrow('"10.1.0.1" is not a CIDR prefix like 10.0.0.0/24 (for one address write 10.1.0.1/32)');
    expect(() => parseRoute('eth0')).toThrow(/"eth0" is not a CIDR prefix/);
    expect(() => parseRoute('10.1.0.0/33')).toThrow(/not a CIDR prefix/);
    expect(() => parseRoute('10.1.0.9/24')).toThrow('10.1.0.9/24 has bits set after the prefix length; did you mean 10.1.0.0/24?');
    expect(() => parseRoute('100.100.0.0/16')).toThrow(/overlaps the tailnet's own range 100.64.0.0\/10/);
    expect(() => parseRoute('64.0.0.0/2')).toThrow(/overlaps the tailnet's own range 100.64.0.0\/10/);
    expect(() => parseRoute('fd7a:115c:a1e0:1::/64')).toThrow(/overlaps the tailnet's own range fd7a:115c:a1e0::\/48/);
    expect(() => parseRoute('::/0')).toThrow(/--advertise-exit-node/);
    expect(advertisedRoutesOf(['10.1.0.0/24'], true)).toEqual(['10.1.0.0/24', '0.0.0.0/0', '::/0']);
  });

  it('takes an exit node by tailnet IP or name', () => {
    expect(parseExitNode('100.64.0.7')).toBe('100.64.0.7');
    expect(parseExitNode('FD7A:115C:A1E0::7')).toBe('fd7a:115c:a1e0::7');
    expect(parseExitNode('Egress.example-com.meshward.internal.')).toBe('egress.example-com.meshward.internal');
    expect(parseExitNode('')).toBe('');
    expect(() => parseExitNode('10.0.0.1')).toThrow(/not a tailnet address/);
    expect(() => parseExitNode('no such/name')).toThrow(/neither an IP address nor a device name/);
  });
});

describe('routing plan', () => {
  it('installs nothing without --accept-routes, but says what peers offer', () => {
    const plan = planRouting(netmap([peer(2, 'router', ['10.1.0.0/24'])]), prefs({}), lan);
    expect(plan.routes).toEqual([]);
    expect(plan.peers.get('n2')).toEqual({ offered: ['10.1.0.0/24'], inUse: [], exitNodeOption: false, exitNode: false });
  });

  it('installs approved routes; a LAN of ours inside one stays local; one our LAN already has is not taken over', () => {
    const plan = planRouting(
      netmap([peer(2, 'router', ['10.1.0.0/24', '192.168.0.0/16']), peer(3, 'other', ['192.168.1.0/25', '10.0.0.0/8'])]),
      prefs({ acceptRoutes: true }),
      lan,
    );
    expect(plan.routes.sort()).toEqual(['10.0.0.0/8', '10.1.0.0/24', '192.168.0.0/16']);
    expect(plan.throws).toEqual(['192.168.1.0/24']);
    expect(plan.peers.get('n3')!.inUse).toEqual(['10.0.0.0/8']);
    expect(plan.notes).toEqual([
      'route 192.168.1.0/25 of other not used: this device reaches 192.168.1.0/24 directly on eth0 (agent up --accept-routes-over-lan takes it over)',
    ]);
  });

  it('takes over a route inside or equal to a LAN of ours only with --accept-routes-over-lan', () => {
    const lans = [...lan, { prefix: '10.5.0.0/16', iface: 'eth1' }];
    const nm = netmap([peer(2, 'router', ['192.168.1.0/24', '10.0.0.0/8']), peer(3, 'other', ['10.5.7.0/24'])]);
    const without = planRouting(nm, prefs({ acceptRoutes: true }), lans);
    expect(without.routes).toEqual(['10.0.0.0/8']);
    expect(without.throws).toEqual(['10.5.0.0/16']);
    expect(without.peers.get('n2')!.inUse).toEqual(['10.0.0.0/8']);
    expect(without.peers.get('n3')!.inUse).toEqual([]);
    expect(without.notes).toHaveLength(2);

    const over = planRouting(nm, prefs({ acceptRoutes: true, acceptRoutesOverLan: true }), lans);
    expect(over.routes.sort()).toEqual(['10.0.0.0/8', '10.5.7.0/24', '192.168.1.0/24']);
    expect(over.peers.get('n2')!.inUse).toEqual(['192.168.1.0/24', '10.0.0.0/8']);
    expect(over.peers.get('n3')!.inUse).toEqual(['10.5.7.0/24']);
    // 10.5.0.0/16 lies inside 10.0.0.0/8, which the peer does not offer as this LAN: the rest of the LAN
    // stays local (throw), while 10.5.7.0/24, more specific, still goes through the tunnel.
    expect(over.throws).toEqual(['10.5.0.0/16']);
    expect(over.notes).toEqual([]);
    // without --accept-routes it changes nothing
    expect(planRouting(nm, prefs({ acceptRoutesOverLan: true }), lans).routes).toEqual([]);
  });

  it('never takes routes from a shared-in device', () => {
    const plan = planRouting(netmap([peer(2, 'shared', ['10.1.0.0/24', '0.0.0.0/0'], { shared: true, quarantined: true })]), prefs({ acceptRoutes: true, exitNode: 'shared' }), []);
    // asked for as the exit node, it is none: the default routes only block (no peer takes them)
    expect(plan.routes).toEqual(['0.0.0.0/0', '::/0']);
    expect(plan.exitNode).toBeNull();
    expect(plan.peers.get('n2')).toEqual({ offered: [], inUse: [], exitNodeOption: false, exitNode: false });
  });

  it('uses an exit node that offers one, with or without the LAN', () => {
    const nm = netmap([peer(2, 'egress', ['0.0.0.0/0', '::/0']), peer(3, 'plain')]);
    const plan = planRouting(nm, prefs({ exitNode: 'egress' }), lan);
    expect(plan.routes).toEqual(['0.0.0.0/0', '::/0']);
    expect(plan.throws).toEqual([]);
    expect(plan.exitNode).toEqual({ id: 'n2', name: 'egress', address: '100.64.0.2' });
    expect(plan.peers.get('n2')!.exitNode).toBe(true);
    expect(planRouting(nm, prefs({ exitNode: '100.64.0.2', exitNodeAllowLanAccess: true }), lan).throws).toEqual(['192.168.1.0/24']);
  });

  it('blocks the internet while the exit node asked for is not available (no leak around it), and says why', () => {
    const nm = netmap([peer(2, 'egress', ['0.0.0.0/0', '::/0']), peer(3, 'plain')]);
    const none = planRouting(nm, prefs({ exitNode: 'nobody' }), lan);
    // the default routes go into the tunnel all the same, where no peer takes them; the LAN goes too
    expect(none.routes).toEqual(['0.0.0.0/0', '::/0']);
    expect(none.throws).toEqual([]);
    expect(none.exitNode).toBeNull();
    expect(none.notes).toEqual([
      'exit node nobody is not a peer of this device (see the peers in: agent status); internet traffic is blocked until it is available (agent up --exit-node= sends it out directly)',
    ]);
    const plain = planRouting(nm, prefs({ exitNode: 'plain', exitNodeAllowLanAccess: true }), lan);
    expect(plain.notes[0]).toMatch(/^plain does not offer an exit node to this device/);
    expect(plain.routes).toEqual(['0.0.0.0/0', '::/0']);
    expect(plain.throws).toEqual(['192.168.1.0/24']);
    expect(planRouting(nm, prefs({ exitNode: '' }), lan).routes).toEqual([]);
  });

  it('gives `agent up --exit-node` the reason it cannot use the node asked for (none for a node it can use)', () => {
    const shared = peer(4, 'shared', ['0.0.0.0/0', '::/0'], { shared: true });
    const nm = netmap([peer(2, 'egress', [], { exitNodeOption: true, exitRoutes: ['0.0.0.0/0', '::/0'] }), peer(3, 'plain', [], { exitNodeOption: false }), shared]);
    expect(exitNodeProblem(nm, prefs({ exitNode: 'egress' }))).toBeNull();
    expect(exitNodeProblem(nm, prefs({ exitNode: '100.64.0.2' }))).toBeNull();
    expect(exitNodeProblem(nm, prefs({ exitNode: '' }))).toBeNull();
    expect(exitNodeProblem(nm, prefs({ exitNode: 'nobody' }))).toBe('exit node nobody is not a peer of this device (see the peers in: agent status)');
    for (const self of ['me', '100.64.0.1', 'me.example-com.meshward.internal']) {
      expect(exitNodeProblem(nm, prefs({ exitNode: self }))).toMatch(new RegExp(`^exit node ${self} is this device; choose another device that offers one`));
    }
    expect(exitNodeProblem(nm, prefs({ exitNode: 'plain' }))).toMatch(/^plain does not offer an exit node to this device \(.*autogroup:internet/);
    // a device shared into this network never is one, whatever it carries
    expect(exitNodeProblem(nm, prefs({ exitNode: '100.64.0.4' }))).toBe('shared does not offer an exit node to this device: it is shared into this network, and a shared device never routes for it');
    // each possible cause comes with what fixes it
    const why = exitNodeProblem(nm, prefs({ exitNode: 'plain' }))!;
    for (const fix of ['agent up --advertise-exit-node', 'coord devices routes plain --approve exit-node', '"dst": ["autogroup:internet"]']) expect(why).toContain(fix);
  });

  it('routes through the primary only, from coord\'s route plan (routes, primaryRoutes, exit options)', () => {
    const a = peer(2, 'router-a', ['10.1.0.0/24'], { routes: ['10.1.0.0/24', '10.9.0.0/16'], primaryRoutes: ['10.1.0.0/24'] });
    const b = peer(3, 'router-b', ['10.9.0.0/16'], { routes: ['10.1.0.0/24', '10.9.0.0/16'], primaryRoutes: ['10.9.0.0/16'] });
    const e = peer(4, 'egress', [], { exitNodeOption: true, exitRoutes: ['0.0.0.0/0'] });
    const plan = planRouting(netmap([a, b, e]), prefs({ acceptRoutes: true, exitNode: 'egress' }), []);
    expect(plan.peers.get('n2')).toEqual({ offered: ['10.1.0.0/24', '10.9.0.0/16'], inUse: ['10.1.0.0/24'], exitNodeOption: false, exitNode: false });
    expect(plan.peers.get('n3')!.inUse).toEqual(['10.9.0.0/16']);
    // the exit node offers IPv4 only: IPv6 to the internet is blocked rather than sent around it
    expect(plan.routes).toEqual(['10.1.0.0/24', '10.9.0.0/16', '0.0.0.0/0', '::/0']);
    expect(plan.exitNode?.name).toBe('egress');
  });

  it('gives the exit node in use its default routes in WireGuard, and no other peer any', () => {
    const e = peer(4, 'egress', [], { exitNodeOption: true, exitRoutes: ['0.0.0.0/0', '::/0'] });
    const old = peer(5, 'old', ['0.0.0.0/0']); // a coord that still put them in allowedIPs
    const nm = netmap([e, old]);
    const used = withExitRoutes(nm, prefs({ exitNode: 'egress' }));
    expect(used.peers[0]!.allowedIPs).toEqual([...e.addresses, '0.0.0.0/0', '::/0']);
    expect(used.peers[1]!.allowedIPs).toEqual(old.addresses);
    expect(nm.peers[0]!.allowedIPs).toEqual(e.addresses); // the netmap itself is not changed
    expect(withExitRoutes(netmap([e]), prefs({}))).toEqual(netmap([e]));
  });

  it('gives a device shared into this network only its own addresses in WireGuard, whatever coord sent', () => {
    const shared = peer(6, 'shared', ['10.1.0.0/24', '0.0.0.0/0'], { shared: true });
    const router = peer(2, 'router', ['10.1.0.0/16']);
    const used = withExitRoutes(netmap([router, shared]), prefs({ acceptRoutes: true, exitNode: 'shared' }));
    // a /24 on the shared device would otherwise win WireGuard's longest match for the router's /16
    expect(used.peers[1]!.allowedIPs).toEqual(shared.addresses);
    expect(used.peers[0]!.allowedIPs).toEqual(router.allowedIPs);
  });

  it('forwards and masquerades only on a device that offers routes', () => {
    expect(planRouting(null, prefs({}), []).forwarding).toEqual({ v4: false, v6: false });
    const router = planRouting(null, prefs({ advertiseRoutes: ['10.1.0.0/24'] }), []);
    expect(router.forwarding).toEqual({ v4: true, v6: false });
    expect(router.snat).toBe(true);
    expect(planRouting(null, prefs({ advertiseExitNode: true, snatSubnetRoutes: false }), [])).toMatchObject({ forwarding: { v4: true, v6: true }, snat: false });
  });

  it('finds peers by address, full name and short name', () => {
    const peers = [peer(2, 'egress'), peer(3, 'web')];
    expect(findPeer(peers, '100.64.0.3')?.id).toBe('n3');
    expect(findPeer(peers, 'fd7a:115c:a1e0::2')?.id).toBe('n2');
    expect(findPeer(peers, 'web.example-com.meshward.internal')?.id).toBe('n3');
    expect(findPeer(peers, 'WEB')?.id).toBe('n3');
    expect(findPeer(peers, 'db')).toBeUndefined();
  });

  it('lists this device\'s own networks, not loopback, link-local, tailnet or the TUN device', () => {
    const a = (address: string, cidr: string, family: 'IPv4' | 'IPv6' = 'IPv4', internal = false) => ({ address, cidr, family, internal, netmask: '', mac: '' }) as NetworkInterfaceInfo;
    const nets = localNetsOf(
      { lo: [a('127.0.0.1', '127.0.0.1/8', 'IPv4', true)], eth0: [a('192.168.1.5', '192.168.1.5/24'), a('fe80::1', 'fe80::1/64', 'IPv6'), a('2001:db8::5', '2001:db8::5/64', 'IPv6')], mw0: [a('100.64.0.1', '100.64.0.1/32')] },
      'mw0',
    );
    expect(nets).toEqual([{ prefix: '192.168.1.0/24', iface: 'eth0' }, { prefix: '2001:db8::/64', iface: 'eth0' }]);
  });
});

describe('a router\'s filter and its routes', () => {
  // client 100.64.0.2 may reach 10.1.0.0/24 on port 80 (as coord compiles it for the router)
  const rules = [{ SrcIPs: ['100.64.0.2'], DstPorts: [{ IP: '10.1.0.0/24', Ports: { First: 80, Last: 80 } }, { IP: '*', Ports: { First: 443, Last: 443 } }] }];
  const syn = (dst: string, port: number) => craft({ src: '100.64.0.2', dst, proto: 'tcp', dport: port });
  const verdict = (nm: Netmap, dst: string, port: number) => {
    const f = Filter.build(filterConfigOf({ ...nm, packetFilter: rules }));
    const p = syn(dst, port);
    return f.runIn(p, 0, p.length);
  };

  it('accepts packets to an approved route as the rules say, and none to a route only advertised', () => {
    const approved = netmap([], { advertisedRoutes: ['10.1.0.0/24', '10.2.0.0/24'], approvedRoutes: ['10.1.0.0/24'] });
    expect(verdict(approved, '10.1.0.9', 80)).toBe(0);
    expect(verdict(approved, '10.1.0.9', 81)).not.toBe(0);
    // "*" in a rule would match anything: the route itself must be approved
    expect(verdict(approved, '10.2.0.9', 443)).not.toBe(0);
    expect(verdict(netmap([], { advertisedRoutes: ['10.1.0.0/24'] }), '10.1.0.9', 80)).not.toBe(0);
  });
});

describe('an exit node answers DNS for the devices that may use it', () => {
  const INTERNET = ['0.0.0.0/5', '8.0.0.0/7', '2000::/3'];
  // 100.64.0.2 may reach the internet on tcp:443 only; 100.64.0.3 may reach a subnet only
  const rules = [
    { SrcIPs: ['100.64.0.2', 'fd7a:115c:a1e0::2'], DstPorts: INTERNET.map((IP) => ({ IP, Ports: { First: 443, Last: 443 } })), IPProto: [6] },
    { SrcIPs: ['100.64.0.3'], DstPorts: [{ IP: '10.1.0.0/24', Ports: { First: 0, Last: 65535 } }] },
  ];
  const exitNode = (approvedRoutes: string[]) => ({ ...netmap([], { approvedRoutes }), packetFilter: rules });
  const dnsQuery = (src: string, dst: string, proto: 'udp' | 'tcp') => craft({ src, dst, proto, dport: 53 });
  const verdict = (nm: Netmap, src: string, dst: string, proto: 'udp' | 'tcp' = 'udp') => {
    const f = Filter.build(filterConfigOf(nm));
    const p = dnsQuery(src, dst, proto);
    return f.runIn(p, 0, p.length);
  };

  it('lets in port 53 on its own addresses from sources allowed to the internet on any port, and no others', () => {
    const nm = exitNode(['0.0.0.0/0', '::/0']);
    expect(exitNodeDnsRule(nm)?.SrcIPs).toEqual(['100.64.0.2', 'fd7a:115c:a1e0::2']);
    expect(verdict(nm, '100.64.0.2', '100.64.0.1')).toBe(0);
    expect(verdict(nm, '100.64.0.2', '100.64.0.1', 'tcp')).toBe(0);
    expect(verdict(nm, 'fd7a:115c:a1e0::2', 'fd7a:115c:a1e0::1')).toBe(0);
    expect(verdict(nm, '100.64.0.3', '100.64.0.1')).not.toBe(0);
    // port 53 on the internet itself stays closed: the exit node resolves, the client does not reach out
    expect(verdict(nm, '100.64.0.2', '8.8.8.8')).not.toBe(0);
  });

  it('opens nothing on a device that is no approved exit node', () => {
    expect(exitNodeDnsRule(exitNode([]))).toBeNull();
    expect(verdict(exitNode(['10.1.0.0/24']), '100.64.0.2', '100.64.0.1')).not.toBe(0);
  });

  it('answers tailnet sources only', () => {
    expect(isExitDnsClient('100.64.0.2')).toBe(true);
    expect(isExitDnsClient('::ffff:100.64.0.2')).toBe(true);
    expect(isExitDnsClient('fd7a:115c:a1e0::2')).toBe(true);
    expect(isExitDnsClient('192.168.1.5')).toBe(false);
  });
});

describe('the host routing an exit node asks for (commands recorded, nothing run)', () => {
  const exitPeer = peer(2, 'egress', [], { exitNodeOption: true, exitRoutes: ['0.0.0.0/0', '::/0'] });
  const nm = { ...netmap([exitPeer]), relays: [{ name: 'coord', url: 'http://198.51.100.1:8080' }, { name: 'r2', url: 'https://[2001:db8::7]:443' }] };
  const setUp = () => {
    const dir = mkdtempSync(join(tmpdir(), 'mw-routing-'));
    const calls: string[] = [];
    const run: Runner = async (cmd, args, input) => {
      calls.push(`${cmd} ${args.join(' ')}\n${input}`);
      return { ok: true, stderr: '' };
    };
    return { dir, calls, routing: (r = run) => new Routing(new StateDir(dir), () => {}, r) };
  };
  const input = (over: Partial<RoutePrefs> = {}) => ({
    netmap: nm, prefs: prefs({ exitNode: 'egress', ...over }), tun: 'mw0', localNets: lan,
    bypassHosts: ['203.0.113.9', ...nm.relays.map((r) => new URL(r.url).hostname)], resolvers: ['192.168.1.53', '9.9.9.9'],
  });

  it('keeps coord, the relays and a LAN resolver out of the tunnel, the tunnel\'s own packets too', async () => {
    const { dir, calls, routing } = setUp();
    try {
      await routing().update(input());
      const v4 = calls.find((c) => c.startsWith('ip -4'))!;
      const v6 = calls.find((c) => c.startsWith('ip -6'))!;
      for (const a of ['203.0.113.9/32', '198.51.100.1/32', '192.168.1.53/32']) expect(v4).toContain(`rule add priority 5200 to ${a} table main`);
      expect(v6).toContain('rule add priority 5200 to 2001:db8::7/128 table main');
      expect(v4).not.toContain('9.9.9.9'); // a resolver on the internet is reached through the exit node
      expect(v4).toContain('route replace 0.0.0.0/0 dev mw0 table 52');
      expect(v4).toContain('rule add priority 5210 fwmark 0x80000/0xff0000 table main');
      // the bypass rules and routes come before the rule that sends traffic to table 52
      expect(v4.indexOf('priority 5200')).toBeLessThan(v4.indexOf('rule add priority 5270'));
      // with LAN access the LAN resolver needs no rule of its own (the LAN is thrown back to main)
      calls.length = 0;
      await routing().update(input({ exitNodeAllowLanAccess: true }));
      const lanAccess = calls.find((c) => c.startsWith('ip -4'))!;
      expect(lanAccess).toContain('route replace throw 192.168.1.0/24 table 52');
      expect(lanAccess).toContain('rule del priority 5200 to 192.168.1.53/32 table main');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a new process undoes what a killed one left installed, from routing.json', async () => {
    const { dir, calls, routing } = setUp();
    try {
      await routing().update(input());
      expect(existsSync(join(dir, 'routing.json'))).toBe(true);
      calls.length = 0;
      // the process was killed: the next one finds the record and removes all of it
      await routing().recover();
      const v4 = calls.find((c) => c.startsWith('ip -4'))!;
      expect(v4).toContain('rule del priority 5270 table 52');
      expect(v4).toContain('rule del priority 5200 to 198.51.100.1/32 table main');
      expect(v4).toContain('route flush table 52');
      expect(calls.find((c) => c.startsWith('ip -6'))).toContain('rule del priority 5200 to 2001:db8::7/128 table main');
      expect(existsSync(join(dir, 'routing.json'))).toBe(false);
      calls.length = 0;
      await routing().recover();
      expect(calls).toEqual([]); // nothing left to undo
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
