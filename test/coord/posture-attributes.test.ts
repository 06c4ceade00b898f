// Custom posture attributes (GET /device/{id}/attributes, POST|DELETE /device/{id}/attributes/{key}) over
// the real server: a grant whose srcPosture tests `custom:tier` lets a device in once the attribute is set,
// and the destination's packet filter changes at once on set, delete and expiry.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Netmap } from '../../agent/control/index.js';
import { api, Coord } from './harness.js';
import { TestDevice } from './devices.js';

const POLICY = `{
  "tagOwners": {"tag:web": ["alice@example.com"]},
  "postures": {"posture:gold": ["custom:tier == 'gold'"]},
  "grants": [{"src": ["*"], "dst": ["tag:web"], "ip": ["tcp:22"], "srcPosture": ["posture:gold"]}],
}`;

describe('custom posture attributes', () => {
  // Upkeep every 250 ms (a quarter of the ephemeral timeout; no device here is ephemeral), so an expiry takes effect quickly.
  const coord = new Coord();
  let owner: ReturnType<typeof api>;
  let laptop: TestDevice, web: TestDevice;
  let laptopIp = '';

  const lets = (n: Netmap, ip: string) => n.packetFilter.some((r) => r.SrcIPs.some((s) => s === ip || s === `${ip}/32`));

  beforeAll(async () => {
    await coord.start(['--ephemeral-timeout', '1s']);
    owner = api(coord.url, coord.createTailnet('example.com', 'alice@example.com'));
    expect((await owner.post('/tailnet/-/acl', POLICY)).status).toBe(200);
    const plain = (await owner.post('/tailnet/-/keys', { capabilities: { devices: { create: { reusable: true, preauthorized: true } } } })).body.key;
    const tagged = (await owner.post('/tailnet/-/keys', { capabilities: { devices: { create: { reusable: true, preauthorized: true, tags: ['tag:web'] } } } })).body.key;
    laptop = new TestDevice(coord.url);
    web = new TestDevice(coord.url);
    await laptop.register(plain, 'laptop');
    await web.register(tagged, 'web', ['tag:web']);
    laptop.connect();
    web.connect();
    await web.waitFor(() => true, 10_000);
    laptopIp = (await owner.get(`/device/${laptop.id}`)).body.addresses[0];
  }, 60_000);
  afterAll(async () => {
    laptop?.close();
    web?.close();
    await coord.cleanup();
  });

  it('lists the node\'s own attributes; a device without the attribute is not let in', async () => {
    const r = await owner.get(`/device/${laptop.id}/attributes`);
    expect(r.status).toBe(200);
    expect(r.body.attributes).toEqual({ 'node:os': 'linux', 'node:tsVersion': '0.1.0' });
    expect(lets(web.last!, laptopIp)).toBe(false);
  });

  it('setting custom:tier lets the device in at once; deleting it shuts it out again', async () => {
    const set = await owner.post(`/device/${laptop.id}/attributes/custom:tier`, { value: 'gold' });
    expect(set.status, set.text).toBe(200);
    expect(set.body.attributes['custom:tier']).toBe('gold');
    await web.waitFor((n) => lets(n, laptopIp), 5000);

    const other = await owner.post(`/device/${laptop.id}/attributes/custom:tier`, { value: 'silver' });
    expect(other.body.attributes['custom:tier']).toBe('silver');
    await web.waitFor((n) => !lets(n, laptopIp), 5000);

    await owner.post(`/device/${laptop.id}/attributes/custom:tier`, { value: 'gold' });
    await web.waitFor((n) => lets(n, laptopIp), 5000);
    expect((await owner.del(`/device/${laptop.id}/attributes/custom:tier`)).status).toBe(200);
    await web.waitFor((n) => !lets(n, laptopIp), 5000);
    expect((await owner.get(`/device/${laptop.id}/attributes`)).body.attributes['custom:tier']).toBeUndefined();
  });

  it('an attribute with an expiry lets the device in until then', async () => {
    const expiry = new Date(Date.now() + 1500).toISOString();
    const set = await owner.post(`/device/${laptop.id}/attributes/custom:tier`, { value: 'gold', expiry });
    expect(set.status, set.text).toBe(200);
    expect(set.body.expiries['custom:tier']).toBe(expiry);
    await web.waitFor((n) => lets(n, laptopIp), 5000);
    await web.waitFor((n) => !lets(n, laptopIp), 40_000);
    expect((await owner.get(`/device/${laptop.id}/attributes`)).body.attributes['custom:tier']).toBeUndefined();
  }, 60_000);

  it('refuses keys outside custom:, bad values and past expiries, changing nothing', async () => {
    for (const [key, body, why] of [
      ['node:os', { value: 'x' }, 'custom:'],
      ['custom:has space', { value: 'x' }, 'custom:'],
      ['custom:tier', { value: { nested: 1 } }, '"value"'],
      ['custom:tier', { value: 'x'.repeat(51) }, '"value"'],
      ['custom:tier', { value: 'gold', expiry: '2001-01-01T00:00:00Z' }, 'future'],
      ['custom:tier', { value: 'gold', expiry: 'tomorrow' }, 'RFC 3339'],
    ] as const) {
      const r = await owner.post(`/device/${laptop.id}/attributes/${encodeURIComponent(key)}`, body);
      expect(r.status, `${key} ${JSON.stringify(body)}`).toBe(400);
      expect(r.body.message).toContain(why);
    }
    expect((await owner.get(`/device/${laptop.id}/attributes`)).body.attributes['custom:tier']).toBeUndefined();
    expect((await owner.get('/device/nope/attributes')).status).toBe(404);
  });

  it('records each change in the audit log as an ATTRIBUTES update of the node', async () => {
    const logs = (await owner.get('/tailnet/-/logging/configuration')).body.logs as any[];
    expect(logs.filter((l) => l.target.type === 'NODE' && l.target.property === 'ATTRIBUTES' && l.target.id === laptop.id).length).toBeGreaterThanOrEqual(5);
  });

  it('policy tests take srcPostureAttrs: in the file, and in a list of tests acl/validate runs against the stored policy', async () => {
    const etag = (await owner.get('/tailnet/-/acl')).headers.get('etag');
    const validate = (body: unknown) => owner.post('/tailnet/-/acl/validate', body);
    const gold = { src: 'alice@example.com', srcPostureAttrs: { 'custom:tier': 'gold' }, accept: ['tag:web:22'] };
    const silver = { src: 'alice@example.com', srcPostureAttrs: { 'custom:tier': 'silver' }, deny: ['tag:web:22'] };
    const none = { src: 'alice@example.com', deny: ['tag:web:22'] };
    for (const tests of [[gold], [silver, none], [gold, silver, none]]) {
      const r = await validate(tests);
      expect(r.status, r.text).toBe(200);
      expect(r.body, JSON.stringify(tests)).toEqual({});
    }
    const wrong = await validate(`// tests only\n[\n  {"src": "alice@example.com", "accept": ["tag:web:22"]},\n]`);
    expect(wrong.status).toBe(200);
    expect(wrong.body.message).toBe('test(s) failed');
    expect(wrong.body.data).toEqual([{ user: 'alice@example.com', errors: ['src "alice@example.com" (line 3): expected accept "tag:web:22", got drop'] }]);
    // The same tests inside a policy file.
    const inFile = POLICY.replace(/}\s*$/, `  "tests": ${JSON.stringify([gold, silver, none])},\n}`);
    expect((await validate(inFile)).body).toEqual({});
    expect((await owner.post('/tailnet/-/acl', inFile)).status).toBe(200);
    expect((await validate(inFile.replace("'gold'", "'platinum'"))).body.message).toBe('test(s) failed');
    // Bad lists are 400 with the place.
    for (const [body, why] of [
      ['[{"src": "alice@example.com", "accept": ["tag:web:22"], "srcPostureAttrs": {"custom:tier": ["gold"]}}]', /^1:\d+: srcPostureAttrs "custom:tier": .*string, number or boolean/],
      ['[{"src": "alice@example.com", "accept": ["tag:web:22"], "srcPostureAttrs": ["custom:tier"]}]', /^1:\d+: srcPostureAttrs must be an object/],
      ['[{"src": "alice@example.com", "nope": 1}]', /^1:\d+: unknown field "nope" in tests entry/],
      ['[{"src": ', /^1:\d+: invalid HuJSON/],
    ] as const) {
      const r = await validate(body);
      expect(r.status, body).toBe(400);
      expect(r.body.message, body).toMatch(why);
    }
    expect((await owner.get('/tailnet/-/acl')).headers.get('etag')).not.toBe(etag); // the file with tests was stored above
    expect((await owner.post('/tailnet/-/acl', POLICY)).status).toBe(200);
  });
});
