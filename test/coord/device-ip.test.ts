// POST /device/{id}/ip over the real server: a device gets the IPv4 address asked for (its IPv6 one
// follows), its own and its peers' netmaps change at once; taken, out-of-range and reserved addresses
// are refused and nothing changes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, Coord } from './harness.js';
import { TestDevice } from './devices.js';

describe('setting a device\'s address', () => {
  const coord = new Coord();
  let owner: ReturnType<typeof api>;
  let one: TestDevice, two: TestDevice;

  beforeAll(async () => {
    await coord.start();
    owner = api(coord.url, coord.createTailnet('example.com', 'alice@example.com'));
    const key = (await owner.post('/tailnet/-/keys', { capabilities: { devices: { create: { reusable: true, preauthorized: true } } } })).body.key;
    one = new TestDevice(coord.url);
    two = new TestDevice(coord.url);
    await one.register(key, 'one');
    await two.register(key, 'two');
    one.connect();
    two.connect();
    await two.waitFor((n) => n.peers.length === 1, 10_000);
  }, 60_000);
  afterAll(async () => {
    one?.close();
    two?.close();
    await coord.cleanup();
  });

  it('moves the device to the new address; its own netmap and its peers\' follow at once', async () => {
    const r = await owner.post(`/device/${one.id}/ip`, { ipv4: '100.101.102.103' });
    expect(r.status, r.text).toBe(200);
    const got = (await owner.get(`/device/${one.id}`)).body.addresses;
    expect(got[0]).toBe('100.101.102.103');
    expect(got[1]).toMatch(/^fd7a:115c:a1e0::/);
    await one.waitFor((n) => n.self.addresses.some((a) => a.startsWith('100.101.102.103')), 5000);
    await two.waitFor((n) => n.peers[0]!.addresses.some((a) => a.startsWith('100.101.102.103')), 5000);
    const log = (await owner.get('/tailnet/-/logging/configuration')).body.logs as any[];
    expect(log.some((l) => l.target.id === one.id && l.target.property === 'ADDRESS')).toBe(true);
  });

  it('refuses an address another device holds (409), out of range or reserved ones (400), changing nothing', async () => {
    const twoAddr = (await owner.get(`/device/${two.id}`)).body.addresses[0];
    const taken = await owner.post(`/device/${one.id}/ip`, { ipv4: twoAddr });
    expect(taken.status).toBe(409);
    // Unique on the server, not only in the network: a device of another network holds it.
    const other = api(coord.url, coord.createTailnet('other.example', 'olga@other.example'));
    const otherKey = (await other.post('/tailnet/-/keys', { capabilities: { devices: { create: { preauthorized: true } } } })).body.key;
    const stranger = new TestDevice(coord.url);
    await stranger.register(otherKey, 'stranger');
    const strangerAddr = (await other.get(`/device/${stranger.id}`)).body.addresses[0];
    expect((await owner.post(`/device/${one.id}/ip`, { ipv4: strangerAddr })).status).toBe(409);
    for (const ipv4 of ['10.0.0.1', '100.100.100.100', '100.115.92.7', '100.64.1.0', 'not-an-ip', '999.999.999.999']) {
      const r = await owner.post(`/device/${one.id}/ip`, { ipv4 });
      expect(r.status, ipv4).toBe(400);
      expect(r.body.message).toContain('"ipv4"');
    }
    expect((await owner.post(`/device/${one.id}/ip`, {})).status).toBe(400);
    expect((await owner.get(`/device/${one.id}`)).body.addresses[0]).toBe('100.101.102.103');
    expect((await owner.post('/device/nope/ip', { ipv4: '100.101.102.104' })).status).toBe(404);
  });
});
