// Subnet routers and exit nodes in the netmap, against the real coord and real netmap streams: each
// client gets the routes its policy lets it use, one router per prefix (the primary), a new primary
// when the primary's stream drops, the routers `via` grants name, and exit nodes only with
// autogroup:internet; a router's own netmap shows what it advertises and what coord approved.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Netmap, PeerNode } from '../../wire/protocol.js';
import { api, Coord } from './harness.js';
import { TestDevice } from './devices.js';

const SUBNET = '10.50.1.0/24';
const OTHER = '10.60.0.0/24';
const EXIT = ['0.0.0.0/0', '::/0'];

const HEAD = `
  "tagOwners": {"tag:ra": [], "tag:rb": [], "tag:exit": [], "tag:ca": [], "tag:cb": [], "tag:cc": [], "tag:nobody": []},
  "autoApprovers": {"routes": {"10.50.0.0/16": ["tag:ra", "tag:rb"]}, "exitNode": ["tag:exit"]},`;
/** ca and cb may reach the subnet (through any router); cc may reach the routers only. */
const POLICY_PLAIN = `{${HEAD}
  "grants": [
    {"src": ["tag:ca", "tag:cb"], "dst": ["${SUBNET}"], "ip": ["tcp:22"]},
    {"src": ["tag:cc"], "dst": ["tag:ra", "tag:rb", "tag:exit"], "ip": ["*"]},
  ]}`;
/** ca through router A only, cb through router B only; ca may use the exit node. */
const POLICY_VIA = `{${HEAD}
  "grants": [
    {"src": ["tag:ca"], "dst": ["${SUBNET}"], "ip": ["*"], "via": ["tag:ra"]},
    {"src": ["tag:cb"], "dst": ["${SUBNET}"], "ip": ["*"], "via": ["tag:rb"]},
    {"src": ["tag:ca"], "dst": ["autogroup:internet"], "ip": ["*"]},
    {"src": ["tag:cb", "tag:cc"], "dst": ["tag:exit"], "ip": ["*"]},
  ]}`;

const peerOf = (n: Netmap | undefined, d: TestDevice): PeerNode | undefined => n?.peers.find((p) => p.id === d.id);
const primaryOf = (n: Netmap | undefined, d: TestDevice): string[] => peerOf(n, d)?.primaryRoutes ?? [];

describe('subnet routers and exit nodes in the netmap', () => {
  const coord = new Coord();
  let owner: ReturnType<typeof api>;
  const all: TestDevice[] = [];
  let ra: TestDevice, rb: TestDevice, exit: TestDevice, ca: TestDevice, cb: TestDevice, cc: TestDevice;

  const device = async (authKey: string, name: string, tag: string, routes: string[] = []) => {
    const d = new TestDevice(coord.url);
    all.push(d);
    await d.register(authKey, name, [tag]);
    if (routes.length > 0) await d.client.update({ advertisedRoutes: routes });
    return d;
  };

  beforeAll(async () => {
    await coord.start();
    owner = api(coord.url, coord.createTailnet('example.com', 'alice@example.com'));
    expect((await owner.post('/tailnet/-/acl', POLICY_PLAIN)).status).toBe(200);
    const key = (await owner.post('/tailnet/-/keys', { capabilities: { devices: { create: { reusable: true } } } })).body.key;
    ra = await device(key, 'ra', 'tag:ra', [SUBNET, OTHER]);
    rb = await device(key, 'rb', 'tag:rb', [SUBNET]);
    exit = await device(key, 'exit', 'tag:exit', EXIT);
    ca = await device(key, 'ca', 'tag:ca');
    cb = await device(key, 'cb', 'tag:cb');
    cc = await device(key, 'cc', 'tag:cc');
    // ra comes online first: it is the primary of the subnet
    ra.connect();
    await ra.waitFor(() => true);
    for (const d of [rb, exit, ca, cb, cc]) d.connect();
  });
  afterAll(async () => {
    for (const d of all) d.close();
    await coord.cleanup();
  });

  it("shows a router what it advertises and what coord approved in its own netmap", async () => {
    const self = (await ra.waitFor((n) => n.self.approvedRoutes !== undefined)).self;
    expect(self.advertisedRoutes).toEqual([SUBNET, OTHER]);
    expect(self.approvedRoutes).toEqual([SUBNET]); // OTHER is not within the autoApprovers' prefix
    expect((await exit.waitFor(() => true)).self.approvedRoutes).toEqual(EXIT);
    expect((await ca.waitFor(() => true)).self).toMatchObject({ advertisedRoutes: [], approvedRoutes: [] });
    // one spelling per prefix, or approval and primaries could not compare them
    await expect(ca.client.update({ advertisedRoutes: ['10.50.1.1/24'] })).rejects.toThrow('"advertisedRoutes": 10.50.1.1/24 is not written as its prefix 10.50.1.0/24');
    await expect(ca.client.update({ advertisedRoutes: ['fd00:0::/64'] })).rejects.toThrow('is not written as its prefix fd00::/64');
  });

  it('gives each client one primary router per prefix, in allowedIPs, and only to clients the policy lets reach it', async () => {
    for (const c of [ca, cb]) {
      const n = await c.waitFor((m) => primaryOf(m, ra).includes(SUBNET) && peerOf(m, rb) !== undefined);
      expect(peerOf(n, ra)).toMatchObject({ routes: [SUBNET], primaryRoutes: [SUBNET] });
      expect(peerOf(n, ra)!.allowedIPs).toEqual([...peerOf(n, ra)!.addresses, SUBNET]);
      expect(peerOf(n, rb)).toMatchObject({ routes: [SUBNET], primaryRoutes: [] });
      expect(peerOf(n, rb)!.allowedIPs).toEqual(peerOf(n, rb)!.addresses);
      expect(peerOf(n, exit)).toBeUndefined(); // no rule reaches the exit node from ca or cb
    }
    // cc may talk to the routers, not into their subnet, and not to the internet: no routes at all
    const n = await cc.waitFor((m) => m.peers.length === 3);
    for (const p of n.peers) {
      expect(p.allowedIPs).toEqual(p.addresses);
      expect(p.routes).toBeUndefined();
      expect(p.exitNodeOption).toBeUndefined();
    }
  });

  it('an admin approval adds a route; revoking it takes it away', async () => {
    expect((await owner.post('/tailnet/-/acl', POLICY_PLAIN.replace(`"dst": ["${SUBNET}"]`, `"dst": ["${SUBNET}", "${OTHER}"]`))).status).toBe(200);
    expect((await owner.post(`/device/${ra.id}/routes`, { routes: [SUBNET, OTHER] })).status).toBe(200);
    await ca.waitFor((m) => primaryOf(m, ra).includes(OTHER), 15_000);
    await ra.waitFor((m) => (m.self.approvedRoutes ?? []).includes(OTHER), 15_000);
    expect((await owner.post(`/device/${ra.id}/routes`, { routes: [SUBNET] })).status).toBe(200);
    await ca.waitFor((m) => !primaryOf(m, ra).includes(OTHER) && primaryOf(m, ra).includes(SUBNET), 15_000);
    expect((await owner.post('/tailnet/-/acl', POLICY_PLAIN)).status).toBe(200);
  });

  it('moves the prefix to the other router at once when the primary goes offline, and keeps it there', async () => {
    for (const c of [ca, cb]) await c.waitFor((m) => primaryOf(m, ra).includes(SUBNET) && peerOf(m, ra)!.online && peerOf(m, rb)!.online, 15_000);
    const t0 = performance.now();
    const got = new Map<TestDevice, number>();
    const waits = [ca, cb].map(async (c) => {
      await c.waitFor((m) => primaryOf(m, rb).includes(SUBNET) && !primaryOf(m, ra).includes(SUBNET), 15_000);
      got.set(c, performance.now() - t0);
    });
    ra.close(); // the router's stream drops
    await Promise.all(waits);
    const ms = [...got.values()];
    console.log(`failover: router stream closed → new primary in both clients' netmaps after ${ms.map((x) => x.toFixed(1)).join(' ms, ')} ms`);
    for (const c of [ca, cb]) {
      const p = peerOf(c.last, ra)!;
      expect(p.allowedIPs).toEqual(p.addresses); // WireGuard never gets the prefix for two peers
      expect(p.routes).toEqual([SUBNET]); // still offered: it may come back
      expect(p.online).toBe(false);
    }
    // ra returns: rb stays the primary (no flapping back)
    ra.connect();
    await ca.waitFor((m) => peerOf(m, ra)?.online === true, 15_000);
    expect(primaryOf(ca.last, rb)).toEqual([SUBNET]);
    expect(primaryOf(ca.last, ra)).toEqual([]);
    // rb goes: ra takes over again
    rb.close();
    await ca.waitFor((m) => primaryOf(m, ra).includes(SUBNET), 15_000);
    rb.connect();
    await ca.waitFor((m) => peerOf(m, rb)?.online === true, 15_000);
  });

  it('via steers ca through router A and cb through router B for the same subnet, and offers the exit node to ca only', async () => {
    expect((await owner.post('/tailnet/-/acl', POLICY_VIA)).status).toBe(200);
    // ra is primary now; cb must still use rb, and only rb
    const nb = await cb.waitFor((m) => primaryOf(m, rb).includes(SUBNET) && peerOf(m, ra)?.routes === undefined, 15_000);
    expect(peerOf(nb, ra)).toBeUndefined(); // nothing lets cb reach ra any more
    const na = await ca.waitFor((m) => primaryOf(m, ra).includes(SUBNET) && peerOf(m, exit)?.exitNodeOption === true, 15_000);
    expect(peerOf(na, rb)).toBeUndefined();
    const e = peerOf(na, exit)!;
    expect(e.exitRoutes).toEqual(EXIT);
    expect(e.allowedIPs).toEqual(e.addresses); // the agent adds the default routes for the exit node it uses
    // cb and cc see the exit node as a peer, not as an exit node: no autogroup:internet for them
    for (const c of [cb, cc]) {
      const p = peerOf(await c.waitFor((m) => peerOf(m, exit) !== undefined, 15_000), exit)!;
      expect(p.exitNodeOption).toBeUndefined();
      expect(p.exitRoutes).toBeUndefined();
    }
    // via: when ra goes, ca is left without the subnet rather than sent through rb
    ra.close();
    await ca.waitFor((m) => peerOf(m, ra)?.online === false, 15_000);
    expect(primaryOf(ca.last, ra)).toEqual([SUBNET]);
    expect(peerOf(ca.last, rb)).toBeUndefined();
    ra.connect();
  });

  it('a via grant naming routers that serve nothing takes the prefix away from the others (no filter changes)', async () => {
    expect((await owner.post('/tailnet/-/acl', POLICY_PLAIN)).status).toBe(200);
    await cb.waitFor((m) => [...primaryOf(m, ra), ...primaryOf(m, rb)].includes(SUBNET), 15_000);
    const steered = POLICY_PLAIN.replace('"grants": [', `"grants": [\n    {"src": ["tag:cb"], "dst": ["${SUBNET}"], "ip": ["*"], "via": ["tag:nobody"]},`);
    expect((await owner.post('/tailnet/-/acl', steered)).status).toBe(200);
    const n = await cb.waitFor((m) => peerOf(m, ra)?.routes === undefined && peerOf(m, rb)?.routes === undefined, 15_000);
    expect([peerOf(n, ra)?.allowedIPs, peerOf(n, rb)?.allowedIPs]).toEqual([peerOf(n, ra)?.addresses, peerOf(n, rb)?.addresses]);
    expect([...primaryOf(ca.last, ra), ...primaryOf(ca.last, rb)]).toEqual([SUBNET]);
  });
});
