// API parity with Tailscale's published OpenAPI 3.1 spec for API v2 (../shared/api/tailscale-openapi.json,
// relative to the repository root; read from there, never copied). A real coord answers every operation we
// implement, called with valid input, and each 2xx answer is validated against the operation's response
// schema (JSON Schema 2020-12, $refs resolved in the spec's components). The operations we do not offer are
// listed below with the reason, and the suite checks that they really are absent (so the list cannot go stale).
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROUTES } from '../../coord/api/admin/router.js';
import { matchPath } from '../../coord/api/http.js';
import { FORBIDDEN_MESSAGE, MATRIX } from '../../coord/roles.js';
import { addUser, api, Coord, type Res } from './harness.js';
import { TestDevice } from './devices.js';
import { SmtpSink } from './smtp-sink.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SPEC = path.resolve(ROOT, '..', 'shared', 'api', 'tailscale-openapi.json');
const HAVE_SPEC = existsSync(SPEC);
const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;

/** Operations of the spec that coord does not offer, and why. */
const NOT_OFFERED: Record<string, string> = {
  resendContactVerificationEmail: 'contact e-mail verification needs a mail service outside the server',
  listNetworkFlowLogs: 'network flow logs need the agents to report flows (not collected)',
  getPostureIntegrations: 'posture-vendor integrations need the vendors\' services',
  createPostureIntegration: 'posture-vendor integrations need the vendors\' services',
  updatePostureIntegration: 'posture-vendor integrations need the vendors\' services',
  deletePostureIntegration: 'posture-vendor integrations need the vendors\' services',
};

/** Operations we offer whose answer does not validate yet (or cannot be reached with a 2xx), and why. The test expects them to fail, so a fix must remove the entry. */
const KNOWN_INVALID: Record<string, string> = {};

interface Operation {
  id: string;
  /** The error statuses the spec documents for the operation. */
  errors: string[];
  method: string;
  path: string;
  /** The response's 2xx statuses and, per status, a validator by content type (none when the spec has no body). */
  ok: Record<string, Record<string, ValidateFunction>>;
}

function loadOperations(): Operation[] {
  const spec = JSON.parse(readFileSync(SPEC, 'utf8'));
  // Not strict: the spec carries OpenAPI keywords (x-…, format: password) that are no JSON Schema.
  const ajv = new Ajv2020({ strict: false, allErrors: true, validateSchema: false });
  // ajv-formats is CommonJS; its default export is the plugin function.
  (addFormatsModule as unknown as (a: Ajv2020) => void)(ajv);
  // The whole document under one $id, so `#/components/...` inside any schema resolves against it.
  const base = 'https://spec.invalid/openapi.json';
  ajv.addSchema({ $id: base, components: spec.components, paths: spec.paths });
  const deref = (x: any): any => {
    while (x && typeof x === 'object' && typeof x.$ref === 'string') {
      x = x.$ref.slice(2).split('/').reduce((o: any, k: string) => o[k.replace(/~1/g, '/').replace(/~0/g, '~')], spec);
    }
    return x;
  };
  const pointer = (...parts: string[]) => parts.map((p) => p.replace(/~/g, '~0').replace(/\//g, '~1')).join('/');
  const ops: Operation[] = [];
  for (const [p, item] of Object.entries<any>(spec.paths)) {
    for (const m of METHODS) {
      const op = item[m];
      if (!op) continue;
      const ok: Operation['ok'] = {};
      for (const [status, resp] of Object.entries<any>(op.responses)) {
        if (!status.startsWith('2')) continue;
        ok[status] = {};
        for (const type of Object.keys(deref(resp).content ?? {})) {
          const ref = resp.$ref ? `${base}#${resp.$ref.slice(1)}/content/${pointer(type)}/schema` : `${base}#/${pointer('paths', p, m, 'responses', status, 'content', type, 'schema')}`;
          ok[status][type] = ajv.compile({ $ref: ref });
        }
      }
      ops.push({ id: op.operationId, method: m.toUpperCase(), path: p, ok, errors: Object.keys(op.responses).filter((st) => !st.startsWith('2')) });
    }
  }
  errorBody = ajv.compile({ $ref: `${base}#/components/schemas/Error` });
  return ops;
}

/** The spec's Error schema (`{"message": string}`), which every error answer of ours must match. */
let errorBody: ValidateFunction;

describe.skipIf(!HAVE_SPEC)('admin API against Tailscale\'s OpenAPI spec', () => {
  const ops = HAVE_SPEC ? loadOperations() : [];
  const byId = new Map(ops.map((o) => [o.id, o]));
  const SPEC_EVENTS = new Set<string>(HAVE_SPEC ? JSON.parse(readFileSync(SPEC, 'utf8')).components.parameters.event.schema.items.enum : []);
  const coord = new Coord();
  const devices: TestDevice[] = [];
  let ownerKey: string;
  let owner: ReturnType<typeof api>;
  /** The owner of a second tailnet, who accepts a device invite. */
  let partner: ReturnType<typeof api>;
  const s: Record<string, string> = {};
  /** A webhook receiver on loopback (coord runs with --allow-private-webhooks): the bodies it got. */
  let receiver: Server;
  const received: string[] = [];
  /** A real SMTP server (coord runs with --smtp-url): the resend operations mail through it. */
  const sink = new SmtpSink();
  /** A device of the partner's tailnet (for calls naming another tailnet's ids). */
  let partnerDevice: TestDevice;

  beforeAll(async () => {
    receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        received.push(body);
        res.end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    s.hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
    await sink.start();
    await coord.start(['--allow-private-webhooks', '--smtp-url', sink.url, '--mail-from', 'coord@example.com']);
    ownerKey = coord.createTailnet('example.com', 'alice@example.com');
    owner = api(coord.url, ownerKey);
    partner = api(coord.url, coord.createTailnet('partner.com', 'pat@partner.com'));
    const key = await owner.post('/tailnet/-/keys', { capabilities: { devices: { create: { reusable: true, preauthorized: true } } } });
    for (const name of ['one', 'two', 'three']) {
      const d = new TestDevice(coord.url);
      devices.push(d);
      await d.register(key.body.key, name);
    }
    partnerDevice = new TestDevice(coord.url);
    devices.push(partnerDevice);
    await partnerDevice.register((await partner.post('/tailnet/-/keys', { capabilities: { devices: { create: { preauthorized: true } } } })).body.key, 'theirs');
  }, 60_000);
  afterAll(async () => {
    for (const d of devices) d.close();
    await coord.cleanup();
    receiver?.close();
    await sink.cleanup();
  });

  /** Calls of every operation we offer, in an order where each finds what it needs. */
  const calls: [string, () => Promise<Res>][] = [
    ['listTailnetDevices', () => owner.get('/tailnet/-/devices')],
    ['getDevice', () => owner.get(`/device/${devices[0]!.id}`)],
    ['listDeviceRoutes', () => owner.get(`/device/${devices[0]!.id}/routes`)],
    ['setDeviceRoutes', () => owner.post(`/device/${devices[0]!.id}/routes`, { routes: [] })],
    ['authorizeDevice', () => owner.post(`/device/${devices[0]!.id}/authorized`, { authorized: true })],
    ['setDeviceName', () => owner.post(`/device/${devices[0]!.id}/name`, { name: 'uno' })],
    ['setDeviceTags', () => owner.post(`/device/${devices[0]!.id}/tags`, { tags: [] })],
    ['updateDeviceKey', () => owner.post(`/device/${devices[0]!.id}/key`, { keyExpiryDisabled: true })],
    ['setDeviceIp', () => owner.post(`/device/${devices[0]!.id}/ip`, { ipv4: '100.80.0.7' })],
    ['setCustomDevicePostureAttributes', () => owner.post(`/device/${devices[0]!.id}/attributes/custom:tier`, { value: 'gold' })],
    ['getDevicePostureAttributes', () => owner.get(`/device/${devices[0]!.id}/attributes`)],
    ['deleteCustomDevicePostureAttributes', () => owner.del(`/device/${devices[0]!.id}/attributes/custom:tier`)],
    ['createDeviceInvites', async () => {
      const r = await owner.post(`/device/${devices[0]!.id}/device-invites`, [{}, {}, { email: 'pat@partner.com' }]);
      s.deviceInvite = r.body?.[0]?.id;
      s.deviceInvite2 = r.body?.[1]?.id;
      s.deviceInviteUrl = r.body?.[1]?.inviteUrl;
      s.deviceInviteMailed = r.body?.[2]?.id;
      return r;
    }],
    ['listDeviceInvites', () => owner.get(`/device/${devices[0]!.id}/device-invites`)],
    ['getDeviceInvite', () => owner.get(`/device-invites/${s.deviceInviteMailed}`)],
    ['resendDeviceInvite', () => owner.post(`/device-invites/${s.deviceInviteMailed}/resend`)],
    ['deleteDeviceInvite', () => owner.del(`/device-invites/${s.deviceInvite}`)],
    ['acceptDeviceInvite', async () => {
      const r = await partner.post('/device-invites/-/accept', { invite: s.deviceInviteUrl });
      // The fields the spec names for the shared device and the two users (none is required, so the schema alone would not notice).
      const d = (await owner.get(`/device/${devices[0]!.id}`)).body;
      expect(r.body.device).toMatchObject({ id: d.id, os: d.os, fqdn: d.name, name: d.name, ipv4: d.addresses[0], ipv6: d.addresses[1], includeExitNode: false });
      expect(r.body.sharer).toMatchObject({ loginName: 'alice@example.com', profilePicURL: '' });
      expect(r.body.acceptedBy).toMatchObject({ loginName: 'pat@partner.com', profilePicURL: '' });
      return r;
    }],
    ['createUserInvites', async () => {
      const r = await owner.post('/tailnet/-/user-invites', [{ email: 'bob@example.com', role: 'admin' }, { email: 'carol@example.com' }]);
      s.userInvite = r.body?.[0]?.id;
      return r;
    }],
    ['listUserInvites', () => owner.get('/tailnet/-/user-invites')],
    ['getUserInvite', () => owner.get(`/user-invites/${s.userInvite}`)],
    ['resendUserInvite', () => owner.post(`/user-invites/${s.userInvite}/resend`)],
    ['deleteUserInvite', () => owner.del(`/user-invites/${s.userInvite}`)],
    ['listDnsNameservers', () => owner.get('/tailnet/-/dns/nameservers')],
    ['setDnsNameservers', () => owner.post('/tailnet/-/dns/nameservers', { dns: ['9.9.9.9'] })],
    ['getDnsPreferences', () => owner.get('/tailnet/-/dns/preferences')],
    ['setDnsPreferences', () => owner.post('/tailnet/-/dns/preferences', { magicDNS: true })],
    ['listDnsSearchPaths', () => owner.get('/tailnet/-/dns/searchpaths')],
    ['setDnsSearchPaths', () => owner.post('/tailnet/-/dns/searchpaths', { searchPaths: ['corp.example.com'] })],
    ['getSplitDns', () => owner.get('/tailnet/-/dns/split-dns')],
    ['updateSplitDns', () => owner.patch('/tailnet/-/dns/split-dns', { 'corp.example.com': ['10.0.0.53'] })],
    ['setSplitDns', () => owner.call('PUT', '/tailnet/-/dns/split-dns', { 'corp.example.com': ['10.0.0.53'] })],
    ['createAuthKey', async () => {
      const r = await owner.post('/tailnet/-/keys', { capabilities: { devices: { create: { reusable: false, tags: [] } } }, expirySeconds: 3600 });
      s.key = r.body?.id;
      return r;
    }],
    ['getKey', () => owner.get(`/tailnet/-/keys/${s.key}`)],
    ['deleteKey', () => owner.del(`/tailnet/-/keys/${s.key}`)],
    // After the delete: the list then holds a revoked key too.
    ['listTailnetKeys', () => owner.get('/tailnet/-/keys')],
    ['getPolicyFile', () => owner.get('/tailnet/-/acl')],
    ['setPolicyFile', () => owner.post('/tailnet/-/acl', '{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}')],
    ['previewRuleMatches', () => owner.post('/tailnet/-/acl/preview?type=user&previewFor=alice@example.com', '{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:22"]}]}')],
    ['validateAndTestPolicyFile', () => owner.post('/tailnet/-/acl/validate', '{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:22"]}], "tests": [{"src": "alice@example.com", "deny": ["100.64.0.1:22"]}]}')],
    ['listUsers', async () => {
      const r = await owner.get('/tailnet/-/users');
      s.user = r.body?.users?.find((u: any) => u.loginName === 'alice@example.com')?.id;
      return r;
    }],
    ['getUser', () => owner.get(`/users/${s.user}`)],
    ['updateUserRole', async () => {
      // With user approval on, the invited user needs approval (for approveUser below).
      expect((await owner.patch('/tailnet/-/settings', { usersApprovalOn: true })).status).toBe(200);
      const inv = await owner.post('/tailnet/-/user-invites', [{ email: 'dave@example.com', role: 'member' }]);
      const u = await api(coord.url).post('/user-invites/-/accept', { code: inv.body[0].code, password: 'correct horse battery staple' });
      s.dave = u.body.id;
      return owner.post(`/users/${s.dave}/role`, { role: 'auditor' });
    }],
    ['approveUser', () => owner.post(`/users/${s.dave}/approve`)],
    ['suspendUser', () => owner.post(`/users/${s.dave}/suspend`)],
    ['restoreUser', () => owner.post(`/users/${s.dave}/restore`)],
    ['deleteUser', () => owner.post(`/users/${s.dave}/delete`)],
    ['getContacts', () => owner.get('/tailnet/-/contacts')],
    ['updateContact', async () => {
      const r = await owner.patch('/tailnet/-/contacts/security', { email: 'security@example.com' });
      const after = (await owner.get('/tailnet/-/contacts')).body;
      expect(after.security.email).toBe('security@example.com');
      expect(after.account.email).toBe('alice@example.com');
      expect((await owner.patch('/tailnet/-/contacts/sales', { email: 'x@example.com' })).status).toBe(404);
      expect((await owner.patch('/tailnet/-/contacts/support', { email: 'nope' })).status).toBe(400);
      return r;
    }],
    ['createWebhook', async () => {
      const r = await owner.post('/tailnet/-/webhooks', { endpointUrl: s.hookUrl, subscriptions: ['nodeCreated'] });
      s.webhook = r.body?.endpointId;
      s.webhookSecret = r.body?.secret;
      return r;
    }],
    ['listWebhooks', () => owner.get('/tailnet/-/webhooks')],
    ['getWebhook', () => owner.get(`/webhooks/${s.webhook}`)],
    ['updateWebhook', () => owner.patch(`/webhooks/${s.webhook}`, { subscriptions: ['nodeCreated', 'policyUpdate'] })],
    ['rotateWebhookSecret', async () => {
      const r = await owner.post(`/webhooks/${s.webhook}/rotate`);
      expect(r.body.secret).toMatch(/^mwwhsec-/);
      expect(r.body.secret).not.toBe(s.webhookSecret);
      return r;
    }],
    ['testWebhook', async () => {
      const r = await owner.post(`/webhooks/${s.webhook}/test`);
      // The endpoint subscribes to nodeCreated and policyUpdate only; the test event reaches it anyway.
      await expect.poll(() => received.some((b) => JSON.parse(b)[0]?.type === 'test'), { timeout: 10_000 }).toBe(true);
      return r;
    }],
    ['deleteWebhook', () => owner.del(`/webhooks/${s.webhook}`)],
    ['getTailnetSettings', () => owner.get('/tailnet/-/settings')],
    ['updateTailnetSettings', () => owner.patch('/tailnet/-/settings', { usersRoleAllowedToJoinExternalTailnets: 'admin', devicesKeyDurationDays: 90 })],
    ['expireDeviceKey', () => owner.post(`/device/${devices[1]!.id}/expire`)],
    ['deleteDevice', () => owner.del(`/device/${devices[1]!.id}`)],
    ['setLogStreamingConfiguration', () => owner.call('PUT', '/tailnet/-/logging/configuration/stream', { destinationType: 'axiom', url: `${s.hookUrl}/logs`, token: 'axiom-token' })],
    ['getLogStreamingConfiguration', () => owner.get('/tailnet/-/logging/configuration/stream')],
    ['getLogStreamingStatus', () => owner.get('/tailnet/-/logging/configuration/stream/status')],
    ['disableLogStreaming', () => owner.del('/tailnet/-/logging/configuration/stream')],
    // Last: the log then holds entries of every kind the calls above made.
    ['listConfigurationAuditLogs', async () => {
      const r = await owner.get('/tailnet/-/logging/configuration');
      const events = new Set<string>(r.body.logs.map((l: any) => [l.target.type, l.action, l.target.property].filter((x) => x !== undefined).join('.')));
      // Every entry is an event of the spec's `event` filter, so a filter finds it, except the few Tailscale has no name for.
      expect([...events].filter((e) => !SPEC_EVENTS.has(e)).sort()).toEqual(['NODE.UPDATE.ADDRESS', 'TAILNET.UPDATE.FEATURE']);
      return r;
    }],
  ];

  it('names every operation of the spec once: offered (called below) or not offered (with a reason)', () => {
    const offered = calls.map(([id]) => id).filter((id) => !(id in NOT_OFFERED));
    expect(new Set(offered).size).toBe(offered.length);
    for (const id of [...offered, ...Object.keys(NOT_OFFERED)]) expect(byId.has(id), `${id} is not in the spec`).toBe(true);
    const named = new Set([...offered, ...Object.keys(NOT_OFFERED)]);
    expect(ops.filter((o) => !named.has(o.id)).map((o) => o.id)).toEqual([]);
    expect(offered.filter((id) => id in NOT_OFFERED)).toEqual([]);
    console.log(`OpenAPI parity: ${offered.length} of ${ops.length} operations offered; not offered:\n` +
      Object.entries(NOT_OFFERED).map(([id, why]) => `  ${id} (${byId.get(id)!.method} ${byId.get(id)!.path}): ${why}`).join('\n'));
  });

  for (const [id, call] of calls) {
    const test = id in NOT_OFFERED ? it.skip : id in KNOWN_INVALID ? it.fails : it;
    test(`${id}: a 2xx answer that validates${id in KNOWN_INVALID ? ` (known not to: ${KNOWN_INVALID[id]})` : ''}`, async () => {
      const op = byId.get(id)!;
      expectValid(op, await call());
    });
  }

  /** The answer is one of the operation's 2xx statuses and validates against its schema for the content type it has. */
  function expectValid(op: Operation, r: Res): void {
    expect(Object.keys(op.ok), `${op.method} ${op.path} answered ${r.status}: ${r.text.slice(0, 300)}`).toContain(String(r.status));
    const validators = op.ok[String(r.status)]!;
    const type = (r.headers.get('content-type') ?? '').split(';')[0]!.trim();
    const validate = validators[type];
    if (Object.keys(validators).length > 0) expect(Object.keys(validators), `answered ${type}`).toContain(type);
    if (validate && type === 'application/json' && !validate(r.body)) {
      expect.fail(`${op.method} ${op.path}: ${JSON.stringify(validate.errors, null, 1).slice(0, 1500)}\nbody: ${r.text.slice(0, 800)}`);
    }
    if (validate && type !== 'application/json') expect(validate(r.text)).toBe(true);
  }

  /**
   * The variants an outside checker tries beyond the plain call above: the query parameters the spec defines,
   * optional body fields present and absent, wrong types, unknown ids and other tailnets' ids. Each names the
   * status it must get; a 2xx answer must validate, an error answer must be the spec's Error (`{"message"}`),
   * and `then` reads the effect back. They run after the plain calls, on what those left.
   */
  interface Variant { id: string; what: string; status: number; call: () => Promise<Res>; then?: (r: Res) => unknown }
  const policyText = '{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}';
  const window = () => `start=${new Date(Date.now() - 3_600_000).toISOString()}&end=${new Date(Date.now() + 60_000).toISOString()}`;
  const variants: Variant[] = [
    { id: 'listTailnetDevices', what: 'fields=all: every device with its routes and connectivity', status: 200, call: () => owner.get('/tailnet/-/devices?fields=all'),
      then: (r) => { for (const d of r.body.devices) expect(Object.keys(d)).toEqual(expect.arrayContaining(['advertisedRoutes', 'enabledRoutes', 'clientConnectivity'])); } },
    { id: 'listTailnetDevices', what: 'fields=default', status: 200, call: () => owner.get('/tailnet/-/devices?fields=default') },
    { id: 'listTailnetDevices', what: 'fields=default,all (the union)', status: 200, call: () => owner.get('/tailnet/-/devices?fields=default,all') },
    { id: 'listTailnetDevices', what: 'fields outside the enum', status: 400, call: () => owner.get('/tailnet/-/devices?fields=everything') },
    { id: 'listTailnetDevices', what: 'another tailnet by name', status: 404, call: () => owner.get('/tailnet/partner.com/devices') },
    { id: 'listTailnetDevices', what: 'the tailnet by the id its users carry (tailnetId)', status: 200,
      call: async () => owner.get(`/tailnet/${(await owner.get('/tailnet/-/users')).body.users[0].tailnetId}/devices`), then: (r) => expect(r.body.devices.length).toBeGreaterThan(0) },
    { id: 'listTailnetDevices', what: "another tailnet by its id", status: 404,
      call: async () => owner.get(`/tailnet/${(await partner.get('/tailnet/-/users')).body.users[0].tailnetId}/devices`) },
    { id: 'getDevice', what: "another tailnet's device", status: 404, call: () => owner.get(`/device/${partnerDevice.id}`) },
    { id: 'getDevice', what: 'an unknown id', status: 404, call: () => owner.get('/device/n0000000000000') },
    { id: 'setDeviceIp', what: 'a free address in range, read back', status: 200, call: () => owner.post(`/device/${devices[2]!.id}/ip`, { ipv4: '100.81.2.3' }),
      then: async () => expect((await owner.get(`/device/${devices[2]!.id}`)).body.addresses[0]).toBe('100.81.2.3') },
    { id: 'setDeviceIp', what: "another device's address", status: 409, call: () => owner.post(`/device/${devices[2]!.id}/ip`, { ipv4: '100.80.0.7' }) },
    { id: 'setDeviceIp', what: 'an address outside 100.64.0.0/10', status: 400, call: () => owner.post(`/device/${devices[2]!.id}/ip`, { ipv4: '10.0.0.1' }) },
    { id: 'setDeviceIp', what: 'a number for ipv4', status: 400, call: () => owner.post(`/device/${devices[2]!.id}/ip`, { ipv4: 1 }) },
    { id: 'setDeviceIp', what: "another tailnet's device", status: 404, call: () => owner.post(`/device/${partnerDevice.id}/ip`, { ipv4: '100.81.2.4' }) },
    { id: 'setCustomDevicePostureAttributes', what: 'a number with expiry and comment, read back', status: 200,
      call: () => owner.post(`/device/${devices[2]!.id}/attributes/custom:score`, { value: 42, expiry: '2099-01-01T00:00:00Z', comment: 'from CI' }),
      then: async () => expect((await owner.get(`/device/${devices[2]!.id}/attributes`)).body.attributes['custom:score']).toBe(42) },
    { id: 'setCustomDevicePostureAttributes', what: 'a boolean', status: 200, call: () => owner.post(`/device/${devices[2]!.id}/attributes/custom:managed`, { value: true }) },
    { id: 'setCustomDevicePostureAttributes', what: 'an object as value', status: 400, call: () => owner.post(`/device/${devices[2]!.id}/attributes/custom:x`, { value: { a: 1 } }) },
    { id: 'setCustomDevicePostureAttributes', what: 'a key that is not custom:', status: 400, call: () => owner.post(`/device/${devices[2]!.id}/attributes/node:os`, { value: 'x' }) },
    { id: 'createAuthKey', what: 'every capability and expirySeconds, read back', status: 200,
      call: () => owner.post('/tailnet/-/keys', { capabilities: { devices: { create: { reusable: true, ephemeral: true, preauthorized: true, tags: [] } } }, expirySeconds: 86400 }),
      then: (r) => {
        expect(r.body.capabilities.devices.create).toEqual({ reusable: true, ephemeral: true, preauthorized: true, tags: [] });
        expect(Math.abs(Date.parse(r.body.expires) - Date.parse(r.body.created) - 86_400_000)).toBeLessThan(1000);
      } },
    { id: 'createAuthKey', what: 'expirySeconds 0 (the default: 90 days)', status: 200,
      call: () => owner.post('/tailnet/-/keys', { capabilities: { devices: { create: {} } }, expirySeconds: 0 }),
      then: (r) => expect(Math.abs(Date.parse(r.body.expires) - Date.parse(r.body.created) - 90 * 86_400_000)).toBeLessThan(1000) },
    { id: 'createAuthKey', what: 'expirySeconds as a string', status: 400, call: () => owner.post('/tailnet/-/keys', { capabilities: { devices: { create: {} } }, expirySeconds: '3600' }) },
    { id: 'createAuthKey', what: 'expirySeconds as a list', status: 400, call: () => owner.post('/tailnet/-/keys', { capabilities: { devices: { create: {} } }, expirySeconds: [3600] }) },
    { id: 'listTailnetKeys', what: 'all=true', status: 200, call: () => owner.get('/tailnet/-/keys?all=true'), then: (r) => expect(r.body.keys.length).toBeGreaterThan(0) },
    { id: 'getKey', what: 'an unknown id', status: 404, call: () => owner.get('/tailnet/-/keys/k000000000000') },
    { id: 'listUsers', what: 'role=all', status: 200, call: () => owner.get('/tailnet/-/users?role=all'),
      then: (r) => expect(r.body.users.map((u: any) => u.loginName)).toContain('alice@example.com') },
    { id: 'listUsers', what: 'type=all&role=all: members and shared users', status: 200, call: () => owner.get('/tailnet/-/users?type=all&role=all'),
      then: (r) => expect(r.body.users.map((u: any) => u.loginName)).toEqual(expect.arrayContaining(['alice@example.com', 'pat@partner.com'])) },
    { id: 'listUsers', what: 'type=shared', status: 200, call: () => owner.get('/tailnet/-/users?type=shared'),
      then: (r) => expect(r.body.users.map((u: any) => u.loginName)).toEqual(['pat@partner.com']) },
    { id: 'listUsers', what: 'role=owner', status: 200, call: () => owner.get('/tailnet/-/users?role=owner'),
      then: (r) => expect(r.body.users.map((u: any) => u.loginName)).toEqual(['alice@example.com']) },
    { id: 'listUsers', what: 'a role outside the enum', status: 400, call: () => owner.get('/tailnet/-/users?role=superuser') },
    { id: 'listUsers', what: 'a type outside the enum', status: 400, call: () => owner.get('/tailnet/-/users?type=everyone') },
    { id: 'listUsers', what: 'type=shared with a role outside the enum', status: 400, call: () => owner.get('/tailnet/-/users?type=shared&role=superuser') },
    { id: 'getUser', what: "another tailnet's user", status: 404, call: async () => owner.get(`/users/${(await partner.get('/tailnet/-/users')).body.users[0].id}`) },
    { id: 'getPolicyFile', what: 'details=true: the file (base64 HuJSON), warnings and errors', status: 200, call: () => owner.get('/tailnet/-/acl?details=true'),
      then: async (r) => {
        const hujson = (await owner.get('/tailnet/-/acl', { accept: 'application/hujson' })).text;
        expect(r.body).toEqual({ acl: Buffer.from(hujson).toString('base64'), warnings: [], errors: [] });
      } },
    { id: 'getPolicyFile', what: 'Accept: application/hujson', status: 200, call: () => owner.get('/tailnet/-/acl', { accept: 'application/hujson' }) },
    { id: 'setPolicyFile', what: 'a JSON object with Accept: application/json answers JSON', status: 200, call: () => owner.post('/tailnet/-/acl', JSON.parse(policyText), { accept: 'application/json' }),
      then: (r) => { expect(r.headers.get('content-type')).toMatch(/^application\/json/); expect(r.body.acls).toHaveLength(1); } },
    { id: 'setPolicyFile', what: 'If-Match that does not match', status: 412, call: () => owner.post('/tailnet/-/acl', policyText, { 'if-match': '"0000"' }) },
    { id: 'previewRuleMatches', what: 'type=ipport', status: 200, call: () => owner.post('/tailnet/-/acl/preview?type=ipport&previewFor=100.64.0.1:22', policyText) },
    { id: 'previewRuleMatches', what: 'type=ipport with a previewFor that is no ip:port', status: 400, call: () => owner.post('/tailnet/-/acl/preview?type=ipport&previewFor=nonsense', policyText) },
    { id: 'previewRuleMatches', what: 'a type outside the enum', status: 400, call: () => owner.post('/tailnet/-/acl/preview?type=group&previewFor=x', policyText) },
    { id: 'validateAndTestPolicyFile', what: 'a policy file as a JSON object', status: 200, call: () => owner.post('/tailnet/-/acl/validate', JSON.parse(policyText)), then: (r) => expect(r.body).toEqual({}) },
    { id: 'validateAndTestPolicyFile', what: 'a policy file as a JSON string', status: 200, call: () => owner.post('/tailnet/-/acl/validate', JSON.stringify(policyText)), then: (r) => expect(r.body).toEqual({}) },
    { id: 'validateAndTestPolicyFile', what: 'tests with proto and srcPostureAttrs', status: 200,
      call: () => owner.post('/tailnet/-/acl/validate', [{ src: 'alice@example.com', proto: 'tcp', srcPostureAttrs: { 'custom:tier': 'gold' }, accept: ['100.64.0.1:22'] }]), then: (r) => expect(r.body).toEqual({}) },
    { id: 'validateAndTestPolicyFile', what: 'a policy that does not validate', status: 400, call: () => owner.post('/tailnet/-/acl/validate', '{"acls": [{"action": "accept", "src": ["nobody"], "dst": ["*:*"]}]}') },
    { id: 'setSplitDns', what: 'a domain set to null (the spec allows null values)', status: 200,
      call: () => owner.call('PUT', '/tailnet/-/dns/split-dns', { 'corp.example.com': ['10.0.0.53'], 'old.example.com': null }),
      then: (r) => expect(r.body).toEqual({ 'corp.example.com': ['10.0.0.53'] }) },
    { id: 'updateSplitDns', what: 'null removes a domain', status: 200, call: () => owner.patch('/tailnet/-/dns/split-dns', { 'corp.example.com': null }), then: (r) => expect(r.body).toEqual({}) },
    { id: 'updateSplitDns', what: 'a string instead of a list', status: 400, call: () => owner.patch('/tailnet/-/dns/split-dns', { 'corp.example.com': '10.0.0.53' }) },
    { id: 'updateTailnetSettings', what: 'devicesKeyDurationDays above the maximum', status: 400, call: () => owner.patch('/tailnet/-/settings', { devicesKeyDurationDays: 181 }) },
    { id: 'updateTailnetSettings', what: 'usersRoleAllowedToJoinExternalTailnets outside the enum', status: 400, call: () => owner.patch('/tailnet/-/settings', { usersRoleAllowedToJoinExternalTailnets: 'owner' }) },
    { id: 'createWebhook', what: 'every subscription of the spec and a providerType', status: 200, call: () => owner.post('/tailnet/-/webhooks', {
      endpointUrl: s.hookUrl, providerType: 'slack',
      subscriptions: ['nodeCreated', 'nodeNeedsApproval', 'nodeApproved', 'nodeKeyExpiringInOneDay', 'nodeKeyExpired', 'nodeDeleted', 'policyUpdate', 'userCreated',
        'userNeedsApproval', 'userSuspended', 'userRestored', 'userDeleted', 'userApproved', 'userRoleUpdated', 'subnetIPForwardingNotEnabled', 'exitNodeIPForwardingNotEnabled'],
    }), then: async (r) => expect((await owner.get(`/webhooks/${r.body.endpointId}`)).body.subscriptions).toHaveLength(16) },
    { id: 'createWebhook', what: 'a subscription outside the enum', status: 400, call: () => owner.post('/tailnet/-/webhooks', { endpointUrl: s.hookUrl, subscriptions: ['nodeExploded'] }) },
    { id: 'getWebhook', what: 'an unknown id', status: 404, call: () => owner.get('/webhooks/w000000000000') },
    { id: 'setLogStreamingConfiguration', what: 'splunk with a user, read back without the token', status: 200,
      call: () => owner.call('PUT', '/tailnet/-/logging/configuration/stream', { logType: 'configuration', destinationType: 'splunk', url: `${s.hookUrl}/splunk`, user: 'ingest', token: 'hec-token' }),
      then: async () => {
        const got = (await owner.get('/tailnet/-/logging/configuration/stream')).body;
        expect(got).toMatchObject({ logType: 'configuration', destinationType: 'splunk', url: `${s.hookUrl}/splunk`, user: 'ingest' });
        expect(got).not.toHaveProperty('token');
      } },
    { id: 'setLogStreamingConfiguration', what: 'network flow logs (not collected)', status: 400,
      call: () => owner.call('PUT', '/tailnet/-/logging/network/stream', { destinationType: 'axiom', url: `${s.hookUrl}/axiom`, token: 't' }) },
    { id: 'setLogStreamingConfiguration', what: 'a destinationType outside the enum', status: 400,
      call: () => owner.call('PUT', '/tailnet/-/logging/configuration/stream', { destinationType: 'syslog', url: `${s.hookUrl}/x`, token: 't' }) },
    { id: 'disableLogStreaming', what: 'stops it, read back', status: 200, call: () => owner.del('/tailnet/-/logging/configuration/stream'),
      then: async () => expect((await owner.get('/tailnet/-/logging/configuration/stream')).status).toBe(404) },
    { id: 'listConfigurationAuditLogs', what: 'start and end', status: 200, call: () => owner.get(`/tailnet/-/logging/configuration?${window()}`),
      then: (r) => expect(r.body.logs.length).toBeGreaterThan(10) },
    { id: 'listConfigurationAuditLogs', what: 'event filter (repeated)', status: 200,
      call: () => owner.get(`/tailnet/-/logging/configuration?${window()}&event=WEBHOOK_ENDPOINT.CREATE&event=WEBHOOK_ENDPOINT.UPDATE.SECRET`),
      then: (r) => {
        const events = r.body.logs.map((l: any) => [l.target.type, l.action, l.target.property].filter(Boolean).join('.'));
        expect(new Set(events)).toEqual(new Set(['WEBHOOK_ENDPOINT.CREATE', 'WEBHOOK_ENDPOINT.UPDATE.SECRET']));
      } },
    { id: 'listConfigurationAuditLogs', what: 'target filter', status: 200, call: () => owner.get(`/tailnet/-/logging/configuration?${window()}&target=${devices[2]!.id}`),
      then: (r) => { expect(r.body.logs.length).toBeGreaterThan(0); for (const l of r.body.logs) expect(l.target.id).toBe(devices[2]!.id); } },
    { id: 'listConfigurationAuditLogs', what: 'actor filter', status: 200, call: async () => {
      const alice = (await owner.get('/tailnet/-/users?role=owner')).body.users[0].id;
      return owner.get(`/tailnet/-/logging/configuration?${window()}&actor=${alice}&actor=u-nobody`);
    }, then: (r) => { expect(r.body.logs.length).toBeGreaterThan(0); for (const l of r.body.logs) expect(l.actor.loginName).toBe('alice@example.com'); } },
    { id: 'listConfigurationAuditLogs', what: 'an actor nobody is', status: 200, call: () => owner.get(`/tailnet/-/logging/configuration?${window()}&actor=u-nobody`),
      then: (r) => expect(r.body.logs).toEqual([]) },
    { id: 'listConfigurationAuditLogs', what: 'an event outside the enum', status: 400, call: () => owner.get(`/tailnet/-/logging/configuration?${window()}&event=NODE.EXPLODE`) },
    { id: 'listConfigurationAuditLogs', what: 'a start that is no time', status: 400, call: () => owner.get('/tailnet/-/logging/configuration?start=yesterday&end=now') },
    // A multi-use device invite: accepted by the partner (twice: the same share), it stays usable and says who accepted.
    { id: 'createDeviceInvites', what: 'multiUse: true', status: 200, call: () => owner.post(`/device/${devices[2]!.id}/device-invites`, [{ multiUse: true }]),
      then: (r) => { expect(r.body[0]).toMatchObject({ multiUse: true, accepted: false }); s.multiInvite = r.body[0].id; s.multiInviteUrl = r.body[0].inviteUrl; } },
    { id: 'createDeviceInvites', what: 'multiUse that is no boolean', status: 400, call: () => owner.post(`/device/${devices[2]!.id}/device-invites`, [{ multiUse: 'yes' }]) },
    { id: 'acceptDeviceInvite', what: 'a multi-use invite', status: 200, call: () => partner.post('/device-invites/-/accept', { invite: s.multiInviteUrl }),
      then: (r) => expect(r.body.device.id).toBe(devices[2]!.id) },
    { id: 'acceptDeviceInvite', what: 'a multi-use invite the caller accepted already', status: 200, call: () => partner.post('/device-invites/-/accept', { invite: s.multiInviteUrl }),
      then: async () => expect((await owner.get('/tailnet/-/users?type=shared')).body.users.find((u: any) => u.loginName === 'pat@partner.com').deviceCount).toBe(2) },
    { id: 'getDeviceInvite', what: 'a multi-use invite once accepted', status: 200, call: () => owner.get(`/device-invites/${s.multiInvite}`),
      then: (r) => {
        expect(r.body).toMatchObject({ multiUse: true, accepted: true, shared: true, acceptedBy: { loginName: 'pat@partner.com' } });
        expect(r.body.acceptances.map((a: any) => [a.loginName, a.shared])).toEqual([['pat@partner.com', true]]);
      } },
    { id: 'listDeviceInvites', what: 'with a multi-use invite', status: 200, call: () => owner.get(`/device/${devices[2]!.id}/device-invites`),
      then: (r) => expect(r.body.find((i: any) => i.id === s.multiInvite)).toMatchObject({ multiUse: true, accepted: true }) },
  ];

  for (const v of variants) {
    it(`${v.id}, ${v.what}: ${v.status}`, async () => {
      const op = byId.get(v.id)!;
      const r = await v.call();
      expect(r.status, `${op.method} ${op.path} (${v.what}): ${r.text.slice(0, 300)}`).toBe(v.status);
      if (r.status < 300) expectValid(op, r);
      else expect(errorBody(r.body), `error body ${r.text.slice(0, 200)}`).toBe(true);
      await v.then?.(r);
    });
  }

  it('docs/api.md\'s table lists every operation of the spec once, offered or not as here', () => {
    const doc = readFileSync(path.join(ROOT, 'docs', 'api.md'), 'utf8');
    const rows = [...doc.matchAll(/^\| [A-Za-z]+ \| `(\w+)` \| `(\w+) ([^`]+)` \| (yes|no: .+) \|$/gm)].map((m) => ({ id: m[1]!, method: m[2]!, path: m[3]!, offered: m[4] === 'yes' }));
    expect(rows.map((r) => r.id).sort()).toEqual(ops.map((o) => o.id).sort());
    for (const r of rows) {
      expect(`${r.method} ${r.path}`, r.id).toBe(`${byId.get(r.id)!.method} ${byId.get(r.id)!.path}`);
      expect(r.offered, r.id).toBe(!(r.id in NOT_OFFERED));
    }
  });

  it('the operations not offered are really absent (404 or 405), so the list above stays true', async () => {
    for (const id of Object.keys(NOT_OFFERED)) {
      const op = byId.get(id)!;
      const p = op.path.replace('{tailnet}', '-').replace(/\{[^}]+\}/g, 'x1');
      const r = await owner.call(op.method, p, op.method === 'GET' || op.method === 'DELETE' ? undefined : {});
      expect([404, 405], `${id}: ${op.method} ${p} answered ${r.status}`).toContain(r.status);
      expect(r.body?.message ?? '').toMatch(/no such API endpoint|not allowed here/);
    }
  });

  /**
   * The row of ../shared/roles.md each operation follows (operations the matrix does not name follow the closest
   * row). Its route's permission (coord/roles.ts, the one role table) must give exactly that row's roles.
   */
  const ROW_OF: Record<string, string> = {
    getPolicyFile: 'read policy file', validateAndTestPolicyFile: 'read policy file', previewRuleMatches: 'read policy file',
    setPolicyFile: 'write policy file',
    listDnsNameservers: 'read network configuration', getDnsPreferences: 'read network configuration', listDnsSearchPaths: 'read network configuration',
    getSplitDns: 'read network configuration', listDeviceRoutes: 'read network configuration',
    setDnsNameservers: 'write network configuration (DNS, MagicDNS, subnet routes, exit nodes)', setDnsPreferences: 'write network configuration (DNS, MagicDNS, subnet routes, exit nodes)',
    setDnsSearchPaths: 'write network configuration (DNS, MagicDNS, subnet routes, exit nodes)', setSplitDns: 'write network configuration (DNS, MagicDNS, subnet routes, exit nodes)',
    updateSplitDns: 'write network configuration (DNS, MagicDNS, subnet routes, exit nodes)', setDeviceRoutes: 'write network configuration (DNS, MagicDNS, subnet routes, exit nodes)',
    getTailnetSettings: 'read feature configuration', updateTailnetSettings: 'write feature configuration',
    createUserInvites: 'configure user provisioning', deleteUserInvite: 'configure user provisioning', resendUserInvite: 'configure user provisioning',
    listTailnetDevices: 'read machines', getDevice: 'read machines', getDevicePostureAttributes: 'read machines',
    authorizeDevice: 'write machines (approve, rename, remove)', setDeviceName: 'write machines (approve, rename, remove)', expireDeviceKey: 'write machines (approve, rename, remove)',
    updateDeviceKey: 'write machines (approve, rename, remove)', deleteDevice: 'write machines (approve, rename, remove)', setDeviceIp: 'write machines (approve, rename, remove)',
    setCustomDevicePostureAttributes: 'write machines (approve, rename, remove)', deleteCustomDevicePostureAttributes: 'write machines (approve, rename, remove)',
    listUsers: 'read users and roles', getUser: 'read users and roles', listUserInvites: 'read users and roles', getUserInvite: 'read users and roles',
    updateUserRole: 'write users and roles', approveUser: 'write users and roles', suspendUser: 'write users and roles', restoreUser: 'write users and roles', deleteUser: 'write users and roles',
    createAuthKey: 'generate auth keys', listTailnetKeys: 'generate auth keys', getKey: 'generate auth keys', deleteKey: 'generate auth keys',
    createDeviceInvites: 'share a device', listDeviceInvites: 'share a device', getDeviceInvite: 'share a device', deleteDeviceInvite: 'share a device', resendDeviceInvite: 'share a device',
    acceptDeviceInvite: 'accept a shared device',
    // Who may call it at all; whether the tags are allowed is the row "use any tag without owning it" (roles.test.ts).
    setDeviceTags: 'generate auth keys',
    listConfigurationAuditLogs: 'read configuration audit log', getLogStreamingConfiguration: 'read configuration audit log', getLogStreamingStatus: 'read configuration audit log',
    createWebhook: 'write webhooks', listWebhooks: 'write webhooks', getWebhook: 'write webhooks', updateWebhook: 'write webhooks', deleteWebhook: 'write webhooks',
    testWebhook: 'write webhooks', rotateWebhookSecret: 'write webhooks', setLogStreamingConfiguration: 'write webhooks', disableLogStreaming: 'write webhooks',
    getContacts: 'read payment plan', updateContact: 'write billing information',
  };
  const ROLES = ['owner', 'admin', 'network-admin', 'it-admin', 'billing-admin', 'auditor', 'member'] as const;

  // Last: allowed roles' calls below may change the tailnet (unknown ids are 404, but e.g. PATCH settings {} is a no-op 200).
  it.skipIf(!existsSync(path.resolve(ROOT, '..', 'shared', 'roles.md')))('every operation checks the caller\'s role as its roles.md row says: 403 for each role the row refuses', async () => {
    const md = readFileSync(path.resolve(ROOT, '..', 'shared', 'roles.md'), 'utf8');
    const rowRoles = new Map(md.split('\n').filter((l) => l.startsWith('| ') && l.includes('✅')).map((l) => {
      const cells = l.split('|').slice(1, -1).map((c) => c.trim());
      return [cells[0]!, ROLES.filter((_, i) => cells[i + 1] === '✅') as string[]];
    }));
    expect((await owner.patch('/tailnet/-/settings', { usersApprovalOn: false })).status).toBe(200); // the calls above turned it on
    const tokens: Record<string, string> = { owner: ownerKey };
    for (const role of ROLES.slice(1)) tokens[role] = (await addUser(coord.url, ownerKey, 'example.com', `${role}-probe@example.com`, role)).token;
    const wrong: string[] = [];
    const offered = ops.filter((o) => !(o.id in NOT_OFFERED));
    expect(offered.filter((o) => !(o.id in ROW_OF)).map((o) => o.id), 'operations without a row').toEqual([]);
    for (const op of offered) {
      const p = op.path.replace('{tailnet}', '-').replace('{logType}', 'configuration').replace('{contactType}', 'support')
        .replace('{attributeKey}', 'custom:probe').replace(/\{[^}]+\}/g, 'x0000000000000');
      const r = ROUTES.find((rt) => rt.method === op.method && matchPath(rt.pattern, `/api/v2${p}`));
      if (!r) { wrong.push(`${op.id}: no route`); continue; }
      const row = rowRoles.get(ROW_OF[op.id]!);
      if (!row) { wrong.push(`${op.id}: no row "${ROW_OF[op.id]}" in roles.md`); continue; }
      if ([...MATRIX[r.perm]].sort().join() !== [...row].sort().join()) wrong.push(`${op.id}: ${r.perm} gives ${MATRIX[r.perm].join(',')}, its row ${row.join(',')}`);
      for (const role of ROLES) {
        const res = await api(coord.url, tokens[role]).call(op.method, p, op.method === 'GET' || op.method === 'DELETE' ? undefined : {});
        const refused = res.status === 403 && res.body?.message === FORBIDDEN_MESSAGE;
        if (refused === row.includes(role)) wrong.push(`${op.id} as ${role}: ${res.status} ${res.text.slice(0, 100)}`);
      }
    }
    expect(wrong).toEqual([]);
  });
});
