// The class test of issue 12: random, hostile JSON (wrong types, huge numbers, prototype keys, deep
// nesting, control characters) at every admin and machine endpoint of a real coord on loopback. The
// promise (docs/api.md): bad input is a 4xx with a reason, never a 500, and the server stays up.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateMachineKey, signedHeaders } from '../../agent/control/index.js';
import { MACHINE_PATHS } from '../../wire/protocol.js';
import { TestDevice } from './devices.js';
import { addUser, api, Coord } from './harness.js';
import { ROUTES } from '../../coord/api/admin/router.js';

/** Every route of the admin API's table, and the two public ones. */
function adminRoutes(): { method: string; path: string }[] {
  return [...ROUTES.map((r) => ({ method: r.method, path: r.path })), { method: 'POST', path: '/login' }, { method: 'POST', path: '/user-invites/-/accept' }];
}

// A JSON document as a tree, serialized by hand so that keys like "__proto__" stay own keys and
// numbers can be written the way no JSON.stringify writes them (1e400, 300 digits).
type J = { k: 'obj'; e: [string, J][] } | { k: 'arr'; a: J[] } | { k: 'raw'; text: string };

const FIELDS = [
  'role', 'email', 'password', 'code', 'tailnet', 'endpointUrl', 'subscriptions', 'providerType', 'capabilities',
  'devices', 'create', 'reusable', 'ephemeral', 'preauthorized', 'tags', 'expirySeconds', 'description', 'routes',
  'name', 'authorized', 'keyExpiryDisabled', 'dns', 'searchPaths', 'magicDNS', 'label', 'plan', 'contact',
  'devicesApprovalOn', 'usersApprovalOn', 'devicesAutoUpdatesOn', 'devicesKeyDurationDays', 'networkFlowLoggingOn',
  'regionalRoutingOn', 'postureIdentityCollectionOn', 'displayName', 'nodeKey', 'hostname', 'authKey', 'os', 'version',
  'endpoints', 'advertisedRoutes', 'acls', 'grants', 'groups', 'hosts', 'tests', 'tagOwners', 'src', 'dst', 'accept',
];
const PROTO_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'valueOf', 'hasOwnProperty', 'isPrototypeOf', 'toJSON'];

const nastyString = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.constantFrom('', ' ', '\u0000', '\u001b[2J\u001b[31mred', '\r\n\r\n', '\u202e', '%00', '../../etc/passwd', 'tag:', 'group:x',
    'autogroup:admin', '*', '999.999.999.999/99', '::/0', '0.0.0.0/0', 'http://127.0.0.1:1/', 'owner', 'admin', 'member',
    'x'.repeat(70_000), 'é'.repeat(3000), '\ud800', 'null', 'true', '{}', '[]'),
  fc.constantFrom(...PROTO_KEYS),
);
const rawNumber = fc.oneof(
  fc.integer().map(String),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => JSON.stringify(d)),
  fc.constantFrom('1e400', '-1e400', '1' + '0'.repeat(300), '-0', '0.0000000000000000000001', '9007199254740993', '1e-400', '-1', '0', '7776001', '4294967296'),
);
const leaf: fc.Arbitrary<J> = fc.oneof(
  nastyString.map((s) => ({ k: 'raw', text: JSON.stringify(s) }) as J),
  rawNumber.map((text) => ({ k: 'raw', text }) as J),
  fc.constantFrom<J>({ k: 'raw', text: 'true' }, { k: 'raw', text: 'false' }, { k: 'raw', text: 'null' }),
);
const key = fc.oneof(fc.constantFrom(...FIELDS), fc.constantFrom(...PROTO_KEYS), fc.string({ maxLength: 8 }));
const tree: fc.Arbitrary<J> = fc.letrec<{ j: J }>((tie) => ({
  j: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leaf,
    fc.array(tie('j'), { maxLength: 4 }).map((a) => ({ k: 'arr', a }) as J),
    fc.array(fc.tuple(key, tie('j')), { maxLength: 5 }).map((e) => ({ k: 'obj', e }) as J),
  ),
})).j;

function text(j: J): string {
  if (j.k === 'raw') return j.text;
  if (j.k === 'arr') return `[${j.a.map(text).join(',')}]`;
  return `{${j.e.map(([k, v]) => `${JSON.stringify(k)}:${text(v)}`).join(',')}}`;
}

/** Bodies every route gets, besides the random ones: deep nesting and other known troublemakers. */
const FIXED = [
  '['.repeat(200_000), '{"a":'.repeat(50_000), `${'['.repeat(5000)}${']'.repeat(5000)}`, `{"acls":${'['.repeat(3000)}1${']'.repeat(3000)}}`,
  '', 'null', '{', '\u0000', '{"__proto__": {"role": "owner"}}', '{"constructor": {"prototype": {"x": 1}}}', '"x"', '1e400',
];

/** A body: mostly an object of the API's own field names with hostile values; sometimes anything. */
const body: fc.Arbitrary<string> = fc.oneof(
  { weight: 5, arbitrary: fc.array(fc.tuple(key, tree), { minLength: 1, maxLength: 6 }).map((e) => text({ k: 'obj', e })) },
  { weight: 2, arbitrary: tree.map(text) },
  { weight: 1, arbitrary: fc.constantFrom(...FIXED) },
);

/** Random bodies per route (more: MESHWARD_FUZZ_RUNS=200 npx vitest run test/coord/fuzz.test.ts). */
const RUNS = Number(process.env.MESHWARD_FUZZ_RUNS ?? 25);

describe('hostile JSON at every endpoint', () => {
  const coord = new Coord();
  let ownerKey = '';
  const ids: Record<string, string[]> = { device: [], user: [], key: [], webhook: [], invite: [] };
  const devices: TestDevice[] = [];

  beforeAll(async () => {
    await coord.start(['--allow-private-webhooks']);
    ownerKey = coord.createTailnet('fuzz.example', 'owner@fuzz.example');
    const owner = api(coord.url, ownerKey);
    const member = await addUser(coord.url, ownerKey, 'fuzz.example', 'member@fuzz.example', 'member');
    ids.user!.push(member.id);
    const key = (await owner.post('/tailnet/-/keys', { capabilities: { devices: { create: { reusable: true } } } })).body;
    ids.key!.push(key.id);
    for (const name of ['one', 'two']) {
      const d = new TestDevice(coord.url);
      devices.push(d);
      await d.register(key.key, name);
      ids.device!.push(d.id);
    }
    const hook = await owner.post('/tailnet/-/webhooks', { endpointUrl: 'http://127.0.0.1:9/', subscriptions: [] });
    ids.webhook!.push(hook.body.endpointId);
    const inv = await owner.post(`/device/${ids.device![0]}/device-invites`, [{}]);
    if (Array.isArray(inv.body)) ids.invite!.push(inv.body[0].id);
  }, 60_000);
  afterAll(async () => {
    for (const d of devices) d.close();
    await coord.cleanup();
  });

  const fill = (path: string, method: string, pick: number): string =>
    path
      .replace(':t', pick % 3 === 2 ? 'fuzz.example' : '-')
      .replace(':id', () => {
        // DELETE gets ids that name nothing: the test must keep its own key and devices.
        const pool = method === 'DELETE' ? [] : path.startsWith('/device/') ? ids.device! : path.startsWith('/users/') ? ids.user! : path.includes('/keys/') ? ids.key! : path.startsWith('/webhooks/') ? ids.webhook! : ids.invite!;
        const fake = ['nope', '%00', '..%2f..', 'x'.repeat(300), '__proto__', 'constructor'][pick % 6]!;
        return pool.length > 0 && pick % 2 === 0 ? pool[pick % pool.length]! : fake;
      })
      // Other parameters (an attribute key, a contact type): a good value or a hostile one.
      .replace(/:(key|type)\b/g, (_, p: string) => (pick % 2 === 0 ? (p === 'key' ? 'custom:fuzz' : 'security') : ['nope', '%00', 'x'.repeat(300), '__proto__'][pick % 4]!));

  it('admin API: every route answers hostile bodies with a 4xx, never a 500, and stays up', async () => {
    const routes = adminRoutes();
    expect(routes.length).toBeGreaterThan(40);
    const fives: string[] = [];
    for (const r of routes) {
      await fc.assert(
        fc.asyncProperty(body, fc.nat(), async (b, pick) => {
          const path = fill(r.path, r.method, pick);
          const res = await fetch(`${coord.url}/api/v2${path}`, {
            method: r.method,
            headers: { authorization: `Bearer ${ownerKey}`, 'content-type': 'application/json' },
            body: r.method === 'GET' ? undefined : b,
          });
          const answer = await res.text();
          if (res.status >= 500) fives.push(`${r.method} ${path} ${b.slice(0, 200)} → ${res.status} ${answer.slice(0, 200)}`);
        }),
        { numRuns: r.method === 'GET' ? 3 : RUNS, examples: r.method === 'GET' ? [] : FIXED.map((f, i) => [f, i] as [string, number]) },
      );
    }
    expect(fives, `${fives.length} answers of 500 or more:\n${fives.slice(0, 40).join('\n')}\ncoord's log:\n${coord.stdout.slice(-4000)}`).toEqual([]);
    expect((await fetch(`${coord.url}/healthz`)).status).toBe(200);
  }, 600_000);

  it('PATCH /settings answers prototype keys with 400', async () => {
    const owner = api(coord.url, ownerKey);
    for (const k of ['__proto__', 'hasOwnProperty', 'valueOf']) expect((await owner.patch('/tailnet/-/settings', JSON.parse(`{"${k}": 1}`))).status).toBe(400);
  });

  it('machine API: signed and unsigned hostile bodies get a 4xx, never a 500, and the server stays up', async () => {
    const fives: string[] = [];
    const registered = devices[0]!.client.key;
    const stranger = generateMachineKey();
    await fc.assert(
      fc.asyncProperty(body, fc.nat(), async (b, pick) => {
        const raw = Buffer.from(b);
        const key = pick % 2 === 0 ? registered : stranger;
        // The registered device must stay registered: only the stranger logs out.
        const paths = [MACHINE_PATHS.register, MACHINE_PATHS.update, ...(key === stranger ? [MACHINE_PATHS.logout] : [])];
        for (const path of paths) {
          for (const signed of [true, false]) {
            const headers = { 'content-type': 'application/json', ...(signed ? signedHeaders(key, 'POST', path, raw) : {}) };
            const res = await fetch(coord.url + path, { method: 'POST', headers, body: raw });
            const answer = await res.text();
            if (res.status >= 500) fives.push(`${signed ? 'signed' : 'unsigned'} POST ${path} ${b.slice(0, 200)} → ${res.status} ${answer.slice(0, 200)}`);
          }
        }
      }),
      { numRuns: RUNS * 6, examples: FIXED.map((f, i) => [f, i] as [string, number]) },
    );
    const map = await fetch(coord.url + MACHINE_PATHS.map, { headers: signedHeaders(stranger, 'GET', MACHINE_PATHS.map, Buffer.alloc(0)) });
    expect(map.status).toBe(401);
    expect(fives, `${fives.length} answers of 500 or more:\n${fives.slice(0, 40).join('\n')}\ncoord's log:\n${coord.stdout.slice(-4000)}`).toEqual([]);
    expect((await fetch(`${coord.url}/healthz`)).status).toBe(200);
  }, 600_000);
});
