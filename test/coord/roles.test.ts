// The role matrix of roles.md as a table test: every role against every row, over real HTTP against the
// real server. Each cell makes a real request against a fresh fixture (a device, user, invite or webhook
// the owner made for it): an allowed role must get a 2xx and the change must be there afterwards (for
// reads, the answer must hold what was asked for); a refused role must get 403 and change nothing.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControlClient, generateMachineKey } from '../../agent/control/index.js';
import { addUser, api, Coord, root, type Res } from './harness.js';

const ROLES = ['owner', 'admin', 'network-admin', 'it-admin', 'billing-admin', 'auditor', 'member'] as const;
type Role = (typeof ROLES)[number];
type Req = [method: string, path: string, body?: unknown];

/** One request of a row, made for one role against its own fixture. */
interface Case {
  req: Req;
  /** For an allowed role: the answer holds what was asked for. */
  answer?: (res: Res) => boolean | Promise<boolean>;
  /** The change the request makes, read back by the owner: true once made (allowed), false if refused. */
  changed?: () => Promise<boolean>;
}
type Make = (role: Role) => Promise<Case>;

/** What the cases need from the running server (only called while the matrix runs). */
interface Fixtures {
  url: string;
  owner: ReturnType<typeof api>;
  deviceId: string;
  ownerId: string;
  /** A fresh device of the owner, optionally advertising routes. */
  device(name: string, advertisedRoutes?: string[]): Promise<string>;
  /** A fresh member; `status` set directly in the store for states the API cannot reach. */
  user(email: string, status?: 'suspended' | 'needs-approval'): Promise<string>;
  /** An invite to a device of another network, for the role to accept. */
  foreignInvite(): Promise<{ id: string; inviteUrl: string; accepted: () => Promise<boolean> }>;
  register(authKey: string): Promise<string>;
}

const read = (path: string, answer: (b: any) => boolean): Make => async () => ({ req: ['GET', path], answer: (r) => answer(r.body) });
let seq = 0;
const uniq = (role: Role) => `${role}-${++seq}`;

/** Our reading of roles.md: row → roles with ✅ → requests that must be allowed for exactly those roles. */
function rows(f: Fixtures): { row: string; allowed: Role[]; cases: Make[] }[] {
  const all: Role[] = ['owner', 'admin', 'network-admin', 'it-admin', 'billing-admin', 'auditor'];
  const dev = async (id: string) => (await f.owner.get(`/device/${id}`)).body;
  const userOf = async (id: string) => await f.owner.get(`/users/${id}`);
  return [
    { row: 'use the admin API at all', allowed: all, cases: [
      read('/tailnet/-/users', (b) => b.users.some((u: any) => u.loginName === 'owner@example.com')),
      read('/tailnet/-/devices', (b) => b.devices.some((d: any) => d.id === f.deviceId)),
    ] },
    { row: 'read policy file', allowed: all, cases: [
      read('/tailnet/-/acl', (b) => JSON.stringify(b).includes('tag:prod')),
      async () => ({ req: ['POST', '/tailnet/-/acl/validate', '{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:22"]}]}'], answer: (r) => JSON.stringify(r.body) === '{}' }),
      async () => ({ req: ['POST', '/tailnet/-/acl/preview?type=user&previewFor=owner@example.com', ''], answer: (r) => r.body.previewFor === 'owner@example.com' && r.body.type === 'user' }),
    ] },
    { row: 'write policy file', allowed: ['owner', 'admin', 'network-admin'], cases: [
      async (role) => {
        const group = `group:${uniq(role)}`;
        const policy = `{"groups": {"${group}": ["owner@example.com"]}, "tagOwners": {"tag:prod": ["owner@example.com"]}, "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}`;
        return { req: ['POST', '/tailnet/-/acl', policy], changed: async () => (await f.owner.get('/tailnet/-/acl')).text.includes(group) };
      },
    ] },
    { row: 'read network configuration', allowed: all, cases: [
      read('/tailnet/-/dns/nameservers', (b) => Array.isArray(b.dns)),
      read('/tailnet/-/dns/searchpaths', (b) => Array.isArray(b.searchPaths)),
      read('/tailnet/-/dns/preferences', (b) => typeof b.magicDNS === 'boolean'),
      async () => {
        const id = await f.device('routes-read', ['10.9.0.0/24']);
        return { req: ['GET', `/device/${id}/routes`], answer: (r) => JSON.stringify(r.body) === '{"advertisedRoutes":["10.9.0.0/24"],"enabledRoutes":[]}' };
      },
    ] },
    { row: 'write network configuration (DNS, MagicDNS, subnet routes, exit nodes)', allowed: ['owner', 'admin', 'network-admin'], cases: [
      async () => {
        const ns = `192.0.2.${++seq % 250}`;
        return { req: ['POST', '/tailnet/-/dns/nameservers', { dns: [ns] }], changed: async () => (await f.owner.get('/tailnet/-/dns/nameservers')).body.dns.includes(ns) };
      },
      async (role) => {
        const sp = `${uniq(role)}.example`;
        return { req: ['POST', '/tailnet/-/dns/searchpaths', { searchPaths: [sp] }], changed: async () => (await f.owner.get('/tailnet/-/dns/searchpaths')).body.searchPaths.includes(sp) };
      },
      async () => {
        const want = !(await f.owner.get('/tailnet/-/dns/preferences')).body.magicDNS;
        return { req: ['POST', '/tailnet/-/dns/preferences', { magicDNS: want }], changed: async () => (await f.owner.get('/tailnet/-/dns/preferences')).body.magicDNS === want };
      },
      async () => {
        const id = await f.device('router', ['10.8.0.0/24']);
        return { req: ['POST', `/device/${id}/routes`, { routes: ['10.8.0.0/24'] }], changed: async () => (await dev(id)).enabledRoutes.includes('10.8.0.0/24') };
      },
    ] },
    { row: 'read feature configuration', allowed: all, cases: [read('/tailnet/-/settings', (b) => typeof b.devicesKeyDurationDays === 'number')] },
    { row: 'write feature configuration', allowed: ['owner', 'admin', 'it-admin'], cases: [
      async () => {
        const days = 1 + (++seq % 170);
        return { req: ['PATCH', '/tailnet/-/settings', { devicesKeyDurationDays: days }], changed: async () => (await f.owner.get('/tailnet/-/settings')).body.devicesKeyDurationDays === days };
      },
    ] },
    { row: 'configure user provisioning', allowed: ['owner', 'admin', 'it-admin'], cases: [
      async (role) => {
        const email = `invited-${uniq(role)}@example.com`;
        return { req: ['POST', '/tailnet/-/user-invites', [{ email }]], changed: async () => (await f.owner.get('/tailnet/-/user-invites')).body.some((i: any) => i.email === email) };
      },
      async (role) => {
        const id = (await f.owner.post('/tailnet/-/user-invites', [{ email: `deleted-${uniq(role)}@example.com` }])).body[0].id;
        return { req: ['DELETE', `/user-invites/${id}`], changed: async () => !(await f.owner.get('/tailnet/-/user-invites')).body.some((i: any) => i.id === id) };
      },
    ] },
    { row: 'read machines', allowed: all, cases: [
      read('/tailnet/-/devices', (b) => b.devices.some((d: any) => d.id === f.deviceId)),
      async () => ({ req: ['GET', `/device/${f.deviceId}`], answer: (r) => r.body.id === f.deviceId && r.body.hostname === 'web1' }),
    ] },
    { row: 'write machines (approve, rename, remove)', allowed: ['owner', 'admin', 'it-admin'], cases: [
      async () => {
        const id = await f.device('deauth');
        return { req: ['POST', `/device/${id}/authorized`, { authorized: false }], changed: async () => (await dev(id)).authorized === false };
      },
      async (role) => {
        const id = await f.device('rename');
        const name = `renamed-${uniq(role)}`;
        return { req: ['POST', `/device/${id}/name`, { name }], changed: async () => (await dev(id)).name.startsWith(name + '.') };
      },
      async () => {
        const id = await f.device('expire');
        return { req: ['POST', `/device/${id}/expire`], changed: async () => Date.parse((await dev(id)).expires) <= Date.now() };
      },
      async () => {
        const id = await f.device('keyexpiry');
        return { req: ['POST', `/device/${id}/key`, { keyExpiryDisabled: true }], changed: async () => (await dev(id)).keyExpiryDisabled === true };
      },
      async () => {
        const id = await f.device('remove');
        return { req: ['DELETE', `/device/${id}`], changed: async () => (await f.owner.get(`/device/${id}`)).status === 404 };
      },
    ] },
    { row: 'read users and roles', allowed: all, cases: [
      read('/tailnet/-/users', (b) => ROLES.every((r) => b.users.some((u: any) => u.loginName === `${r}@example.com` && u.role === r))),
      async () => ({ req: ['GET', `/users/${f.ownerId}`], answer: (r) => r.body.loginName === 'owner@example.com' && r.body.role === 'owner' }),
    ] },
    { row: 'write users and roles', allowed: ['owner', 'admin', 'it-admin'], cases: [
      async (role) => {
        const id = await f.user(`role-${uniq(role)}@example.com`);
        return { req: ['POST', `/users/${id}/role`, { role: 'auditor' }], changed: async () => (await userOf(id)).body.role === 'auditor' };
      },
      async (role) => {
        const id = await f.user(`approve-${uniq(role)}@example.com`, 'needs-approval');
        return { req: ['POST', `/users/${id}/approve`], changed: async () => (await userOf(id)).body.status === 'active' };
      },
      async (role) => {
        const id = await f.user(`suspend-${uniq(role)}@example.com`);
        return { req: ['POST', `/users/${id}/suspend`], changed: async () => (await userOf(id)).body.status === 'suspended' };
      },
      async (role) => {
        const id = await f.user(`restore-${uniq(role)}@example.com`, 'suspended');
        return { req: ['POST', `/users/${id}/restore`], changed: async () => (await userOf(id)).body.status === 'active' };
      },
      async (role) => {
        const id = await f.user(`delete-${uniq(role)}@example.com`);
        return { req: ['POST', `/users/${id}/delete`], changed: async () => (await userOf(id)).status === 404 };
      },
    ] },
    { row: 'generate auth keys', allowed: ['owner', 'admin', 'network-admin', 'it-admin'], cases: [
      // the new key registers a device
      async () => ({ req: ['POST', '/tailnet/-/keys', { capabilities: { devices: { create: { reusable: false } } } }], answer: async (r) => (await dev(await f.register(r.body.key))).hostname === 'from-key' }),
    ] },
    { row: 'generate API access tokens', allowed: ['owner', 'admin', 'network-admin', 'it-admin'], cases: [
      // the new token opens the API
      async () => ({ req: ['POST', '/tailnet/-/keys', { keyType: 'api', expirySeconds: 3600 }], answer: async (r) => (await api(f.url, r.body.key).get('/tailnet/-/devices')).status === 200 }),
    ] },
    { row: 'share a device', allowed: ['owner', 'admin', 'it-admin'], cases: [
      async (role) => {
        const label = `share-${uniq(role)}`;
        const invites = async () => (await f.owner.get(`/device/${f.deviceId}/device-invites`)).body as any[];
        return { req: ['POST', `/device/${f.deviceId}/device-invites`, [{ label }]], changed: async () => (await invites()).some((i) => i.label === label) };
      },
      async (role) => {
        const id = (await f.owner.post(`/device/${f.deviceId}/device-invites`, [{ label: `withdrawn-${uniq(role)}` }])).body[0].id;
        const invites = async () => (await f.owner.get(`/device/${f.deviceId}/device-invites`)).body as any[];
        return { req: ['DELETE', `/device-invites/${id}`], changed: async () => !(await invites()).some((i) => i.id === id) };
      },
    ] },
    { row: 'accept a shared device', allowed: ['owner', 'admin', 'it-admin'], cases: [
      async () => {
        const inv = await f.foreignInvite();
        return { req: ['POST', '/device-invites/-/accept', { invite: inv.inviteUrl }], changed: inv.accepted };
      },
    ] },
    // With a real device and a tag only the owner owns (tagOwners), so that "without owning it" is what is tested.
    { row: 'use any tag without owning it', allowed: ['owner', 'admin', 'network-admin'], cases: [
      async () => {
        const id = await f.device('tagged');
        return { req: ['POST', `/device/${id}/tags`, { tags: ['tag:prod'] }], changed: async () => JSON.stringify((await dev(id)).tags) === '["tag:prod"]' };
      },
      // a device registered with the new key carries the tag
      async () => ({ req: ['POST', '/tailnet/-/keys', { capabilities: { devices: { create: { tags: ['tag:prod'] } } }, expirySeconds: 60 }], answer: async (r) => JSON.stringify((await dev(await f.register(r.body.key))).tags) === '["tag:prod"]' }),
    ] },
    { row: 'read configuration audit log', allowed: all, cases: [read('/tailnet/-/logging/configuration', (b) => b.logs.some((l: any) => l.target?.type === 'ACL' || l.action === 'CREATE'))] },
    { row: 'write webhooks', allowed: ['owner', 'admin', 'network-admin', 'it-admin'], cases: [
      async (role) => {
        const endpointUrl = `http://127.0.0.1:9/${uniq(role)}`;
        return { req: ['POST', '/tailnet/-/webhooks', { endpointUrl, subscriptions: ['policyUpdate'] }], changed: async () => JSON.stringify((await f.owner.get('/tailnet/-/webhooks')).body).includes(endpointUrl) };
      },
      async (role) => {
        const id = (await f.owner.post('/tailnet/-/webhooks', { endpointUrl: `http://127.0.0.1:9/${uniq(role)}`, subscriptions: ['policyUpdate'] })).body.endpointId;
        const hook = async () => ((await f.owner.get('/tailnet/-/webhooks')).body.webhooks as any[]).find((w) => w.endpointId === id);
        return { req: ['PATCH', `/webhooks/${id}`, { subscriptions: ['nodeCreated'] }], changed: async () => JSON.stringify((await hook()).subscriptions) === '["nodeCreated"]' };
      },
      async (role) => {
        const id = (await f.owner.post('/tailnet/-/webhooks', { endpointUrl: `http://127.0.0.1:9/${uniq(role)}`, subscriptions: ['policyUpdate'] })).body.endpointId;
        return { req: ['DELETE', `/webhooks/${id}`], changed: async () => !JSON.stringify((await f.owner.get('/tailnet/-/webhooks')).body).includes(id) };
      },
    ] },
    { row: 'write network name', allowed: ['owner', 'admin', 'network-admin'], cases: [
      async (role) => {
        const name = `${uniq(role)}.example.com`;
        return { req: ['POST', '/tailnet/-/name', { name }], changed: async () => (await f.owner.get('/tailnet/-/logging/configuration')).body.tailnet === name };
      },
    ] },
    { row: 'read payment plan', allowed: ['owner', 'admin', 'billing-admin'], cases: [read('/tailnet/-/billing', (b) => typeof b.plan === 'string')] },
    { row: 'write payment plan', allowed: ['owner', 'admin', 'billing-admin'], cases: [
      async (role) => {
        const plan = `plan-${uniq(role)}`;
        return { req: ['POST', '/tailnet/-/billing/plan', { plan }], changed: async () => (await f.owner.get('/tailnet/-/billing')).body.plan === plan };
      },
    ] },
    { row: 'write billing information', allowed: ['owner', 'admin', 'billing-admin'], cases: [
      async (role) => {
        const email = `billing-${uniq(role)}@example.com`;
        return { req: ['POST', '/tailnet/-/billing/contact', { email }], changed: async () => (await f.owner.get('/tailnet/-/billing')).body.contact?.email === email };
      },
    ] },
  ];
}

const rolesMd = join(root, '../shared/roles.md');

describe.skipIf(!existsSync(rolesMd))('the test table is roles.md', () => {
  it('has every row of roles.md with the same ✅ columns', () => {
    const md = readFileSync(rolesMd, 'utf8');
    const docRows = md
      .split('\n')
      .filter((l) => l.startsWith('| ') && (l.includes('✅') || l.includes('❌')))
      .map((l) => l.split('|').slice(1, -1).map((c) => c.trim()));
    const ours = rows({} as Fixtures);
    expect(docRows.map((r) => r[0])).toEqual(ours.map((r) => r.row));
    for (const r of docRows) {
      const allowed = ROLES.filter((_, i) => r[i + 1] === '✅');
      expect({ row: r[0], allowed }).toEqual({ row: r[0], allowed: ours.find((o) => o.row === r[0])!.allowed });
    }
  });
});

describe('role matrix over HTTP', () => {
  const coord = new Coord();
  const tokens = {} as Record<Role, string>;
  let f: Fixtures;
  let db: Database.Database | undefined;

  beforeAll(async () => {
    await coord.start(['--allow-private-webhooks']); // its webhooks point at 127.0.0.1
    tokens.owner = coord.createTailnet('example.com', 'owner@example.com');
    const owner = api(coord.url, tokens.owner);
    for (const role of ROLES.slice(1)) {
      // Invited as members, then given the role by the owner (the invite could give it directly too).
      const u = await addUser(coord.url, tokens.owner, 'example.com', `${role}@example.com`, 'member');
      if (role !== 'member') expect((await owner.post(`/users/${u.id}/role`, { role })).status).toBe(200);
      tokens[role] = u.token;
    }
    const policy = `{
      // only the owner owns tag:prod
      "tagOwners": {"tag:prod": ["owner@example.com"]},
      "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
    }`;
    expect((await owner.post('/tailnet/-/acl', policy, { 'content-type': 'application/hujson' })).status).toBe(200);
    const ownerKey = (await owner.post('/tailnet/-/keys', { capabilities: { devices: { create: { reusable: true } } } })).body.key as string;
    const register = async (authKey: string, hostname = 'from-key', advertisedRoutes?: string[]) =>
      (await new ControlClient(coord.url, generateMachineKey()).register({ nodeKey: randomBytes(32).toString('base64'), hostname, authKey, advertisedRoutes })).deviceId;
    // a second network with a device to share into this one
    const other = api(coord.url, coord.createTailnet('other.example', 'olga@other.example'));
    const foreignId = await register((await other.post('/tailnet/-/keys', { capabilities: { devices: { create: { reusable: true } } } })).body.key, 'foreign');
    const store = new Database(coord.db);
    db = store;
    f = {
      url: coord.url,
      owner,
      deviceId: await register(ownerKey, 'web1'),
      ownerId: (await owner.get('/tailnet/-/users')).body.users.find((u: any) => u.loginName === 'owner@example.com').id,
      device: (name, routes) => register(ownerKey, name, routes),
      user: async (email, status) => {
        const inv = await owner.post('/tailnet/-/user-invites', [{ email, role: 'member' }]);
        const acc = await api(coord.url).post('/user-invites/-/accept', { code: inv.body[0].code, password: 'correct horse battery staple' });
        expect(acc.status, acc.text).toBe(200);
        // No API path leads to these states from a fresh user (suspend would need a permitted caller, and
        // nothing sets needs-approval), so the fixture writes them into coord's store.
        if (status) store.prepare('UPDATE users SET status = ? WHERE id = ?').run(status, acc.body.id);
        return acc.body.id as string;
      },
      foreignInvite: async () => {
        const inv = (await other.post(`/device/${foreignId}/device-invites`, [{ label: `for-${++seq}` }])).body[0] as { id: string; inviteUrl: string };
        const accepted = async () => ((await other.get(`/device/${foreignId}/device-invites`)).body as any[]).find((i) => i.id === inv.id).accepted === true;
        return { ...inv, accepted };
      },
      register: (authKey) => register(authKey),
    };
  });
  afterAll(async () => {
    db?.close();
    await coord.cleanup();
  });

  it('allows and refuses every row for every role exactly as roles.md says, and allowed requests take effect', async () => {
    const results: string[] = [];
    for (const r of rows(f)) {
      for (const role of ROLES) {
        const client = api(coord.url, tokens[role]);
        for (const make of r.cases) {
          const c = await make(role);
          const [method, path, body] = c.req;
          const res = await client.call(method, path, body === undefined ? (method === 'POST' || method === 'PATCH' ? {} : undefined) : body);
          const allowed = r.allowed.includes(role);
          const where = `${r.row} / ${role}: ${method} ${path} → ${res.status} ${res.text.slice(0, 120)}`;
          if (allowed) {
            if (res.status < 200 || res.status > 299) results.push(`${where} (expected 2xx)`);
            else if (c.answer && !(await c.answer(res))) results.push(`${where} (the answer lacks what was asked for)`);
            else if (c.changed && !(await c.changed())) results.push(`${where} (answered, but the change is not there)`);
          } else {
            if (res.status !== 403 || typeof res.body?.message !== 'string') results.push(`${where} (expected 403)`);
            else if (c.changed && (await c.changed())) results.push(`${where} (refused, but the change was made)`);
          }
        }
      }
    }
    expect(results).toEqual([]);
  });

  it('refuses it-admin a tag it does not own with Tailscale\'s message', async () => {
    const res = await api(coord.url, tokens['it-admin']).post(`/device/${f.deviceId}/tags`, { tags: ['tag:prod'] });
    expect(res.status).toBe(403);
    expect(res.body.message).toBe('requested tags [tag:prod] are invalid or not permitted');
  });

  it('answers 401 without a key and with a wrong one', async () => {
    expect((await api(coord.url).get('/tailnet/-/devices')).status).toBe(401);
    expect((await api(coord.url, 'mwkey-api-kAAAAAAAAAAAA-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA').get('/tailnet/-/devices')).status).toBe(401);
    const broken = tokens.owner.slice(0, -4) + 'abcd';
    expect((await api(coord.url, broken).get('/tailnet/-/devices')).status).toBe(401);
  });
});
