// A standalone relay (`coord relay`, its own process and listener) verifying devices with coord: real
// coord, `coord relays add` against its database, the real relay process, real control clients holding
// netmap streams and real RelayClients. The relay map in every netmap follows `coord relays`; the relay
// forwards between peers only, refuses unknown keys and cuts off removed devices within seconds.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RelayClient } from '../../agent/connectivity/relay-client.js';
import { COORD } from '../../scripts/lab.js';
import { UNDELIVERABLE, VERIFY_PATH } from '../../wire/relay.js';
import { X25519Key } from '../../wire/x25519.js';
import { api, Coord, coordCli } from '../coord/harness.js';
import { TestDevice } from '../coord/devices.js';
import { b64, expectForwardsBothWays, recordingRelayClient, streamingDevice, until, type RelayPeer as Dev } from './relay-helpers.js';

const POLICY = `{
  "tagOwners": {"tag:a": ["alice@example.com"], "tag:b": ["alice@example.com"], "tag:c": ["alice@example.com"]},
  "acls": [{"action": "accept", "src": ["tag:a"], "dst": ["tag:b:*"]}],
}`;

/** Starts `coord relay`; resolves with the process and its URL once it listens (rejects if it exits). */
function startRelay(args: string[]): Promise<{ proc: ChildProcess; url: string; stderr: () => string }> {
  const proc = spawn(process.execPath, [COORD, 'relay', '--listen', '127.0.0.1:0', '--stun-port', '0', '--log-level', 'warn', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  proc.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  return new Promise((resolve, reject) => {
    proc.once('exit', (code) => reject(new Error(`coord relay exited with ${code}: ${err}`)));
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      const m = /"listening":"([^"]+)"/.exec(line);
      if (m) resolve({ proc, url: m[1]!, stderr: () => err });
    });
  });
}

describe('coord relay (standalone) verifying devices with coord', () => {
  const coord = new Coord();
  let owner: ReturnType<typeof api>;
  let authKey = '';
  let secret = '';
  let relayProc: ChildProcess | undefined;
  let relayUrl = '';
  const clients: RelayClient[] = [];
  const devices: TestDevice[] = [];
  let a: Dev, b: Dev, c: Dev;

  function relayClient(key: X25519Key, got: Dev['got'] = [], undeliverable: Dev['undeliverable'] = []): RelayClient {
    const r = recordingRelayClient(relayUrl, key, got, undeliverable);
    clients.push(r);
    return r.start();
  }

  async function device(name: string, tag: string, withRelay = true): Promise<Dev> {
    const { key, dev } = await streamingDevice(coord.url, authKey, devices, name, tag);
    const got: Dev['got'] = [];
    const undeliverable: Dev['undeliverable'] = [];
    return { key, dev, relay: withRelay ? relayClient(key, got, undeliverable) : (null as unknown as RelayClient), got, undeliverable };
  }

  beforeAll(async () => {
    const ownerKey = coord.createTailnet('example.com', 'alice@example.com');
    await coord.start();
    owner = api(coord.url, ownerKey);
    expect((await owner.post('/tailnet/-/acl', POLICY)).status).toBe(200);
    authKey = (await owner.post('/tailnet/-/keys', { capabilities: { devices: { create: { reusable: true, preauthorized: true } } } })).body.key;
  }, 30_000);

  afterAll(async () => {
    for (const r of clients) r.close();
    for (const d of devices) d.close();
    relayProc?.kill('SIGKILL');
    await coord.cleanup();
  });

  it('`coord relays add` prints a secret once; streaming devices get the new map at once', async () => {
    const watcher = await device('watcher', 'tag:c', false);
    expect(watcher.dev.netmaps.at(-1)!.relays).toEqual([{ name: 'coord', url: coord.url.replace(/^http/, 'ws') + '/relay' }]);
    const r = coordCli(['relays', 'add', 'fra', '--url', 'ws://127.0.0.1:9/relay', '--stun-port', '3478', '--db', coord.db, '--json']);
    expect(r.status, r.stderr).toBe(0);
    secret = (JSON.parse(r.stdout) as { secret: string }).secret;
    expect(secret).toMatch(/^mwkey-relay-/);
    const list = coordCli(['relays', 'list', '--db', coord.db, '--json']);
    expect(list.stdout).not.toContain(secret.slice(-20));
    expect(JSON.parse(list.stdout).relays).toEqual([expect.objectContaining({ name: 'fra', url: 'ws://127.0.0.1:9/relay', stunPort: 3478 })]);
    const n = await watcher.dev.waitFor((m) => (m.relays ?? []).length === 2, 5000);
    expect(n.relays![1]).toEqual({ name: 'fra', url: 'ws://127.0.0.1:9/relay', stunPort: 3478 });
  });

  it('`coord relays` refuses a bad name, URL or port (usage, exit 2), a taken name and an unknown one (exit 1)', () => {
    const run = (...args: string[]) => coordCli(['relays', ...args, '--db', coord.db]);
    for (const [args, why] of [
      [['add', 'bad name', '--url', 'wss://x.example.com/relay'], /relay name/],
      [['add', 'nyc', '--url', 'https://x.example.com/relay'], /must start with wss:\/\//],
      [['add', 'nyc', '--url', 'wss://x.example.com/relay', '--stun-port', '65535'], /--stun-port|STUN port/],
      [['add', 'nyc'], /missing --url/],
    ] as const) {
      const r = run(...args);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toMatch(why);
    }
    expect(run('add', 'fra', '--url', 'wss://y.example.com/relay').stderr).toMatch(/already exists/);
    expect(run('remove', 'nope').status).toBe(1);
    expect(JSON.parse(run('list', '--json').stdout).relays.map((r: { name: string }) => r.name)).toEqual(['fra']);
  });

  it('refuses to start with a wrong secret, and coord refuses a verification without one', async () => {
    const file = join(coord.dir, 'wrong.secret');
    writeFileSync(file, secret.slice(0, -4) + 'AAAA', { mode: 0o600 });
    await expect(startRelay(['--coord', coord.url, '--secret-file', file])).rejects.toThrow(/not a relay secret/);
    const res = await fetch(coord.url + VERIFY_PATH, { method: 'POST', body: '{"keys": []}' });
    expect(res.status).toBe(401);
  });

  it('starts with its secret; `coord relays update` changes the map devices get', async () => {
    const file = join(coord.dir, 'fra.secret');
    writeFileSync(file, secret + '\n', { mode: 0o600 });
    const started = await startRelay(['--coord', coord.url, '--secret-file', file, '--refresh', '500ms']);
    relayProc = started.proc;
    relayUrl = started.url.replace(/^http/, 'ws') + '/relay';
    const up = coordCli(['relays', 'update', 'fra', '--url', relayUrl, '--stun-port', '0', '--db', coord.db]);
    expect(up.status, up.stderr).toBe(0);
    a = await device('a', 'tag:a');
    b = await device('b', 'tag:b');
    c = await device('c', 'tag:c');
    const n = await a.dev.waitFor((m) => m.relays?.[1]?.url === relayUrl, 5000);
    expect(n.relays![1]).toEqual({ name: 'fra', url: relayUrl });
  });

  it('forwards between registered peers, both ways', async () => {
    await Promise.all([a.relay.waitConnected(), b.relay.waitConnected(), c.relay.waitConnected()]);
    await expectForwardsBothWays(a, b);
  });

  it('does not forward to or from a device that is not a peer', async () => {
    c.relay.send(a.key.publicKey, Buffer.from('c to a'));
    await until(() => c.undeliverable.length > 0, 'an undeliverable notice');
    expect(c.undeliverable[0]).toEqual({ dst: b64(a.key), reason: UNDELIVERABLE.notAllowed });
    expect(a.got.some((g) => g.data === 'c to a')).toBe(false);
  });

  it('refuses a key no device holds', async () => {
    const stranger = relayClient(X25519Key.generate());
    await until(() => stranger.lastError.startsWith('refused'), 'a refusal');
    expect(stranger.connected).toBe(false);
    expect(stranger.lastError).toMatch(/not authorized/);
  });

  it('cuts off a removed device within seconds and refuses it afterwards', async () => {
    expect(b.relay.connected).toBe(true);
    const t0 = Date.now();
    expect((await owner.del(`/device/${b.dev.id}`)).status).toBe(200);
    await until(() => !b.relay.connected && b.relay.lastError.includes('refused'), 'b to be cut off', 15_000);
    expect(Date.now() - t0).toBeLessThan(10_000);
    await new Promise((r) => setTimeout(r, 300));
    expect(b.relay.connected).toBe(false);
    a.relay.send(b.key.publicKey, Buffer.from('after removal'));
    await until(() => a.undeliverable.some((u) => u.dst === b64(b.key)), 'an undeliverable notice for b');
    expect(b.got.some((g) => g.data === 'after removal')).toBe(false);
  });

  it('stops forwarding when the policy ends a peer relation', async () => {
    const d = await device('d', 'tag:b');
    await Promise.all([a.relay.waitConnected(), d.relay.waitConnected()]);
    await until(() => (a.relay.send(d.key.publicKey, Buffer.from('hello d')), d.got.length > 0), 'd to receive', 10_000);
    expect((await owner.post('/tailnet/-/acl', `{"tagOwners": {"tag:a": ["alice@example.com"], "tag:b": ["alice@example.com"], "tag:c": ["alice@example.com"]}, "acls": []}`)).status).toBe(200);
    const before = a.undeliverable.length;
    await until(() => {
      a.relay.send(d.key.publicKey, Buffer.from('after the policy change'));
      return a.undeliverable.length > before && a.undeliverable.at(-1)!.reason === UNDELIVERABLE.notAllowed;
    }, 'a notAllowed notice', 15_000);
  });

  it('keeps its connected devices through a short coord outage', async () => {
    expect(a.relay.connected).toBe(true);
    const port = new URL(coord.url).port;
    await coord.stop();
    await new Promise((r) => setTimeout(r, 2500)); // five refreshes that coord does not answer
    expect(a.relay.connected).toBe(true);
    await coord.start(['--listen', `127.0.0.1:${port}`]);
    await a.dev.waitFor(() => true, 10_000);
  }, 30_000);

  it('`coord relays rotate-secret`: the old secret stops working at once and the relay drops everyone; with the new one it serves again', async () => {
    expect(a.relay.connected).toBe(true);
    const r = coordCli(['relays', 'rotate-secret', 'fra', '--db', coord.db, '--json']);
    expect(r.status, r.stderr).toBe(0);
    const fresh = (JSON.parse(r.stdout) as { secret: string }).secret;
    expect(fresh).toMatch(/^mwkey-relay-/);
    expect(fresh).not.toBe(secret);
    const verify = (s: string) => fetch(coord.url + VERIFY_PATH, { method: 'POST', headers: { authorization: `Bearer ${s}` }, body: '{"keys": []}' });
    expect((await verify(secret)).status).toBe(401);
    expect((await verify(fresh)).status).toBe(200);
    await until(() => !a.relay.connected && a.relay.lastError.includes('refused'), 'a to be cut off by the relay coord no longer accepts', 10_000);
    // The operator puts the new secret in place and restarts the relay on the same address.
    const exited = new Promise((resolve) => relayProc!.once('exit', resolve));
    relayProc!.kill('SIGTERM');
    await exited;
    const file = join(coord.dir, 'fra.secret');
    writeFileSync(file, fresh + '\n', { mode: 0o600 });
    secret = fresh;
    relayProc = (await startRelay(['--coord', coord.url, '--secret-file', file, '--refresh', '500ms', '--listen', new URL(relayUrl).host])).proc;
    await until(() => a.relay.connected && c.relay.connected, 'a and c back on the relay', 15_000);
  }, 30_000);

  it('`coord relays remove` takes it out of the map, its secret stops working, and it drops everyone', async () => {
    expect(a.relay.connected).toBe(true);
    const r = coordCli(['relays', 'remove', 'fra', '--db', coord.db]);
    expect(r.status, r.stderr).toBe(0);
    await a.dev.waitFor((m) => (m.relays ?? []).length === 1, 5000);
    await until(() => !a.relay.connected && a.relay.lastError.includes('refused'), 'a to be cut off', 10_000);
    const res = await fetch(coord.url + VERIFY_PATH, { method: 'POST', headers: { authorization: `Bearer ${secret}` }, body: '{"keys": []}' });
    expect(res.status).toBe(401);
  });
});
