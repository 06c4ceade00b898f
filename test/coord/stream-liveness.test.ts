// The netmap stream's liveness contract between the real coord and the real control client: coord
// announces its keepalive interval (mw-keepalive-ms) and the client sets its silence limit from it. (A device whose network vanishes: test/e2e/silent-router.test.ts.)
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signedHeaders } from '../../agent/control/index.js';
import { HDR_KEEPALIVE_MS, MACHINE_PATHS } from '../../wire/protocol.js';
import { TestDevice } from './devices.js';
import { api, Coord } from './harness.js';

describe('netmap stream keepalives', () => {
  const coord = new Coord();
  let key = '';

  beforeAll(async () => {
    await coord.start();
    const owner = api(coord.url, coord.createTailnet('example.com', 'alice@example.com'));
    key = (await owner.post('/tailnet/-/keys', { capabilities: { devices: { create: { reusable: true, preauthorized: true } } } })).body.key;
  });
  afterAll(() => coord.cleanup());

  it('coord announces a 15 s interval and the client gives the stream three of them (45 s)', async () => {
    const d = new TestDevice(coord.url);
    await d.register(key, 'one');
    const info: { idleTimeoutMs: number }[] = [];
    const stream = d.client.stream({ onNetmap: () => {}, onConnected: (i) => info.push(i) });
    try {
      await expect.poll(() => info.length, { timeout: 10_000 }).toBe(1);
      expect(info[0]!.idleTimeoutMs).toBe(45_000);
    } finally {
      stream.close();
    }
  });

  it('the stream answer carries the header (an agent of any version may read it or not)', async () => {
    const d = new TestDevice(coord.url);
    await d.register(key, 'two');
    const res = await request(coord.url + MACHINE_PATHS.map, {
      headers: signedHeaders(d.client.key, 'GET', MACHINE_PATHS.map, Buffer.alloc(0)),
      bodyTimeout: 0,
    });
    try {
      expect(res.statusCode).toBe(200);
      expect(res.headers[HDR_KEEPALIVE_MS]).toBe('15000');
    } finally {
      res.body.on('error', () => {}).destroy(); // we hang up: the abort it reports is ours
    }
  });
});
