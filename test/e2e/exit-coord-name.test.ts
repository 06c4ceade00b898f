// An agent whose coord URL has a host name, with a resolver on the internet, uses an exit node that
// becomes unavailable (internet traffic, DNS included, is then blocked) and coord restarts: the agent
// must reconnect to coord by the address its routing keeps out of the tunnel, with no DNS, and so learn
// that the exit node is back.
//
//   client (.2) ─┐                                   (resolver: inet's dnsmasq, knows coord.meshward.test)
//   coord (.1) ──┼── bridge 198.18.N.0/24 ── router (.3) ── inet NET.2 (the "internet": dnsmasq)
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { api } from '../coord/harness.js';
import { AgentLan, canRunE2e, createAuthKey, waitFor } from './harness.js';

const NAMES = ['client', 'router'] as const;
const CEILING_MS = 30_000;

describe.skipIf(!canRunE2e)('an exit node unavailable while coord (known by name) restarts', () => {
  const net = new AgentLan('coordname', NAMES);
  let apiKey = '';
  const inet = '203.0.113';
  const admin = () => api(net.coord.url, apiKey);

  beforeAll(async () => {
    net.setUp();
    net.lan.addHostBehind('inet', 'router', inet, 'wan0');
    // the client's system resolver is on the internet: reached directly (outside the tunnel) through
    // the router's LAN address, or through the exit node
    writeFileSync(`/etc/netns/${net.lan.host('client').ns}/resolv.conf`, `nameserver ${inet}.2\n`);
    net.lan.exec('client', 'ip', ['route', 'add', `${inet}.0/24`, 'via', net.lan.host('router').addr]);
    net.lan.exec('inet', 'ip', ['route', 'add', `${net.lan.subnet}.0/24`, 'via', `${inet}.1`]);
    net.lan.spawn('inet', 'dnsmasq', [
      '--keep-in-foreground', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', '--pid-file=', '--user=root',
      `--listen-address=${inet}.2`, '--bind-interfaces', `--host-record=coord.meshward.test,${net.lan.gateway}`,
    ]);
    apiKey = net.coord.createTailnet('example.com', 'alice@example.com');
    await net.startCoord();
    const policy = `{
      "tagOwners": {"tag:client": ["alice@example.com"], "tag:router": ["alice@example.com"]},
      "grants": [{"src": ["tag:client"], "dst": ["autogroup:internet"], "ip": ["tcp:8080"]}],
    }`;
    expect((await admin().post('/tailnet/-/acl', policy)).status).toBe(200);
    net.startAgent('client');
    net.startAgent('router');
    await waitFor('agent sockets', () => existsSync(net.sock('client')) && existsSync(net.sock('router')), 15_000);
  }, 60_000);

  afterAll(() => net.destroy());

  it('reconnects to coord without DNS and takes the exit node again when it is back', async () => {
    const key = await createAuthKey(admin(), true);
    const port = new URL(net.coord.url).port;
    const byName = `http://coord.meshward.test:${port}`;
    const r = net.cli('router', ['up', '--coord', net.coord.url, '--authkey', key, '--hostname', 'router', '--advertise-tags', 'tag:router', '--advertise-exit-node']);
    expect(r.status, r.stderr).toBe(0);
    const c = net.cli('client', ['up', '--coord', byName, '--authkey', key, '--hostname', 'client', '--advertise-tags', 'tag:client']);
    expect(c.status, c.stderr).toBe(0);
    const devices = (await admin().get('/tailnet/-/devices')).body.devices as Array<{ id: string; hostname: string }>;
    const routerId = devices.find((d) => d.hostname === 'router')!.id;
    const approve = (routes: string[]) => admin().post(`/device/${routerId}/routes`, { routes });
    expect((await approve(['0.0.0.0/0', '::/0'])).status).toBe(200);
    await waitFor('the exit node offered', () => net.status('client').peers.some((p) => p.name === 'router' && p.exitNodeOption), CEILING_MS);
    const up = net.cli('client', ['up', '--exit-node', 'router']);
    expect(up.status, up.stderr).toBe(0);
    await waitFor('the exit node in use', () => net.status('client').routing!.exitNode?.name === 'router', CEILING_MS);
    // coord is kept out of the tunnel by the address its name had
    expect(net.lan.exec('client', 'ip', ['rule'])).toContain(`to ${net.lan.gateway} lookup main`);

    // the exit node is withdrawn: internet traffic, the resolver's too, is blocked
    expect((await approve([])).status).toBe(200);
    await waitFor('the exit node withdrawn', () => net.status('client').routing!.exitNode === null, CEILING_MS);
    expect(net.lan.exec('client', 'ip', ['route', 'show', 'table', '52'])).toMatch(/^default dev /m);

    // coord restarts (same address): the client's stream breaks and must be reopened by name
    await net.coord.stop();
    await net.coord.start(['--listen', `${net.lan.gateway}:${port}`]);
    expect((await approve(['0.0.0.0/0', '::/0'])).status).toBe(200);
    await waitFor('the exit node in use again (learnt from coord after reconnecting)', () => net.status('client').routing!.exitNode?.name === 'router', CEILING_MS);
    expect(net.status('client').routing!.notes.join('\n')).not.toMatch(/not available/);
  }, 120_000);

  it('so does an agent restarted while the exit node is unavailable (it learns the address from its first connection)', async () => {
    const devices = (await admin().get('/tailnet/-/devices')).body.devices as Array<{ id: string; hostname: string }>;
    const routerId = devices.find((d) => d.hostname === 'router')!.id;
    const approve = (routes: string[]) => admin().post(`/device/${routerId}/routes`, { routes });
    expect((await approve([])).status).toBe(200);
    await waitFor('the exit node withdrawn', () => net.status('client').routing!.exitNode === null, CEILING_MS);
    await net.stopAgent('client');
    net.startAgent('client');
    await waitFor('the agent socket', () => existsSync(net.sock('client')), 15_000);
    await waitFor('internet traffic blocked again', () => /^default dev /m.test(net.lan.exec('client', 'ip', ['route', 'show', 'table', '52'])), CEILING_MS);
    const port = new URL(net.coord.url).port;
    await net.coord.stop();
    await net.coord.start(['--listen', `${net.lan.gateway}:${port}`]);
    expect((await approve(['0.0.0.0/0', '::/0'])).status).toBe(200);
    await waitFor('the exit node in use again after the restart', () => net.status('client').routing!.exitNode?.name === 'router', CEILING_MS);
  }, 120_000);
});
