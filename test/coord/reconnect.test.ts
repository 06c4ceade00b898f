// Devices and a coord that goes away: with the real coord killed for a few seconds and restarted on
// the same address, every device's netmap stream is back within seconds (agent/control/reconnect.ts),
// the returns spread out by jitter, and the failed attempts during the outage thin out as it lasts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, Coord } from './harness.js';
import { TestDevice } from './devices.js';

const DEVICES = 20;
const OUTAGE_MS = 8_000;

describe('reconnecting after a coord outage', () => {
  const coord = new Coord();
  const devices: TestDevice[] = [];

  beforeAll(async () => {
    await coord.start();
    const owner = api(coord.url, coord.createTailnet('example.com', 'alice@example.com'));
    const key = (await owner.post('/tailnet/-/keys', { capabilities: { devices: { create: { reusable: true, preauthorized: true } } } })).body.key;
    for (let i = 0; i < DEVICES; i++) {
      const d = new TestDevice(coord.url);
      await d.register(key, `d${i}`);
      d.connect({}); // the agent's own schedule
      devices.push(d);
    }
  });
  afterAll(async () => {
    for (const d of devices) d.close();
    await coord.cleanup();
  });

  it(`every device is back within 5 s of coord's return after a ${OUTAGE_MS / 1000} s outage, not all at once`, async () => {
    await expect.poll(() => devices.every((d) => d.connectedAt.length === 1), { timeout: 10_000 }).toBe(true);
    const address = new URL(coord.url).host;
    await coord.kill();
    const down = Date.now();
    await new Promise((r) => setTimeout(r, OUTAGE_MS));
    const errorsBefore = devices.map((d) => d.errors.length);
    await coord.start(['--listen', address]);
    const up = Date.now();
    await expect.poll(() => devices.every((d) => d.connectedAt.length === 2), { timeout: 15_000, interval: 50 }).toBe(true);
    const back = devices.map((d) => d.connectedAt[1]! - up).sort((x, y) => x - y);
    const attempts = errorsBefore.map((n) => n - 1); // the first error is the stream breaking
    process.stderr.write(
      `coord down ${up - down} ms: devices back after ${back[0]}–${back.at(-1)} ms (median ${back[DEVICES >> 1]}); ` +
        `failed attempts per device during the outage ${Math.min(...attempts)}–${Math.max(...attempts)}\n`,
    );
    expect(back.at(-1)).toBeLessThan(5000 + 2000); // 5 s, plus slack for a loaded machine
    expect(back.at(-1)! - back[0]!).toBeGreaterThan(500); // jitter: not one herd
    // Backoff: an 8 s outage costs each device a handful of attempts (0.5, 1, 2, then ≤ 4 s apart), not one per 500 ms.
    expect(Math.max(...attempts)).toBeLessThanOrEqual(8);
    expect(Math.min(...attempts)).toBeGreaterThanOrEqual(3);
  }, 40_000);
});
