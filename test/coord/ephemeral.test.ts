// Ephemeral devices (auth keys with "ephemeral": true) are removed once offline for --ephemeral-timeout.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, Coord } from './harness.js';
import { TestDevice } from './devices.js';

describe('ephemeral devices', () => {
  const coord = new Coord();
  const all: TestDevice[] = [];
  let owner: ReturnType<typeof api>;

  beforeAll(async () => {
    await coord.start(['--ephemeral-timeout', '1s']);
    owner = api(coord.url, coord.createTailnet('example.com', 'alice@example.com'));
  });
  afterAll(async () => {
    for (const d of all) d.close();
    await coord.cleanup();
  });

  it('removes an ephemeral device after it goes offline, and keeps the others', async () => {
    const eKey = (await owner.post('/tailnet/-/keys', { capabilities: { devices: { create: { ephemeral: true } } } })).body.key;
    const key = (await owner.post('/tailnet/-/keys', { capabilities: { devices: { create: { reusable: true } } } })).body.key;
    const ci = new TestDevice(coord.url);
    const keeper = new TestDevice(coord.url);
    const watcher = new TestDevice(coord.url);
    all.push(ci, keeper, watcher);
    await ci.register(eKey, 'ci-runner');
    await keeper.register(key, 'keeper');
    await watcher.register(key, 'watcher');
    ci.connect();
    watcher.connect();
    await watcher.waitFor((m) => m.peers.some((p) => p.name.startsWith('ci-runner.') && p.online));
    // still there while online, even past the timeout
    await new Promise((r) => setTimeout(r, 1500));
    expect((await owner.get(`/device/${ci.id}`)).status).toBe(200);
    ci.close();
    await watcher.waitFor((m) => !m.peers.some((p) => p.name.startsWith('ci-runner.')), 5000);
    expect((await owner.get(`/device/${ci.id}`)).status).toBe(404);
    expect((await owner.get(`/device/${keeper.id}`)).status).toBe(200); // offline, but not ephemeral
    const log = (await owner.get('/tailnet/-/logging/configuration')).body.logs;
    expect(log.some((e: any) => e.action === 'DELETE' && e.target.id === ci.id && e.actor.type === 'AUTOMATED_WORKER' && e.origin === 'CONTROL')).toBe(true);
  });

  it('refuses a nonsensical timeout', async () => {
    const { coordCli } = await import('./harness.js');
    const r = coordCli(['serve', '--ephemeral-timeout', 'soon']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('duration "soon"');
  });
});
