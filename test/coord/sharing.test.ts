// Device sharing over the real server: invites and their refusals, accept, what each network sees
// (device lists, users?type=shared, netmaps: peers, quarantine, sharedPeerRules, carved filters),
// audit entries on both sides, and revocation from either side.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Netmap } from '../../agent/control/index.js';
import { sourcesContain } from '../../coord/sharing.js';
import { addUser, api, Coord } from './harness.js';
import { sendMarker, TestDevice } from './devices.js';

const POLICY_A = `{
  "tagOwners": {"tag:git": ["alice@a.example"]},
  "acls": [
    {"action": "accept", "src": ["alice@a.example"], "dst": ["*:*"]},
    {"action": "accept", "src": ["autogroup:shared"], "dst": ["tag:git:22,80"]},
  ],
}`;
// B lets everyone reach everything (which would include the shared device's address).
const POLICY_B = `{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}`;
const POLICY_B_22 = `{"acls": [
  {"action": "accept", "src": ["*"], "dst": ["100.64.0.0/10:22", "fd7a:115c:a1e0::/48:22"]},
]}`;

const GIT_ROUTE = '10.77.0.0/24';

const ownKeyBody = { capabilities: { devices: { create: { reusable: true, preauthorized: true } } } };

describe('device sharing', () => {
  const coord = new Coord();
  let alice: ReturnType<typeof api>, boss: ReturnType<typeof api>, bob: ReturnType<typeof api>;
  const keys: Record<string, string> = {};
  const devices: TestDevice[] = [];
  let git: TestDevice, laptop: TestDevice, bobdev: TestDevice, caroldev: TestDevice;
  let gitAddrs: string[] = [];

  const dev = async (key: string, host: string, tags?: string[]) => {
    const d = new TestDevice(coord.url);
    await d.register(key, host, tags);
    d.connect();
    devices.push(d);
    return d;
  };
  const invite = async (label = 'for bob') => {
    const r = await alice.post(`/device/${git.id}/device-invites`, [{ label }]);
    expect(r.status, r.text).toBe(200);
    return r.body[0] as { id: string; inviteUrl: string };
  };
  const peerNamed = (n: Netmap, host: string) => n.peers.find((p) => p.name.startsWith(host + '.'));

  beforeAll(async () => {
    await coord.start();
    const aKey = coord.createTailnet('a.example', 'alice@a.example');
    const bKey = coord.createTailnet('b.example', 'boss@b.example');
    alice = api(coord.url, aKey);
    boss = api(coord.url, bKey);
    expect((await alice.post('/tailnet/-/acl', POLICY_A)).status).toBe(200);
    expect((await boss.post('/tailnet/-/acl', POLICY_B)).status).toBe(200);
    const people = [
      [aKey, 'a.example', 'member@a.example', 'member'], [aKey, 'a.example', 'netadmin@a.example', 'network-admin'],
      [aKey, 'a.example', 'itadmin@a.example', 'it-admin'], [bKey, 'b.example', 'bob@b.example', 'admin'],
      [bKey, 'b.example', 'carol@b.example', 'member'], [bKey, 'b.example', 'audit@b.example', 'auditor'],
      [bKey, 'b.example', 'netadmin@b.example', 'network-admin'], [bKey, 'b.example', 'itadmin@b.example', 'it-admin'],
    ] as const;
    for (const [key, net, email, role] of people) keys[email] = (await addUser(coord.url, key, net, email, role)).token;
    bob = api(coord.url, keys['bob@b.example']);
    const aAuth = (await alice.post('/tailnet/-/keys', ownKeyBody)).body.key;
    const bobAuth = (await bob.post('/tailnet/-/keys', ownKeyBody)).body.key;
    const carolAuth = (await boss.post('/tailnet/-/keys', { ...ownKeyBody, user: 'carol@b.example' })).body.key;
    git = await dev(aAuth, 'git', ['tag:git']);
    laptop = await dev(aAuth, 'laptop');
    bobdev = await dev(bobAuth, 'bobdev');
    caroldev = await dev(carolAuth, 'caroldev');
    gitAddrs = (await git.waitFor(() => true)).self.addresses.map((a) => a.split('/')[0]!);
    // git routes a subnet in A; a share must never carry it to B
    await git.client.update({ advertisedRoutes: [GIT_ROUTE] });
    expect((await alice.post(`/device/${git.id}/routes`, { routes: [GIT_ROUTE] })).body.enabledRoutes).toEqual([GIT_ROUTE]);
    await laptop.waitFor((n) => !!peerNamed(n, 'git')?.allowedIPs.includes(GIT_ROUTE));
    await caroldev.waitFor((n) => n.peers.length === 1);
  });
  afterAll(async () => {
    for (const d of devices) d.close();
    await coord.cleanup();
  });

  it('refuses invites to roles that may not share, and for devices of another network', async () => {
    for (const who of ['member@a.example', 'netadmin@a.example']) {
      const r = await api(coord.url, keys[who]).post(`/device/${git.id}/device-invites`, [{ label: 'x' }]);
      expect(r.status, who).toBe(403);
      expect(r.body.message).toMatch(/permission/);
    }
    expect((await api(coord.url, keys['netadmin@a.example']).get(`/device/${git.id}/device-invites`)).status).toBe(403);
    // another network's device is unknown here
    expect((await boss.post(`/device/${git.id}/device-invites`, [{}])).status).toBe(404);
    expect((await alice.post(`/device/${git.id}/device-invites`, [{ multiUse: 'yes' }])).status).toBe(400);
    expect((await alice.post(`/device/${git.id}/device-invites`, [{ allowExitNode: true }])).status).toBe(400);
    expect((await alice.post(`/device/${git.id}/device-invites`, [{ label: 5 }])).status).toBe(400);
    // an IT admin may share
    const r = await api(coord.url, keys['itadmin@a.example']).post(`/device/${git.id}/device-invites`, { label: 'by it' });
    expect(r.status, r.text).toBe(200);
    expect(r.body[0].inviteUrl).toMatch(/\/admin\/invite\/mwkey-invite-/);
    expect((await alice.del(`/device-invites/${r.body[0].id}`)).status).toBe(200);
  });

  it('refuses accepts by roles that may not accept, of unknown codes, and within the same network', async () => {
    const inv = await invite('refusals');
    for (const who of ['carol@b.example', 'audit@b.example', 'netadmin@b.example']) {
      const r = await api(coord.url, keys[who]).post('/device-invites/-/accept', { invite: inv.inviteUrl });
      expect(r.status, who).toBe(403);
    }
    const wrong = inv.inviteUrl.replace(/.{6}$/, 'AAAAAA');
    expect((await bob.post('/device-invites/-/accept', { invite: wrong })).status).toBe(404);
    expect((await bob.post('/device-invites/-/accept', { invite: 'mwkey-invite-dNOSUCHINVITE1-AAAAAAAAAAAAAAAAAAAAAAAA' })).status).toBe(404);
    expect((await bob.post('/device-invites/-/accept', { invite: 'garbage' })).status).toBe(404);
    expect((await bob.post('/device-invites/-/accept', {})).status).toBe(400);
    const own = await alice.post('/device-invites/-/accept', { invite: inv.inviteUrl });
    expect(own.status).toBe(400);
    expect(own.body.message).toMatch(/own network/);
    // still unused: a right holder may accept it later; the sharer withdraws it
    const list = await alice.get(`/device/${git.id}/device-invites`);
    expect(list.body.find((i: any) => i.id === inv.id)).toMatchObject({ label: 'refusals', accepted: false });
    expect(list.body.every((i: any) => i.inviteUrl === undefined)).toBe(true); // the code is shown once
    expect((await alice.del(`/device-invites/${inv.id}`)).status).toBe(200);
    expect((await bob.post('/device-invites/-/accept', { invite: inv.inviteUrl })).status).toBe(404);
  });

  it('rate-limits wrong codes per caller', async () => {
    const it2 = api(coord.url, keys['itadmin@b.example']);
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) statuses.push((await it2.post('/device-invites/-/accept', { invite: `mwkey-invite-dXXXXXXXXXXX${i}-AAAAAAAAAAAAAAAAAAAAAAAA` })).status);
    expect(statuses.slice(0, 5)).toEqual([404, 404, 404, 404, 404]);
    expect(statuses.slice(5)).toEqual([429, 429]);
  });

  it('shares a device: bob sees it quarantined, owned by the sharer, details hidden; carol does not', async () => {
    const inv = await invite('for bob');
    const carolFrom = caroldev.netmaps.length;
    const acc = await bob.post('/device-invites/-/accept', { invite: inv.inviteUrl });
    expect(acc.status, acc.text).toBe(200);
    expect(acc.body.sharer.loginName).toBe('alice@a.example');
    expect(acc.body.acceptedBy.loginName).toBe('bob@b.example');
    expect(acc.body.device).toMatchObject({ isExternal: true, tags: [], user: 'alice@a.example', name: 'git.a-example.meshward.internal' });

    // a second accept of the same invite is refused
    expect((await bob.post('/device-invites/-/accept', { invite: inv.inviteUrl })).status).toBe(409);
    expect((await boss.post('/device-invites/-/accept', { invite: inv.inviteUrl })).status).toBe(409);

    const n = await bobdev.waitFor((m) => !!peerNamed(m, 'git'));
    const p = peerNamed(n, 'git')!;
    expect(p).toMatchObject({ name: 'git.a-example.meshward.internal', shared: true, quarantined: true, tags: [], user: { loginName: 'alice@a.example' } });
    expect(p.addresses.map((a) => a.split('/')[0])).toEqual(gitAddrs);
    expect(p.allowedIPs).toEqual(p.addresses);
    // its subnet route stays in A: no routes, primaries or exit node on the recipient's side
    expect([p.routes, p.primaryRoutes, p.exitNodeOption, p.exitRoutes]).toEqual([undefined, undefined, undefined, undefined]);
    expect(peerNamed(laptop.last!, 'git')!.primaryRoutes).toEqual([GIT_ROUTE]);
    // B's policy allows bob's device everything: its sharedPeerRules name its own addresses only
    const own = n.self.addresses.map((a) => a.split('/')[0]!);
    expect(n.sharedPeerRules!.length).toBeGreaterThan(0);
    for (const r of n.sharedPeerRules!) expect(r.SrcIPs.every((s) => own.includes(s))).toBe(true);
    expect(n.sharedPeerRules!.flatMap((r) => r.DstPorts!.map((d) => d.IP)).sort()).toEqual([...gitAddrs].sort());

    // the shared device's addresses are in no source of B's rules, though B says "*"
    for (const d of [bobdev, caroldev]) {
      const m = await d.waitFor((x) => x.packetFilter.length > 0 && x.packetFilter.every((r) => !gitAddrs.some((a) => sourcesContain(r.SrcIPs, a))));
      expect(m.packetFilter.some((r) => sourcesContain(r.SrcIPs, own[0]!))).toBe(true); // the rest is still there
    }
    // carol sees nothing of it: not before B's next change (a marker) reaches her device either
    await sendMarker(boss.post, [caroldev]);
    const carolGot = caroldev.since(carolFrom);
    expect(carolGot.length).toBeGreaterThan(0);
    expect(carolGot.filter((m) => !!peerNamed(m, 'git') || m.sharedPeerRules !== undefined)).toEqual([]);

    // git (in A) has bob's device as a peer, not quarantined, and lets it in on 22 and 80 only
    const g = await git.waitFor((m) => !!peerNamed(m, 'bobdev'));
    expect(peerNamed(g, 'bobdev')).toMatchObject({ name: 'bobdev.b-example.meshward.internal', shared: false, quarantined: false, user: { loginName: 'bob@b.example' } });
    expect(peerNamed(g, 'caroldev')).toBeUndefined();
    const fromBob = g.packetFilter.filter((r) => sourcesContain(r.SrcIPs, own[0]!));
    expect(fromBob.flatMap((r) => r.DstPorts!.map((d) => `${d.Ports.First}-${d.Ports.Last}`)).sort()).toEqual(['22-22', '22-22', '80-80', '80-80']);
    // alice's laptop is untouched by the share
    expect(peerNamed(laptop.last!, 'bobdev')).toBeUndefined();

    // lists
    const invites = await alice.get(`/device/${git.id}/device-invites`);
    expect(invites.body.find((i: any) => i.id === inv.id)).toMatchObject({ label: 'for bob', accepted: true, acceptedBy: { loginName: 'bob@b.example' } });
    const shared = await alice.get('/tailnet/-/users?type=shared');
    expect(shared.body.users.map((u: any) => [u.loginName, u.type, u.deviceCount])).toEqual([['bob@b.example', 'shared', 1]]);
    expect((await boss.get('/tailnet/-/users?type=shared')).body.users).toEqual([]);
    const bDevices = await boss.get('/tailnet/-/devices');
    const ext = bDevices.body.devices.find((d: any) => d.id === git.id);
    expect(ext).toMatchObject({ isExternal: true, user: 'alice@a.example', tags: [], advertisedRoutes: [], enabledRoutes: [], name: 'git.a-example.meshward.internal' });
    expect(bDevices.body.devices.filter((d: any) => d.isExternal)).toHaveLength(1);
    expect((await alice.get('/tailnet/-/devices')).body.devices.every((d: any) => d.isExternal === false)).toBe(true);

    // audit entries on both sides
    const aLog = (await alice.get('/tailnet/-/logging/configuration')).body.logs;
    const bLog = (await boss.get('/tailnet/-/logging/configuration')).body.logs;
    expect(aLog.some((e: any) => e.target.type === 'INVITE' && e.target.property === 'NODE_SHARE' && e.action === 'CREATE' && e.new.label === 'for bob')).toBe(true);
    expect(aLog.some((e: any) => e.target.type === 'SHARE' && e.action === 'CREATE' && e.actor.loginName === 'bob@b.example')).toBe(true);
    expect(bLog.some((e: any) => e.target.type === 'SHARE' && e.action === 'CREATE' && e.new.recipient === 'bob@b.example')).toBe(true);
  });

  it("follows the recipient network's policy: bob's device gets the shared device only where B allows it", async () => {
    expect((await boss.post('/tailnet/-/acl', POLICY_B_22)).status).toBe(200);
    const n = await bobdev.waitFor((m) => (m.sharedPeerRules ?? []).length > 0 && m.sharedPeerRules!.every((r) => r.DstPorts!.every((d) => d.Ports.First === 22 && d.Ports.Last === 22)));
    expect(peerNamed(n, 'git')).toBeDefined();
    expect((await boss.post('/tailnet/-/acl', `{"acls": [{"action": "accept", "src": ["*"], "dst": ["autogroup:member:*"]}]}`)).status).toBe(200);
    const m = await bobdev.waitFor((x) => !peerNamed(x, 'git'));
    expect(m.sharedPeerRules).toEqual([]);
    expect((await boss.post('/tailnet/-/acl', POLICY_B)).status).toBe(200);
    await bobdev.waitFor((x) => !!peerNamed(x, 'git'));
  });

  it('revokes from the sharer side: both netmaps drop the other; re-sharing needs a new invite', async () => {
    const inv = (await alice.get(`/device/${git.id}/device-invites`)).body.find((i: any) => i.accepted);
    expect((await alice.del(`/device-invites/${inv.id}`)).status).toBe(200);
    await bobdev.waitFor((m) => !peerNamed(m, 'git'), 15_000);
    await git.waitFor((m) => !peerNamed(m, 'bobdev'), 15_000);
    expect((await boss.get('/tailnet/-/devices')).body.devices.some((d: any) => d.isExternal)).toBe(false);
    expect((await alice.get('/tailnet/-/users?type=shared')).body.users).toEqual([]);
    const bLog = (await boss.get('/tailnet/-/logging/configuration')).body.logs;
    expect(bLog.some((e: any) => e.target.type === 'SHARE' && e.action === 'DELETE' && e.actor.loginName === 'alice@a.example')).toBe(true);
  });

  it('revokes from the recipient side by removing the device; the sharer keeps its device', async () => {
    const inv = await invite('again');
    expect((await bob.post('/device-invites/-/accept', { invite: inv.inviteUrl })).status).toBe(200);
    await bobdev.waitFor((m) => !!peerNamed(m, 'git'));
    await git.waitFor((m) => !!peerNamed(m, 'bobdev'));
    // carol's network role cannot remove it; B's admin can
    expect((await api(coord.url, keys['carol@b.example']).del(`/device/${git.id}`)).status).toBe(403);
    expect((await bob.del(`/device/${git.id}`)).status).toBe(200);
    await bobdev.waitFor((m) => !peerNamed(m, 'git'), 15_000);
    await git.waitFor((m) => !peerNamed(m, 'bobdev'), 15_000);
    expect((await alice.get(`/device/${git.id}`)).status).toBe(200);
    const aLog = (await alice.get('/tailnet/-/logging/configuration')).body.logs;
    expect(aLog.some((e: any) => e.target.type === 'SHARE' && e.action === 'DELETE' && e.actor.loginName === 'bob@b.example')).toBe(true);
    // the used invite stays used
    expect((await bob.post('/device-invites/-/accept', { invite: inv.inviteUrl })).status).toBe(409);
  });

  it('the recipient may also end a share by deleting the accepted invite', async () => {
    const inv = await invite('fourth');
    expect((await bob.del(`/device-invites/${inv.id}`)).status).toBe(404); // not accepted: not B's business
    expect((await bob.post('/device-invites/-/accept', { invite: inv.inviteUrl })).status).toBe(200);
    await bobdev.waitFor((m) => !!peerNamed(m, 'git'));
    const ext = await boss.get(`/device/${git.id}`);
    expect(ext.body).toMatchObject({ isExternal: true, tags: [], user: 'alice@a.example', machineKey: '' });
    expect((await boss.post(`/device/${git.id}/name`, { name: 'mine' })).status).toBe(404); // nothing else to manage here
    expect((await bob.del(`/device-invites/${inv.id}`)).status).toBe(200);
    await bobdev.waitFor((m) => !peerNamed(m, 'git'), 15_000);
    await git.waitFor((m) => !peerNamed(m, 'bobdev'), 15_000);
    expect((await boss.get(`/device/${git.id}`)).status).toBe(404);
  });

  it('a second invite accepted by the same user confirms the share; deleting either invite ends it', async () => {
    const first = await invite('one');
    const second = await invite('two');
    expect((await bob.post('/device-invites/-/accept', { invite: first.inviteUrl })).status).toBe(200);
    expect((await bob.post('/device-invites/-/accept', { invite: second.inviteUrl })).status).toBe(200);
    expect((await alice.get('/tailnet/-/users?type=shared')).body.users).toHaveLength(1);
    await bobdev.waitFor((m) => !!peerNamed(m, 'git'));
    expect((await alice.del(`/device-invites/${second.id}`)).status).toBe(200);
    await bobdev.waitFor((m) => !peerNamed(m, 'git'), 15_000);
    expect((await alice.get('/tailnet/-/users?type=shared')).body.users).toEqual([]);
    expect((await alice.del(`/device-invites/${first.id}`)).status).toBe(200);
  });

  it('a multi-use invite shares with users of two networks; one revoke leaves the other; deleting it ends both', async () => {
    const cKey = coord.createTailnet('c.example', 'cat@c.example');
    const cat = api(coord.url, cKey);
    const catdev = await dev((await cat.post('/tailnet/-/keys', ownKeyBody)).body.key, 'catdev');
    const made = await alice.post(`/device/${git.id}/device-invites`, [{ label: 'anyone', multiUse: true }]);
    expect(made.status, made.text).toBe(200);
    const inv = made.body[0];
    expect(inv).toMatchObject({ multiUse: true, accepted: false, acceptances: [] });

    const byBob = await bob.post('/device-invites/-/accept', { invite: inv.inviteUrl });
    expect(byBob.status, byBob.text).toBe(200);
    const byCat = await cat.post('/device-invites/-/accept', { invite: inv.inviteUrl });
    expect(byCat.status, byCat.text).toBe(200);
    expect(byCat.body.device).toMatchObject({ isExternal: true, user: 'alice@a.example' });
    // bob again: the same share, not a second one
    expect((await bob.post('/device-invites/-/accept', { invite: inv.inviteUrl })).status).toBe(200);
    const shared = (await alice.get('/tailnet/-/users?type=shared')).body.users;
    expect(shared.map((u: any) => [u.loginName, u.deviceCount]).sort()).toEqual([['bob@b.example', 1], ['cat@c.example', 1]]);
    for (const d of [bobdev, catdev]) {
      const n = await d.waitFor((m) => !!peerNamed(m, 'git'));
      expect(peerNamed(n, 'git')).toMatchObject({ shared: true, quarantined: true, tags: [] });
    }
    await git.waitFor((m) => !!peerNamed(m, 'bobdev') && !!peerNamed(m, 'catdev'));
    const read = await alice.get(`/device-invites/${inv.id}`);
    expect(read.body).toMatchObject({ multiUse: true, accepted: true, shared: true, acceptedBy: { loginName: 'bob@b.example' } });
    expect(read.body.acceptances.map((x: any) => [x.loginName, x.shared])).toEqual([['bob@b.example', true], ['cat@c.example', true]]);

    // C ends its own share: bob keeps his; the link does not bring cat's back
    expect((await cat.del(`/device-invites/${inv.id}`)).status).toBe(200);
    await catdev.waitFor((m) => !peerNamed(m, 'git'), 15_000);
    await git.waitFor((m) => !peerNamed(m, 'catdev') && !!peerNamed(m, 'bobdev'), 15_000);
    expect((await cat.post('/device-invites/-/accept', { invite: inv.inviteUrl })).status).toBe(409);
    expect(peerNamed(bobdev.last!, 'git')).toBeDefined();
    const after = (await alice.get(`/device/${git.id}/device-invites`)).body.find((i: any) => i.id === inv.id);
    expect(after.acceptances.map((x: any) => [x.loginName, x.shared])).toEqual([['bob@b.example', true], ['cat@c.example', false]]);

    // the sharer deletes the invite: every share it made ends
    expect((await alice.del(`/device-invites/${inv.id}`)).status).toBe(200);
    await bobdev.waitFor((m) => !peerNamed(m, 'git'), 15_000);
    expect((await alice.get('/tailnet/-/users?type=shared')).body.users).toEqual([]);
    expect((await alice.get(`/device-invites/${inv.id}`)).status).toBe(404);
    expect((await bob.post('/device-invites/-/accept', { invite: inv.inviteUrl })).status).toBe(404);
  });

  it('a new device of the recipient joins the share; deleting the shared device ends it', async () => {
    const inv = await invite('third');
    expect((await bob.post('/device-invites/-/accept', { invite: inv.inviteUrl })).status).toBe(200);
    const bobAuth = (await bob.post('/tailnet/-/keys', ownKeyBody)).body.key;
    const second = await dev(bobAuth, 'bobdev2');
    await second.waitFor((m) => !!peerNamed(m, 'git'));
    await git.waitFor((m) => !!peerNamed(m, 'bobdev2') && !!peerNamed(m, 'bobdev'));
    expect((await alice.del(`/device/${git.id}`)).status).toBe(200);
    await second.waitFor((m) => !peerNamed(m, 'git'), 15_000);
    await bobdev.waitFor((m) => !peerNamed(m, 'git'), 15_000);
    expect((await boss.get('/tailnet/-/devices')).body.devices.some((d: any) => d.isExternal)).toBe(false);
  });
});
