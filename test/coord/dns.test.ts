// DNS settings of a network through the admin API (Tailscale's shapes): checked input, audited, and in
// every device's netmap within moments. Also `coord dns`, the CLI over the same API.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, Coord, coordCli } from './harness.js';
import { TestDevice } from './devices.js';

describe('DNS settings (admin API, netmaps, coord dns)', () => {
  const coord = new Coord();
  let owner: ReturnType<typeof api>;
  let ownerKey = '';
  const dev: TestDevice[] = [];

  beforeAll(async () => {
    await coord.start();
    ownerKey = coord.createTailnet('example.com', 'alice@example.com');
    owner = api(coord.url, ownerKey);
    const key = (await owner.post('/tailnet/-/keys', { capabilities: { devices: { create: { reusable: true } } } })).body.key;
    for (const name of ['a', 'b']) {
      const d = new TestDevice(coord.url);
      await d.register(key, name);
      d.connect();
      dev.push(d);
    }
    await dev[0]!.waitFor((n) => n.peers.length === 1, 10_000);
  });
  afterAll(async () => {
    for (const d of dev) d.close();
    await coord.cleanup();
  });

  it('MagicDNS is on by default, with no nameservers, search paths or split DNS', async () => {
    expect((await owner.get('/tailnet/-/dns/preferences')).body).toEqual({ magicDNS: true });
    expect((await owner.get('/tailnet/-/dns/nameservers')).body).toEqual({ dns: [] });
    expect((await owner.get('/tailnet/-/dns/searchpaths')).body).toEqual({ searchPaths: [] });
    expect((await owner.get('/tailnet/-/dns/split-dns')).body).toEqual({});
    expect(dev[0]!.last!.dns).toMatchObject({ magicDNS: true, nameservers: [], searchPaths: [] });
    expect(dev[0]!.last!.dns.routes).toBeUndefined();
  });

  it('refuses bad input with the reason and keeps what was there', async () => {
    const bad: Array<[string, string, unknown, RegExp]> = [
      ['POST', '/dns/nameservers', { dns: ['1.2.3.4', 'not-an-ip'] }, /invalid nameserver address: "not-an-ip"/],
      ['POST', '/dns/nameservers', { dns: ['1.2.3.4', '1.2.3.4'] }, /listed twice/],
      ['POST', '/dns/nameservers', { dns: '1.2.3.4' }, /must be a list/],
      ['POST', '/dns/searchpaths', { searchPaths: ['corp.example', 'bad domain\nx'] }, /is not a domain name/],
      ['POST', '/dns/searchpaths', { searchPaths: ['corp.example', 'CORP.example.'] }, /listed twice/],
      ['POST', '/dns/searchpaths', { searchPaths: Array.from({ length: 40 }, (_, i) => `d${i}.example`) }, /at most 32/],
      ['PATCH', '/dns/split-dns', { 'corp.example': ['10.0.0.53', 'x'] }, /invalid nameserver address/],
      ['PATCH', '/dns/split-dns', { '-bad-.example': ['10.0.0.53'] }, /is not a domain name/],
      ['PATCH', '/dns/split-dns', { 'corp.example': [] }, /at least one nameserver/],
      ['PUT', '/dns/split-dns', { 'corp.example': '10.0.0.53' }, /must be a list/],
      ['POST', '/dns/preferences', { magicDNS: 'yes' }, /true or false/],
    ];
    for (const [method, path, body, why] of bad) {
      const r = await owner.call(method, `/tailnet/-${path}`, body);
      expect(r.status, `${method} ${path} ${JSON.stringify(body)}`).toBe(400);
      expect(r.body.message).toMatch(why);
    }
    expect((await owner.get('/tailnet/-/dns/nameservers')).body).toEqual({ dns: [] });
    expect((await owner.get('/tailnet/-/dns/split-dns')).body).toEqual({});
  });

  it('split DNS: PATCH sets and removes domains, PUT replaces the map; each change is audited and reaches the netmaps', async () => {
    const before = dev[1]!.netmaps.length;
    let r = await owner.call('PATCH', '/tailnet/-/dns/split-dns', { 'corp.example': ['10.0.0.53'], 'lab.example': ['10.0.1.53', 'fd00::53'] });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ 'corp.example': ['10.0.0.53'], 'lab.example': ['10.0.1.53', 'fd00::53'] });
    r = await owner.call('PATCH', '/tailnet/-/dns/split-dns', { 'lab.example': null, 'Ops.Example.': ['10.0.2.53'] });
    expect(r.body).toEqual({ 'corp.example': ['10.0.0.53'], 'ops.example': ['10.0.2.53'] });
    const n = await dev[1]!.waitFor((m) => m.dns.routes?.['ops.example']?.[0] === '10.0.2.53', 5000);
    expect(n.dns.routes).toEqual({ 'corp.example': ['10.0.0.53'], 'ops.example': ['10.0.2.53'] });
    expect(dev[1]!.netmaps.length).toBeGreaterThan(before);
    r = await owner.call('PUT', '/tailnet/-/dns/split-dns', { 'only.example': ['10.9.9.9'] });
    expect(r.body).toEqual({ 'only.example': ['10.9.9.9'] });
    await dev[0]!.waitFor((m) => JSON.stringify(m.dns.routes) === JSON.stringify({ 'only.example': ['10.9.9.9'] }), 5000);
    const audit = (await owner.get(`/tailnet/-/logging/configuration?start=${encodeURIComponent(new Date(Date.now() - 60_000).toISOString())}`)).body;
    const details = (audit.logs as Array<{ target: { property?: string }; actionDetails?: string }>).filter((l) => l.target.property === 'DNS_CONFIG').map((l) => l.actionDetails);
    expect(details.filter((d) => d === 'DNS_SPLIT_DNS')).toHaveLength(3);
    await owner.call('PUT', '/tailnet/-/dns/split-dns', {});
    await dev[0]!.waitFor((m) => m.dns.routes === undefined, 5000);
  });

  it('search paths and nameservers are normalized and sent to every device', async () => {
    expect((await owner.post('/tailnet/-/dns/searchpaths', { searchPaths: ['Corp.Example.', 'lab.example'] })).body).toEqual({ searchPaths: ['corp.example', 'lab.example'] });
    expect((await owner.post('/tailnet/-/dns/nameservers', { dns: ['192.0.2.53'] })).body).toEqual({ dns: ['192.0.2.53'], magicDNS: true });
    for (const d of dev) await d.waitFor((m) => m.dns.searchPaths.length === 2 && m.dns.nameservers[0] === '192.0.2.53', 5000);
    await owner.post('/tailnet/-/dns/searchpaths', { searchPaths: [] });
    await owner.post('/tailnet/-/dns/nameservers', { dns: [] });
  });

  it('coord dns: show and change the same settings from the command line', () => {
    const env = { coord: ['--coord', coord.url, '--api-key', ownerKey] };
    let r = coordCli(['dns', 'split-dns', 'corp.example', '10.0.0.53,10.0.0.54', ...env.coord]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('corp.example → 10.0.0.53 10.0.0.54');
    r = coordCli(['dns', 'magicdns', 'off', ...env.coord]);
    expect(r.stdout).toContain('MagicDNS is off');
    r = coordCli(['dns', 'show', ...env.coord]);
    expect(r.stdout).toMatch(/MagicDNS:\s+off/);
    expect(r.stdout).toMatch(/split DNS:\s+corp\.example → 10\.0\.0\.53 10\.0\.0\.54/);
    r = coordCli(['dns', 'split-dns', 'corp.example', '--remove', ...env.coord]);
    expect(r.stdout).toContain('no split DNS');
    r = coordCli(['dns', 'magicdns', 'maybe', ...env.coord]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('magicdns takes on or off');
    r = coordCli(['dns', 'nameservers', 'nope', ...env.coord]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/invalid nameserver address/);
    coordCli(['dns', 'magicdns', 'on', ...env.coord]);
  });
});
