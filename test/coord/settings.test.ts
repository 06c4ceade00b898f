// Tailnet settings that change what people may do (usersRoleAllowedToJoinExternalTailnets), and the
// audit log's origin: a change through the API is CONFIG_API, through the console (a session) ADMIN_CONSOLE.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addUser, api, Coord } from './harness.js';
import { TestDevice } from './devices.js';

describe('tailnet settings', () => {
  const coord = new Coord();
  let alice: ReturnType<typeof api>, boss: ReturnType<typeof api>;
  let adminSession: ReturnType<typeof api>;
  const devices: TestDevice[] = [];
  let itAdmin: ReturnType<typeof api>;

  beforeAll(async () => {
    await coord.start();
    alice = api(coord.url, coord.createTailnet('a.example', 'alice@a.example'));
    const bKey = coord.createTailnet('b.example', 'boss@b.example');
    boss = api(coord.url, bKey);
    itAdmin = api(coord.url, (await addUser(coord.url, bKey, 'b.example', 'it@b.example', 'it-admin')).token);
    const admin = await addUser(coord.url, bKey, 'b.example', 'admin@b.example', 'admin');
    adminSession = api(coord.url, admin.token);
    const key = await alice.post('/tailnet/-/keys', { capabilities: { devices: { create: { reusable: true, preauthorized: true } } } });
    const d = new TestDevice(coord.url);
    devices.push(d);
    await d.register(key.body.key, 'git');
  });
  afterAll(async () => {
    for (const d of devices) d.close();
    await coord.cleanup();
  });

  const invite = async () => (await alice.post(`/device/${devices[0]!.id}/device-invites`, [{}])).body[0].inviteUrl as string;

  it('answers every setting of the spec, and refuses bad values and features this server lacks', async () => {
    const s = await boss.get('/tailnet/-/settings');
    expect(s.body).toMatchObject({
      usersRoleAllowedToJoinExternalTailnets: 'member', networkFlowLoggingOn: false, regionalRoutingOn: false, postureIdentityCollectionOn: false,
    });
    const bad = await boss.patch('/tailnet/-/settings', { usersRoleAllowedToJoinExternalTailnets: 'everyone' });
    expect(bad.status).toBe(400);
    expect(bad.body.message).toContain('"none", "admin" or "member"');
    const lacking = await boss.patch('/tailnet/-/settings', { networkFlowLoggingOn: true });
    expect(lacking.status).toBe(400);
    expect(lacking.body.message).toContain('does not offer');
  });

  it('usersRoleAllowedToJoinExternalTailnets decides who may accept devices shared from other tailnets', async () => {
    expect((await boss.patch('/tailnet/-/settings', { usersRoleAllowedToJoinExternalTailnets: 'none' })).body.usersRoleAllowedToJoinExternalTailnets).toBe('none');
    const refused = await boss.post('/device-invites/-/accept', { invite: await invite() });
    expect(refused.status).toBe(403);
    expect(refused.body.message).toContain('usersRoleAllowedToJoinExternalTailnets');

    expect((await boss.patch('/tailnet/-/settings', { usersRoleAllowedToJoinExternalTailnets: 'admin' })).status).toBe(200);
    const url = await invite();
    expect((await itAdmin.post('/device-invites/-/accept', { invite: url })).status).toBe(403);
    expect((await adminSession.post('/device-invites/-/accept', { invite: url })).status).toBe(200);

    expect((await boss.patch('/tailnet/-/settings', { usersRoleAllowedToJoinExternalTailnets: 'member' })).status).toBe(200);
    expect((await itAdmin.post('/device-invites/-/accept', { invite: await invite() })).status).toBe(200);
  });

  it('the audit log says whether a change came through the API or the console', async () => {
    expect((await boss.post('/tailnet/-/dns/searchpaths', { searchPaths: ['api.example'] })).status).toBe(200);
    expect((await adminSession.post('/tailnet/-/dns/searchpaths', { searchPaths: ['console.example'] })).status).toBe(200);
    const logs = (await boss.get('/tailnet/-/logging/configuration')).body.logs as any[];
    const by = (path: string) => logs.find((l) => JSON.stringify(l.new) === JSON.stringify([path]));
    expect(by('api.example')).toMatchObject({ origin: 'CONFIG_API', actor: { loginName: 'boss@b.example' }, target: { type: 'TAILNET', property: 'DNS_CONFIG' } });
    expect(by('console.example')).toMatchObject({ origin: 'ADMIN_CONSOLE', actor: { loginName: 'admin@b.example' } });
  });
});
