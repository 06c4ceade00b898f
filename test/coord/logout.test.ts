// A device logs itself out (POST /machine/logout, `agent logout`) against the real server: it is
// deleted exactly as an admin deletes it (device list, peers' netmaps, audit log, nodeDeleted webhook),
// and the request is signed like every machine API request (unsigned, replayed, unknown: refused).
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControlClient, ControlError, generateMachineKey, signedHeaders } from '../../agent/control/index.js';
import { api, Coord } from './harness.js';
import { TestDevice } from './devices.js';

const POLICY = `{
  "tagOwners": {"tag:web": ["alice@example.com"]},
  "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
}`;

describe('POST /machine/logout', () => {
  const coord = new Coord();
  let owner: ReturnType<typeof api>;
  let authKey = '';
  const all: TestDevice[] = [];
  let receiver: Server;
  const events: Array<{ type: string; data: Record<string, unknown> }> = [];

  const deviceIds = async () => ((await owner.get('/tailnet/-/devices')).body.devices as Array<{ id: string }>).map((d) => d.id).sort();
  const device = async (hostname: string, tags?: string[]) => {
    const d = new TestDevice(coord.url);
    all.push(d);
    await d.register(authKey, hostname, tags);
    d.connect();
    return d;
  };
  const postLogout = (headers: Record<string, string>, body = Buffer.from('{}')) =>
    fetch(coord.url + '/machine/logout', { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });

  beforeAll(async () => {
    receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        events.push(...(JSON.parse(body) as typeof events));
        res.writeHead(200).end('ok');
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    await coord.start(['--allow-private-webhooks']);
    owner = api(coord.url, coord.createTailnet('example.com', 'alice@example.com'));
    expect((await owner.post('/tailnet/-/acl', POLICY)).status).toBe(200);
    authKey = (await owner.post('/tailnet/-/keys', { capabilities: { devices: { create: { reusable: true, preauthorized: true } } } })).body.key;
    const hook = await owner.post('/tailnet/-/webhooks', {
      endpointUrl: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`,
      subscriptions: ['nodeDeleted'],
    });
    expect(hook.status).toBe(200);
  });
  afterAll(async () => {
    for (const d of all) d.close();
    await coord.cleanup();
    await new Promise((r) => receiver.close(r));
  });

  it('deletes the calling device: device list, peers’ netmaps, its own stream, audit log, webhook', async () => {
    const laptop = await device('laptop');
    const web = await device('web', ['tag:web']);
    await laptop.waitFor((m) => m.peers.length === 1);
    await web.waitFor((m) => m.peers.length === 1);
    expect(await deviceIds()).toEqual([laptop.id, web.id].sort());
    const since = new Date(Date.now() - 1000).toISOString();

    await web.client.logout();

    expect(await deviceIds()).toEqual([laptop.id]);
    expect((await owner.get(`/device/${web.id}`)).status).toBe(404);
    await laptop.waitFor((m) => m.peers.length === 0, 15_000);
    await web.stream!.done; // coord ended its stream with `logout`
    expect(web.errors.some((e) => e.fatal && /removed/.test(e.err.message))).toBe(true);

    const logs = (await owner.get(`/tailnet/-/logging/configuration?start=${since}`)).body.logs as Array<Record<string, any>>;
    const entry = logs.find((l) => l.action === 'DELETE' && l.target.id === web.id);
    expect(entry).toMatchObject({
      type: 'CONFIG', origin: 'NODE', actor: { type: 'USER', loginName: 'alice@example.com' },
      target: { id: web.id, name: expect.stringMatching(/^web\./), type: 'NODE' }, old: { name: 'web' },
    });

    await expect.poll(() => events.find((e) => e.type === 'nodeDeleted' && e.data.nodeID === web.id), { timeout: 8000 }).toBeTruthy();
    expect(events.find((e) => e.data.nodeID === web.id)!.data).toMatchObject({ deviceName: 'web', actor: 'alice@example.com' });

    // Once gone, the machine key is unknown: the usual refusal.
    const again = await web.client.logout().then(() => null, (e: unknown) => e);
    expect(again).toBeInstanceOf(ControlError);
    expect((again as ControlError).status).toBe(401);
    expect((again as ControlError).message).toMatch(/not registered/);
  });

  it('refuses unsigned, forged and replayed logout requests, deleting nothing', async () => {
    const key = generateMachineKey();
    const client = new ControlClient(coord.url, key);
    const register = async () => (await client.register({ nodeKey: randomBytes(32).toString('base64'), hostname: 'victim', authKey })).deviceId;
    const victim = { id: await register() };
    const body = Buffer.from('{}');

    const unsigned = await postLogout({}, body);
    expect(unsigned.status).toBe(401);
    expect(((await unsigned.json()) as { message: string }).message).toMatch(/must be signed/);

    const forged = { ...signedHeaders(key, 'POST', '/machine/logout', body), 'mw-signature': signedHeaders(generateMachineKey(), 'POST', '/machine/logout', body)['mw-signature']! };
    expect((await postLogout(forged, body)).status).toBe(401);
    expect(await deviceIds()).toContain(victim.id);

    // A captured logout is accepted once; replayed after the machine registered again, it is refused.
    const captured = signedHeaders(key, 'POST', '/machine/logout', body);
    expect((await postLogout(captured, body)).status).toBe(200);
    expect(await deviceIds()).not.toContain(victim.id);
    victim.id = await register();
    const replay = await postLogout(captured, body);
    expect(replay.status).toBe(401);
    expect(((await replay.json()) as { message: string }).message).toMatch(/replay/);
    expect(await deviceIds()).toContain(victim.id);

    // Another machine's signature cannot log this device out: its key is not registered.
    const stranger = await postLogout(signedHeaders(generateMachineKey(), 'POST', '/machine/logout', body), body);
    expect(stranger.status).toBe(401);
    expect(((await stranger.json()) as { message: string }).message).toMatch(/not registered/);
    expect(await deviceIds()).toContain(victim.id);
  });
});
