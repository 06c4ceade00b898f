import { describe, expect, it } from 'vitest';
import type { AgentStatus, PeerStatus } from '../localapi/types.js';
import { formatAgo, formatPong, formatRouteSettings, formatStatus, peerState } from './status-format.js';

const now = Date.parse('2026-11-23T12:00:00Z');
const ago = (s: number) => new Date(now - s * 1000).toISOString();

function peer(over: Partial<PeerStatus>): PeerStatus {
  return {
    id: 'n1', name: 'web', dnsName: 'web.alpha.mesh.', addresses: ['100.64.0.2', 'fd7a:115c:a1e0::2'], owner: 'alice@example.com',
    os: 'linux', tags: [], online: true, lastSeen: ago(1), shared: false, quarantined: false, endpoint: null,
    path: null, relay: null, lastHandshake: null, txBytes: 0, rxBytes: 0, ...over,
  };
}

describe('agent status', () => {
  it('names the state like tailscale status', () => {
    expect(peerState(peer({ lastHandshake: ago(10), endpoint: '10.0.0.2:41641', txBytes: 10, rxBytes: 20 }), now)).toBe(
      'active; direct 10.0.0.2:41641, tx 10 rx 20',
    );
    expect(peerState(peer({ lastHandshake: ago(600), endpoint: '10.0.0.2:41641' }), now)).toBe('idle');
    expect(peerState(peer({ lastHandshake: ago(10), path: 'relay', relay: 'coord', txBytes: 1, rxBytes: 2 }), now)).toBe('active; relay "coord", tx 1 rx 2');
    expect(peerState(peer({ online: false, lastSeen: ago(300) }), now)).toBe('offline, last seen 5m ago');
    expect(peerState(peer({ shared: true, quarantined: true }), now)).toBe('idle; shared, quarantined');
  });

  it('prints this device first, then peers by name, with tagged devices and sharers as owners', () => {
    const status: AgentStatus = {
      schema: 1, version: '0.1.0', backendState: 'Running',
      coord: { url: 'http://127.0.0.1:8080', connected: true, lastContact: ago(1), error: null },
      self: { name: 'laptop', dnsName: 'laptop.beta.mesh.', addresses: ['100.64.0.1'], owner: 'bob@example.com', os: 'linux', tags: [], network: 'beta' },
      peers: [
        peer({ name: 'git.alpha.mesh', addresses: ['100.64.0.9'], owner: 'alice@example.com', shared: true, quarantined: true }),
        peer({ name: 'ci', addresses: ['100.64.0.3'], tags: ['tag:ci'] }),
      ],
      filter: { accepted: 0, dropped: {} },
    };
    expect(formatStatus(status, now).split('\n')).toEqual([
      '100.64.0.1  laptop          bob@example.com    linux  -',
      '100.64.0.3  ci              tagged-devices     linux  idle',
      '100.64.0.9  git.alpha.mesh  alice@example.com  linux  idle; shared, quarantined',
    ]);
  });

  it('says how to log in when logged out, and when coord is unreachable', () => {
    const base: AgentStatus = {
      schema: 1, version: '0.1.0', backendState: 'NeedsLogin',
      coord: { url: null, connected: false, lastContact: null, error: null }, self: null, peers: [], filter: { accepted: 0, dropped: {} },
    };
    expect(formatStatus(base, now)).toMatch(/agent up --coord URL --authkey KEY/);
    const offline = { ...base, backendState: 'Running' as const, coord: { url: 'http://x', connected: false, lastContact: null, error: 'ECONNREFUSED' } };
    expect(formatStatus(offline, now)).toMatch(/coord unreachable \(ECONNREFUSED\); running on the last netmap/);
    const waiting = { ...base, backendState: 'Running' as const, health: ['this device awaits approval by an admin of its network'] };
    expect(formatStatus(waiting, now)).toBe('# this device awaits approval by an admin of its network');
  });

  it("escapes control characters in peers' names, owners and OS (they come from other devices)", () => {
    const status: AgentStatus = {
      schema: 1, version: '0.1.0', backendState: 'Running',
      coord: { url: 'http://x', connected: true, lastContact: ago(1), error: null },
      self: null,
      peers: [peer({ name: 'evil\u001b[2J', owner: '\u202eeve@example.com', os: '\u001b]0;pwned\u0007linux' })],
      filter: { accepted: 0, dropped: {} },
    };
    const text = formatStatus(status, now);
    expect(text).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/);
    expect(text).toBe('100.64.0.2  evil\\x1b[2J  \\u202eeve@example.com  \\x1b]0;pwned\\x07linux  idle');
  });

  it('formats durations', () => {
    expect(formatAgo(5_000)).toBe('5s ago');
    expect(formatAgo(7_200_000)).toBe('2h ago');
    expect(formatAgo(3 * 86_400_000)).toBe('3d ago');
  });
});

describe('agent status: routes and exit nodes', () => {
  it('says what this device offers and uses, and what each peer offers', () => {
    const status: AgentStatus = {
      schema: 1, version: '0.1.0', backendState: 'Running',
      coord: { url: 'http://127.0.0.1:8080', connected: true, lastContact: ago(1), error: null },
      self: { name: 'gw', dnsName: 'gw.beta.mesh.', addresses: ['100.64.0.1'], owner: 'bob@example.com', os: 'linux', tags: [], network: 'beta' },
      peers: [
        peer({ name: 'egress', addresses: ['100.64.0.4'], routes: [], exitNodeOption: true, exitNode: true }),
        peer({ name: 'vpc', addresses: ['100.64.0.3'], routes: ['10.1.0.0/24', '10.2.0.0/24'], routesInUse: ['10.1.0.0/24'] }),
      ],
      filter: { accepted: 0, dropped: {} },
      routing: {
        advertisedRoutes: ['192.168.5.0/24', '192.168.6.0/24'], advertiseExitNode: false, approvedRoutes: ['192.168.5.0/24'], pendingRoutes: ['192.168.6.0/24'],
        acceptRoutes: true, acceptRoutesOverLan: false, snatSubnetRoutes: false, exitNodeWanted: 'egress', exitNode: { id: 'n4', name: 'egress', address: '100.64.0.4' },
        exitNodeAllowLanAccess: true, forwarding: { v4: true, v6: false }, notes: [],
      },
    };
    expect(formatStatus(status, now).split('\n').slice(3)).toEqual([
      '# this device offers: 192.168.5.0/24 (approved), 192.168.6.0/24 (awaiting approval); no source NAT',
      '# exit node in use: egress (100.64.0.4), LAN reachable directly',
      '# egress offers: exit node (in use)',
      '# vpc offers: 10.1.0.0/24 (in use), 10.2.0.0/24',
    ]);
    // `agent up` says which route settings stay (they are kept when a later `agent up` leaves them out)
    expect(formatRouteSettings(status.routing)).toBe(
      'route settings: --advertise-routes=192.168.5.0/24,192.168.6.0/24 --snat-subnet-routes=false --accept-routes --exit-node=egress --exit-node-allow-lan-access ' +
        '(kept by later `agent up` runs and restarts; to undo one, give it again, e.g. --advertise-routes= --accept-routes=false --exit-node=)',
    );
    const defaults = { ...status.routing!, advertisedRoutes: [], approvedRoutes: [], pendingRoutes: [], acceptRoutes: false, snatSubnetRoutes: true, exitNodeWanted: '', exitNode: null, exitNodeAllowLanAccess: false };
    expect(formatRouteSettings(defaults)).toBeNull();
    expect(formatRouteSettings(null)).toBeNull();
  });
});

describe('agent ping', () => {
  const peer = { name: 'web', dnsName: 'web.alpha.mesh.', address: '100.64.0.2' };
  it('prints each pong with its path and latency, as tailscale ping does', () => {
    expect(formatPong({ peer, pong: { path: 'direct', endpoint: '198.18.0.12:41641', relay: null, latencyMs: 1.234 } })).toBe(
      'pong from web (100.64.0.2) via 198.18.0.12:41641 in 1.2ms',
    );
    expect(formatPong({ peer, pong: { path: 'relay', endpoint: null, relay: 'coord', latencyMs: 25 } })).toBe('pong from web (100.64.0.2) via relay "coord" in 25ms');
    expect(formatPong({ peer, pong: null })).toBe('timeout waiting for a pong from web (100.64.0.2)');
  });
});
