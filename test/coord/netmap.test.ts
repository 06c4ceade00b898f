// The machine API and netmap streams against the real server: signed requests (no replay), the full
// netmap first, updates on changes to exactly the affected devices, logout on removal.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { generateMachineKey, signedHeaders } from '../../agent/control/index.js';
import { api, Coord } from './harness.js';
import { sendMarker, TestDevice } from './devices.js';

const POLICY_ALL = `{
  "tagOwners": {"tag:db": ["alice@example.com"], "tag:web": ["alice@example.com"]},
  "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
}`;
const POLICY_WEB_DB = `{
  "tagOwners": {"tag:db": ["alice@example.com"], "tag:web": ["alice@example.com"]},
  "acls": [{"action": "accept", "src": ["tag:web"], "dst": ["tag:db:5432"]}],
}`;
const POLICY_WEB_DB_2 = POLICY_WEB_DB.replace('5432', '5433');

describe('machine API and netmap streams', () => {
  const coord = new Coord();
  let owner: ReturnType<typeof api>;
  let authKey = '';
  const all: TestDevice[] = [];
  let laptop: TestDevice, db: TestDevice, web: TestDevice;

  beforeAll(async () => {
    await coord.start();
    owner = api(coord.url, coord.createTailnet('example.com', 'alice@example.com'));
    expect((await owner.post('/tailnet/-/acl', POLICY_ALL)).status).toBe(200);
    authKey = (await owner.post('/tailnet/-/keys', { capabilities: { devices: { create: { reusable: true } } } })).body.key;
    laptop = new TestDevice(coord.url);
    db = new TestDevice(coord.url);
    web = new TestDevice(coord.url);
    all.push(laptop, db, web);
    await laptop.register(authKey, 'laptop');
    await db.register(authKey, 'db', ['tag:db']);
    await web.register(authKey, 'web', ['tag:web']);
    for (const d of all) d.connect();
  });
  afterAll(async () => {
    for (const d of all) d.close();
    await coord.cleanup();
  });

  it('sends the full netmap first: self, peers, packet filter, DNS', async () => {
    const n = await laptop.waitFor((m) => m.peers.length === 2);
    expect(n.self.name).toBe('laptop.example-com.meshward.internal');
    expect(n.self.user.loginName).toBe('alice@example.com');
    expect(n.self.addresses).toHaveLength(2);
    expect(n.self.network).toEqual({ name: 'example.com', domain: 'example-com.meshward.internal' });
    expect(laptop.peerNames()).toEqual(['db', 'web']);
    const dbPeer = n.peers.find((p) => p.name.startsWith('db.'))!;
    expect(dbPeer.nodeKey).toBe(db.nodeKey);
    expect(dbPeer.tags).toEqual(['tag:db']);
    expect(dbPeer.endpoints).toEqual(['192.0.2.1:41641']);
    expect(dbPeer.allowedIPs).toEqual(dbPeer.addresses);
    expect(dbPeer.shared).toBe(false);
    expect(dbPeer.quarantined).toBe(false);
    expect(n.packetFilter.length).toBeGreaterThan(0);
    expect(n.dns.domain).toBe('example-com.meshward.internal');
    await laptop.waitFor((m) => m.peers.every((p) => p.online));
  });

  // How fast the change reaches the devices is measured by `npm run -s bench:coord`, not here.
  it('on a policy change sends new netmaps to the affected devices only', async () => {
    await db.waitFor((m) => m.peers.length === 2);
    await web.waitFor((m) => m.peers.length === 2);
    expect((await owner.post('/tailnet/-/acl', POLICY_WEB_DB)).status).toBe(200);
    const nDb = await db.waitFor((m) => m.peers.length === 1, 15_000);
    await web.waitFor((m) => m.peers.length === 1, 15_000);
    await laptop.waitFor((m) => m.peers.length === 0, 15_000);
    expect(db.peerNames()).toEqual(['web']);
    expect(web.peerNames()).toEqual(['db']);
    const webAddr = web.last!.self.addresses.map((a) => a.split('/')[0]);
    expect(nDb.packetFilter).toHaveLength(1);
    expect(nDb.packetFilter[0]!.SrcIPs.sort()).toEqual(webAddr.sort());
    expect(nDb.packetFilter[0]!.DstPorts!.every((d) => d.Ports.First === 5432 && d.Ports.Last === 5432)).toBe(true);
    expect(web.last!.packetFilter).toEqual([]);

    // A change that only touches db's filter: db gets a netmap, laptop (unaffected) does not.
    const laptopCount = laptop.netmaps.length;
    const webCount = web.netmaps.length;
    expect((await owner.post('/tailnet/-/acl', POLICY_WEB_DB_2)).status).toBe(200);
    await db.waitFor((m) => m.packetFilter[0]?.DstPorts?.[0]?.Ports.First === 5433, 15_000);
    // then a change that reaches everyone: laptop and web must get it as their only new netmap
    const marker = await sendMarker(owner.post, [laptop, web, db]);
    expect(laptop.since(laptopCount).map((m) => m.dns.searchPaths)).toEqual([[marker]]);
    expect(web.since(webCount).map((m) => m.dns.searchPaths)).toEqual([[marker]]);
  });

  it('updates peers when a device reports new endpoints, and versions increase', async () => {
    const before = db.last!.version;
    await web.client.update({ endpoints: ['198.51.100.7:41641'] });
    const n = await db.waitFor((m) => m.peers[0]?.endpoints[0] === '198.51.100.7:41641', 15_000);
    expect(n.version).toBeGreaterThan(before);
  });

  it('tells a removed device to log out and drops it from its peers', async () => {
    const extra = new TestDevice(coord.url);
    all.push(extra);
    await extra.register(authKey, 'extra', ['tag:web']);
    extra.connect();
    // The stream must be open before the delete, or coord answers it "not registered", not "removed".
    await extra.waitFor(() => true, 15_000);
    await db.waitFor((m) => m.peers.length === 2, 15_000);
    expect((await owner.del(`/device/${extra.id}`)).status).toBe(200);
    await db.waitFor((m) => m.peers.length === 1, 15_000);
    await extra.stream!.done;
    expect(extra.errors.some((e) => e.fatal && /removed/.test(e.err.message))).toBe(true);
  });

  it('refuses unsigned, badly signed, stale and replayed requests', async () => {
    const url = coord.url + '/machine/register';
    const body = Buffer.from(JSON.stringify({ nodeKey: Buffer.alloc(32, 1).toString('base64'), hostname: 'x', authKey }));
    const post = (headers: Record<string, string>) => fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });

    expect((await post({})).status).toBe(401);

    const key = generateMachineKey();
    const h = signedHeaders(key, 'POST', '/machine/register', body);
    const forged = { ...h, 'mw-machine-key': generateMachineKey().publicKey };
    const r1 = await post(forged);
    expect(r1.status).toBe(401);
    expect(((await r1.json()) as { message: string }).message).toMatch(/signature/);

    const tampered = await fetch(url, { method: 'POST', body: Buffer.concat([body, Buffer.from(' ')]), headers: h });
    expect(tampered.status).toBe(401);

    const ok = await post(h);
    expect(ok.status).toBe(200);
    const replay = await post(h);
    expect(replay.status).toBe(401);
    expect(((await replay.json()) as { message: string }).message).toMatch(/replay/);

    // Signed correctly, but ten minutes ago: refused for its age (the nonce cache only remembers
    // requests within the allowed skew, so replay protection rests on this check).
    const now = Date.now();
    const clock = vi.spyOn(Date, 'now').mockReturnValue(now - 10 * 60_000);
    const stale = signedHeaders(key, 'POST', '/machine/register', body);
    clock.mockRestore();
    const r2 = await post(stale);
    expect(r2.status).toBe(401);
    expect(((await r2.json()) as { message: string }).message).toMatch(/timestamp is too far/);

    // The stream is signed too: another machine cannot open a device's stream.
    const other = generateMachineKey();
    const mapHeaders = signedHeaders(other, 'GET', '/machine/map', Buffer.alloc(0));
    expect((await fetch(coord.url + '/machine/map', { headers: mapHeaders })).status).toBe(401);
  });

  it('reconnects by itself after coord restarts and gets a fresh netmap', async () => {
    const count = db.netmaps.length;
    const addr = coord.url.replace('http://', '');
    expect(await coord.stop()).toBe(0);
    await new Promise((r) => setTimeout(r, 200));
    await coord.start(['--listen', addr]); // same address: the devices' clients reconnect on their own
    await db.waitFor(() => db.netmaps.length > count, 10_000);
    expect(db.errors.some((e) => !e.fatal)).toBe(true); // it did notice the outage
    expect(db.errors.some((e) => e.fatal)).toBe(false);
    const n = await db.waitFor((m) => m.peers.length === 1, 15_000);
    expect(n.peers.map((p) => p.name.split('.')[0])).toEqual(['web']);
    await web.waitFor((m) => m.peers.length === 1 && m.peers[0]!.online, 15_000);
  });
});
