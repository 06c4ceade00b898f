// Two subnet routers in front of one network (issue 14), end to end: coord on a virtual LAN, clients
// ca and cb and routers ra and rb as agents in their own namespaces; the LAN host (no agent) sits on a
// second segment that both routers join. coord names one primary router per prefix for each client,
// moves it when the primary goes away, and `via` grants steer each client to its own router.
//
//   ca (.2) cb (.3) ─┐                                 ┌─ ra SUB.1 ─┐
//   coord (.1) ──────┼── bridge 198.18.N.0/24 ─ ra (.4) │            ├─ segment SUB.0/24 ─ lanhost SUB.2
//                    └──────────────────────── rb (.5) └─ rb SUB.3 ─┘
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '../coord/harness.js';
import { AgentLan, canRunE2e, createAuthKey, waitFor } from './harness.js';

const NAMES = ['ca', 'cb', 'ra', 'rb'] as const;
const CEILING_MS = 20_000;

describe.skipIf(!canRunE2e)('two subnet routers for one network: failover and via (agents in namespaces)', () => {
  const net = new AgentLan('routes-ha', NAMES);
  let coordUrl = '';
  let apiKey = '';
  let sub = '';
  const admin = () => api(coordUrl, apiKey);

  const head = () => `
    "tagOwners": {"tag:ca": ["alice@example.com"], "tag:cb": ["alice@example.com"], "tag:ra": ["alice@example.com"], "tag:rb": ["alice@example.com"]},
    "autoApprovers": {"routes": {"${sub}.0/24": ["tag:ra", "tag:rb"]}},`;
  const plain = () => `{${head()} "grants": [{"src": ["tag:ca", "tag:cb"], "dst": ["${sub}.0/24"], "ip": ["tcp:8080"]}]}`;
  const via = () => `{${head()} "grants": [
    {"src": ["tag:ca"], "dst": ["${sub}.0/24"], "ip": ["tcp:8080"], "via": ["tag:ra"]},
    {"src": ["tag:cb"], "dst": ["${sub}.0/24"], "ip": ["tcp:8080"], "via": ["tag:rb"]},
  ]}`;

  const connect = (from: string, ip: string, port: number, ms = 1000): string => {
    try {
      return net.lan.exec(from, process.execPath, [net.helper, 'connect', ip, String(port), String(ms)]).trim();
    } catch (err) {
      return String((err as { stdout: string }).stdout).trim();
    }
  };
  const reaches = (from: string) => connect(from, `${sub}.2`, 8080, 500) === 'ok';
  const inUse = (client: 'ca' | 'cb', router: 'ra' | 'rb') => net.status(client).peers.find((p) => p.name === router)?.routesInUse ?? [];

  beforeAll(async () => {
    net.setUp();
    sub = `198.19.${121 + Math.floor(Math.random() * 120)}`;
    net.lan.addSegment('seg', sub, 'sub0', [['ra', 1], ['lanhost', 2], ['rb', 3]]);
    apiKey = net.coord.createTailnet('example.com', 'alice@example.com');
    coordUrl = await net.startCoord();
    expect((await admin().post('/tailnet/-/acl', plain())).status).toBe(200);
    for (const n of NAMES) net.startAgent(n);
    await waitFor('agent sockets', () => NAMES.every((n) => existsSync(net.sock(n))), 15_000);
    const p = net.lan.spawn('lanhost', process.execPath, [net.helper, 'listen', '8080']);
    await new Promise<void>((resolve) => createInterface({ input: p.stdout! }).once('line', () => resolve()));
    const key = await createAuthKey(admin(), true);
    // ra first: the longest online router is the primary
    for (const [n, extra] of [['ra', ['--advertise-routes', `${sub}.0/24`]], ['rb', ['--advertise-routes', `${sub}.0/24`]], ['ca', ['--accept-routes']], ['cb', ['--accept-routes']]] as const) {
      const r = net.cli(n, ['up', '--coord', coordUrl, '--authkey', key, '--hostname', n, '--advertise-tags', `tag:${n}`, ...extra]);
      expect(r.status, r.stderr).toBe(0);
    }
  }, 90_000);

  afterAll(() => net.destroy());

  it('routes through the primary router only; the other offers the same prefix', async () => {
    await waitFor('ca reaches the LAN host', () => reaches('ca'), CEILING_MS);
    expect(net.status('ra').routing!.approvedRoutes).toEqual([`${sub}.0/24`]); // autoApprovers
    expect(inUse('ca', 'ra')).toEqual([`${sub}.0/24`]);
    const other = net.status('ca').peers.find((p) => p.name === 'rb')!;
    expect(other.routes).toEqual([`${sub}.0/24`]);
    expect(other.routesInUse).toEqual([]);
    expect(net.cli('ca', ['status']).stdout).toContain(`# rb offers: ${sub}.0/24\n`);
  });

  it('fails over to the other router when the primary goes down', async () => {
    const t0 = Date.now();
    await net.stopAgent('ra');
    await waitFor('ca through rb', () => inUse('ca', 'rb').length > 0 && reaches('ca'), CEILING_MS);
    console.log(`routes-ha e2e: failover to the second router took ${Date.now() - t0} ms (agent stop included)`);
    expect(inUse('ca', 'ra')).toEqual([]);
    net.startAgent('ra');
    await waitFor('ra back', () => existsSync(net.sock('ra')) && net.status('ra').backendState === 'Running', CEILING_MS);
    // the new primary keeps the prefix while it stays up: no flapping back
    await waitFor('ra listed again', () => (net.status('ca').peers.find((p) => p.name === 'ra')?.routes ?? []).length > 0, CEILING_MS);
    expect(inUse('ca', 'rb')).toEqual([`${sub}.0/24`]);
    expect(reaches('ca')).toBe(true);
  });

  it('via steers ca through ra and cb through rb for the same subnet', async () => {
    expect((await admin().post('/tailnet/-/acl', via())).status).toBe(200);
    await waitFor('ca through ra, cb through rb', () => inUse('ca', 'ra').length > 0 && inUse('cb', 'rb').length > 0, CEILING_MS);
    expect(inUse('ca', 'rb')).toEqual([]);
    expect(inUse('cb', 'ra')).toEqual([]);
    await waitFor('both reach the LAN host', () => reaches('ca') && reaches('cb'), CEILING_MS);
    // only its own router: without ra, ca has no way to the subnet, and cb is untouched
    await net.stopAgent('ra');
    await waitFor('ca without the subnet', () => !reaches('ca'), CEILING_MS);
    expect(inUse('ca', 'rb')).toEqual([]);
    expect(net.status('ca').peers.find((p) => p.name === 'rb')?.routes ?? []).toEqual([]);
    expect(reaches('cb')).toBe(true);
  });
});
