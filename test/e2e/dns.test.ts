// MagicDNS end to end: real agents in namespaces, each with its own /etc/resolv.conf (the namespace's
// /etc/netns/NS/resolv.conf), asked by Debian's dig and getent; a real upstream (dnsmasq) in its own
// namespace on the LAN.
//   Network A (alice): laptop, git (tag:git), hidden (tag:hidden, which A's policy keeps away from laptop).
//   Network B (boss): db and git, both shared with alice. laptop reaches git, db and B's git.
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtualLan } from '../../scripts/netns.js';
import { api } from '../coord/harness.js';
import { AgentLan, canRunE2e, createAuthKey, waitFor } from './harness.js';

const NAMES = ['laptop', 'git', 'hidden', 'db', 'bgit', 'upstream', 'corpdns'] as const;
const SERVERS: readonly Name[] = ['upstream', 'corpdns'];
type Name = (typeof NAMES)[number];

describe.skipIf(!canRunE2e)('MagicDNS end to end (agents in namespaces, dig and getent, dnsmasq upstream)', () => {
  const net = new AgentLan('dns', NAMES);
  const { addr } = net;
  let coordUrl = '';
  const key: Record<string, string> = {};
  let domainA = '';
  let domainB = '';
  let originalResolvConf = '';

  const admin = (who: string, method: string, path: string, body?: unknown) => api(coordUrl, key[who]).call(method, path, body);
  const dig = (name: string, type = 'A', server = '100.100.100.100') =>
    net.lan.exec('laptop', 'dig', [`@${server}`, name, type, '+short', '+time=3', '+tries=1']).trim().split('\n').filter(Boolean);
  const digStatus = (name: string, type = 'A') => /status: (\w+)/.exec(net.lan.exec('laptop', 'dig', ['@100.100.100.100', name, type, '+time=3', '+tries=1']))?.[1];
  /** What the system's resolver (glibc, with the namespace's resolv.conf and its search domains) says. */
  const getent = (name: string): string | null => {
    try {
      return net.lan.exec('laptop', 'getent', ['ahostsv4', name]).split(/\s+/)[0] ?? null;
    } catch {
      return null;
    }
  };
  const laptopResolvConf = () => readFileSync(VirtualLan.resolvConfPath(net.lan.host('laptop').ns), 'utf8');
  const netmapHas = (n: Name, pred: (s: ReturnType<typeof net.status>) => boolean) => waitFor(`${n}'s netmap`, () => pred(net.status(n)), 15_000);

  beforeAll(async () => {
    net.setUp();
    // The upstream nameserver every device's system used before the agent: dnsmasq on the LAN.
    const up = net.lan.host('upstream');
    net.lan.spawn('upstream', 'dnsmasq', [
      '--keep-in-foreground', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', '--pid-file=', '--user=root',
      `--listen-address=${up.addr}`, '--bind-interfaces', '--address=/example.org/192.0.2.10', '--host-record=big.example.org,192.0.2.11',
      ...Array.from({ length: 60 }, (_, i) => `--txt-record=long.example.org,${'x'.repeat(200)}${i}`),
    ]);
    // A second nameserver that alone knows corp.example (split DNS); the upstream refuses it.
    net.lan.spawn('corpdns', 'dnsmasq', [
      '--keep-in-foreground', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', '--pid-file=', '--user=root',
      `--listen-address=${net.lan.host('corpdns').addr}`, '--bind-interfaces', '--host-record=wiki.corp.example,192.0.2.30', '--local=/corp.example/',
    ]);
    // Every agent namespace starts with the upstream as its system resolver.
    for (const n of NAMES) if (!SERVERS.includes(n)) {
      const conf = `# the namespace's own resolver configuration\nnameserver ${up.addr}\noptions edns0\n`;
      writeFileSync(VirtualLan.resolvConfPath(net.lan.host(n).ns), conf);
    }
    originalResolvConf = laptopResolvConf();
    key.a = net.coord.createTailnet('a.example', 'alice@a.example');
    key.b = net.coord.createTailnet('b.example', 'boss@b.example');
    coordUrl = await net.startCoord();
    expect((await admin('a', 'POST', '/tailnet/-/acl', `{
      "tagOwners": {"tag:git": ["alice@a.example"], "tag:hidden": ["alice@a.example"]},
      "acls": [{"action": "accept", "src": ["alice@a.example"], "dst": ["tag:git:*"]}],
    }`)).status).toBe(200);
    expect((await admin('b', 'POST', '/tailnet/-/acl', `{"acls": [{"action": "accept", "src": ["autogroup:shared"], "dst": ["*:*"]}]}`)).status).toBe(200);
    await waitFor('dnsmasq', () => { try { return net.lan.exec('laptop', 'dig', [`@${up.addr}`, 'x.example.org', '+short', '+time=1', '+tries=1']).includes('192.0.2.10'); } catch { return false; } });
    for (const n of NAMES) if (!SERVERS.includes(n)) net.startAgent(n);
    await waitFor('agent sockets', () => NAMES.every((n) => SERVERS.includes(n) || net.status(n)));
    const ups: [Name, string, string, string[]][] = [
      ['laptop', 'a', 'laptop', []], ['git', 'a', 'git', ['--advertise-tags', 'tag:git']], ['hidden', 'a', 'hidden', ['--advertise-tags', 'tag:hidden']],
      ['db', 'b', 'db', []], ['bgit', 'b', 'git', []],
    ];
    for (const [n, who, hostname, extra] of ups) {
      const r = net.cli(n, ['up', '--coord', coordUrl, '--authkey', await createAuthKey(api(coordUrl, key[who]), false), '--hostname', hostname, ...extra]);
      expect(r.status, r.stderr).toBe(0);
      addr[n] = net.status(n).self!.addresses[0];
    }
    domainA = net.status('laptop').self!.dnsName.split('.').slice(1).join('.');
    domainB = net.status('db').self!.dnsName.split('.').slice(1).join('.');
    // B shares db and its git with alice; A's policy then lets alice reach them.
    const bDevices = (await admin('b', 'GET', '/tailnet/-/devices')).body.devices as Array<{ id: string; hostname: string }>;
    for (const d of bDevices) {
      const inv = await admin('b', 'POST', `/device/${d.id}/device-invites`, [{ label: 'for alice' }]);
      expect((await admin('a', 'POST', '/device-invites/-/accept', { invite: inv.body[0].inviteUrl })).status).toBe(200);
    }
    expect((await admin('a', 'POST', '/tailnet/-/acl', `{
      "tagOwners": {"tag:git": ["alice@a.example"], "tag:hidden": ["alice@a.example"]},
      "acls": [{"action": "accept", "src": ["alice@a.example"], "dst": ["tag:git:*", "${addr.db}:*", "${addr.bgit}:*"]}],
    }`)).status).toBe(200);
    await netmapHas('laptop', (s) => s.peers.length === 3);
  }, 120_000);

  afterAll(() => net.destroy());

  it('points the namespace\'s resolv.conf at the agent, this network\'s domain first in the search list', () => {
    const conf = laptopResolvConf();
    expect(conf).toMatch(/^nameserver 100\.100\.100\.100$/m);
    expect(conf).toMatch(new RegExp(`^search ${domainA.replace(/\./g, '\\.')}$`, 'm'));
  });

  it('resolves this network\'s devices by full name (A and AAAA) and by short name through the search domain', () => {
    expect(dig(`git.${domainA}`)).toEqual([addr.git]);
    expect(dig(`git.${domainA}`, 'AAAA')).toEqual([net.status('git').self!.addresses[1]]);
    expect(dig(`laptop.${domainA}`)).toEqual([addr.laptop]);
    expect(getent('git')).toBe(addr.git);
    expect(getent(`git.${domainA}`)).toBe(addr.git);
  });

  it('a connection by name goes through the tunnel from the device\'s own address, never from the service address', async () => {
    await net.listen('git', [22]);
    expect(net.lan.exec('laptop', 'ip', ['route', 'get', addr.git!])).toContain(`src ${addr.laptop}`);
    const r = JSON.parse(net.lan.exec('laptop', process.execPath, [net.helper, 'try', '3000', 'git:22']));
    expect(r['git:22']).toBe('ok');
  });

  it('answers PTR for tailnet addresses and NXDOMAIN for unknown names in its domain, over UDP and TCP', () => {
    expect(dig(addr.git!, 'PTR').length).toBe(0); // dig needs -x for reverse; the name form below is what it sends
    expect(net.lan.exec('laptop', 'dig', ['@100.100.100.100', '-x', addr.git!, '+short']).trim()).toBe(`git.${domainA}.`);
    expect(digStatus(`nope.${domainA}`)).toBe('NXDOMAIN');
    expect(net.lan.exec('laptop', 'dig', ['@100.100.100.100', `git.${domainA}`, '+tcp', '+short']).trim()).toBe(addr.git);
  });

  it('gives no name to a device the policy hides from this one', () => {
    expect(digStatus(`hidden.${domainA}`)).toBe('NXDOMAIN');
    expect(getent('hidden')).toBeNull();
    // ...while hidden itself knows its own name.
    expect(net.lan.exec('hidden', 'dig', ['@100.100.100.100', `hidden.${domainA}`, '+short']).trim()).toBe(addr.hidden);
  });

  it('resolves a shared-in device by its full name in the sharer\'s domain, never by its short name', () => {
    expect(dig(`db.${domainB}`)).toEqual([addr.db]);
    expect(getent(`db.${domainB}`)).toBe(addr.db);
    expect(getent('db')).toBeNull();
    expect(digStatus(`db.${domainA}`)).toBe('NXDOMAIN');
  });

  it('resolves the short name once the sharer\'s domain is in the search paths; on a clash our own device wins', async () => {
    expect((await admin('a', 'POST', '/tailnet/-/dns/searchpaths', { searchPaths: [domainB] })).status).toBe(200);
    await waitFor('search paths on laptop', () => laptopResolvConf().includes(`search ${domainA} ${domainB}`));
    expect(getent('db')).toBe(addr.db);
    expect(getent('git')).toBe(addr.git); // A's git, not B's
    expect(getent(`git.${domainB}`)).toBe(addr.bgit);
    expect((await admin('a', 'POST', '/tailnet/-/dns/searchpaths', { searchPaths: [] })).status).toBe(200);
    await waitFor('search paths cleared', () => !laptopResolvConf().includes(domainB));
  });

  it('forwards other names to the system\'s resolver, long answers over TCP, and to global nameservers once set', async () => {
    expect(dig('www.example.org')).toEqual(['192.0.2.10']);
    expect(getent('www.example.org')).toBe('192.0.2.10');
    // 60 TXT records of 200 bytes do not fit a UDP answer: the resolver retries upstream over TCP.
    const txt = net.lan.exec('laptop', 'dig', ['@100.100.100.100', 'long.example.org', 'TXT', '+short']).trim().split('\n');
    expect(txt).toHaveLength(60);
    const status = net.cli('laptop', ['dns', 'query', 'www.example.org']);
    expect(status.stdout).toMatch(new RegExp(`forwarded to ${net.lan.host('upstream').addr}`));
    expect((await admin('a', 'POST', '/tailnet/-/dns/nameservers', { dns: [net.lan.host('upstream').addr] })).status).toBe(200);
    await waitFor('nameservers in the netmap', () => JSON.parse(net.cli('laptop', ['dns', 'status', '--json']).stdout).nameservers.length === 1);
    expect(dig('big.example.org')).toEqual(['192.0.2.11']);
    expect((await admin('a', 'POST', '/tailnet/-/dns/nameservers', { dns: [] })).status).toBe(200);
  });

  it('split DNS sends a domain to its own nameserver, and only that domain', async () => {
    expect(dig('wiki.corp.example')).toEqual([]); // the system's upstream does not know it
    const corp = net.lan.host('corpdns').addr;
    expect((await admin('a', 'PATCH', '/tailnet/-/dns/split-dns', { 'corp.example': [corp] })).status).toBe(200);
    await waitFor('split DNS in the netmap', () => JSON.parse(net.cli('laptop', ['dns', 'status', '--json']).stdout).splitDns['corp.example']?.[0] === corp);
    expect(dig('wiki.corp.example')).toEqual(['192.0.2.30']);
    expect(getent('wiki.corp.example')).toBe('192.0.2.30');
    expect(net.cli('laptop', ['dns', 'query', 'wiki.corp.example']).stdout).toContain(`forwarded to ${corp}`);
    expect(dig('www.example.org')).toEqual(['192.0.2.10']); // everything else still goes to the system's
    expect((await admin('a', 'PATCH', '/tailnet/-/dns/split-dns', { 'corp.example': null })).status).toBe(200);
  });

  it('with MagicDNS off, tailnet names are no longer answered and forwarding still works', async () => {
    expect((await admin('a', 'POST', '/tailnet/-/dns/preferences', { magicDNS: false })).status).toBe(200);
    await waitFor('MagicDNS off', () => JSON.parse(net.cli('laptop', ['dns', 'status', '--json']).stdout).magicDNS === false);
    expect(digStatus(`git.${domainA}`)).not.toBe('NOERROR');
    expect(dig('www.example.org')).toEqual(['192.0.2.10']);
    expect((await admin('a', 'POST', '/tailnet/-/dns/preferences', { magicDNS: true })).status).toBe(200);
    await waitFor('MagicDNS on', () => JSON.parse(net.cli('laptop', ['dns', 'status', '--json']).stdout).magicDNS === true);
    expect(dig(`git.${domainA}`)).toEqual([addr.git]);
  });

  it('`agent dns query` says where an answer came from; `agent dns status` what is configured', () => {
    const q = net.cli('laptop', ['dns', 'query', 'git']);
    expect(q.status, q.stderr).toBe(0);
    expect(q.stdout).toContain(`git.${domainA} A: NOERROR, answered by MagicDNS`);
    expect(q.stdout).toContain(addr.git!);
    const s = net.cli('laptop', ['dns', 'status']).stdout;
    expect(s).toMatch(/MagicDNS:\s+on/);
    expect(s).toMatch(/System DNS:\s+file:/);
  });

  it('listens only on the service addresses: not on the device\'s tailnet or LAN address', () => {
    // From git, over the tunnel and over the LAN: nothing answers DNS there.
    expect(() => net.lan.exec('git', 'dig', [`@${addr.laptop}`, `git.${domainA}`, '+time=1', '+tries=1'])).toThrow();
    expect(() => net.lan.exec('git', 'dig', [`@${net.lan.host('laptop').addr}`, `git.${domainA}`, '+time=1', '+tries=1'])).toThrow();
  });

  it('`agent down` restores the original resolv.conf byte for byte; `up --accept-dns=false` leaves it alone', () => {
    expect(net.cli('laptop', ['down']).status).toBe(0);
    expect(laptopResolvConf()).toBe(originalResolvConf);
    const r = net.cli('laptop', ['up', '--accept-dns=false']);
    expect(r.status, r.stderr).toBe(0);
    expect(laptopResolvConf()).toBe(originalResolvConf);
    // The resolver still answers at its address for whoever asks it directly.
    expect(dig(`git.${domainA}`)).toEqual([addr.git]);
    expect(net.cli('laptop', ['up', '--accept-dns']).status).toBe(0);
    expect(laptopResolvConf()).toMatch(/^nameserver 100\.100\.100\.100$/m);
  });

  it('after a crash the next start puts the original back', async () => {
    await net.killAgent('laptop');
    expect(laptopResolvConf()).toMatch(/^nameserver 100\.100\.100\.100$/m);
    net.startAgent('laptop');
    // Restored at start, then configured again once the device is back up (it was up).
    await waitFor('laptop back up', () => net.status('laptop').backendState === 'Running');
    await waitFor('resolver configured again', () => /^nameserver 100\.100\.100\.100$/m.test(laptopResolvConf()));
    expect(net.cli('laptop', ['down']).status).toBe(0);
    expect(laptopResolvConf()).toBe(originalResolvConf);
  });
});

