// Webhooks against the real server: events delivered to a receiver on loopback, signed with an HMAC
// that verifies with the secret, retried after a failure.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, Coord } from './harness.js';
import { TestDevice } from './devices.js';

interface Delivery {
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  at: number;
}

describe('webhooks', () => {
  const coord = new Coord();
  let receiver: Server;
  let receiverUrl = '';
  const deliveries: Delivery[] = [];
  let failNext = 0;

  beforeAll(async () => {
    receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        deliveries.push({ path: req.url ?? '', headers: req.headers, body, at: Date.now() });
        if (failNext > 0) {
          failNext--;
          res.writeHead(500).end();
        } else res.writeHead(200).end('ok');
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
    await coord.start(['--allow-private-webhooks']);
  });
  afterAll(async () => {
    await coord.cleanup();
    await new Promise((r) => receiver.close(r));
  });

  const waitFor = async (n: number, ms = 8000) => {
    const until = Date.now() + ms;
    while (deliveries.length < n) {
      if (Date.now() > until) throw new Error(`only ${deliveries.length} deliveries`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  const verify = (d: Delivery, secret: string) => {
    const sig = String(d.headers['tailscale-webhook-signature']);
    const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(sig);
    expect(m).not.toBeNull();
    const want = createHmac('sha256', secret).update(`${m![1]}.${d.body}`).digest();
    return timingSafeEqual(want, Buffer.from(m![2]!, 'hex'));
  };

  it('delivers subscribed events, signed, and retries a failed delivery', async () => {
    const owner = api(coord.url, coord.createTailnet('example.com', 'alice@example.com'));
    const bad = await owner.post('/tailnet/-/webhooks', { endpointUrl: receiverUrl, subscriptions: ['noSuchEvent'] });
    expect(bad.status).toBe(400);
    const hook = await owner.post('/tailnet/-/webhooks', { endpointUrl: receiverUrl, subscriptions: ['policyUpdate', 'nodeCreated'] });
    expect(hook.status).toBe(200);
    const secret = hook.body.secret as string;
    expect(secret).toBeTruthy();
    expect(JSON.stringify((await owner.get('/tailnet/-/webhooks')).body)).not.toContain(secret);

    failNext = 1;
    expect((await owner.post('/tailnet/-/acl', '{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:22"]}]}')).status).toBe(200);
    await waitFor(2);
    const [first, second] = deliveries;
    expect(first!.body).toBe(second!.body);
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(500);
    expect(verify(second!, secret)).toBe(true);
    expect(verify(second!, secret + 'x')).toBe(false);
    const events = JSON.parse(second!.body);
    expect(events[0].type).toBe('policyUpdate');
    expect(events[0].tailnet).toBe('example.com');

    const key = (await owner.post('/tailnet/-/keys', {})).body.key;
    const web = await new TestDevice(coord.url).register(key, 'web');
    await waitFor(3);
    const created = JSON.parse(deliveries[2]!.body);
    expect(created[0].type).toBe('nodeCreated');
    expect(created[0].data.deviceName).toBe('web');

    // Unsubscribed events are not sent: deleting the device (nodeDeleted) sends nothing. Two policy
    // changes after it (subscribed) are the next deliveries, and the only ones.
    const typesOf = (from: number) => deliveries.slice(from).map((d) => `${d.path} ${JSON.parse(d.body)[0].type}`);
    const policy = async (ports: string) =>
      expect((await owner.post('/tailnet/-/acl', `{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:${ports}"]}]}`)).status).toBe(200);
    expect((await owner.del(`/device/${web.deviceId}`)).status).toBe(200);
    await policy('80');
    await waitFor(4);
    await policy('443');
    await waitFor(5);
    expect(typesOf(3)).toEqual(['/hook policyUpdate', '/hook policyUpdate']);

    // A deleted endpoint gets nothing: a second endpoint, still subscribed, receives the next events.
    const other = await owner.post('/tailnet/-/webhooks', { endpointUrl: receiverUrl.replace(/hook$/, 'other'), subscriptions: ['policyUpdate'] });
    expect(other.status).toBe(200);
    expect((await owner.del(`/webhooks/${hook.body.endpointId}`)).status).toBe(200);
    await policy('*');
    await waitFor(6);
    await policy('22');
    await waitFor(7);
    expect(typesOf(5)).toEqual(['/other policyUpdate', '/other policyUpdate']);
  });

  it('get shows no secret; test sends a signed test event whatever the subscriptions; rotate: the new secret signs, the old no longer', async () => {
    const owner = api(coord.url, coord.createTailnet('rotate.example', 'alice@rotate.example'));
    const hook = await owner.post('/tailnet/-/webhooks', { endpointUrl: receiverUrl.replace(/hook$/, 'rotate'), subscriptions: ['nodeDeleted'] });
    expect(hook.status).toBe(200);
    const id = hook.body.endpointId as string;
    const oldSecret = hook.body.secret as string;
    const got = await owner.get(`/webhooks/${id}`);
    expect(got.status).toBe(200);
    expect(got.body).toMatchObject({ endpointId: id, endpointUrl: hook.body.endpointUrl, subscriptions: ['nodeDeleted'] });
    expect(got.body.secret).toBeUndefined();
    expect(got.text).not.toContain(oldSecret);
    const ours = () => deliveries.filter((d) => d.path === '/rotate');

    expect((await owner.post(`/webhooks/${id}/test`)).status).toBe(202);
    await expect.poll(() => ours().length, { timeout: 8000 }).toBe(1);
    const test = ours()[0]!;
    expect(JSON.parse(test.body)[0]).toMatchObject({ type: 'test', tailnet: 'rotate.example', message: 'This is a test event' });
    expect(verify(test, oldSecret)).toBe(true);

    const rotated = await owner.post(`/webhooks/${id}/rotate`);
    expect(rotated.status).toBe(200);
    const newSecret = rotated.body.secret as string;
    expect(newSecret).toBeTruthy();
    expect(newSecret).not.toBe(oldSecret);
    expect((await owner.get(`/webhooks/${id}`)).text).not.toContain(newSecret);
    const audit = JSON.stringify((await owner.get('/tailnet/-/logging/configuration')).body);
    expect(audit).toContain('"SECRET"');
    expect(audit).not.toContain(newSecret);
    expect(audit).not.toContain(oldSecret);

    expect((await owner.post(`/webhooks/${id}/test`)).status).toBe(202);
    await expect.poll(() => ours().length, { timeout: 8000 }).toBe(2);
    const after = ours()[1]!;
    expect(verify(after, newSecret)).toBe(true);
    expect(verify(after, oldSecret)).toBe(false);
  });
});

describe('webhook targets (no --allow-private-webhooks)', () => {
  const coord = new Coord();
  let receiver: Server;
  let receiverUrl = '';
  let delivered = 0;

  beforeAll(async () => {
    receiver = createServer((req, res) => {
      delivered++;
      req.resume();
      res.writeHead(200).end('ok');
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
  });
  afterAll(async () => {
    await coord.cleanup();
    await new Promise((r) => receiver.close(r));
  });

  it('refuses loopback, link-local and private endpoints at creation, by name or address, with the reason', async () => {
    await coord.start();
    const owner = api(coord.url, coord.createTailnet('example.com', 'alice@example.com'));
    const port = new URL(receiverUrl).port;
    const cases: [string, string][] = [
      [receiverUrl, 'webhook endpoint 127.0.0.1 is a loopback address'],
      [`http://localhost:${port}/hook`, 'webhook endpoint localhost ('],
      ['http://169.254.169.254/latest/meta-data', 'webhook endpoint 169.254.169.254 is a linkLocal address'],
      ['http://10.1.2.3/', 'webhook endpoint 10.1.2.3 is a private address'],
      ['http://[::1]:8080/', 'webhook endpoint ::1 is a loopback address'],
      ['http://[::ffff:127.0.0.1]/', 'is a loopback address'],
      ['http://100.64.0.1/', 'is a carrierGradeNat address'],
    ];
    for (const [url, reason] of cases) {
      const r = await owner.post('/tailnet/-/webhooks', { endpointUrl: url, subscriptions: ['policyUpdate'] });
      expect(r.status, url).toBe(400);
      expect(r.body.message, url).toContain(reason);
      expect(r.body.message).toContain('--allow-private-webhooks');
    }
    expect((await owner.get('/tailnet/-/webhooks')).body.webhooks).toEqual([]);
  });

  it('does not deliver to a private endpoint stored while the operator allowed it, once no longer allowed', async () => {
    await coord.stop();
    await coord.start(['--allow-private-webhooks']);
    const key = coord.createTailnet('two.example', 'bob@two.example');
    let owner = api(coord.url, key);
    for (const endpointUrl of [receiverUrl, receiverUrl.replace('127.0.0.1', 'localhost')]) {
      const hook = await owner.post('/tailnet/-/webhooks', { endpointUrl, subscriptions: ['policyUpdate'] });
      expect(hook.status, hook.text).toBe(200);
    }
    await coord.stop();
    await coord.start(['--log-level', 'info']);
    owner = api(coord.url, key);
    expect((await owner.post('/tailnet/-/acl', '{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:22"]}]}')).status).toBe(200);
    // Both deliveries fail on the address check (and would be retried): wait for the log to say so.
    const until = Date.now() + 15_000;
    const refusals = () => coord.stdout.split('\n').filter((l) => l.includes('is a loopback address')).length;
    while (refusals() < 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    expect(refusals(), coord.stdout.slice(-3000)).toBeGreaterThanOrEqual(2);
    expect(delivered).toBe(0);
  });
});
