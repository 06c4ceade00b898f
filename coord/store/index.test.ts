import Database from 'better-sqlite3';
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MIGRATIONS } from './migrations.js';
import { Conflict, dnsLabel, Store } from './index.js';

const dirs: string[] = [];
function tempDb(): string {
  const d = mkdtempSync(join(tmpdir(), 'mw-coord-store-'));
  dirs.push(d);
  return join(d, 'coord.db');
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const device = (tailnetId: number, userId: string, machineKey: string, hostname: string) => ({
  tailnetId, userId, machineKey, nodeKey: `nk-${machineKey}`, hostname, tags: [], os: 'linux', clientVersion: '1', endpoints: [],
  advertisedRoutes: [], enabledRoutes: [], posture: {}, authorized: true, ephemeral: false, keyExpiryDisabled: false,
  expires: null, authKeyId: null,
});

describe('store', () => {
  it('migrates a new database to the latest version, in WAL mode, owner-only', () => {
    const path = tempDb();
    const s = new Store(path);
    expect(s.schemaVersion()).toBe(MIGRATIONS.length);
    expect(s.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(statSync(path).mode & 0o077).toBe(0);
    s.close();
  });

  it('refuses a database from a newer coord', () => {
    const path = tempDb();
    const s = new Store(path);
    s.db.pragma(`user_version = ${MIGRATIONS.length + 1}`);
    s.close();
    expect(() => new Store(path)).toThrow(/newer than this coord/);
  });

  it('creates networks with one owner and a first API key, and keeps them across reopen', () => {
    const path = tempDb();
    const s = new Store(path);
    const { tailnet, owner, apiKey } = s.createTailnet('example.com', 'alice@example.com', '{}', '"e"');
    expect(owner.role).toBe('owner');
    expect(() => s.createTailnet('example.com', 'bob@example.com', '{}', '"e"')).toThrow(Conflict);
    const other = s.createTailnet('example-com', 'bob@example.com', '{}', '"e"').tailnet;
    expect(other.domain).not.toBe(tailnet.domain);
    s.close();
    const again = new Store(path);
    expect(again.getTailnetByName('example.com')!.id).toBe(tailnet.id);
    const key = again.getKey(apiKey.id)!;
    expect(key.keyType).toBe('api');
    expect(key.hash.equals(apiKey.hash)).toBe(true);
    // only the hash is stored
    const raw = JSON.stringify(again.db.prepare('SELECT * FROM keys').all());
    expect(raw).not.toContain(apiKey.secret.split('-').pop()!);
    again.close();
  });

  it('gives devices addresses unique across networks and names unique within one', () => {
    const s = new Store(tempDb());
    const a = s.createTailnet('a.example', 'x@a.example', '{}', '"e"');
    const b = s.createTailnet('b.example', 'x@b.example', '{}', '"e"');
    const seen = new Set<string>();
    const names: string[] = [];
    for (let i = 0; i < 50; i++) {
      const t = i % 2 ? a : b;
      const d = s.createDevice(device(t.tailnet.id, t.owner.id, `mk${i}`, 'Web Server'));
      expect(seen.has(d.ipv4)).toBe(false);
      expect(seen.has(d.ipv6)).toBe(false);
      seen.add(d.ipv4).add(d.ipv6);
      if (t === a) names.push(d.name);
    }
    expect(names.slice(0, 3)).toEqual(['web-server', 'web-server-1', 'web-server-2']);
    expect(new Set(names).size).toBe(names.length);
    expect(() => s.createDevice(device(a.tailnet.id, a.owner.id, 'mk1', 'dup'))).toThrow();
    s.close();
  });

  it('rolls back a transaction that fails half-way', () => {
    const s = new Store(tempDb());
    const { tailnet } = s.createTailnet('a.example', 'x@a.example', 'old', '"1"');
    expect(() =>
      s.tx(() => {
        s.setPolicy(tailnet.id, 'new', '"2"');
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(s.getTailnet(tailnet.id)!.policy).toBe('old');
    s.close();
  });

  it('makes DNS labels from hostnames', () => {
    expect(dnsLabel('My_Laptop.local')).toBe('my-laptop-local');
    expect(dnsLabel('---')).toBe('device');
    expect(dnsLabel('a'.repeat(80))).toHaveLength(63);
  });

  it('upgrades a version-1 database to device sharing, keeping its data', () => {
    const path = tempDb();
    const raw = new Database(path);
    raw.exec(MIGRATIONS[0]!);
    raw.pragma('user_version = 1');
    raw.prepare("INSERT INTO tailnets (name, domain, created, policy, policy_etag) VALUES ('old', 'old.x', 'now', '{}', 'e')").run();
    raw.close();
    const s = new Store(path);
    expect(s.schemaVersion()).toBe(MIGRATIONS.length);
    expect(s.getTailnetByName('old')).toBeDefined();
    expect(s.sharesFrom(1)).toEqual([]);
    s.close();
  });

  it('gives users and devices numeric ids, server-wide and never reused', () => {
    const s = new Store(':memory:');
    const a = s.createTailnet('a.example', 'alice@a.example', '{}', 'e');
    const b = s.createTailnet('b.example', 'bob@b.example', '{}', 'e');
    const carol = s.createUser(a.tailnet.id, 'carol@a.example');
    expect([a.owner.num, b.owner.num, carol.num]).toEqual([1, 2, 3]);
    const d1 = s.createDevice(device(a.tailnet.id, a.owner.id, 'mk1', 'one'));
    const d2 = s.createDevice(device(b.tailnet.id, b.owner.id, 'mk2', 'two'));
    expect([d1.num, d2.num]).toEqual([1, 2]);
    s.deleteDevice(d2.id);
    s.deleteUser(carol.id);
    expect(s.createDevice(device(a.tailnet.id, a.owner.id, 'mk3', 'three')).num).toBe(3);
    expect(s.createUser(a.tailnet.id, 'dave@a.example').num).toBe(4);
    expect(s.getDevice(d1.id)!.num).toBe(1);
    s.close();
  });

  it('numbers the users of a database made before numeric ids, and goes on from there', () => {
    const path = tempDb();
    const raw = new Database(path);
    for (const m of MIGRATIONS.slice(0, 3)) raw.exec(m);
    raw.pragma('user_version = 3');
    raw.prepare("INSERT INTO tailnets (name, domain, created, policy, policy_etag) VALUES ('old', 'old.x', 'now', '{}', 'e')").run();
    for (const u of ['ua', 'ub']) raw.prepare("INSERT INTO users (id, tailnet_id, email, display_name, role, created) VALUES (?, 1, ?, ?, 'member', 'now')").run(u, `${u}@old.x`, u);
    raw.close();
    const s = new Store(path);
    expect([s.getUser('ua')!.num, s.getUser('ub')!.num]).toEqual([1, 2]);
    expect(s.createUser(1, 'new@old.x').num).toBe(3);
    s.close();
  });

  it('gives keys made before keys had to expire 90 days from the upgrade', () => {
    const path = tempDb();
    const raw = new Database(path);
    for (const m of MIGRATIONS.slice(0, 8)) raw.exec(m);
    raw.pragma('user_version = 8');
    raw.prepare("INSERT INTO tailnets (name, domain, created, policy, policy_etag) VALUES ('old', 'old.x', 'now', '{}', 'e')").run();
    raw.prepare("INSERT INTO users (id, num, tailnet_id, email, display_name, role, created) VALUES ('u', 1, 1, 'u@old.x', 'u', 'owner', 'now')").run();
    const key = (id: string, expires: string | null) =>
      raw.prepare("INSERT INTO keys (id, tailnet_id, key_type, hash, user_id, created, expires) VALUES (?, 1, 'auth', x'00', 'u', 'now', ?)").run(id, expires);
    key('forever', null);
    key('dated', '2027-01-01T00:00:00.000Z');
    raw.close();
    const s = new Store(path);
    const forever = s.getKey('forever')!.expires;
    expect(forever).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(Math.abs(Date.parse(forever) - (Date.now() + 90 * 86_400_000))).toBeLessThan(60_000);
    expect(s.getKey('dated')!.expires).toBe('2027-01-01T00:00:00.000Z');
    s.close();
  });

  it('upgrades a version-9 database to multi-use invites, keeping its invites and shares', () => {
    const path = tempDb();
    const raw = new Database(path);
    for (const m of MIGRATIONS.slice(0, 9)) raw.exec(m);
    raw.pragma('user_version = 9');
    for (const n of ['a', 'b']) raw.prepare("INSERT INTO tailnets (name, domain, created, policy, policy_etag) VALUES (?, ?, 'now', '{}', 'e')").run(n, `${n}.x`);
    raw.prepare("INSERT INTO users (id, tailnet_id, email, display_name, role, created) VALUES ('ua', 1, 'a@a.x', 'a', 'owner', 'now')").run();
    raw.prepare("INSERT INTO users (id, tailnet_id, email, display_name, role, created) VALUES ('ub', 2, 'b@b.x', 'b', 'owner', 'now')").run();
    raw.prepare(`INSERT INTO devices (id, tailnet_id, user_id, machine_key, node_key, hostname, name, ipv4, ipv6, created)
      VALUES ('dev', 1, 'ua', 'mk', 'nk', 'git', 'git', '100.64.0.1', 'fd7a::1', 'now')`).run();
    const invite = (id: string, acceptedBy: string | null) =>
      raw.prepare("INSERT INTO device_invites (id, tailnet_id, device_id, sharer_id, label, code_hash, created, accepted_by, accepted_at) VALUES (?, 1, 'dev', 'ua', ?, x'00', 'now', ?, ?)")
        .run(id, id, acceptedBy, acceptedBy && 'then');
    invite('dused', 'ub');
    invite('dopen', null);
    raw.prepare("INSERT INTO shares (id, tailnet_id, device_id, sharer_id, recipient_id, recipient_tailnet_id, created) VALUES ('dused', 1, 'dev', 'ua', 'ub', 2, 'then')").run();
    raw.close();

    const s = new Store(path);
    expect(s.schemaVersion()).toBe(MIGRATIONS.length);
    expect(s.getDeviceInvite('dused')).toMatchObject({ multiUse: false, acceptedBy: 'ub', acceptedAt: 'then' });
    expect(s.getDeviceInvite('dopen')).toMatchObject({ multiUse: false, acceptedBy: null });
    // the old share keeps its id and now names the invite it came from
    expect(s.sharesInto(2)).toEqual([expect.objectContaining({ id: 'dused', inviteId: 'dused', recipientId: 'ub', created: 'then' })]);
    expect(s.sharesOfInvite('dused').map((sh) => sh.id)).toEqual(['dused']);
    // the old invites work as before: the used one stays used, the open one makes a share of its own
    expect(s.acceptDeviceInvite(s.getDeviceInvite('dused')!, s.getUser('ub')!)).toBeUndefined();
    const carol = s.createUser(2, 'c@b.x');
    const made = s.acceptDeviceInvite(s.getDeviceInvite('dopen')!, carol)!;
    expect(made).toMatchObject({ inviteId: 'dopen', recipientId: carol.id });
    expect(made.id).not.toBe('dopen');
    expect(s.deviceInviteAcceptances('dopen')).toEqual([]);
    s.close();
  });

  it('lets each user accept a multi-use invite once, each with a share of their own', () => {
    const s = new Store(':memory:');
    const a = s.createTailnet('a.example', 'alice@a.example', '{}', 'e');
    const b = s.createTailnet('b.example', 'bob@b.example', '{}', 'e');
    const c = s.createTailnet('c.example', 'cat@c.example', '{}', 'e');
    const d = s.createDevice(device(a.tailnet.id, a.owner.id, 'mk1', 'git'));
    const { invite } = s.createDeviceInvite(a.tailnet.id, d.id, a.owner.id, 'anyone', '', true);
    expect(invite.multiUse).toBe(true);
    const forBob = s.acceptDeviceInvite(invite, b.owner)!;
    const forCat = s.acceptDeviceInvite(invite, c.owner)!;
    expect(forBob.id).not.toBe(forCat.id);
    expect([forBob.inviteId, forCat.inviteId]).toEqual([invite.id, invite.id]);
    expect(s.acceptDeviceInvite(invite, b.owner)).toBeUndefined();
    expect(s.getDeviceInvite(invite.id)).toMatchObject({ acceptedBy: null });
    expect(s.deviceInviteAcceptances(invite.id).map((x) => x.userId)).toEqual([b.owner.id, c.owner.id]);
    expect(s.sharesOfInvite(invite.id)).toHaveLength(2);
    s.deleteShare(forCat.id);
    expect(s.sharesOfInvite(invite.id).map((sh) => sh.recipientId)).toEqual([b.owner.id]);
    // a revoked recipient stays on record, so the same link does not bring the share back
    expect(s.acceptDeviceInvite(invite, c.owner)).toBeUndefined();
    s.deleteDevice(d.id);
    expect(s.deviceInviteAcceptances(invite.id)).toEqual([]);
    expect(s.sharesInto(b.tailnet.id)).toEqual([]);
    s.close();
  });

  it('keeps device invites one-time and drops shares with the device or the recipient', () => {
    const s = new Store(':memory:');
    const a = s.createTailnet('a.example', 'alice@a.example', '{}', 'e');
    const b = s.createTailnet('b.example', 'bob@b.example', '{}', 'e');
    const d = s.createDevice(device(a.tailnet.id, a.owner.id, 'mk1', 'git'));
    const { invite, code } = s.createDeviceInvite(a.tailnet.id, d.id, a.owner.id, 'for bob');
    expect(code).toMatch(/^mwkey-invite-d/);
    expect(invite.codeHash.toString('hex')).not.toContain(code);
    const share = s.acceptDeviceInvite(invite, b.owner)!;
    expect(share).toMatchObject({ deviceId: d.id, recipientId: b.owner.id, recipientTailnetId: b.tailnet.id, tailnetId: a.tailnet.id });
    expect(s.acceptDeviceInvite(invite, b.owner)).toBeUndefined();
    expect(s.getDeviceInvite(invite.id)).toMatchObject({ acceptedBy: b.owner.id });
    expect(s.sharesInto(b.tailnet.id)).toHaveLength(1);
    s.deleteDevice(d.id);
    expect(s.sharesInto(b.tailnet.id)).toEqual([]);
    expect(s.getDeviceInvite(invite.id)).toBeUndefined();
    const d2 = s.createDevice(device(a.tailnet.id, a.owner.id, 'mk2', 'git2'));
    const carol = s.createUser(b.tailnet.id, 'carol@b.example');
    s.acceptDeviceInvite(s.createDeviceInvite(a.tailnet.id, d2.id, a.owner.id, '').invite, carol);
    expect(s.sharesFrom(a.tailnet.id)).toHaveLength(1);
    s.deleteUser(carol.id);
    expect(s.sharesFrom(a.tailnet.id)).toEqual([]);
    s.close();
  });

  it('refuses a node key another device holds, in any network', () => {
    const store = new Store(tempDb());
    const a = store.createTailnet('a.example', 'alice@a.example', '{}', '"e"');
    const b = store.createTailnet('b.example', 'bob@b.example', '{}', '"e"');
    const one = store.createDevice({ ...device(a.tailnet.id, a.owner.id, 'mk1', 'one'), nodeKey: 'shared' });
    expect(() => store.createDevice({ ...device(b.tailnet.id, b.owner.id, 'mk2', 'two'), nodeKey: 'shared' })).toThrow(Conflict);
    const two = store.createDevice(device(b.tailnet.id, b.owner.id, 'mk2', 'two'));
    expect(() => store.updateDevice(two.id, { nodeKey: 'shared' })).toThrow(/already used by another device/);
    expect(store.updateDevice(one.id, { nodeKey: 'shared' }).nodeKey).toBe('shared');
    store.close();
  });

  it('narrows an existing database file that others may read to owner-only at open', () => {
    const path = tempDb();
    new Store(path).close();
    for (const p of [path, `${path}-wal`]) if (existsSync(p)) chmodSync(p, 0o644);
    chmodSync(path, 0o644);
    const s = new Store(path);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    for (const p of [`${path}-wal`, `${path}-shm`]) if (existsSync(p)) expect(statSync(p).mode & 0o077).toBe(0);
    s.close();
  });

  it("gives the owner's first API key the API keys' 90-day limit", () => {
    const s = new Store(tempDb());
    const before = Date.now();
    const { owner, apiKeyExpires } = s.createTailnet('a.example', 'alice@a.example', '{}', '"e"');
    const keys = s.db.prepare('SELECT expires FROM keys WHERE user_id = ?').all(owner.id) as { expires: string | null }[];
    expect(keys).toEqual([{ expires: apiKeyExpires }]);
    const days = (Date.parse(apiKeyExpires) - before) / 86_400_000;
    expect(days).toBeGreaterThan(89.99);
    expect(days).toBeLessThanOrEqual(90.01);
    s.close();
  });
});
