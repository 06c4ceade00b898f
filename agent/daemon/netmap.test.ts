import type { NetworkInterfaceInfo } from 'node:os';
import { describe, expect, it } from 'vitest';
import type { Netmap, PeerNode } from '../../wire/protocol.js';
import type { FilterRule } from '../../wire/types.js';
import {
  decodeKey, filterConfigOf, findPeer, parseEndpoint, localEndpoints, onLocalSubnet, orderEndpoints, peerStatusOf, planPeers, whoisOf,
} from './netmap.js';

const key = (n: number) => Buffer.alloc(32, n).toString('base64');
const user = { id: 'u1', loginName: 'alice@example.com', displayName: 'Alice' };

function peer(over: Partial<PeerNode>): PeerNode {
  return {
    id: 'n2', name: 'web.example-com.meshward.internal', addresses: ['100.64.0.2/32', 'fd7a:115c:a1e0::2/128'], nodeKey: key(2),
    endpoints: ['198.18.0.2:41641'], allowedIPs: ['100.64.0.2/32', 'fd7a:115c:a1e0::2/128'], user, tags: [], os: 'linux',
    online: true, lastSeen: null, shared: false, quarantined: false, ...over,
  };
}

function netmap(peers: PeerNode[], packetFilter: Netmap['packetFilter'] = []): Netmap {
  return {
    version: 1,
    self: {
      id: 'n1', name: 'db.example-com.meshward.internal', hostname: 'db', addresses: ['100.64.0.1/32', 'fd7a:115c:a1e0::1/128'], user,
      tags: ['tag:db'], network: { name: 'example.com', domain: 'example-com.meshward.internal' }, nodeKey: key(1), authorized: true, expires: null,
    },
    peers,
    packetFilter,
    dns: { domain: 'example-com.meshward.internal', magicDNS: true, nameservers: [], searchPaths: [] },
  };
}

describe('netmap → WireGuard peers', () => {
  it('plans one peer per usable key, skipping bad, duplicate and own keys', () => {
    const { peers, skipped } = planPeers(
      netmap([
        peer({}),
        peer({ id: 'n3', name: 'bad.x', nodeKey: 'not-a-key' }),
        peer({ id: 'n4', name: 'dup.x', nodeKey: key(2) }),
        peer({ id: 'n5', name: 'me.x', nodeKey: key(1) }),
        peer({ id: 'n6', name: 'short.x', nodeKey: Buffer.alloc(31, 1).toString('base64') }),
      ]),
    );
    expect(peers.map((p) => p.nodeKey)).toEqual([key(2)]);
    expect(peers[0]!.publicKey).toEqual(Buffer.alloc(32, 2));
    expect(peers[0]!.allowedIPs).toEqual(['100.64.0.2/32', 'fd7a:115c:a1e0::2/128']);
    expect(skipped).toEqual(['bad.x', 'dup.x', 'me.x', 'short.x']);
  });

  it('falls back to the addresses when allowedIPs is empty, adding host prefixes', () => {
    const { peers } = planPeers(netmap([peer({ allowedIPs: [], addresses: ['100.64.0.2', 'fd7a:115c:a1e0::2'] })]));
    expect(peers[0]!.allowedIPs).toEqual(['100.64.0.2/32', 'fd7a:115c:a1e0::2/128']);
  });

  it('orders endpoints: our subnet first, IPv4 before IPv6, never loopback, link-local or tailnet ones', () => {
    const eps = ['[2001:db8::1]:41641', '203.0.113.5:41641', '127.0.0.1:41641', '100.64.0.9:41641', '[fe80::1]:41641', '198.18.0.7:41641', 'garbage', '1.2.3.4:0'];
    expect(orderEndpoints(eps)).toEqual(['203.0.113.5:41641', '198.18.0.7:41641', '[2001:db8::1]:41641']);
    expect(orderEndpoints(eps, (ip) => ip.startsWith('198.18.'))).toEqual(['198.18.0.7:41641', '203.0.113.5:41641', '[2001:db8::1]:41641']);
  });

  it('decodes only canonical 32-byte base64 keys', () => {
    expect(decodeKey(key(7))).toEqual(Buffer.alloc(32, 7));
    expect(decodeKey(key(7).slice(0, -1))).toBeNull();
    expect(decodeKey('')).toBeNull();
  });
});

describe('netmap → filter configuration', () => {
  it('uses the rules, our addresses as local, and quarantines shared-in peers', () => {
    const rules = [{ SrcIPs: ['100.64.0.2'], DstPorts: [{ IP: '*', Ports: { First: 22, Last: 22 } }] }];
    const cfg = filterConfigOf(netmap([peer({}), peer({ id: 'n9', nodeKey: key(9), addresses: ['100.64.0.9/32'], allowedIPs: ['100.64.0.9/32', '10.9.0.0/24'], quarantined: true, shared: true })], rules));
    expect(cfg.rules).toBe(rules);
    expect(cfg.localAddrs).toEqual(['100.64.0.1/32', 'fd7a:115c:a1e0::1/128']);
    expect(cfg.quarantined).toEqual(['100.64.0.9/32', '10.9.0.0/24']);
    // quarantined peers and no sharedPeerRules: nothing may be started towards them
    expect(cfg.outbound).toEqual([]);
  });

  it('passes the netmap\'s sharedPeerRules as the outbound rules, only when a peer is quarantined', () => {
    const shared: FilterRule[] = [{ SrcIPs: ['100.64.0.1'], DstPorts: [{ IP: '100.64.0.9', Ports: { First: 22, Last: 22 } }] }];
    const q = peer({ id: 'n9', nodeKey: key(9), addresses: ['100.64.0.9/32'], allowedIPs: ['100.64.0.9/32'], quarantined: true, shared: true });
    expect(filterConfigOf({ ...netmap([q], []), sharedPeerRules: shared }).outbound).toBe(shared);
    expect(filterConfigOf({ ...netmap([peer({})], []), sharedPeerRules: shared }).outbound).toBeUndefined();
  });
});

describe('status and whois', () => {
  it('names own-network peers by short name, shared-in ones by full name, owned by the sharer', () => {
    const own = peerStatusOf(peer({ tags: ['tag:web'] }), { endpoint: '198.18.0.2:41641', relay: null, lastHandshake: Date.parse('2026-01-01T00:00:00Z'), txBytes: 5, rxBytes: 6 });
    expect(own).toMatchObject({ name: 'web', addresses: ['100.64.0.2', 'fd7a:115c:a1e0::2'], tags: ['tag:web'], lastHandshake: '2026-01-01T00:00:00.000Z', txBytes: 5 });
    const shared = peerStatusOf(peer({ name: 'git.other-net.meshward.internal', shared: true, quarantined: true, tags: ['tag:secret'], user: { ...user, loginName: 'bob@other.net' } }), undefined);
    expect(shared).toMatchObject({ name: 'git.other-net.meshward.internal', owner: 'bob@other.net', tags: [], shared: true, quarantined: true, endpoint: null, lastHandshake: null });
  });

  it('gives active peers their path: direct with the endpoint, or the relay by name without one', () => {
    const at = Date.parse('2026-01-01T00:01:00Z');
    const live = { endpoint: '198.18.0.2:41641', relay: null, lastHandshake: at - 10_000, txBytes: 1, rxBytes: 1 };
    expect(peerStatusOf(peer({}), live, at)).toMatchObject({ path: 'direct', relay: null, endpoint: '198.18.0.2:41641' });
    expect(peerStatusOf(peer({}), { ...live, relay: 'coord' }, at)).toMatchObject({ path: 'relay', relay: 'coord', endpoint: null });
    // Idle (no handshake for 3 minutes) or never: no path.
    expect(peerStatusOf(peer({}), { ...live, lastHandshake: at - 200_000 }, at)).toMatchObject({ path: null, relay: null });
    expect(peerStatusOf(peer({}), undefined, at)).toMatchObject({ path: null, relay: null, endpoint: null });
  });

  it('finds the peer a person means for `agent ping`: by address, full name or short name', () => {
    const nm = netmap([peer({}), peer({ id: 'n3', name: 'laptop.example-com.meshward.internal', nodeKey: key(3), addresses: ['100.64.0.3/32', 'fd7a:115c:a1e0::3/128'] })]);
    expect(findPeer(nm, '100.64.0.3')?.id).toBe('n3');
    expect(findPeer(nm, 'fd7a:115c:a1e0:0::3')?.id).toBe('n3');
    expect(findPeer(nm, 'Laptop')?.id).toBe('n3');
    expect(findPeer(nm, 'laptop.example-com.meshward.internal.')?.id).toBe('n3');
    expect(findPeer(nm, 'nobody')).toBeNull();
    expect(findPeer(nm, '100.64.0.9')).toBeNull();
  });

  it('reads endpoints as address and port, canonical', () => {
    expect(parseEndpoint('198.18.0.2:41641')).toEqual({ address: '198.18.0.2', port: 41641 });
    expect(parseEndpoint('[fd00:0::1]:5')).toEqual({ address: 'fd00::1', port: 5 });
    expect(parseEndpoint('198.18.0.2')).toBeNull();
    expect(parseEndpoint('198.18.0.2:0')).toBeNull();
  });

  it('finds the device behind an address and merges the capabilities granted towards us', () => {
    const nm = netmap([peer({ tags: ['tag:web'] }), peer({ id: 'n3', name: 'laptop.example-com.meshward.internal', nodeKey: key(3), addresses: ['100.64.0.3/32', 'fd7a:115c:a1e0::3/128'] })]);
    const calls: string[] = [];
    const caps = (src: string, dst: string): Record<string, unknown[] | null>[] => {
      calls.push(`${src}→${dst}`);
      return [{ 'example.com/cap/a': [{ x: 1 }] }, { 'example.com/cap/a': [{ x: 2 }], 'example.com/cap/b': null }];
    };
    const who = whoisOf(nm, '100.64.0.2', caps)!;
    expect(who.device).toMatchObject({ id: 'n2', name: 'web', tags: ['tag:web'] });
    expect(who.user).toBeNull(); // a tagged device belongs to its tags
    expect(who.capabilities).toEqual({ 'example.com/cap/a': [{ x: 1 }, { x: 2 }], 'example.com/cap/b': [] });
    expect(calls).toEqual(['100.64.0.2→100.64.0.1']);
    const v6 = whoisOf(nm, 'FD7A:115C:A1E0:0::3', caps)!;
    expect(v6.device.id).toBe('n3');
    expect(v6.user).toEqual({ loginName: 'alice@example.com', displayName: 'Alice' });
    expect(calls[1]).toBe('FD7A:115C:A1E0:0::3→fd7a:115c:a1e0::1');
    expect(whoisOf(nm, '100.64.0.1', caps)!.device.id).toBe('n1');
    expect(whoisOf(nm, '100.64.0.99', caps)).toBeNull();
  });
});

describe('this device’s endpoints', () => {
  const iface = (address: string, family: 'IPv4' | 'IPv6', cidr: string, internal = false): NetworkInterfaceInfo =>
    ({ address, family, cidr, internal, netmask: '', mac: '00:00:00:00:00:00', ...(family === 'IPv6' ? { scopeid: 0 } : {}) }) as NetworkInterfaceInfo;
  const ifaces = {
    lo: [iface('127.0.0.1', 'IPv4', '127.0.0.1/8', true), iface('::1', 'IPv6', '::1/128', true)],
    eth0: [iface('198.18.5.2', 'IPv4', '198.18.5.2/24'), iface('fe80::1', 'IPv6', 'fe80::1/64'), iface('2001:db8::2', 'IPv6', '2001:db8::2/64')],
    mw0: [iface('100.64.0.1', 'IPv4', '100.64.0.1/32'), iface('fd7a:115c:a1e0::1', 'IPv6', 'fd7a:115c:a1e0::1/128')],
    docker0: [iface('100.100.1.1', 'IPv4', '100.100.1.1/16')],
  };

  it('reports LAN addresses with the listen port, not loopback, link-local, tailnet or the TUN', () => {
    expect(localEndpoints(ifaces, 41641, 'mw0')).toEqual(['198.18.5.2:41641', '[2001:db8::2]:41641']);
  });

  it('knows its own subnets', () => {
    const local = onLocalSubnet(ifaces, 'mw0');
    expect(local('198.18.5.77')).toBe(true);
    expect(local('198.18.6.1')).toBe(false);
    expect(local('100.64.0.5')).toBe(false);
    expect(local('2001:db8::5')).toBe(false);
  });
});
