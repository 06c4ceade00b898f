// A subnet router that goes silent without closing its connection (its network cut, as by a power loss or
// a partition) — not one whose agent stops. Its TCP connection to coord stays "established" on coord's
// side; only TCP_USER_TIMEOUT on the netmap stream (coord/api/machine.ts) and the keepalives that give the
// kernel something to time out make coord notice, mark it offline and move its prefix to the other router.
// Without that, TCP retransmits for ~15 minutes and the client routes the subnet into a black hole.
// coord serves HTTPS here (the agents trust its self-signed certificate through NODE_EXTRA_CA_CERTS):
// the timeout sits on the TCP socket under TLS; plain HTTP uses the same socket (native/sockopt.test.ts).
//
//   ca (.2) ─────┐                              ┌─ ra SUB.1 ─┐
//   coord (.1) ──┼── bridge 198.18.N.0/24 ─ ra (.3)           ├─ segment SUB.0/24 ─ lanhost SUB.2
//                └──────────────────────── rb (.4) └─ rb SUB.3 ─┘
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Agent, getGlobalDispatcher, setGlobalDispatcher } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '../coord/harness.js';
import { AgentLan, canRunE2e, createAuthKey, waitFor } from './harness.js';

const NAMES = ['ca', 'ra', 'rb'] as const;
const SETUP_CEILING_MS = 20_000;
// coord's promise: a keepalive every 15 s, unacknowledged for 15 s → dropped; so within 30 s. Generous
// for a loaded machine, and far below the ~15 minutes TCP takes on its own.
const FAILOVER_CEILING_MS = 60_000;

describe.skipIf(!canRunE2e)('a subnet router whose network is cut (its agent still running) fails over', () => {
  const net = new AgentLan('silent-router', NAMES);
  let coordUrl = '';
  let apiKey = '';
  let sub = '';
  const admin = () => api(coordUrl, apiKey);
  const extraCa = process.env.NODE_EXTRA_CA_CERTS;
  const dispatcher = getGlobalDispatcher();

  const reaches = (): boolean => {
    try {
      return net.lan.exec('ca', process.execPath, [net.helper, 'connect', `${sub}.2`, '8080', '500']).trim() === 'ok';
    } catch {
      return false;
    }
  };
  const inUse = (router: 'ra' | 'rb') => net.status('ca').peers.find((p) => p.name === router)?.routesInUse ?? [];
  const onlineInApi = async (name: string): Promise<boolean | undefined> => {
    const r = await admin().get('/tailnet/-/devices');
    return (r.body.devices as { hostname: string; connectedToControl: boolean }[]).find((d) => d.hostname === name)?.connectedToControl;
  };

  beforeAll(async () => {
    net.setUp();
    sub = `198.19.${121 + Math.floor(Math.random() * 120)}`;
    net.lan.addSegment('seg', sub, 'sub0', [['ra', 1], ['lanhost', 2], ['rb', 3]]);
    apiKey = net.coord.createTailnet('example.com', 'alice@example.com');
    const cert = join(net.dir, 'coord-cert.pem');
    const certKey = join(net.dir, 'coord-key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=coord-test', '-addext', `subjectAltName=IP:${net.lan.gateway}`, '-keyout', certKey, '-out', cert], { stdio: 'ignore' });
    // The agents (children, started below) and this process's API calls trust coord's certificate.
    process.env.NODE_EXTRA_CA_CERTS = cert;
    setGlobalDispatcher(new Agent({ connect: { ca: readFileSync(cert) } }));
    await net.coord.start(['--listen', `${net.lan.gateway}:0`, '--tls-cert', cert, '--tls-key', certKey]);
    coordUrl = net.coord.url;
    expect(coordUrl.startsWith('https://')).toBe(true);
    const policy = `{
      "tagOwners": {"tag:ca": ["alice@example.com"], "tag:ra": ["alice@example.com"], "tag:rb": ["alice@example.com"]},
      "autoApprovers": {"routes": {"${sub}.0/24": ["tag:ra", "tag:rb"]}},
      "grants": [{"src": ["tag:ca"], "dst": ["${sub}.0/24"], "ip": ["tcp:8080"]}]}`;
    expect((await admin().post('/tailnet/-/acl', policy)).status).toBe(200);
    for (const n of NAMES) net.startAgent(n);
    await waitFor('agent sockets', () => NAMES.every((n) => existsSync(net.sock(n))), 15_000);
    const p = net.lan.spawn('lanhost', process.execPath, [net.helper, 'listen', '8080']);
    await new Promise<void>((resolve) => createInterface({ input: p.stdout! }).once('line', () => resolve()));
    const key = await createAuthKey(admin(), true);
    // ra first: the longest online router is the primary
    for (const [n, extra] of [['ra', ['--advertise-routes', `${sub}.0/24`]], ['rb', ['--advertise-routes', `${sub}.0/24`]], ['ca', ['--accept-routes']]] as const) {
      const r = net.cli(n, ['up', '--coord', coordUrl, '--authkey', key, '--hostname', n, '--advertise-tags', `tag:${n}`, ...extra]);
      expect(r.status, r.stderr).toBe(0);
    }
  }, 90_000);

  afterAll(async () => {
    await net.destroy();
    setGlobalDispatcher(dispatcher);
    if (extraCa === undefined) delete process.env.NODE_EXTRA_CA_CERTS;
    else process.env.NODE_EXTRA_CA_CERTS = extraCa;
  });

  it('coord marks the cut router offline and the client reaches the LAN host through the other', async () => {
    await waitFor('ca reaches the LAN host through ra', () => inUse('ra').length > 0 && reaches(), SETUP_CEILING_MS);
    expect(await onlineInApi('ra')).toBe(true);

    // Everything in and out of ra's namespace is dropped: no FIN, no RST reaches coord; the agent runs on.
    net.lan.exec('ra', 'nft', ['-f', '-'], {
      input: 'table inet mwcut {\n  chain cutin { type filter hook input priority -300; policy drop; }\n  chain cutout { type filter hook output priority -300; policy drop; }\n}\n',
    });
    const t0 = Date.now();
    await waitFor('coord marks ra offline', async () => (await onlineInApi('ra')) === false, FAILOVER_CEILING_MS);
    const offlineMs = Date.now() - t0;
    await waitFor('ca through rb', () => inUse('rb').length > 0 && reaches(), FAILOVER_CEILING_MS - offlineMs);
    const failoverMs = Date.now() - t0;
    console.log(`silent-router e2e: coord marked the cut router offline after ${offlineMs} ms; the client reached the LAN host through the other router after ${failoverMs} ms`);
    expect(inUse('ra')).toEqual([]);
    expect(net.status('ra').self).toBeTruthy(); // its agent never stopped: only its network went away
  }, FAILOVER_CEILING_MS + 30_000);
});
