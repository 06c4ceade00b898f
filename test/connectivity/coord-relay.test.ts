// coord's own relay, on its HTTP listener, with the store-backed authorizer: real coord, real control
// clients holding netmap streams, real RelayClients. Registered devices that are peers exchange packets;
// an unknown key, a non-peer, a removed device and a suspended user's device are refused or cut off.
// The netmap carries the relay map and each peer's disco key and home relay.
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RelayClient } from '../../agent/connectivity/relay-client.js';
import { relayUrlOf } from '../../coord/server.js';
import { UNDELIVERABLE } from '../../wire/relay.js';
import { X25519Key } from '../../wire/x25519.js';
import { addUser, api, Coord } from '../coord/harness.js';
import { TestDevice } from '../coord/devices.js';
import { b64, expectForwardsBothWays, recordingRelayClient, streamingDevice, until, type RelayPeer as Peer } from './relay-helpers.js';

// a and b are peers (a may reach b); c is a device of the same network that is a peer of nobody.
const POLICY = `{
  "tagOwners": {"tag:a": ["alice@example.com"], "tag:b": ["alice@example.com"], "tag:c": ["alice@example.com"]},
  "acls": [{"action": "accept", "src": ["tag:a"], "dst": ["tag:b:*"]}],
}`;

describe('relayUrlOf', () => {
  it('turns coord\'s public URL into the relay\'s, keeping a path prefix', () => {
    expect(relayUrlOf('https://coord.example.com')).toBe('wss://coord.example.com/relay');
    expect(relayUrlOf('http://10.0.0.1:8080/')).toBe('ws://10.0.0.1:8080/relay');
    expect(relayUrlOf('https://example.com/meshward/?x=1')).toBe('wss://example.com/meshward/relay');
  });
});

describe('coord relay', () => {
  const coord = new Coord();
  let owner: ReturnType<typeof api>;
  let ownerKey = '';
  let authKey = '';
  let relayUrl = '';
  const clients: RelayClient[] = [];
  const devices: TestDevice[] = [];
  let a: Peer, b: Peer, c: Peer;
  const discoA = X25519Key.generate();

  function relayClient(key: X25519Key, got: Peer['got'] = [], undeliverable: Peer['undeliverable'] = []): RelayClient {
    const r = recordingRelayClient(relayUrl, key, got, undeliverable);
    clients.push(r);
    return r.start();
  }

  async function device(name: string, tag: string, extra: { discoKey?: string; homeRelay?: string } = {}): Promise<Peer> {
    const { key, dev } = await streamingDevice(coord.url, authKey, devices, name, tag, extra);
    const got: Peer['got'] = [];
    const undeliverable: Peer['undeliverable'] = [];
    return { key, dev, relay: relayClient(key, got, undeliverable), got, undeliverable };
  }

  beforeAll(async () => {
    // A short ephemeral timeout makes coord's upkeep (which also notices keys that expired by time) run every 500 ms.
    await coord.start(['--ephemeral-timeout', '2s']);
    ownerKey = coord.createTailnet('example.com', 'alice@example.com');
    owner = api(coord.url, ownerKey);
    expect((await owner.post('/tailnet/-/acl', POLICY)).status).toBe(200);
    authKey = (await owner.post('/tailnet/-/keys', { capabilities: { devices: { create: { reusable: true, preauthorized: true } } } })).body.key;
    relayUrl = coord.url.replace(/^http/, 'ws') + '/relay';
    a = await device('a', 'tag:a', { discoKey: b64(discoA), homeRelay: 'coord' });
    b = await device('b', 'tag:b');
    c = await device('c', 'tag:c');
  });
  afterAll(async () => {
    for (const r of clients) r.close();
    for (const d of devices) d.close();
    await coord.cleanup();
  });

  it('netmaps carry the relay map and each peer\'s disco key and home relay', async () => {
    const n = await b.dev.waitFor((m) => m.peers.some((p) => p.discoKey !== undefined));
    expect(n.relays).toEqual([{ name: 'coord', url: relayUrl }]);
    expect(n.stunPorts).toBeUndefined(); // STUN off (--stun-port 0)
    const peerA = n.peers.find((p) => p.nodeKey === b64(a.key))!;
    expect(peerA.discoKey).toBe(b64(discoA));
    expect(peerA.homeRelay).toBe('coord');
    // A peer that reported neither has neither.
    const m = await a.dev.waitFor((x) => x.peers.length === 1);
    expect(m.peers[0]!.discoKey).toBeUndefined();
    expect(m.peers[0]!.homeRelay).toBeUndefined();
    // A change of home relay reaches the peers as a delta.
    await b.dev.client.update({ homeRelay: 'eu-1' });
    await a.dev.waitFor((x) => x.peers[0]?.homeRelay === 'eu-1');
  });

  it('refuses a malformed disco key or relay name in register and update', async () => {
    await expect(a.dev.client.update({ discoKey: 'not a key' })).rejects.toThrow(/discoKey/);
    await expect(a.dev.client.update({ discoKey: randomBytes(31).toString('base64') })).rejects.toThrow(/discoKey/);
    await expect(a.dev.client.update({ homeRelay: 'no spaces here' })).rejects.toThrow(/homeRelay/);
    const d = new TestDevice(coord.url);
    devices.push(d);
    await expect(d.register(authKey, 'bad', ['tag:c'], { discoKey: 'x' })).rejects.toThrow(/discoKey/);
  });

  it('forwards between registered peers, in both directions', async () => {
    await Promise.all([a.relay.waitConnected(), b.relay.waitConnected(), c.relay.waitConnected()]);
    // b may answer a (the netmap lists them as peers both ways).
    await expectForwardsBothWays(a, b);
  });

  it('does not forward to or from a device that is not a peer', async () => {
    c.relay.send(a.key.publicKey, Buffer.from('c to a'));
    a.relay.send(c.key.publicKey, Buffer.from('a to c'));
    await until(() => c.undeliverable.length > 0 && a.undeliverable.some((u) => u.dst === b64(c.key)), 'undeliverable notices');
    expect(c.undeliverable[0]).toEqual({ dst: b64(a.key), reason: UNDELIVERABLE.notAllowed });
    expect(a.got.some((g) => g.data === 'c to a')).toBe(false);
    expect(c.got).toEqual([]);
  });

  it('refuses a key no device holds', async () => {
    const stranger = relayClient(X25519Key.generate());
    await until(() => stranger.lastError.startsWith('refused'), 'a refusal');
    expect(stranger.connected).toBe(false);
    expect(stranger.lastError).toMatch(/not authorized/);
  });

  it('refuses other WebSocket paths on coord\'s listener', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`${coord.url}/machine/map`, { headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': randomBytes(16).toString('base64') } });
      req.on('upgrade', () => resolve(101));
      req.on('response', (res) => resolve(res.statusCode ?? 0));
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(404);
  });

  it('cuts off a removed device and refuses it afterwards', async () => {
    expect((await owner.del(`/device/${b.dev.id}`)).status).toBe(200);
    await until(() => !b.relay.connected && b.relay.lastError.includes('refused'), 'b to be cut off');
    // It keeps retrying and is refused each time; a cannot reach it any more.
    await new Promise((r) => setTimeout(r, 300));
    expect(b.relay.connected).toBe(false);
    const before = b.got.length;
    a.relay.send(b.key.publicKey, Buffer.from('after removal'));
    await until(() => a.undeliverable.some((u) => u.dst === b64(b.key)), 'an undeliverable notice for b');
    expect(b.got.length).toBe(before);
  });

  it("refuses a suspended user's device and cuts it off at the suspension; restored, it may connect again", async () => {
    const bob = await addUser(coord.url, ownerKey, 'example.com', 'bob@example.com', 'member');
    const bobKey = (await owner.post('/tailnet/-/keys', { user: 'bob@example.com', capabilities: { devices: { create: { preauthorized: true } } } })).body.key;
    const key = X25519Key.generate();
    const dev = new TestDevice(coord.url, b64(key));
    devices.push(dev);
    await dev.register(bobKey, 'bobs-server');
    const bobs = relayClient(key);
    await until(() => bobs.connected, "bob's device to connect to the relay");
    expect((await owner.post(`/users/${bob.id}/suspend`)).status).toBe(200);
    await until(() => !bobs.connected && bobs.lastError.includes('refused'), "bob's device to be cut off");
    await new Promise((r) => setTimeout(r, 300)); // it keeps retrying, and is refused each time
    expect(bobs.connected).toBe(false);
    expect((await owner.post(`/users/${bob.id}/restore`)).status).toBe(200);
    await until(() => bobs.connected, "bob's device to connect again after the restore");
  });

  it('refuses a device awaiting approval, and cuts off one an admin de-authorizes', async () => {
    const pending = (await owner.post('/tailnet/-/keys', { capabilities: { devices: { create: { tags: ['tag:c'] } } } })).body.key;
    expect((await owner.patch('/tailnet/-/settings', { devicesApprovalOn: true })).status).toBe(200);
    try {
      const key = X25519Key.generate();
      const dev = new TestDevice(coord.url, b64(key));
      devices.push(dev);
      expect((await dev.register(pending, 'unapproved', ['tag:c'])).authorized).toBe(false);
      const r = relayClient(key);
      await until(() => r.lastError.includes('refused'), 'the relay to refuse a device awaiting approval');
      expect(r.connected).toBe(false);
      expect((await owner.post(`/device/${dev.id}/authorized`, { authorized: true })).status).toBe(200);
      await until(() => r.connected, 'the approved device to connect');
      expect((await owner.post(`/device/${dev.id}/authorized`, { authorized: false })).status).toBe(200);
      await until(() => !r.connected && r.lastError.includes('refused'), 'the de-authorized device to be cut off');
    } finally {
      await owner.patch('/tailnet/-/settings', { devicesApprovalOn: false });
    }
  });

  it('cuts off a device whose key expired by time (no admin action), and refuses it afterwards', async () => {
    const { key, dev } = await streamingDevice(coord.url, authKey, devices, 'lapsing', 'tag:c');
    const r = relayClient(key);
    await until(() => r.connected, 'the device to connect to the relay');
    // Its expiry date passes: nothing but the clock changed (written straight into coord's database).
    const db = new Database(coord.db);
    try {
      db.prepare('UPDATE devices SET expires = ?, key_expiry_disabled = 0 WHERE id = ?').run(new Date(Date.now() - 1000).toISOString(), dev.id);
    } finally {
      db.close();
    }
    await until(() => !r.connected && r.lastError.includes('refused'), 'the expired device to be cut off', 10_000);
    await new Promise((res) => setTimeout(res, 300)); // it keeps retrying, and is refused each time
    expect(r.connected).toBe(false);
  });

  it('cuts off a device whose key an admin expired', async () => {
    expect(c.relay.connected).toBe(true);
    expect((await owner.post(`/device/${c.dev.id}/expire`)).status).toBe(200);
    await until(() => !c.relay.connected && c.relay.lastError.includes('refused'), 'c to be cut off');
  });
});
