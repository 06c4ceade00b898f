// Subnet routers and exit nodes end to end (issue 14): coord on a virtual LAN, a client and a router,
// each an agent in its own namespace; behind the router a LAN host without an agent (its own
// namespace, reached only through the router), and beyond it an "internet" host for the exit node.
//
//   client (.2) ─┐                                   ┌─ lanhost  SUB.2   (subnet route SUB.0/24)
//   coord (.1) ──┼── bridge 198.18.N.0/24 ── router (.3)
//   clientlan ───┘  (the client's own LAN)          └─ inet     NET.2   (the exit node's "internet")
//
// Everything the agents change on their hosts happens inside these namespaces.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { watchProbe } from '../../scripts/lab.js';
import { api } from '../coord/harness.js';
import { AgentLan, canRunE2e, createAuthKey, waitFor } from './harness.js';

const NAMES = ['client', 'router', 'clientlan'] as const;

/** Ceiling for a change to take effect (the issue asks for a second; the load here makes that a benchmark's job). */
const CHANGE_CEILING_MS = 10_000;

describe.skipIf(!canRunE2e)('subnet routers and exit nodes (coord + agents in namespaces)', () => {
  const net = new AgentLan('routes', NAMES);
  let coordUrl = '';
  let apiKey = '';
  let sub = '';
  let inet = '';
  const admin = () => api(coordUrl, apiKey);
  let routerId = '';
  let policyV6 = false;

  const policy = (opts: { internet?: boolean } = {}) => `{
    "tagOwners": {"tag:client": ["alice@example.com"], "tag:router": ["alice@example.com"]},
    "grants": [
      // the client may reach the LAN host behind the router on port 8080 only
      {"src": ["tag:client"], "dst": ["${sub}.0/24"${policyV6 ? ', "fd00:77::/64"' : ''}], "ip": ["tcp:8080"]},
      // the internet on tcp:8080 only: no port 53 (names still resolve, through the exit node)
      ${opts.internet ? `{"src": ["tag:client"], "dst": ["autogroup:internet"], "ip": ["tcp:8080"]},` : ''}
    ],
  }`;

  /** One TCP attempt from a namespace host to ip:port: "ok" or "fail REASON". */
  const connect = (from: string, ip: string, port: number, ms = 1500): string => {
    try {
      return net.lan.exec(from, process.execPath, [net.helper, 'connect', ip, String(port), String(ms)]).trim();
    } catch (err) {
      return String((err as { stdout: string }).stdout).trim();
    }
  };

  /** Starts the helper in `from` with `args`, resolves with the time of its "ok T" line. */
  const probe = (from: string, args: string[], what: string): { before: Promise<void>; at: Promise<number> } =>
    watchProbe(net.lan.spawn(from, process.execPath, [net.helper, ...args]), CHANGE_CEILING_MS, `${what}: nothing within ${CHANGE_CEILING_MS} ms`);

  const listen = (n: string, ports: number[]) => {
    const p = net.lan.spawn(n, process.execPath, [net.helper, 'listen', ...ports.map(String)]);
    return new Promise<void>((resolve) => createInterface({ input: p.stdout! }).once('line', () => resolve()));
  };

  const ipIn = (n: string, args: string[]) => net.lan.exec(n, 'ip', args);
  /** The routes of meshward's table in n's namespace ('' when there are none, or no such table yet). */
  const table52 = (n: string, family: '-4' | '-6' = '-4') => {
    try {
      return ipIn(n, [family, 'route', 'show', 'table', '52']);
    } catch (err) {
      if (/FIB table does not exist/.test(String((err as { stderr?: string }).stderr))) return '';
      throw err;
    }
  };
  /** `agent down` on the client and the router leaves no route, rule, nftables table or forwarding sysctl behind. */
  const downLeavesNothing = () => {
    for (const n of ['client', 'router'] as const) {
      const r = net.cli(n, ['down']);
      expect(r.status, r.stderr).toBe(0);
      expect(table52(n)).toBe('');
      expect(table52(n, '-6')).toBe('');
      for (const family of ['-4', '-6']) expect(ipIn(n, [family, 'rule']).split('\n').filter((l) => /^5[0-9]{3}:/.test(l))).toEqual([]);
      expect(net.lan.exec(n, 'nft', ['list', 'tables']).trim()).toBe('');
    }
    expect(net.lan.exec('router', 'cat', ['/proc/sys/net/ipv4/ip_forward']).trim()).toBe('0');
    expect(net.lan.exec('router', 'cat', ['/proc/sys/net/ipv6/conf/all/forwarding']).trim()).toBe('0');
  };

  beforeAll(async () => {
    net.setUp();
    sub = `198.19.${1 + Math.floor(Math.random() * 120)}`;
    inet = `203.0.113`;
    net.lan.addHostBehind('lanhost', 'router', sub, 'sub0');
    net.lan.addHostBehind('inet', 'router', inet, 'wan0');
    apiKey = net.coord.createTailnet('example.com', 'alice@example.com');
    coordUrl = await net.startCoord();
    const r = await admin().post('/tailnet/-/acl', policy());
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    net.startAgent('client');
    net.startAgent('router');
    await waitFor('agent sockets', () => existsSync(net.sock('client')) && existsSync(net.sock('router')), 15_000);
    await listen('lanhost', [8080, 8081]);
    await listen('inet', [8080]);
    // a nameserver on the "internet" side: the client reaches it only through the exit node
    net.lan.spawn('inet', 'dnsmasq', [
      '--keep-in-foreground', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', '--pid-file=', '--user=root',
      `--listen-address=${inet}.2`, '--bind-interfaces', '--address=/example.org/192.0.2.10',
    ]);
    await listen('clientlan', [8080]);
  }, 60_000);

  afterAll(() => net.destroy());

  it('checks route flags locally with clear errors', () => {
    const bad = [
      [['--advertise-routes', '10.1.2.3'], /"10.1.2.3" is not a CIDR prefix like 10.0.0.0\/24 \(for one address write 10.1.2.3\/32\)/],
      [['--advertise-routes', '10.1.2.3/24'], /10.1.2.3\/24 has bits set after the prefix length; did you mean 10.1.2.0\/24\?/],
      [['--advertise-routes', '100.64.5.0/24'], /overlaps the tailnet's own range 100.64.0.0\/10/],
      [['--advertise-routes', 'fd7a:115c:a1e0:ab::/64'], /overlaps the tailnet's own range fd7a:115c:a1e0::\/48/],
      [['--advertise-routes', '0.0.0.0/0'], /use --advertise-exit-node/],
      [['--exit-node', '8.8.8.8'], /not a tailnet address/],
      [['--advertise-exit-node', '--exit-node', 'router'], /cannot offer an exit node and use one at once/],
      [['--snat-subnet-routes=maybe'], /--snat-subnet-routes takes true or false/],
    ] as const;
    for (const [args, message] of bad) {
      const r = net.cli('client', ['up', ...args]);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(message);
    }
  });

  it('registers a client that accepts routes and a router that advertises one (not yet approved)', async () => {
    const key = await createAuthKey(admin(), true);
    const c = net.cli('client', ['up', '--coord', coordUrl, '--authkey', key, '--hostname', 'client', '--advertise-tags', 'tag:client', '--accept-routes']);
    expect(c.status, c.stderr).toBe(0);
    const r = net.cli('router', ['up', '--coord', coordUrl, '--authkey', key, '--hostname', 'router', '--advertise-tags', 'tag:router', '--advertise-routes', `${sub}.0/24`]);
    expect(r.status, r.stderr).toBe(0);
    const devices = await admin().get('/tailnet/-/devices');
    const router = (devices.body.devices as Array<{ id: string; hostname: string; advertisedRoutes: string[]; enabledRoutes: string[] }>).find((d) => d.hostname === 'router')!;
    routerId = router.id;
    expect(router.advertisedRoutes).toEqual([`${sub}.0/24`]);
    expect(router.enabledRoutes).toEqual([]);
    const rs = net.status('router').routing!;
    expect(rs.advertisedRoutes).toEqual([`${sub}.0/24`]);
    expect(rs.approvedRoutes).toEqual([]);
    expect(rs.pendingRoutes).toEqual([`${sub}.0/24`]);
    expect(rs.forwarding.v4).toBe(true);
    expect(net.lan.exec('router', 'cat', ['/proc/sys/net/ipv4/ip_forward']).trim()).toBe('1');
    expect(net.cli('router', ['status']).stdout).toContain(`# this device offers: ${sub}.0/24 (awaiting approval)`);
    // remembered like the other settings
    expect(net.lan.exec('router', 'cat', [`${net.stateDir('router')}/prefs.json`])).toContain(`"${sub}.0/24"`);
  });

  it('does not carry an advertised route before an admin approves it', async () => {
    // the policy names the subnet only: before approval the router is no peer of the client, or one without routes
    const peer = net.status('client').peers.find((p) => p.name === 'router');
    expect(peer?.routes ?? []).toEqual([]);
    expect(table52('client')).toBe('');
    expect(connect('client', `${sub}.2`, 8080)).toMatch(/^fail/);
  });

  it('reaches the LAN host through the router once approved, on the ports the policy allows only', async () => {
    const ok = await admin().post(`/device/${routerId}/routes`, { routes: [`${sub}.0/24`] });
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    await waitFor('the route to work', () => connect('client', `${sub}.2`, 8080, 500) === 'ok', CHANGE_CEILING_MS);
    expect(connect('client', `${sub}.2`, 8081)).toBe('fail timeout');
    // the router's filter dropped it: the policy allows 8080 only
    expect(net.status('router').filter.dropped['no-rule']).toBeGreaterThan(0);
    const peer = net.status('client').peers.find((p) => p.name === 'router')!;
    expect(peer.routes).toEqual([`${sub}.0/24`]);
    expect(peer.routesInUse).toEqual([`${sub}.0/24`]);
    expect(net.status('router').routing!.approvedRoutes).toEqual([`${sub}.0/24`]);
    expect(net.cli('client', ['status']).stdout).toContain(`# router offers: ${sub}.0/24 (in use)`);
    // meshward's table and rules in the client's namespace; the tunnel's own UDP is marked around them
    expect(table52('client')).toContain(`${sub}.0/24 dev`);
    const rules = ipIn('client', ['rule']);
    expect(rules).toMatch(/5210:\s+from all fwmark 0x80000\/0xff0000 lookup main/);
    expect(rules).toMatch(/5270:\s+from all lookup 52/);
    expect(rules).toContain(`5200:\tfrom all to ${net.lan.gateway} lookup main`);
    // source NAT on the router: the LAN host saw the router's address, it has no route to the tailnet
    expect(net.lan.exec('router', 'nft', ['list', 'table', 'inet', 'meshward'])).toContain('masquerade');
  });

  it('takes over a route the client\'s own LAN already has only with --accept-routes-over-lan', async () => {
    // the client gets a LAN of its own that is the router's subnet (SUB.200/24 on a veth pair inside its
    // namespace: nothing answers there)
    ipIn('client', ['link', 'add', 'lanover0', 'type', 'veth', 'peer', 'name', 'lanover1']);
    ipIn('client', ['addr', 'add', `${sub}.200/24`, 'dev', 'lanover0']);
    for (const l of ['lanover0', 'lanover1']) ipIn('client', ['link', 'set', l, 'up']);
    try {
      expect(net.cli('client', ['up']).status).toBe(0);
      await waitFor('the route left to the LAN', () => table52('client') === '', CHANGE_CEILING_MS);
      expect(connect('client', `${sub}.2`, 8080)).toMatch(/^fail/);
      const before = net.status('client');
      expect(before.peers.find((p) => p.name === 'router')!.routesInUse).toEqual([]);
      expect(before.routing!.acceptRoutesOverLan).toBe(false);
      expect(before.routing!.notes.join('\n')).toContain(`reaches ${sub}.0/24 directly on lanover0 (agent up --accept-routes-over-lan takes it over)`);

      const refused = net.cli('client', ['up', '--accept-routes=false', '--accept-routes-over-lan']);
      expect(refused.status).toBe(2);
      expect(refused.stderr).toMatch(/--accept-routes-over-lan needs --accept-routes/);

      const up = net.cli('client', ['up', '--accept-routes-over-lan']);
      expect(up.status, up.stderr).toBe(0);
      await waitFor('the route over the LAN', () => connect('client', `${sub}.2`, 8080, 500) === 'ok', CHANGE_CEILING_MS);
      expect(table52('client')).toContain(`${sub}.0/24 dev`);
      const after = net.status('client');
      expect(after.peers.find((p) => p.name === 'router')!.routesInUse).toEqual([`${sub}.0/24`]);
      expect(after.routing!.acceptRoutesOverLan).toBe(true);
      expect(net.lan.exec('client', 'cat', [`${net.stateDir('client')}/prefs.json`])).toMatch(/"acceptRoutesOverLan":\s*true/);
    } finally {
      net.cli('client', ['up', '--accept-routes-over-lan=false']);
      ipIn('client', ['link', 'del', 'lanover0']);
    }
    expect(net.cli('client', ['up']).status).toBe(0);
    await waitFor('the route back', () => connect('client', `${sub}.2`, 8080, 500) === 'ok', CHANGE_CEILING_MS);
  });

  it('cuts the route when the approval is revoked', async () => {
    const watch = probe('client', ['probe-closed', `${sub}.2`, '8080', '50', 'any'], 'revoked route still open');
    await watch.before;
    const t0 = Date.now();
    const r = await admin().post(`/device/${routerId}/routes`, { routes: [] });
    expect(r.status).toBe(200);
    const at = await watch.at;
    // measured, not asserted tightly: the issue's second is a latency target for a benchmark
    console.log(`routes e2e: revoked approval cut the route after ${Math.max(0, at - t0)} ms`);
    await waitFor('table 52 emptied', () => table52('client') === '', CHANGE_CEILING_MS);
    expect(net.status('router').routing!.pendingRoutes).toEqual([`${sub}.0/24`]);
    await admin().post(`/device/${routerId}/routes`, { routes: [`${sub}.0/24`] });
    await waitFor('the route back', () => connect('client', `${sub}.2`, 8080, 500) === 'ok', CHANGE_CEILING_MS);
  });

  it('forwards without source NAT with --snat-subnet-routes=false (the LAN then needs a route back)', async () => {
    const r = net.cli('router', ['up', '--snat-subnet-routes=false']);
    expect(r.status, r.stderr).toBe(0);
    await waitFor('the nftables table gone', () => {
      try {
        net.lan.exec('router', 'nft', ['list', 'table', 'inet', 'meshward']);
        return false;
      } catch {
        return true;
      }
    });
    expect(connect('client', `${sub}.2`, 8080)).toMatch(/^fail/);
    ipIn('lanhost', ['route', 'add', '100.64.0.0/10', 'via', `${sub}.1`]);
    expect(connect('client', `${sub}.2`, 8080)).toBe('ok');
    ipIn('lanhost', ['route', 'del', '100.64.0.0/10', 'via', `${sub}.1`]);
    expect(net.cli('router', ['up', '--snat-subnet-routes=true']).status).toBe(0);
    await waitFor('source NAT back', () => connect('client', `${sub}.2`, 8080, 500) === 'ok', CHANGE_CEILING_MS);
  });

  it('routes an IPv6 subnet the same way', async () => {
    const v6 = 'fd00:77::';
    ipIn('router', ['-6', 'addr', 'add', `${v6}1/64`, 'dev', 'sub0', 'nodad']);
    ipIn('lanhost', ['-6', 'addr', 'add', `${v6}2/64`, 'dev', 'eth0', 'nodad']);
    policyV6 = true;
    expect((await admin().post('/tailnet/-/acl', policy())).status).toBe(200);
    const r = net.cli('router', ['up', '--advertise-routes', `${sub}.0/24,${v6}/64`]);
    expect(r.status, r.stderr).toBe(0);
    expect((await admin().post(`/device/${routerId}/routes`, { routes: [`${sub}.0/24`, `${v6}/64`] })).status).toBe(200);
    await waitFor('the IPv6 subnet', () => connect('client', `${v6}2`, 8080, 500) === 'ok', CHANGE_CEILING_MS);
    expect(connect('client', `${v6}2`, 8081)).toBe('fail timeout');
    expect(table52('client', '-6')).toContain(`${v6}/64 dev`);
    expect(net.status('router').routing!.forwarding).toEqual({ v4: true, v6: true });
    expect(net.lan.exec('router', 'cat', ['/proc/sys/net/ipv6/conf/all/forwarding']).trim()).toBe('1');
  });

  it('agent down leaves no route, rule, nftables table or changed sysctl behind', async () => {
    downLeavesNothing();
    for (const n of ['client', 'router'] as const) expect(net.cli(n, ['up']).status).toBe(0);
    await waitFor('the route back after up', () => connect('client', `${sub}.2`, 8080, 500) === 'ok', CHANGE_CEILING_MS);
  });

  it('undoes what a crashed agent left behind on its next start', async () => {
    await waitFor('router table', () => net.lan.exec('router', 'nft', ['list', 'tables']).includes('meshward'));
    await net.killAgent('client');
    await net.killAgent('router');
    expect(ipIn('client', ['rule'])).toMatch(/5270:/);
    net.startAgent('client');
    net.startAgent('router');
    // the restarted agents resume (they were up): the routes come back, and only once
    await waitFor('the route back after the crash', () => connect('client', `${sub}.2`, 8080, 500) === 'ok', 30_000);
    expect(ipIn('client', ['rule']).split('\n').filter((l) => l.startsWith('5270:'))).toHaveLength(1);
    expect(net.lan.exec('router', 'nft', ['list', 'tables']).trim()).toBe('table inet meshward');
  }, 60_000);

  it('an agent stopped by SIGTERM leaves nothing behind, and takes the routing back on its next start', async () => {
    for (const n of ['client', 'router'] as const) expect(await net.stopAgent(n), `${n} stopped by itself`).toBeNull();
    for (const n of ['client', 'router'] as const) {
      expect(table52(n)).toBe('');
      expect(table52(n, '-6')).toBe('');
      for (const family of ['-4', '-6']) expect(ipIn(n, [family, 'rule']).split('\n').filter((l) => /^5[0-9]{3}:/.test(l))).toEqual([]);
      expect(net.lan.exec(n, 'nft', ['list', 'tables']).trim()).toBe('');
    }
    expect(net.lan.exec('router', 'cat', ['/proc/sys/net/ipv4/ip_forward']).trim()).toBe('0');
    net.startAgent('client');
    net.startAgent('router');
    await waitFor('the route back after the restart', () => connect('client', `${sub}.2`, 8080, 500) === 'ok', 30_000);
    await waitFor('agent sockets', () => existsSync(net.sock('client')) && existsSync(net.sock('router')), 15_000);
  }, 60_000);

  /** Whether the client's netmap follows a policy change (coord reachable): returns once it has. */
  const coordReachable = async () => {
    const before = net.status('client').netmap!.version;
    const r = await admin().post('/tailnet/-/acl', policyNow);
    expect(r.status).toBe(200);
    // an unchanged policy sends no netmap: add a harmless rule and take it away again
    const touched = policyNow.replace('"grants": [', '"grants": [{"src": ["tag:router"], "dst": ["tag:client"], "ip": ["tcp:1"]},');
    expect((await admin().post('/tailnet/-/acl', touched)).status).toBe(200);
    await waitFor('a netmap from coord', () => net.status('client').netmap!.version > before && net.status('client').coord.connected, CHANGE_CEILING_MS);
    expect((await admin().post('/tailnet/-/acl', policyNow)).status).toBe(200);
  };
  let policyNow = '';

  it('offers an exit node; a client using it reaches the internet only when the policy allows autogroup:internet', async () => {
    policyNow = policy();
    expect(net.cli('router', ['up', '--advertise-exit-node']).status).toBe(0);
    const ok = await admin().post(`/device/${routerId}/routes`, { routes: [`${sub}.0/24`, 'fd00:77::/64', '0.0.0.0/0', '::/0'] });
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    await waitFor('exit node approved', () => net.status('router').routing!.approvedRoutes.includes('0.0.0.0/0'), CHANGE_CEILING_MS);
    expect(net.status('router').routing!.forwarding).toEqual({ v4: true, v6: true });
    // without autogroup:internet coord offers this client no exit node: `up` says so and changes nothing
    await waitFor('router in the netmap', () => net.status('client').peers.some((p) => p.name === 'router' && p.exitNodeOption === false));
    const refused = net.cli('client', ['up', '--exit-node', 'router']);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/router does not offer an exit node to this device \(.*the policy does not allow autogroup:internet/);
    expect(net.status('client').routing!.exitNodeWanted).toBe('');
    expect(net.status('client').routing!.exitNode).toBeNull();
    expect(table52('client')).not.toMatch(/^default/m);
    expect(connect('client', `${inet}.2`, 8080)).toMatch(/^fail/);
    await coordReachable();
    policyNow = policy({ internet: true });
    expect((await admin().post('/tailnet/-/acl', policyNow)).status).toBe(200);
    await waitFor('the exit node offered', () => net.status('client').peers.some((p) => p.name === 'router' && p.exitNodeOption), CHANGE_CEILING_MS);
    const up = net.cli('client', ['up', '--exit-node', 'router']);
    expect(up.status, up.stderr).toBe(0);
    await waitFor('the exit node in use', () => net.status('client').routing!.exitNode?.name === 'router', CHANGE_CEILING_MS);
    expect(table52('client')).toMatch(/^default dev /m);
    expect(ipIn('client', ['rule'])).toContain(`5200:\tfrom all to ${net.lan.gateway} lookup main`);
    await waitFor('the internet through the exit node', () => connect('client', `${inet}.2`, 8080, 500) === 'ok', CHANGE_CEILING_MS);
    // the exit node's filter still decides: the policy allows port 8080 only
    await listen('inet', [8081]);
    expect(connect('client', `${inet}.2`, 8081)).toBe('fail timeout');
    // IPv6 to the internet the same way: ::/0 through the exit node, which masquerades it too
    ipIn('router', ['-6', 'addr', 'add', '2001:db8:113::1/64', 'dev', 'wan0', 'nodad']);
    ipIn('inet', ['-6', 'addr', 'add', '2001:db8:113::2/64', 'dev', 'eth0', 'nodad']);
    await waitFor('IPv6 internet through the exit node', () => connect('client', '2001:db8:113::2', 8080, 500) === 'ok', CHANGE_CEILING_MS);
    expect(connect('client', '2001:db8:113::2', 8081)).toBe('fail timeout');
    // the subnet route still wins for the subnet (the most specific route), the internet rule's port only
    expect(connect('client', `${sub}.2`, 8080)).toBe('ok');
    expect(net.cli('client', ['status']).stdout).toContain('# exit node in use: router (');
    expect(net.status('client').peers.find((p) => p.name === 'router')).toMatchObject({ exitNodeOption: true, exitNode: true });
    await coordReachable();
    // DNS keeps working although the policy opens no port 53 to the internet: MagicDNS answers locally,
    // and other names go to the exit node, which resolves them with its own nameservers (as Tailscale's
    // exit nodes do); the nameserver is on the "internet", which only the exit node reaches
    expect(net.cli('client', ['dns', 'query', 'router']).stdout).toContain('answered by MagicDNS');
    expect((await admin().post('/tailnet/-/dns/nameservers', { dns: [`${inet}.2`] })).status).toBe(200);
    await waitFor('the nameserver in the netmap', () => JSON.parse(net.cli('client', ['dns', 'status', '--json']).stdout).nameservers.includes(`${inet}.2`), CHANGE_CEILING_MS);
    const routerIp = net.status('router').self!.addresses.find((a) => !a.includes(':'))!;
    const dns = JSON.parse(net.cli('client', ['dns', 'status', '--json']).stdout);
    expect(dns.exitNodeResolvers).toContain(routerIp);
    expect(JSON.parse(net.cli('router', ['dns', 'status', '--json']).stdout).servingExitNodeUsers).toContain(routerIp);
    const q = net.cli('client', ['dns', 'query', 'www.example.org']);
    expect(q.stdout, q.stderr).toMatch(new RegExp(`forwarded to (${routerIp.replace(/\./g, '\\.')}|fd7a:)`));
    expect(q.stdout).toContain('192.0.2.10');
    // the way programs ask: the system resolver (the service address), over UDP and TCP
    for (const transport of ['+notcp', '+tcp']) {
      const dig = net.lan.exec('client', 'dig', ['+short', '+time=3', '+tries=1', transport, '@100.100.100.100', 'www.example.org']);
      expect(dig.trim(), transport).toBe('192.0.2.10');
    }
    // the exit node resolves outside names only: the netmap's names are not told to peers there
    const direct = net.lan.exec('client', 'dig', ['+time=3', '+tries=1', `@${routerIp}`, `router.${dns.domain}`]);
    expect(direct).toContain('status: REFUSED');
    expect(net.lan.exec('client', 'dig', ['+short', '+time=3', '+tries=1', `@${routerIp}`, 'www.example.org']).trim()).toBe('192.0.2.10');
  });

  it('keeps the client\'s own LAN local with --exit-node-allow-lan-access', async () => {
    const lanhost = net.lan.host('clientlan').addr;
    await listen('clientlan', [9090]);
    // without LAN access the LAN goes through the exit node too, whose policy allows port 8080 only
    expect(connect('client', lanhost, 9090)).toBe('fail timeout');
    expect(net.cli('client', ['up', '--exit-node-allow-lan-access']).status).toBe(0);
    await waitFor('the LAN reached directly', () => connect('client', lanhost, 9090, 500) === 'ok', CHANGE_CEILING_MS);
    expect(table52('client')).toContain(`throw ${net.lan.subnet}.0/24`);
    expect(connect('client', `${inet}.2`, 8080)).toBe('ok');
    await coordReachable();
  });

  it('refuses an exit node that is not a peer (keeping the one in use), and stops using it when asked', async () => {
    const refused = net.cli('client', ['up', '--exit-node', 'client-nonexistent']);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain('agent up: exit node client-nonexistent is not a peer of this device');
    const itself = net.cli('client', ['up', '--exit-node', 'client']);
    expect(itself.status).toBe(1);
    expect(itself.stderr).toContain('exit node client is this device; choose another device that offers one');
    expect(net.status('client').routing!.exitNode?.name).toBe('router');
    expect(connect('client', `${inet}.2`, 8080)).toBe('ok');
    expect(net.cli('client', ['up', '--exit-node=']).status).toBe(0);
    expect(table52('client')).not.toMatch(/^default/m);
    expect(net.status('client').health!.filter((h) => h.includes('exit node'))).toEqual([]);
  });

  it('blocks the internet, rather than sending it around the exit node, while the one asked for is withdrawn', async () => {
    // the client gets a direct way to the "internet" host as well: through the router's LAN address,
    // outside the tunnel (and the host a way back)
    const direct = ['route', 'add', `${inet}.0/24`, 'via', net.lan.host('router').addr];
    const back = ['route', 'add', `${net.lan.subnet}.0/24`, 'via', `${inet}.1`];
    ipIn('client', direct);
    ipIn('inet', back);
    try {
      expect(net.cli('client', ['up', '--exit-node', 'router']).status).toBe(0);
      await waitFor('the exit node in use', () => net.status('client').routing!.exitNode?.name === 'router', CHANGE_CEILING_MS);
      expect(connect('client', `${inet}.2`, 8080)).toBe('ok');
      // an admin withdraws the exit node: the client keeps its default routes into the tunnel, where
      // no peer takes them, as Tailscale does
      expect((await admin().post(`/device/${routerId}/routes`, { routes: [`${sub}.0/24`, 'fd00:77::/64'] })).status).toBe(200);
      await waitFor('the exit node withdrawn', () => net.status('client').routing!.exitNode === null, CHANGE_CEILING_MS);
      expect(table52('client')).toMatch(/^default dev /m);
      expect(connect('client', `${inet}.2`, 8080)).toMatch(/^fail/);
      expect(net.cli('client', ['status']).stdout).toContain('# exit node router not available: internet traffic is blocked until it is');
      expect(net.status('client').routing!.notes.join('\n')).toMatch(/router does not offer an exit node to this device .*; internet traffic is blocked/);
      // the tailnet and its subnet routes still work
      expect(connect('client', `${sub}.2`, 8080)).toBe('ok');
      // going out directly is one command away
      expect(net.cli('client', ['up', '--exit-node=']).status).toBe(0);
      await waitFor('the direct way', () => connect('client', `${inet}.2`, 8080, 500) === 'ok', CHANGE_CEILING_MS);
    } finally {
      ipIn('client', ['route', 'del', ...direct.slice(2)]);
      ipIn('inet', ['route', 'del', ...back.slice(2)]);
      expect((await admin().post(`/device/${routerId}/routes`, { routes: [`${sub}.0/24`, 'fd00:77::/64', '0.0.0.0/0', '::/0'] })).status).toBe(200);
    }
    await waitFor('the exit node offered again', () => net.status('client').peers.some((p) => p.name === 'router' && p.exitNodeOption), CHANGE_CEILING_MS);
  });

  it('takes the exit node by tailnet IP, keeps it on a later `agent up` without flags, and leaves nothing behind', async () => {
    const routerIp = net.status('router').self!.addresses.find((a) => !a.includes(':'))!;
    const up = net.cli('client', ['up', '--exit-node', routerIp, '--exit-node-allow-lan-access=false']);
    expect(up.status, up.stderr).toBe(0);
    expect(up.stdout).toContain(`route settings: --accept-routes --exit-node=${routerIp} (kept by later \`agent up\` runs and restarts`);
    await waitFor('the internet through the exit node', () => connect('client', `${inet}.2`, 8080, 500) === 'ok', CHANGE_CEILING_MS);
    expect(net.status('client').routing!.exitNode?.name).toBe('router');
    // `agent up` without flags keeps every setting (as `tailscale set` does), and says which
    const again = net.cli('client', ['up']);
    expect(again.stdout).toContain(`route settings: --accept-routes --exit-node=${routerIp}`);
    expect(net.status('client').routing!.exitNode?.name).toBe('router');
    expect(connect('client', `${inet}.2`, 8080)).toBe('ok');
    downLeavesNothing();
  });
});
