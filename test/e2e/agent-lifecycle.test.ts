// The agent daemon's lifecycle against the real coord on loopback, through its real local API socket:
// up (register once with an auth key), tags, hostname, down, restart from disk, removal by an admin,
// logout. The data path runs on an in-memory network here (no root needed); agent.test.ts runs it for real.
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, statSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Daemon } from '../../agent/daemon/index.js';
import type { TunDevice } from '../../agent/daemon/index.js';
import { callDaemon } from '../../agent/localapi/client.js';
import type { AgentStatus } from '../../agent/localapi/types.js';
import { MemNetwork, MemTun } from '../../agent/wireguard/index.js';
import { api, Coord, root } from '../coord/harness.js';

class NullTun extends MemTun implements TunDevice {
  readonly addresses: string[] = [];
  constructor(readonly name: string) {
    super();
  }
  addAddress(c: string) {
    this.addresses.push(c);
  }
  addRoute() {}
  setUp() {}
  start() {}
  close() {}
}

const POLICY = `{
  "tagOwners": {"tag:web": ["alice@example.com"], "tag:db": ["alice@example.com"]},
  "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
}`;

describe('agent daemon lifecycle (real coord, real local API, in-memory data path)', () => {
  const coord = new Coord();
  const dir = mkdtempSync(join(tmpdir(), 'mw-agent-life-'));
  const stateDir = join(dir, 'state');
  const socket = join(dir, 'agent.sock');
  const net = new MemNetwork();
  const logLines: string[] = [];
  let owner: ReturnType<typeof api>;
  let daemon: Daemon;
  const keys: string[] = [];

  const startDaemon = async (upWaitMs = 3000) => {
    daemon = new Daemon({
      stateDir, socket, tunName: 'mwtest0', port: 0, upWaitMs,
      log: pino({ level: 'debug' }, { write: (s: string) => logLines.push(s) }),
      engine: { openTun: (name) => new NullTun(name), bindUdp: (port, cb) => net.bind(port, cb) },
    });
    await daemon.start();
  };
  const call = <T = AgentStatus>(method: string, path: string, body?: unknown) => callDaemon<T>(socket, method, path, body);
  /** The real `agent` program (from dist/) against this daemon's socket. */
  const cli = (...args: string[]) => promisify(execFile)(process.execPath, [join(root, 'dist/agent/main.js'), ...args, '--socket', socket], { encoding: 'utf8' });
  const deviceIds = async () => ((await owner.get('/tailnet/-/devices')).body.devices as Array<{ id: string }>).map((d) => d.id);
  const refusal = (p: Promise<unknown>) => p.then(() => 'accepted', (e: Error & { status?: number }) => `${e.status} ${e.message}`);

  async function authKey(tags: string[] = []): Promise<string> {
    const r = await owner.post('/tailnet/-/keys', { capabilities: { devices: { create: { reusable: false, preauthorized: true, tags } } } });
    expect(r.status).toBe(200);
    keys.push(r.body.key);
    return r.body.key;
  }

  beforeAll(async () => {
    await coord.start();
    owner = api(coord.url, coord.createTailnet('example.com', 'alice@example.com'));
    expect((await owner.post('/tailnet/-/acl', POLICY)).status).toBe(200);
    await startDaemon();
  });
  afterAll(async () => {
    await daemon?.stop();
    await coord.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('starts logged out, and says what `agent up` needs', async () => {
    expect((await call('GET', '/status')).backendState).toBe('NeedsLogin');
    expect(await refusal(call('POST', '/up', {}))).toBe('400 no coord URL yet; run: agent up --coord URL --authkey KEY');
    expect(await refusal(call('POST', '/up', { coord: coord.url }))).toMatch(/^400 this device is not registered yet/);
    expect(await refusal(call('POST', '/up', { coord: coord.url, advertiseTags: ['bad'] }))).toMatch(/^400 up: "advertiseTags"/);
    expect(await refusal(call('POST', '/up', { coord: 'http://127.0.0.1:1', authkey: 'mwkey-auth-x-y' }))).toMatch(/^503 coord at http:\/\/127\.0\.0\.1:1 is unreachable \(.*ECONNREFUSED/);
    expect(await refusal(call('POST', '/up', { coord: coord.url, authkey: 'mwkey-auth-nope-nope' }))).toBe('401 invalid auth key');
  });

  it('refuses to start a second daemon on the same socket, leaving the first one alone', async () => {
    const second = new Daemon({ stateDir: join(dir, 'other'), socket, tunName: 'mwtest1', port: 0, log: pino({ level: 'silent' }) });
    await expect(second.start()).rejects.toThrow(/another agent is already running on/);
    await second.stop();
    expect((await call('GET', '/status')).backendState).toBe('NeedsLogin');
  });

  it('registers with an auth key, used once and never written down or logged', async () => {
    const key = await authKey();
    const s = await call('POST', '/up', { coord: coord.url, authkey: key, hostname: 'web', advertiseTags: ['tag:web'] });
    expect(s.backendState).toBe('Running');
    expect(s.self).toMatchObject({ name: 'web', tags: ['tag:web'], network: 'example.com' });
    expect(s.coord).toMatchObject({ url: coord.url, connected: true, error: null });
    expect(statSync(stateDir).mode & 0o777).toBe(0o700);
    expect(readdirSync(stateDir).sort()).toEqual(['disco.json', 'machine.json', 'netmap.json', 'node.json', 'prefs.json']);
    for (const f of readdirSync(stateDir)) {
      expect(statSync(join(stateDir, f)).mode & 0o777).toBe(0o600);
      expect(readFileSync(join(stateDir, f), 'utf8')).not.toContain(key);
    }
    const nodeKey = JSON.parse(readFileSync(join(stateDir, 'node.json'), 'utf8')).privateKey as string;
    expect(logLines.join('')).not.toContain(key);
    expect(logLines.join('')).not.toContain(nodeKey);
    expect(logLines.join('')).not.toContain(JSON.parse(readFileSync(join(stateDir, 'disco.json'), 'utf8')).privateKey as string);
    // The same key again: coord refuses it (single use), verbatim.
    expect(await refusal(call('POST', '/up', { authkey: key }))).toBe('401 auth key has already been used (it is not reusable)');
  });

  it('reports endpoints, OS and version to coord', async () => {
    const devices = (await owner.get('/tailnet/-/devices')).body.devices as Array<{ os: string; clientVersion: string; hostname: string }>;
    expect(devices).toHaveLength(1);
    expect(devices[0]).toMatchObject({ os: 'linux', hostname: 'web' });
    expect(devices[0]!.clientVersion).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('changes tags only with a fresh auth key; the hostname without one', async () => {
    expect(await refusal(call('POST', '/up', { advertiseTags: ['tag:db'] }))).toMatch(/^403 changing the tags of a registered device needs a fresh authorization/);
    expect(await refusal(call('POST', '/up', { authkey: await authKey(), advertiseTags: ['tag:nope'] }))).toBe(
      '403 requested tags [tag:nope] are invalid or not permitted',
    );
    const retagged = await call('POST', '/up', { authkey: await authKey(), advertiseTags: ['tag:db'] });
    expect(retagged.self!.tags).toEqual(['tag:db']);
    const renamed = await call('POST', '/up', { hostname: 'web2' });
    expect(renamed.self!.tags).toEqual(['tag:db']);
    // coord keeps the device's DNS name (an admin renames it); the reported hostname changes.
    expect((await owner.get('/tailnet/-/devices')).body.devices[0].hostname).toBe('web2');
  });

  it('`down` stops the data path and keeps the registration; `up` needs no key afterwards', async () => {
    const s = await call('POST', '/down');
    expect(s.backendState).toBe('Stopped');
    expect(s.interface).toBeNull();
    const up = await call('POST', '/up', {});
    expect(up.backendState).toBe('Running');
    expect(up.interface!.name).toBe('mwtest0');
  });

  it('comes back from disk after a restart while coord is down, and reconnects when it returns', async () => {
    const before = await call('GET', '/status');
    await daemon.stop();
    await coord.stop();
    // The netmap on disk is the last one the daemon had: a delta may have come after `before` was read.
    const saved = JSON.parse(readFileSync(join(stateDir, 'netmap.json'), 'utf8')) as { version: number };
    expect(saved.version).toBeGreaterThanOrEqual(before.netmap!.version);
    // `up` may wait this long for a netmap; it must not, with coord refusing connections.
    const upWaitMs = 45_000;
    await startDaemon(upWaitMs);
    const s = await call('GET', '/status');
    expect(s.backendState).toBe('Running');
    expect(s.netmap).toEqual({ version: saved.version, fromDisk: true });
    expect(s.self).toEqual(before.self);
    expect(s.health!.join(' ')).toMatch(/netmap saved on disk/);
    // `up` while coord is down answers as soon as the stream fails (not after upWaitMs), saying so, and
    // keeps running on the saved netmap. A third of upWaitMs is a generous ceiling for "at once".
    const t1 = performance.now();
    const up = await call('POST', '/up', {});
    expect(performance.now() - t1).toBeLessThan(upWaitMs / 3);
    expect(up.backendState).toBe('Running');
    expect(up.coord.connected).toBe(false);
    expect(up.coord.error).toMatch(/ECONNREFUSED/);
    await coord.start(['--listen', new URL(before.coord.url!).host]);
    await expect.poll(async () => (await call('GET', '/status')).coord.connected, { timeout: 20_000, interval: 100 }).toBe(true);
    await expect.poll(async () => (await call('GET', '/status')).netmap!.fromDisk, { timeout: 15_000 }).toBe(false);
  }, 90_000);

  it('goes back to NeedsLogin when an admin removes the device', async () => {
    const id = (await owner.get('/tailnet/-/devices')).body.devices[0].id as string;
    expect((await owner.del(`/device/${id}`)).status).toBe(200);
    await expect.poll(async () => (await call('GET', '/status')).backendState, { timeout: 15_000 }).toBe('NeedsLogin');
    expect(readdirSync(stateDir)).not.toContain('netmap.json');
  });

  it('`logout` removes the device in coord, forgets keys and registration; the next `up` needs an auth key', async () => {
    await call('POST', '/up', { authkey: await authKey(), hostname: 'web' });
    const ids = await deviceIds();
    expect(ids).toHaveLength(1);
    const id = ids[0]!;
    const machineBefore = readFileSync(join(stateDir, 'machine.json'), 'utf8');
    const out = await cli('logout');
    expect(out.stdout).toBe('logged out; `agent up --authkey KEY` registers this device again\n');
    expect(await deviceIds()).toEqual([]);
    const logs = (await owner.get('/tailnet/-/logging/configuration')).body.logs as Array<{ origin: string; action: string; target: { id: string } }>;
    expect(logs.some((l) => l.origin === 'NODE' && l.action === 'DELETE' && l.target.id === id)).toBe(true);
    const s = await call('GET', '/status');
    expect(s.backendState).toBe('NeedsLogin');
    expect(s.coord.error).toBeNull(); // our own logout is not reported as coord ending the session
    expect(readFileSync(join(stateDir, 'machine.json'), 'utf8')).not.toBe(machineBefore);
    expect(await refusal(call('POST', '/up', {}))).toMatch(/^400 this device is not registered yet/);
    const again = await call('POST', '/up', { authkey: await authKey() });
    expect(again.backendState).toBe('Running');
    expect(again.coord.url).toBe(coord.url); // remembered
  });

  it('`logout` with coord down still forgets the device here, exits 0 and says an admin can remove it', async () => {
    const before = await deviceIds();
    expect(before).toHaveLength(1);
    const machineBefore = readFileSync(join(stateDir, 'machine.json'), 'utf8');
    await coord.stop();
    const out = await cli('logout'); // rejects on a non-zero exit
    expect(out.stdout).toMatch(/^coord could not be told; an admin can remove the device \(coord at http:\/\/127\.0\.0\.1:\d+ is unreachable \(.*ECONNREFUSED.*\)\)\n/);
    expect(out.stdout).toMatch(/logged out; `agent up --authkey KEY` registers this device again\n$/);
    const s = await call('GET', '/status');
    expect(s.backendState).toBe('NeedsLogin');
    expect(s.interface).toBeNull();
    expect(readFileSync(join(stateDir, 'machine.json'), 'utf8')).not.toBe(machineBefore);
    expect(readdirSync(stateDir)).not.toContain('netmap.json');
    expect(JSON.parse(readFileSync(join(stateDir, 'prefs.json'), 'utf8'))).toMatchObject({ registration: null, wantRunning: false });
    // coord kept the device: it was never told.
    await coord.start(['--listen', new URL(s.coord.url!).host]);
    expect(await deviceIds()).toEqual(before);
  }, 30_000);
});
