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
    await coord.start();
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
});
