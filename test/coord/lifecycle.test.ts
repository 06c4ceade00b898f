// Device and user life cycle as devices see it: approval, expiry, suspension, re-authorization with
// new tags; and the raw stream: full netmap first, then deltas with only what changed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signedHeaders } from '../../agent/control/index.js';
import { addUser, api, Coord } from './harness.js';
import { TestDevice } from './devices.js';

const POLICY = `{
  "tagOwners": {"tag:db": ["alice@example.com"], "tag:web": ["alice@example.com"]},
  "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
}`;

describe('device and user life cycle', () => {
  const coord = new Coord();
  let ownerKey = '';
  let owner: ReturnType<typeof api>;
  let authKey = '';
  const all: TestDevice[] = [];
  const device = () => {
    const d = new TestDevice(coord.url);
    all.push(d);
    return d;
  };

  beforeAll(async () => {
    await coord.start();
    ownerKey = coord.createTailnet('example.com', 'alice@example.com');
    owner = api(coord.url, ownerKey);
    expect((await owner.post('/tailnet/-/acl', POLICY)).status).toBe(200);
    authKey = (await owner.post('/tailnet/-/keys', { capabilities: { devices: { create: { reusable: true } } } })).body.key;
  });
  afterAll(async () => {
    for (const d of all) d.close();
    await coord.cleanup();
  });

  it('sends a full netmap first and then deltas with only what changed', async () => {
    const a = device();
    await a.register(authKey, 'raw-a');
    const b = device();
    await b.register(authKey, 'raw-b');
    b.connect();
    const ac = new AbortController();
    const res = await fetch(coord.url + '/machine/map', { headers: signedHeaders(a.client.key, 'GET', '/machine/map', Buffer.alloc(0)), signal: ac.signal });
    expect(res.headers.get('content-type')).toBe('application/x-ndjson');
    const reader = res.body!.getReader();
    let buf = '';
    const lines: any[] = [];
    const next = async () => {
      while (!buf.includes('\n')) {
        const { value, done } = await reader.read();
        if (done) throw new Error('stream ended');
        buf += Buffer.from(value).toString();
      }
      const i = buf.indexOf('\n');
      const line = JSON.parse(buf.slice(0, i));
      buf = buf.slice(i + 1);
      lines.push(line);
      return line;
    };
    const first = await next();
    expect(first.type).toBe('netmap');
    expect(first.netmap.peers.map((p: any) => p.name.split('.')[0])).toContain('raw-b');
    expect((await owner.post('/tailnet/-/acl', POLICY.replace('"*:*"', '"*:443"'))).status).toBe(200);
    let d = await next();
    while (d.type !== 'delta' || !d.delta.packetFilter) d = await next();
    expect(Object.keys(d.delta).sort()).toEqual(['packetFilter', 'version']);
    expect(d.delta.version).toBeGreaterThan(first.netmap.version);
    expect(d.delta.packetFilter[0].DstPorts[0].Ports).toEqual({ First: 443, Last: 443 });
    await b.client.update({ endpoints: ['203.0.113.9:41641'] });
    let e = await next();
    while (e.type !== 'delta' || !e.delta.peersUpsert) e = await next();
    expect(Object.keys(e.delta).sort()).toEqual(['peersUpsert', 'version']);
    expect(e.delta.peersUpsert[0].endpoints).toEqual(['203.0.113.9:41641']);
    ac.abort();
    expect((await owner.post('/tailnet/-/acl', POLICY)).status).toBe(200);
  });

  it('keeps a new device out until approved when the network asks for approval', async () => {
    const peer = device();
    await peer.register(authKey, 'peer');
    peer.connect();
    expect((await owner.patch('/tailnet/-/settings', { devicesApprovalOn: true })).body.devicesApprovalOn).toBe(true);
    const n = device();
    const r = await n.register(authKey, 'newcomer');
    expect(r.authorized).toBe(false);
    n.connect();
    const first = await n.waitFor(() => true);
    expect(first.self.authorized).toBe(false);
    expect(first.peers).toEqual([]);
    expect(first.packetFilter).toEqual([]);
    await peer.waitFor((m) => m.peers.length > 0);
    expect(peer.peerNames()).not.toContain('newcomer');
    expect((await owner.post(`/device/${r.deviceId}/authorized`, { authorized: true })).status).toBe(200);
    await n.waitFor((m) => m.self.authorized && m.peers.some((p) => p.name.startsWith('peer.')));
    await peer.waitFor((m) => m.peers.some((p) => p.name.startsWith('newcomer.')));
    // a preauthorized key skips approval
    const pre = (await owner.post('/tailnet/-/keys', { capabilities: { devices: { create: { preauthorized: true } } } })).body.key;
    expect((await device().register(pre, 'pre')).authorized).toBe(true);
    await owner.patch('/tailnet/-/settings', { devicesApprovalOn: false });
  });

  it('drops an expired device from its peers and makes it register again', async () => {
    const watcher = device();
    await watcher.register(authKey, 'watcher');
    watcher.connect();
    const x = device();
    const r = await x.register(authKey, 'expiring');
    x.connect();
    await watcher.waitFor((m) => m.peers.some((p) => p.name.startsWith('expiring.')));
    expect((await owner.post(`/device/${r.deviceId}/expire`)).status).toBe(200);
    await watcher.waitFor((m) => !m.peers.some((p) => p.name.startsWith('expiring.')));
    await x.waitFor((m) => m.peers.length === 0 && m.packetFilter.length === 0);
    await expect(x.register(undefined, 'expiring')).rejects.toThrow(/expired/);
    await x.register(authKey, 'expiring');
    await watcher.waitFor((m) => m.peers.some((p) => p.name.startsWith('expiring.')));
  });

  it("removes a suspended user's devices from the network and brings them back on restore", async () => {
    const bob = await addUser(coord.url, ownerKey, 'example.com', 'bob@example.com', 'member');
    const bobKey = (await owner.post('/tailnet/-/keys', { user: 'bob@example.com', capabilities: { devices: { create: {} } } })).body.key;
    const bobs = device();
    await bobs.register(bobKey, 'bobs-laptop');
    const watcher = device();
    await watcher.register(authKey, 'watcher2');
    watcher.connect();
    await watcher.waitFor((m) => m.peers.some((p) => p.name.startsWith('bobs-laptop.') && p.user.loginName === 'bob@example.com'));
    expect((await owner.post(`/users/${bob.id}/suspend`)).status).toBe(200);
    await watcher.waitFor((m) => !m.peers.some((p) => p.name.startsWith('bobs-laptop.')));
    expect((await api(coord.url, bob.token).get('/tailnet/-/devices')).status).toBe(401);
    expect((await owner.post(`/users/${bob.id}/restore`)).status).toBe(200);
    await watcher.waitFor((m) => m.peers.some((p) => p.name.startsWith('bobs-laptop.')));
  });

  it('changes tags only with a fresh auth key that allows them', async () => {
    const tagKey = (await owner.post('/tailnet/-/keys', { capabilities: { devices: { create: { tags: ['tag:web'] } } } })).body.key;
    const d = device();
    const r = await d.register(tagKey, 'tagged');
    expect(r.tags).toEqual(['tag:web']);
    expect(r.expires).toBeNull(); // tagged devices do not expire by default
    await expect(d.register(undefined, 'tagged', ['tag:db'])).rejects.toThrow(/fresh authorization/);
    // alice owns tag:db, and the key is hers: allowed with the key
    const again = (await owner.post('/tailnet/-/keys', {})).body.key;
    const r2 = await d.register(again, 'tagged', ['tag:db']);
    expect(r2.tags).toEqual(['tag:db']);
    expect(r2.deviceId).toBe(r.deviceId);
    // a member's key cannot carry tags the member does not own
    await addUser(coord.url, ownerKey, 'example.com', 'carol@example.com', 'member');
    const carolKey = (await owner.post('/tailnet/-/keys', { user: 'carol@example.com', capabilities: { devices: { create: {} } } })).body.key;
    await expect(device().register(carolKey, 'carols', ['tag:db'])).rejects.toThrow('requested tags [tag:db] are invalid or not permitted');
  });

  it('enables subnet routes that autoApprovers allow, and others when an admin does', async () => {
    const policy = POLICY.replace('"tagOwners": {', '"autoApprovers": {"routes": {"10.20.0.0/16": ["tag:web"]}},\n  "tagOwners": {');
    expect((await owner.post('/tailnet/-/acl', policy)).status).toBe(200);
    const key = (await owner.post('/tailnet/-/keys', { capabilities: { devices: { create: { tags: ['tag:web'] } } } })).body.key;
    const router = device();
    const r = await router.client.register({ nodeKey: router.nodeKey, hostname: 'router', authKey: key, advertisedRoutes: ['10.20.1.0/24', '172.30.0.0/24'] });
    const watcher = device();
    await watcher.register(authKey, 'route-watcher');
    watcher.connect();
    const peerOf = (m: any) => m.peers.find((p: any) => p.id === r.deviceId);
    await watcher.waitFor((m) => peerOf(m)?.allowedIPs.includes('10.20.1.0/24'));
    expect(peerOf(watcher.last).allowedIPs).not.toContain('172.30.0.0/24');
    expect((await owner.get(`/device/${r.deviceId}/routes`)).body).toEqual({ advertisedRoutes: ['10.20.1.0/24', '172.30.0.0/24'], enabledRoutes: ['10.20.1.0/24'] });
    expect((await owner.post(`/device/${r.deviceId}/routes`, { routes: ['10.20.1.0/24', '172.30.0.0/24'] })).status).toBe(200);
    await watcher.waitFor((m) => peerOf(m)?.allowedIPs.includes('172.30.0.0/24'));
    expect((await owner.post(`/device/${r.deviceId}/routes`, { routes: ['192.0.2.0/24'] })).status).toBe(400);
    // withdrawing a route disables it
    await router.client.update({ advertisedRoutes: ['10.20.1.0/24'] });
    await watcher.waitFor((m) => !peerOf(m)?.allowedIPs.includes('172.30.0.0/24'));
    expect((await owner.post('/tailnet/-/acl', POLICY)).status).toBe(200);
  });

  it('lets only owners and admins make keys for other users, and nobody but the owner for the owner', async () => {
    const dave = await addUser(coord.url, ownerKey, 'example.com', 'dave@example.com', 'it-admin');
    const daveApi = api(coord.url, dave.token);
    const r = await daveApi.post('/tailnet/-/keys', { user: 'carol@example.com' });
    expect(r.status).toBe(403);
    expect((await daveApi.post('/tailnet/-/keys', { user: 'alice@example.com' })).status).toBe(403);
    expect((await daveApi.post('/tailnet/-/keys', {})).status).toBe(200);
    const erin = await addUser(coord.url, ownerKey, 'example.com', 'erin@example.com', 'admin');
    expect((await api(coord.url, erin.token).post('/tailnet/-/keys', { user: 'alice@example.com' })).status).toBe(403);
    expect((await api(coord.url, erin.token).post('/tailnet/-/keys', { user: 'carol@example.com' })).status).toBe(200);
  });
});
