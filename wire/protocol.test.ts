import { describe, expect, it } from 'vitest';
import { applyDelta, signingString, type Netmap, type PeerNode } from './protocol.js';

const peer = (id: string, os = 'linux'): PeerNode => ({
  id, name: `${id}.x`, addresses: [], nodeKey: 'k', endpoints: [], allowedIPs: [], user: { id: 'u', loginName: 'a@x', displayName: 'a' },
  tags: [], os, online: true, lastSeen: null, shared: false, quarantined: false,
});

const base: Netmap = {
  version: 1,
  self: { id: 's', name: 's.x', hostname: 's', addresses: [], user: { id: 'u', loginName: 'a@x', displayName: 'a' }, tags: [], network: { name: 'x', domain: 'x' }, nodeKey: 'k', authorized: true, expires: null },
  peers: [peer('a'), peer('b')],
  packetFilter: [{ SrcIPs: ['*'], DstPorts: [{ IP: '*', Ports: { First: 22, Last: 22 } }] }],
  dns: { domain: 'x', magicDNS: true, nameservers: [], searchPaths: [] },
};

describe('applyDelta', () => {
  it('replaces what the delta carries and keeps the rest', () => {
    const next = applyDelta(base, { version: 2, packetFilter: [], peersUpsert: [peer('b', 'freebsd'), peer('c')], peersRemove: ['a'] });
    expect(next.version).toBe(2);
    expect(next.packetFilter).toEqual([]);
    expect(next.self).toBe(base.self);
    expect(next.dns).toBe(base.dns);
    expect(next.peers.map((p) => `${p.id}:${p.os}`).sort()).toEqual(['b:freebsd', 'c:linux']);
    expect(base.peers.map((p) => p.id)).toEqual(['a', 'b']); // the old netmap is untouched
  });

  it('keeps the peer list object when no peer changed', () => {
    expect(applyDelta(base, { version: 3 }).peers).toBe(base.peers);
  });
});

describe('signingString', () => {
  it('binds method, path, body hash, time and nonce', () => {
    const a = signingString('post', '/machine/register', 'ab', '1', 'n');
    expect(a).toBe('meshward-machine-v1\nPOST\n/machine/register\nab\n1\nn');
    expect(signingString('POST', '/machine/update', 'ab', '1', 'n')).not.toBe(a);
  });
});

describe('applyDelta and sharedPeerRules', () => {
  it('replaces sharedPeerRules when the delta carries them and keeps them otherwise', () => {
    const rules = [{ SrcIPs: ['100.64.0.1'], DstPorts: [{ IP: '100.64.0.9', Ports: { First: 22, Last: 22 } }] }];
    const a = applyDelta(base, { version: 2, sharedPeerRules: rules });
    expect(a.sharedPeerRules).toBe(rules);
    expect(applyDelta(a, { version: 3 }).sharedPeerRules).toBe(rules);
    expect(applyDelta(a, { version: 4, sharedPeerRules: [] }).sharedPeerRules).toEqual([]);
    expect('sharedPeerRules' in applyDelta(base, { version: 5 })).toBe(false);
  });
});
