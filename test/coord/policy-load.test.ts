// Issue 12, item 1: a policy's tests are bounded work, and checking the largest accepted policy does not
// stall coord: other requests are answered while it runs (it runs on a worker thread).
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { heaviestAcceptedPolicy } from '../../scripts/heavy-policy.js';
import { api, Coord } from './harness.js';

/** POSTs `body`; `sent` resolves once the whole request is written, `done` with the answer. */
function post(url: string, key: string, body: string): { sent: Promise<void>; done: Promise<{ status: number; text: string }> } {
  let sent!: () => void;
  const sentP = new Promise<void>((r) => (sent = r));
  const done = new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/hujson' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, text }));
    });
    req.on('error', reject);
    req.end(body, () => sent());
  });
  return { sent: sentP, done };
}

describe('policy checks under load', () => {
  const coord = new Coord();
  let key = '';

  beforeAll(async () => {
    await coord.start();
    key = coord.createTailnet('example.com', 'alice@example.com');
  });
  afterAll(() => coord.cleanup());

  it('answers other requests while the largest accepted policy is validated', async () => {
    const order: string[] = [];
    const validate = post(`${coord.url}/api/v2/tailnet/-/acl/validate`, key, heaviestAcceptedPolicy());
    const answered = validate.done.then((r) => {
      order.push('validate');
      return r;
    });
    await validate.sent;
    await new Promise((r) => setTimeout(r, 200));
    const health = await fetch(`${coord.url}/healthz`);
    order.push('healthz');
    expect(health.status).toBe(200);
    const r = await answered;
    expect(r.status, r.text).toBe(200);
    expect(JSON.parse(r.text)).toEqual({});
    expect(order).toEqual(['healthz', 'validate']);
  }, 120_000);

  it('refuses a policy whose tests ask for too much work with 400 and the reason, and keeps the stored policy', async () => {
    const owner = api(coord.url, key);
    const before = await owner.get('/tailnet/-/acl', { accept: 'application/hujson' });
    for (const path of ['/tailnet/-/acl/validate', '/tailnet/-/acl']) {
      const r = await owner.post(path, heaviestAcceptedPolicy(true), { 'content-type': 'application/hujson' });
      expect(r.status, r.text).toBe(400);
      expect(r.body.message).toBe("the policy's tests ask for too much work: 10001 destinations, at most 10000 are allowed; split the tests across policy changes or name fewer destinations");
    }
    const after = await owner.get('/tailnet/-/acl', { accept: 'application/hujson' });
    expect(after.text).toBe(before.text);
  });
});
