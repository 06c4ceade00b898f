// Several networks in one server: nothing of one is visible or reachable from another.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, Coord } from './harness.js';
import { sendMarker, TestDevice } from './devices.js';
import { signedHeaders } from '../../agent/control/index.js';
import { MACHINE_PATHS } from '../../wire/protocol.js';

describe('networks are isolated from each other', () => {
  const coord = new Coord();
  const all: TestDevice[] = [];
  let a: ReturnType<typeof api>, b: ReturnType<typeof api>;
  let devA: TestDevice, devB: TestDevice;

  beforeAll(async () => {
    await coord.start();
    a = api(coord.url, coord.createTailnet('a.example', 'alice@a.example'));
    b = api(coord.url, coord.createTailnet('b.example', 'bob@b.example'));
    devA = new TestDevice(coord.url);
    devB = new TestDevice(coord.url);
    all.push(devA, devB);
    await devA.register((await a.post('/tailnet/-/keys', {})).body.key, 'server');
    await devB.register((await b.post('/tailnet/-/keys', {})).body.key, 'server');
    devA.connect();
    devB.connect();
  });
  afterAll(async () => {
    for (const d of all) d.close();
    await coord.cleanup();
  });

  it("answers 404 for another network's name, devices, users and keys", async () => {
    expect((await a.get('/tailnet/b.example/devices')).status).toBe(404);
    expect((await a.get('/tailnet/b.example/acl')).status).toBe(404);
    expect((await a.get(`/device/${devB.id}`)).status).toBe(404);
    expect((await a.del(`/device/${devB.id}`)).status).toBe(404);
    const bobId = (await b.get('/tailnet/-/users')).body.users[0].id;
    expect((await a.get(`/users/${bobId}`)).status).toBe(404);
    expect((await a.post(`/users/${bobId}/role`, { role: 'admin' })).status).toBe(404);
    const bKey = (await b.get('/tailnet/-/keys')).body.keys[0]?.id ?? 'none';
    expect((await a.del(`/tailnet/-/keys/${bKey}`)).status).toBe(404);
    expect((await b.get(`/device/${devB.id}`)).status).toBe(200);
  });

  it('gives both networks distinct addresses, and the same host name in each', async () => {
    const na = await devA.waitFor(() => true);
    const nb = await devB.waitFor(() => true);
    expect(na.self.addresses).not.toEqual(nb.self.addresses);
    expect(na.self.name).toBe('server.a-example.meshward.internal');
    expect(nb.self.name).toBe('server.b-example.meshward.internal');
  });

  it("never lists another network's devices as peers, even with allow-all policies", async () => {
    const extra = new TestDevice(coord.url);
    all.push(extra);
    const fromB = devB.netmaps.length;
    await extra.register((await a.post('/tailnet/-/keys', {})).body.key, 'second');
    await devA.waitFor((m) => m.peers.length === 1);
    expect(devA.peerNames()).toEqual(['second']);
    // B's next change reaches devB: nothing of A's new device came before it
    const marker = await sendMarker(b.post, [devB]);
    expect(devB.since(fromB).map((m) => [m.peers, m.dns.searchPaths])).toEqual([[[], [marker]]]);
  });

  it("refuses another device's node key, from any network, at registration and update (409)", async () => {
    const thief = new TestDevice(coord.url);
    all.push(thief);
    const key = (await b.post('/tailnet/-/keys', { capabilities: { devices: { create: { reusable: true } } } })).body.key;
    const reg = thief.client.register({ nodeKey: devA.nodeKey, hostname: 'thief', authKey: key, os: 'linux', version: '0.1.0', endpoints: [] });
    await expect(reg).rejects.toMatchObject({ status: 409, message: 'this node key is already used by another device; every device needs a WireGuard key of its own' });
    await thief.register(key, 'thief');
    await expect(thief.client.update({ nodeKey: devA.nodeKey })).rejects.toMatchObject({ status: 409 });
    await expect(thief.client.update({ nodeKey: devB.nodeKey })).rejects.toMatchObject({ status: 409 });
    // The victims keep their keys in every netmap; a device may keep and re-send its own key.
    await thief.client.update({ nodeKey: thief.nodeKey });
    const devices = (await a.get('/tailnet/-/devices')).body.devices;
    expect(devices.find((d: { id: string }) => d.id === devA.id).nodeKey).toBe(`nodekey:${devA.nodeKey}`);
  });

  it('refuses a signed machine request replayed after coord restarts (nonces survive restarts)', async () => {
    const body = Buffer.from(JSON.stringify({ endpoints: ['192.0.2.9:41641'] }));
    const headers = { 'content-type': 'application/json', ...signedHeaders(devA.client.key, 'POST', MACHINE_PATHS.update, body) };
    const send = async () => (await fetch(coord.url + MACHINE_PATHS.update, { method: 'POST', headers, body })).status;
    expect(await send()).toBe(200);
    expect(await send()).toBe(401);
    devA.close();
    devB.close();
    await coord.stop();
    await coord.start(['--listen', new URL(coord.url).host]);
    expect(await send()).toBe(401);
  });
});
