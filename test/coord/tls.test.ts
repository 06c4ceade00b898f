// coord serving HTTPS itself (--tls-cert/--tls-key), with a self-signed certificate made by openssl.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControlClient, generateMachineKey } from '../../agent/control/index.js';
import { DEFAULT_ROUTE_PREFS, Routing, type Resolver } from '../../agent/routing/index.js';
import { StateDir } from '../../agent/state.js';
import type { Netmap } from '../../wire/protocol.js';
import { Coord } from './harness.js';

let haveOpenssl = true;
try {
  execFileSync('openssl', ['version'], { stdio: 'ignore' });
} catch {
  haveOpenssl = false;
}

describe.skipIf(!haveOpenssl)('coord over TLS', () => {
  const coord = new Coord();
  let ca = '';

  beforeAll(async () => {
    const cert = join(coord.dir, 'cert.pem');
    const key = join(coord.dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=coord-test', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:coord.meshward.test', '-keyout', key, '-out', cert], { stdio: 'ignore' });
    ca = readFileSync(cert, 'utf8');
    await coord.start(['--tls-cert', cert, '--tls-key', key]);
  });
  afterAll(() => coord.cleanup());

  it('serves the admin and machine APIs over HTTPS', async () => {
    expect(coord.url.startsWith('https://127.0.0.1:')).toBe(true);
    const apiKey = coord.createTailnet('example.com', 'alice@example.com');
    const dispatcher = new Agent({ connect: { ca } });
    const newAuthKey = async () => {
      const r = await request(`${coord.url}/api/v2/tailnet/-/keys`, {
        method: 'POST', dispatcher, body: '{}', headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      });
      expect(r.statusCode).toBe(200);
      return ((await r.body.json()) as { key: string }).key;
    };
    const authKey = await newAuthKey();
    const client = new ControlClient(coord.url, generateMachineKey(), { ca });
    const reg = await client.register({ nodeKey: Buffer.alloc(32, 3).toString('base64'), hostname: 'tls-device', authKey });
    expect(reg.name).toBe('tls-device.example-com.meshward.internal');

    // Without trusting the certificate, the client refuses to talk. The key is fresh (single-use keys
    // are spent by the first registration), so the only reason left to refuse is the certificate.
    const unusedKey = await newAuthKey();
    const untrusting = new ControlClient(coord.url, generateMachineKey());
    const err = await untrusting.register({ nodeKey: Buffer.alloc(32, 4).toString('base64'), hostname: 'x', authKey: unusedKey }).then(
      () => undefined,
      (e: Error & { code?: string }) => e,
    );
    expect(err, 'registration without trusting the certificate must fail').toBeInstanceOf(Error);
    expect(err!.code).toBe('DEPTH_ZERO_SELF_SIGNED_CERT');
    // and the same key is still good for a client that trusts the certificate
    const later = await new ControlClient(coord.url, generateMachineKey(), { ca }).register({
      nodeKey: Buffer.alloc(32, 5).toString('base64'), hostname: 'tls-device-2', authKey: unusedKey,
    });
    expect(later.name).toBe('tls-device-2.example-com.meshward.internal');
    await dispatcher.close();
  });

  it('is reached by a host name only the routing knows while DNS is blocked (an exit node chosen and unavailable), the certificate still checked against the name', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mw-coordaddr-'));
    try {
      const apiKey = coord.createTailnet('names.example', 'bob@names.example');
      const dispatcher = new Agent({ connect: { ca } });
      const keyRes = await request(`${coord.url}/api/v2/tailnet/-/keys`, {
        method: 'POST', dispatcher, body: JSON.stringify({ capabilities: { devices: { create: { reusable: true, preauthorized: true } } } }),
        headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      });
      const authKey = ((await keyRes.body.json()) as { key: string }).key;
      await dispatcher.close();

      // DNS answers once (when the exit node is chosen), then is blocked: its server is on the internet.
      let dnsUp = true;
      const resolve: Resolver = async (name) => {
        if (!dnsUp) throw Object.assign(new Error(`getaddrinfo EAI_AGAIN ${name}`), { code: 'EAI_AGAIN' });
        if (name.endsWith('.meshward.test')) return ['127.0.0.1'];
        throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
      };
      const commands: string[] = [];
      const routing = new Routing(new StateDir(dir), () => {}, async (cmd, args, input) => {
        commands.push(`${cmd} ${args.join(' ')}\n${input}`);
        return { ok: true, stderr: '' };
      }, false, resolve);
      const user = { id: 'u1', loginName: 'bob@names.example', displayName: 'Bob' };
      const netmap: Netmap = {
        version: 1,
        self: {
          id: 'n1', name: 'me.names-example.meshward.internal', hostname: 'me', addresses: ['100.64.0.1/32'], user, tags: [],
          network: { name: 'names.example', domain: 'names-example.meshward.internal' }, nodeKey: Buffer.alloc(32, 1).toString('base64'),
          authorized: true, expires: null,
        },
        // the exit node is offline: internet traffic is blocked
        peers: [{
          id: 'n2', name: 'egress.names-example.meshward.internal', addresses: ['100.64.0.2/32'], nodeKey: Buffer.alloc(32, 2).toString('base64'),
          endpoints: [], allowedIPs: ['100.64.0.2/32', '0.0.0.0/0', '::/0'], exitNodeOption: true, exitRoutes: ['0.0.0.0/0', '::/0'],
          user, tags: [], os: 'linux', online: false, lastSeen: null, shared: false, quarantined: false,
        }],
        packetFilter: [],
        dns: { domain: 'names-example.meshward.internal', magicDNS: true, nameservers: [], searchPaths: [] },
      };
      await routing.update({
        netmap, prefs: { ...DEFAULT_ROUTE_PREFS, exitNode: 'egress' }, tun: 'mw0', localNets: [],
        bypassHosts: ['coord.meshward.test', 'elsewhere.meshward.test'], resolvers: ['8.8.8.8'],
      });
      const v4 = commands.find((c) => c.startsWith('ip -4'))!;
      expect(v4).toContain('route replace 0.0.0.0/0 dev mw0 table 52');
      expect(v4).toContain('rule add priority 5200 to 127.0.0.1/32 table main');
      dnsUp = false;

      const byName = coord.url.replace('127.0.0.1', 'coord.meshward.test');
      const reg = await new ControlClient(byName, generateMachineKey(), { ca, lookup: routing.lookup }).register({
        nodeKey: Buffer.alloc(32, 6).toString('base64'), hostname: 'by-name', authKey,
      });
      expect(reg.name).toBe('by-name.names-example.meshward.internal');

      // Without the routing's addresses the name needs DNS, which cannot answer.
      const noCache = await new ControlClient(byName, generateMachineKey(), { ca })
        .register({ nodeKey: Buffer.alloc(32, 7).toString('base64'), hostname: 'x', authKey })
        .then(() => undefined, (e: Error & { code?: string }) => e);
      expect(noCache?.code).toMatch(/^(ENOTFOUND|EAI_AGAIN)$/);
      // The same address under a name the certificate does not carry: refused.
      const wrongName = await new ControlClient(coord.url.replace('127.0.0.1', 'elsewhere.meshward.test'), generateMachineKey(), { ca, lookup: routing.lookup })
        .register({ nodeKey: Buffer.alloc(32, 8).toString('base64'), hostname: 'y', authKey })
        .then(() => undefined, (e: Error & { code?: string }) => e);
      expect(wrongName?.code).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
