// The metrics end to end: coord (`--metrics-listen`) and two agents in namespaces, one of them also
// with `agent daemon --metrics-listen`. Counters move with traffic, drops, handshakes, DNS queries and
// the netmap stream; both endpoints' text passes promtool.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '../coord/harness.js';
import { promtoolProblems, sample } from '../prometheus.js';
import { AgentLan, canRunE2e, createAuthKey, waitFor } from './harness.js';

const NAMES = ['a', 'b'] as const;

const POLICY = `{
  "tagOwners": {"tag:a": ["alice@example.com"], "tag:b": ["alice@example.com"]},
  "grants": [{"src": ["tag:a"], "dst": ["tag:b"], "ip": ["tcp:22"]}],
}`;

describe.skipIf(!canRunE2e)('metrics end to end (coord + two agents in namespaces)', () => {
  const net = new AgentLan('metrics', NAMES);
  let coordUrl = '';
  let coordMetrics = '';
  let apiKey = '';

  /** `agent metrics` in n's namespace. */
  const agentMetrics = (n: (typeof NAMES)[number]) => {
    const r = net.cli(n, ['metrics']);
    expect(r.status, r.stderr).toBe(0);
    return r.stdout;
  };

  beforeAll(async () => {
    net.setUp();
    apiKey = net.coord.createTailnet('example.com', 'alice@example.com');
    await net.coord.start(['--listen', `${net.lan.gateway}:0`, '--metrics-listen', '127.0.0.1:0']);
    coordUrl = net.coord.url;
    coordMetrics = /"metrics":"([^"]+)"/.exec(net.coord.stdout)![1]!;
    expect((await api(coordUrl, apiKey).post('/tailnet/-/acl', POLICY)).status).toBe(200);
    net.startAgent('a', ['--metrics-listen', '127.0.0.1:9101']);
    net.startAgent('b');
    await waitFor('agent sockets', () => NAMES.every((n) => net.cli(n, ['status', '--json']).status === 0));
  }, 60_000);

  afterAll(() => net.destroy());

  it('serves the agent’s metrics before `agent up` (nothing running yet)', () => {
    const text = agentMetrics('b');
    expect(promtoolProblems(text)).toBe('');
    expect(sample(text, 'meshward_agent_coord_connected')).toBe(0);
    expect(sample(text, 'meshward_agent_packets_total', { direction: 'in' })).toBe(0);
    expect(sample(text, 'meshward_agent_netmap_present')).toBe(0);
  });

  it('counts packets, drops by reason and direction, handshakes, peers, DNS and the coord stream', async () => {
    const key = await createAuthKey(api(coordUrl, apiKey), true);
    for (const n of NAMES) {
      const r = net.cli(n, ['up', '--coord', coordUrl, '--authkey', key, '--hostname', n, '--advertise-tags', `tag:${n}`]);
      expect(r.status, r.stderr).toBe(0);
      net.addr[n] = net.status(n).self!.addresses[0];
    }
    await waitFor('peers', () => net.status('a').peers.length === 1 && net.status('b').peers.length === 1);
    await net.listen('b', [22, 80]);
    const before = agentMetrics('b');
    expect(net.connect('a', 'b', 22)).toBe('ok');
    expect(net.connect('a', 'b', 80, 800)).toMatch(/^fail/);
    expect(net.cli('a', ['dns', 'query', 'b']).status).toBe(0);

    const b = agentMetrics('b');
    expect(promtoolProblems(b)).toBe('');
    const moved = (name: string, labels: Record<string, string> = {}) => (sample(b, name, labels) ?? 0) - (sample(before, name, labels) ?? 0);
    expect(moved('meshward_agent_packets_total', { direction: 'in' })).toBeGreaterThanOrEqual(4);
    expect(moved('meshward_agent_packets_total', { direction: 'out' })).toBeGreaterThanOrEqual(2);
    expect(moved('meshward_agent_filter_accepted_total', { direction: 'in' })).toBeGreaterThanOrEqual(3);
    // a → b:80 is refused by b's filter: dropped on the way in, for want of a rule.
    expect(moved('meshward_agent_filter_drops_total', { reason: 'no_rule', direction: 'in' })).toBeGreaterThanOrEqual(1);
    expect(moved('meshward_agent_filter_drops_total', { reason: 'no_rule', direction: 'out' })).toBe(0);
    expect(moved('meshward_agent_bytes_total', { direction: 'in' })).toBeGreaterThan(0);
    expect(sample(b, 'meshward_agent_wireguard_handshakes_total', { result: 'completed' })).toBeGreaterThanOrEqual(1);
    expect(sample(b, 'meshward_agent_peers', { path: 'direct' })).toBe(1);
    expect(sample(b, 'meshward_agent_coord_connected')).toBe(1);
    expect(sample(b, 'meshward_agent_coord_connects_total')).toBeGreaterThanOrEqual(1);
    expect(sample(b, 'meshward_agent_netmap_present')).toBe(1);
    expect(sample(b, 'meshward_agent_netmap_version_age_seconds')).toBeGreaterThanOrEqual(0);
    expect(sample(b, 'meshward_agent_netmap_version_age_seconds')).toBeLessThan(300);
    expect(b).not.toContain(net.addr.a!);

    // a, over its own listener (inside its namespace) as well as the local API.
    const script = "fetch('http://127.0.0.1:9101/metrics').then(async (r) => process.stdout.write(r.status + '\\n' + (await r.text())))";
    const overHttp = net.lan.exec('a', process.execPath, ['-e', script]);
    expect(overHttp.split('\n')[0]).toBe('200');
    const a = overHttp.slice(overHttp.indexOf('\n') + 1);
    expect(promtoolProblems(a)).toBe('');
    expect(sample(a, 'meshward_agent_wireguard_handshakes_total', { result: 'initiated' })).toBeGreaterThanOrEqual(1);
    expect(sample(a, 'meshward_agent_dns_queries_total', { outcome: 'local' })).toBeGreaterThanOrEqual(1);
    expect(sample(agentMetrics('a'), 'meshward_agent_dns_queries_total', { outcome: 'local' })).toBeGreaterThanOrEqual(1);

    // coord: both devices connected, their registrations and streams counted by route.
    const c = await (await fetch(coordMetrics)).text();
    expect(promtoolProblems(c)).toBe('');
    expect(sample(c, 'meshward_coord_devices', { tailnet: 'example.com', state: 'connected' })).toBe(2);
    expect(sample(c, 'meshward_coord_netmap_streams_open')).toBe(2);
    expect(sample(c, 'meshward_coord_http_requests_total', { route: '/machine/register', status: '200' })).toBe(2);
  });

  it('counts a lost coord stream and the reconnect', async () => {
    const before = sample(agentMetrics('b'), 'meshward_agent_coord_connects_total')!;
    await net.coord.stop();
    await waitFor('b to notice', () => sample(agentMetrics('b'), 'meshward_agent_coord_connected') === 0, 20_000);
    await net.coord.start(['--listen', net.coord.url.replace(/^http:\/\//, '')]);
    await waitFor('b to reconnect', () => sample(agentMetrics('b'), 'meshward_agent_coord_connected') === 1, 30_000);
    const after = agentMetrics('b');
    expect(sample(after, 'meshward_agent_coord_connects_total')).toBe(before + 1);
    expect(sample(after, 'meshward_agent_coord_reconnects_total')).toBeGreaterThanOrEqual(1);
  }, 60_000);
});
