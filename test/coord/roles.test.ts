// The role matrix of roles.md as a table test: every role against every row, over real HTTP against the
// real server. Permission is checked before the resource is looked up, so rows that would change or
// delete something are called with ids that do not exist: allowed → 404/400, refused → 403.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControlClient, generateMachineKey } from '../../agent/control/index.js';
import { addUser, api, Coord, root } from './harness.js';

const ROLES = ['owner', 'admin', 'network-admin', 'it-admin', 'billing-admin', 'auditor', 'member'] as const;
type Role = (typeof ROLES)[number];
type Req = [method: string, path: string, body?: unknown];

const NO_DEVICE = 'n000000000000000';
const NO_USER = 'u000000000000';
const NOPE = 'x000000000000';

/** Our reading of roles.md: row → roles with ✅ → requests that must be allowed for exactly those roles. */
function rows(deviceId: string): { row: string; allowed: Role[]; requests: Req[] }[] {
  const all: Role[] = ['owner', 'admin', 'network-admin', 'it-admin', 'billing-admin', 'auditor'];
  return [
    { row: 'use the admin API at all', allowed: all, requests: [['GET', '/tailnet/-/users'], ['GET', '/tailnet/-/devices']] },
    { row: 'read policy file', allowed: all, requests: [['GET', '/tailnet/-/acl'], ['POST', '/tailnet/-/acl/validate', ''], ['POST', '/tailnet/-/acl/preview?type=user&previewFor=owner@example.com', '']] },
    { row: 'write policy file', allowed: ['owner', 'admin', 'network-admin'], requests: [['POST', '/tailnet/-/acl', '{ this is not valid']] },
    { row: 'read network configuration', allowed: all, requests: [['GET', '/tailnet/-/dns/nameservers'], ['GET', '/tailnet/-/dns/searchpaths'], ['GET', '/tailnet/-/dns/preferences'], ['GET', `/device/${NO_DEVICE}/routes`]] },
    { row: 'write network configuration (DNS, MagicDNS, subnet routes, exit nodes)', allowed: ['owner', 'admin', 'network-admin'], requests: [['POST', '/tailnet/-/dns/nameservers', { dns: 'not-a-list' }], ['POST', '/tailnet/-/dns/searchpaths', {}], ['POST', '/tailnet/-/dns/preferences', {}], ['POST', `/device/${NO_DEVICE}/routes`, { routes: [] }]] },
    { row: 'read feature configuration', allowed: all, requests: [['GET', '/tailnet/-/settings']] },
    { row: 'write feature configuration', allowed: ['owner', 'admin', 'it-admin'], requests: [['PATCH', '/tailnet/-/settings', { noSuchSetting: 1 }]] },
    { row: 'configure user provisioning', allowed: ['owner', 'admin', 'it-admin'], requests: [['POST', '/tailnet/-/user-invites', [{ email: 'not-an-email' }]], ['DELETE', `/user-invites/${NOPE}`]] },
    { row: 'read machines', allowed: all, requests: [['GET', '/tailnet/-/devices'], ['GET', `/device/${NO_DEVICE}`]] },
    { row: 'write machines (approve, rename, remove)', allowed: ['owner', 'admin', 'it-admin'], requests: [['POST', `/device/${NO_DEVICE}/authorized`, { authorized: true }], ['POST', `/device/${NO_DEVICE}/name`, { name: 'x' }], ['POST', `/device/${NO_DEVICE}/expire`], ['POST', `/device/${NO_DEVICE}/key`, { keyExpiryDisabled: true }], ['DELETE', `/device/${NO_DEVICE}`]] },
    { row: 'read users and roles', allowed: all, requests: [['GET', '/tailnet/-/users'], ['GET', `/users/${NO_USER}`]] },
    { row: 'write users and roles', allowed: ['owner', 'admin', 'it-admin'], requests: [['POST', `/users/${NO_USER}/role`, { role: 'auditor' }], ['POST', `/users/${NO_USER}/approve`], ['POST', `/users/${NO_USER}/suspend`], ['POST', `/users/${NO_USER}/restore`], ['POST', `/users/${NO_USER}/delete`]] },
    { row: 'generate auth keys', allowed: ['owner', 'admin', 'network-admin', 'it-admin'], requests: [['POST', '/tailnet/-/keys', { capabilities: { devices: { create: { reusable: 'not-a-bool' } } } }]] },
    { row: 'generate API access tokens', allowed: ['owner', 'admin', 'network-admin', 'it-admin'], requests: [['POST', '/tailnet/-/keys', { keyType: 'api', expirySeconds: 0 }]] },
    { row: 'share a device', allowed: ['owner', 'admin', 'it-admin'], requests: [['POST', `/device/${NO_DEVICE}/device-invites`, {}], ['DELETE', `/device-invites/${NOPE}`]] },
    { row: 'accept a shared device', allowed: ['owner', 'admin', 'it-admin'], requests: [['POST', '/device-invites/-/accept', { invite: NOPE }]] },
    // With a real device and a tag only the owner owns (tagOwners), so that "without owning it" is what is tested.
    { row: 'use any tag without owning it', allowed: ['owner', 'admin', 'network-admin'], requests: [['POST', `/device/${deviceId}/tags`, { tags: ['tag:prod'] }], ['POST', '/tailnet/-/keys', { capabilities: { devices: { create: { tags: ['tag:prod'] } } }, expirySeconds: 60 }]] },
    { row: 'read configuration audit log', allowed: all, requests: [['GET', '/tailnet/-/logging/configuration']] },
    { row: 'write webhooks', allowed: ['owner', 'admin', 'network-admin', 'it-admin'], requests: [['POST', '/tailnet/-/webhooks', { endpointUrl: 'not a url' }], ['PATCH', `/webhooks/${NOPE}`, {}], ['DELETE', `/webhooks/${NOPE}`]] },
    { row: 'write network name', allowed: ['owner', 'admin', 'network-admin'], requests: [['POST', '/tailnet/-/name', { name: '' }]] },
    { row: 'read payment plan', allowed: ['owner', 'admin', 'billing-admin'], requests: [['GET', '/tailnet/-/billing']] },
    { row: 'write payment plan', allowed: ['owner', 'admin', 'billing-admin'], requests: [['POST', '/tailnet/-/billing/plan', {}]] },
    { row: 'write billing information', allowed: ['owner', 'admin', 'billing-admin'], requests: [['POST', '/tailnet/-/billing/contact', {}]] },
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
    const ours = rows('x');
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
  let deviceId = '';

  beforeAll(async () => {
    await coord.start();
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
    const key = await owner.post('/tailnet/-/keys', { capabilities: { devices: { create: { reusable: false } } } });
    const client = new ControlClient(coord.url, generateMachineKey());
    const reg = await client.register({ nodeKey: Buffer.alloc(32, 7).toString('base64'), hostname: 'web1', authKey: key.body.key });
    deviceId = reg.deviceId;
  });
  afterAll(() => coord.cleanup());

  it('allows and refuses every row for every role exactly as roles.md says', async () => {
    const results: string[] = [];
    for (const r of rows(deviceId)) {
      for (const role of ROLES) {
        const client = api(coord.url, tokens[role]);
        for (const [method, path, body] of r.requests) {
          const res = await client.call(method, path, body === undefined ? (method === 'POST' || method === 'PATCH' ? {} : undefined) : body);
          const allowed = r.allowed.includes(role);
          const ok = allowed ? res.status !== 403 && res.status !== 401 && res.status !== 405 : res.status === 403 && typeof res.body?.message === 'string';
          if (!ok) results.push(`${r.row} / ${role}: ${method} ${path} → ${res.status} ${res.text.slice(0, 120)} (expected ${allowed ? 'allowed' : '403'})`);
        }
      }
    }
    expect(results).toEqual([]);
  });

  it('refuses it-admin a tag it does not own with Tailscale\'s message', async () => {
    const res = await api(coord.url, tokens['it-admin']).post(`/device/${deviceId}/tags`, { tags: ['tag:prod'] });
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
