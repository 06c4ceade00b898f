// The admin API against the real server: policy with ETag/If-Match, keys, devices, users, bad input,
// the audit log, and a restart on the same database.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addUser, api, Coord, coordCli } from './harness.js';
import { TestDevice } from './devices.js';

describe('admin API', () => {
  const coord = new Coord();
  let ownerKey = '';
  let owner: ReturnType<typeof api>;
  const devices: TestDevice[] = [];

  beforeAll(async () => {
    await coord.start();
    ownerKey = coord.createTailnet('example.com', 'alice@example.com');
    owner = api(coord.url, ownerKey);
  });
  afterAll(async () => {
    for (const d of devices) d.close();
    await coord.cleanup();
  });

  const newDevice = () => {
    const d = new TestDevice(coord.url);
    devices.push(d);
    return d;
  };

  it('tailnet create refuses a duplicate and bad flags', () => {
    const dup = coordCli(['tailnet', 'create', 'example.com', '--owner', 'x@example.com', '--db', coord.db]);
    expect(dup.status).toBe(1);
    expect(dup.stderr).toContain('already exists');
    const noOwner = coordCli(['tailnet', 'create', 'other.com', '--db', coord.db]);
    expect(noOwner.status).toBe(2);
    expect(noOwner.stderr).toContain('--owner');
  });

  it('serves the policy as JSON and HuJSON with an ETag, and honours If-Match', async () => {
    const json = await owner.get('/tailnet/-/acl');
    expect(json.status).toBe(200);
    expect(json.body.acls[0].action).toBe('accept');
    const etag = json.headers.get('etag')!;
    expect(etag).toMatch(/^".+"$/);
    const hujson = await owner.get('/tailnet/example.com/acl', { accept: 'application/hujson' });
    expect(hujson.text).toContain('//');
    expect(hujson.headers.get('etag')).toBe(etag);

    const next = '{"acls": [{"action": "accept", "src": ["alice@example.com"], "dst": ["*:22"]}]}';
    const stale = await owner.post('/tailnet/-/acl', next, { 'if-match': '"stale"' });
    expect(stale.status).toBe(412);
    const ok = await owner.post('/tailnet/-/acl', next, { 'if-match': etag });
    expect(ok.status).toBe(200);
    const newTag = ok.headers.get('etag')!;
    expect(newTag).not.toBe(etag);
    expect((await owner.post('/tailnet/-/acl', next, { 'if-match': etag })).status).toBe(412);
    expect((await owner.get('/tailnet/-/acl')).body.acls[0].dst).toEqual(['*:22']);
    // restore allow-all for the rest of the tests
    expect((await owner.post('/tailnet/-/acl', '{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}', { 'if-match': newTag })).status).toBe(200);
  });

  it('refuses a bad policy with line:column and keeps the stored one', async () => {
    const before = await owner.get('/tailnet/-/acl', { accept: 'application/hujson' });
    const bad = '{\n  "acls": [\n    {"action": "deny", "src": ["*"], "dst": ["*:*"]},\n  ],\n}';
    const r = await owner.post('/tailnet/-/acl', bad);
    expect(r.status).toBe(400);
    expect(r.body.message).toMatch(/^3:\d+: /);
    const broken = await owner.post('/tailnet/-/acl', '{"acls": [');
    expect(broken.status).toBe(400);
    expect(broken.body.message).toMatch(/^\d+:\d+: /);
    const after = await owner.get('/tailnet/-/acl', { accept: 'application/hujson' });
    expect(after.text).toBe(before.text);
    expect(after.headers.get('etag')).toBe(before.headers.get('etag'));
    const v = await owner.post('/tailnet/-/acl/validate', bad);
    expect(v.status).toBe(400);
  });

  it('refuses a policy whose tests fail, with Tailscale\'s shape', async () => {
    const failing = `{
      "acls": [{"action": "accept", "src": ["alice@example.com"], "dst": ["*:22"]}],
      "tests": [{"src": "alice@example.com", "accept": ["100.64.0.1:80"]}],
    }`;
    const r = await owner.post('/tailnet/-/acl', failing);
    expect(r.status).toBe(400);
    expect(r.body.message).toBe('test(s) failed');
    expect(r.body.data[0].user).toBe('alice@example.com');
    expect(r.body.data[0].errors.length).toBeGreaterThan(0);
    const v = await owner.post('/tailnet/-/acl/validate', failing);
    expect(v.status).toBe(200);
    expect(v.body.message).toBe('test(s) failed');
    const good = await owner.post('/tailnet/-/acl/validate', '{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}');
    expect(good.status).toBe(200);
    expect(good.body).toEqual({});
  });

  it('previews what a user may reach, with the line of the rule', async () => {
    const policy = '{\n  "acls": [\n    {"action": "accept", "src": ["alice@example.com"], "dst": ["*:22"]},\n  ],\n}';
    const r = await owner.post('/tailnet/-/acl/preview?type=user&previewFor=alice@example.com', policy);
    expect(r.status).toBe(200);
    expect(r.body.type).toBe('user');
    expect(r.body.previewFor).toBe('alice@example.com');
    expect(r.body.matches).toEqual([{ users: ['alice@example.com'], ports: ['*:22'], lineNumber: 3 }]);
    expect((await owner.post('/tailnet/-/acl/preview?type=user&previewFor=bob@example.com', policy)).body.matches).toEqual([]);
    expect((await owner.post('/tailnet/-/acl/preview?type=nonsense&previewFor=x', policy)).status).toBe(400);
    expect((await owner.post('/tailnet/-/acl/preview?type=user', policy)).status).toBe(400);
  });

  it('answers malformed JSON with 400, oversized bodies with 413, unknown things with 404', async () => {
    const r = await owner.post('/tailnet/-/keys', '{"capabilities": ');
    expect(r.status).toBe(400);
    expect(r.body.message).toMatch(/invalid JSON/);
    const big = await owner.post('/tailnet/-/acl', 'x'.repeat(2 << 20));
    expect(big.status).toBe(413);
    expect((await owner.get('/tailnet/nosuch.example/devices')).status).toBe(404);
    expect((await owner.get('/device/n000000000000000')).status).toBe(404);
    expect((await owner.get('/no/such/endpoint')).status).toBe(404);
  });

  it('creates auth keys whose secret is shown once, and revokes them', async () => {
    const k = await owner.post('/tailnet/-/keys', { capabilities: { devices: { create: { reusable: true, preauthorized: true } } }, expirySeconds: 3600, description: 'ci' });
    expect(k.status).toBe(200);
    expect(k.body.key).toMatch(/^mwkey-auth-/);
    const list = await owner.get('/tailnet/-/keys');
    const listed = list.body.keys.find((x: any) => x.id === k.body.id);
    expect(listed).toBeDefined();
    expect(listed.key).toBeUndefined();
    expect(JSON.stringify(list.body)).not.toContain(k.body.key);
    expect((await owner.get(`/tailnet/-/keys/${k.body.id}`)).body.key).toBeUndefined();
    const d = newDevice();
    await d.register(k.body.key, 'before-revoke');
    expect((await owner.del(`/tailnet/-/keys/${k.body.id}`)).status).toBe(200);
    await expect(newDevice().register(k.body.key, 'after-revoke')).rejects.toThrow('auth key has been revoked');
  });

  it('lists auth keys with their capabilities, and revoked keys with `revoked` and invalid; `expires` always a date-time', async () => {
    const k = await owner.post('/tailnet/-/keys', { capabilities: { devices: { create: { reusable: true, tags: [] } } }, expirySeconds: 3600 });
    const a = await owner.post('/tailnet/-/keys', { keyType: 'api', expirySeconds: 3600 });
    const find = async (id: string) => (await owner.get('/tailnet/-/keys')).body.keys.find((x: any) => x.id === id);
    expect(await find(k.body.id)).toMatchObject({ keyType: 'auth', invalid: false, capabilities: { devices: { create: { reusable: true, ephemeral: false, preauthorized: false, tags: [] } } } });
    expect((await find(k.body.id)).revoked).toBeUndefined();
    expect((await owner.del(`/tailnet/-/keys/${k.body.id}`)).status).toBe(200);
    expect((await owner.del(`/tailnet/-/keys/${a.body.id}`)).status).toBe(200);
    for (const id of [k.body.id, a.body.id]) {
      const listed = await find(id);
      expect(listed, `revoked key ${id} in the list`).toBeDefined();
      expect(listed.invalid).toBe(true);
      expect(Date.parse(listed.revoked)).toBeGreaterThan(Date.now() - 60_000);
    }
    expect((await find(k.body.id)).capabilities.devices.create.reusable).toBe(true);
    for (const key of (await owner.get('/tailnet/-/keys')).body.keys) expect(key.expires).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
  });

  it('registers devices with unique addresses and numbered DNS names', async () => {
    const k = await owner.post('/tailnet/-/keys', { capabilities: { devices: { create: { reusable: true } } } });
    const a = await newDevice().register(k.body.key, 'Web');
    const b = await newDevice().register(k.body.key, 'web');
    expect(a.name).toBe('web.example-com.meshward.internal');
    expect(b.name).toBe('web-1.example-com.meshward.internal');
    expect(a.addresses[0]).not.toBe(b.addresses[0]);
    for (const r of [a, b]) {
      const [v4, v6] = r.addresses;
      const [p0, p1] = v4!.split('.').map(Number);
      expect(p0).toBe(100);
      expect(p1! >= 64 && p1! < 128).toBe(true);
      expect(v6!.startsWith('fd7a:115c:a1e0::')).toBe(true);
    }
    const list = await owner.get('/tailnet/-/devices');
    const names = list.body.devices.map((d: any) => d.name);
    expect(names).toContain('web-1.example-com.meshward.internal');
    const one = list.body.devices.find((d: any) => d.id === b.deviceId);
    expect(one.user).toBe('alice@example.com');
    expect(one.os).toBe('linux');
  });

  it('refuses a single-use key twice and tags nobody may use', async () => {
    const k = await owner.post('/tailnet/-/keys', {});
    await newDevice().register(k.body.key, 'once');
    await expect(newDevice().register(k.body.key, 'twice')).rejects.toThrow('already been used');
    const k2 = await owner.post('/tailnet/-/keys', {});
    await expect(newDevice().register(k2.body.key, 'tagged', ['tag:nope'])).rejects.toThrow('requested tags [tag:nope] are invalid or not permitted');
  });

  it('renames, retags (admin), and deletes devices', async () => {
    await owner.post('/tailnet/-/acl', '{"tagOwners": {"tag:db": ["alice@example.com"]}, "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}');
    const k = await owner.post('/tailnet/-/keys', {});
    const d = newDevice();
    const r = await d.register(k.body.key, 'db1');
    expect((await owner.post(`/device/${r.deviceId}/name`, { name: 'database' })).status).toBe(200);
    expect((await owner.post(`/device/${r.deviceId}/tags`, { tags: ['tag:db'] })).status).toBe(200);
    const got = await owner.get(`/device/${r.deviceId}`);
    expect(got.body.name).toBe('database.example-com.meshward.internal');
    expect(got.body.tags).toEqual(['tag:db']);
    // the device itself cannot change its tags without a fresh authorization
    await expect(d.register(undefined, 'db1', [])).rejects.toThrow('needs a fresh authorization');
    expect((await owner.del(`/device/${r.deviceId}`)).status).toBe(200);
    expect((await owner.get(`/device/${r.deviceId}`)).status).toBe(404);
    await expect(d.register(undefined, 'db1')).rejects.toThrow('not registered');
  });

  it('keeps the role rules: one owner, hand-over, no self-change', async () => {
    const bob = await addUser(coord.url, ownerKey, 'example.com', 'bob@example.com', 'admin');
    const bobApi = api(coord.url, bob.token);
    const users = (await owner.get('/tailnet/-/users')).body.users;
    const alice = users.find((u: any) => u.loginName === 'alice@example.com');
    expect(alice.role).toBe('owner');
    expect((await bobApi.post(`/users/${bob.id}/role`, { role: 'owner' })).status).toBe(403);
    expect((await bobApi.post(`/users/${alice.id}/role`, { role: 'member' })).status).toBe(403);
    expect((await bobApi.post(`/users/${alice.id}/delete`)).status).toBe(403);
    expect((await owner.post(`/users/${alice.id}/role`, { role: 'admin' })).status).toBe(403);
    expect((await owner.post(`/users/${bob.id}/role`, { role: 'wizard' })).status).toBe(400);
    // hand-over: bob becomes owner, alice admin
    expect((await owner.post(`/users/${bob.id}/role`, { role: 'owner' })).status).toBe(200);
    const after = (await bobApi.get('/tailnet/-/users')).body.users;
    expect(after.filter((u: any) => u.role === 'owner').map((u: any) => u.loginName)).toEqual(['bob@example.com']);
    expect(after.find((u: any) => u.loginName === 'alice@example.com').role).toBe('admin');
    // and back, so the rest of the file runs as before
    expect((await bobApi.post(`/users/${alice.id}/role`, { role: 'owner' })).status).toBe(200);
  });

  it('signs in with email and password, and rate-limits failures', async () => {
    const bad = await api(coord.url).post('/login', { tailnet: 'example.com', email: 'bob@example.com', password: 'wrong wrong wrong' });
    expect(bad.status).toBe(401);
    let status = 0;
    for (let i = 0; i < 6; i++) {
      status = (await api(coord.url).post('/login', { tailnet: 'example.com', email: 'carol@example.com', password: 'wrong wrong wrong' })).status;
    }
    expect(status).toBe(429);
  });

  it('records configuration changes in the audit log', async () => {
    const log = await owner.get('/tailnet/-/logging/configuration');
    expect(log.status).toBe(200);
    expect(log.body.version).toBe('1.1');
    expect(log.body.tailnet).toBe('example.com');
    const acl = log.body.logs.find((e: any) => e.target.property === 'ACL');
    expect(acl.actor.loginName).toBe('alice@example.com');
    expect(typeof acl.old).toBe('string');
    expect(typeof acl.new).toBe('string');
    expect(log.body.logs.some((e: any) => e.target.type === 'NODE' && e.action === 'DELETE')).toBe(true);
    expect(log.body.logs.some((e: any) => e.target.property === 'USER_ROLE')).toBe(true);
  });

  it('keeps networks, users, devices, keys and policy across a restart', async () => {
    const before = {
      devices: (await owner.get('/tailnet/-/devices')).body,
      users: (await owner.get('/tailnet/-/users')).body,
      keys: (await owner.get('/tailnet/-/keys')).body,
      policy: (await owner.get('/tailnet/-/acl', { accept: 'application/hujson' })).text,
    };
    expect(await coord.stop()).toBe(0);
    await coord.start();
    owner = api(coord.url, ownerKey);
    const after = {
      devices: (await owner.get('/tailnet/-/devices')).body,
      users: (await owner.get('/tailnet/-/users')).body,
      keys: (await owner.get('/tailnet/-/keys')).body,
      policy: (await owner.get('/tailnet/-/acl', { accept: 'application/hujson' })).text,
    };
    const strip = (x: any) => JSON.parse(JSON.stringify(x, (k, v) => (k === 'connectedToControl' || k === 'lastSeen' ? undefined : v)));
    expect(strip(after)).toEqual(strip(before));
    expect(after.devices.devices.length).toBeGreaterThan(3);
  });
});
