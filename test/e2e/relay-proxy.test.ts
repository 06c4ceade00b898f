// coord behind a TLS reverse proxy, as operations.md deploys it: coord listens on loopback (plain HTTP),
// a proxy on the lab's WAN terminates TLS for https://WAN/mesh, strips the /mesh prefix and passes HTTP
// upgrades; STUN listens on the WAN address (`--stun-listen`), since coord's own listener is loopback.
// The agents trust the proxy's private CA with NODE_EXTRA_CA_CERTS. a's router lets no UDP out, so a and
// b talk through coord's relay, reached through the proxy; b's network allows UDP, and its netcheck
// finds its public endpoint with coord's STUN.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NetcheckReport } from '../../agent/connectivity/netcheck.js';
import type { AgentStatus } from '../../agent/localapi/types.js';
import { AGENT, Coord, waitFor } from '../../scripts/lab.js';
import { NatLab } from '../../scripts/natlab.js';
import { api } from '../coord/harness.js';
import { canRunE2e, createAuthKey, upAgentsIn } from './harness.js';

const POLICY = `{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}`;
const NAMES = ['a', 'b'] as const;
type Name = (typeof NAMES)[number];

// A TLS reverse proxy: node FILE HOST PORT CERT KEY UPSTREAM_HOST UPSTREAM_PORT PREFIX. Requests under
// PREFIX go upstream without it (bodies streamed both ways), with Host rewritten and X-Forwarded-* added;
// upgrades likewise, then bytes are piped. Prints "ready", and "upgrade PATH" for each upgrade.
const PROXY = `
const https = require('https'), http = require('http'), net = require('net'), fs = require('fs');
const [host, port, cert, key, upHost, upPort, prefix] = process.argv.slice(2);
const strip = (u) => (u.startsWith(prefix + '/') ? u.slice(prefix.length) : null);
const forwarded = (sock) => ({ host: upHost + ':' + upPort, 'x-forwarded-for': sock.remoteAddress, 'x-forwarded-proto': 'https' });
const server = https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) }, (req, res) => {
  const path = strip(req.url);
  if (!path) { res.writeHead(404); return res.end(); }
  const up = http.request({ host: upHost, port: Number(upPort), method: req.method, path, headers: { ...req.headers, ...forwarded(req.socket) } }, (r) => {
    res.writeHead(r.statusCode, r.headers);
    r.pipe(res);
  });
  up.on('error', () => res.destroy());
  res.on('close', () => up.destroy());
  req.pipe(up);
});
server.on('upgrade', (req, sock, head) => {
  const path = strip(req.url);
  if (!path) return sock.destroy();
  console.log('upgrade ' + req.url);
  const up = net.connect(Number(upPort), upHost, () => {
    const lines = [req.method + ' ' + path + ' HTTP/1.1'];
    for (let i = 0; i < req.rawHeaders.length; i += 2) if (!/^host$/i.test(req.rawHeaders[i])) lines.push(req.rawHeaders[i] + ': ' + req.rawHeaders[i + 1]);
    for (const [k, v] of Object.entries(forwarded(sock))) lines.push(k + ': ' + v);
    up.write(lines.join('\\r\\n') + '\\r\\n\\r\\n');
    if (head.length) up.write(head);
    up.pipe(sock);
    sock.pipe(up);
  });
  for (const s of [up, sock]) s.on('error', () => { up.destroy(); sock.destroy(); });
});
server.listen(Number(port), host, () => console.log('ready'));
`;

describe.skipIf(!canRunE2e)('coord behind a TLS reverse proxy with a path prefix', () => {
  let lab: NatLab;
  let dir = '';
  let proxy: ChildProcess | undefined;
  const upgrades: string[] = [];
  const coord = new Coord();
  const addr: Partial<Record<Name, string>> = {};
  let env: NodeJS.ProcessEnv = {};
  const sock = (n: Name) => join(dir, n, 'agent.sock');
  const cli = (n: Name, args: string[]) => lab.exec(n, process.execPath, [AGENT, ...args, '--socket', sock(n)], { env, timeoutMs: 30_000 });
  const status = (n: Name) => JSON.parse(cli(n, ['status', '--json'])) as AgentStatus;
  const netcheck = (n: Name) => JSON.parse(cli(n, ['netcheck', '--json'])) as NetcheckReport;
  const pings = (from: Name, to: Name) => lab.pingsOnce(from, addr[to]!);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mw-relayproxy-e2e-'));
    lab = NatLab.create();
    lab.addRouter('ra', 'endpoint-independent');
    lab.addRouter('rb', 'endpoint-independent');
    lab.addLanHost('ra', 'a', 10);
    lab.addLanHost('rb', 'b', 10);
    lab.exec('ra', 'nft', ['add rule inet home forward oifname "wan0" meta l4proto udp drop']);
    const wan = lab.wanGateway;
    const cert = join(dir, 'proxy.crt');
    const key = join(dir, 'proxy.key');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=meshward-proxy-test', '-addext', `subjectAltName=IP:${wan}`, '-keyout', key, '-out', cert], { stdio: 'ignore' });
    env = { ...process.env, NODE_EXTRA_CA_CERTS: cert };

    const proxyPort = 20_000 + Math.floor(Math.random() * 20_000);
    const stunPort = 40_000 + Math.floor(Math.random() * 20_000);
    const publicUrl = `https://${wan}:${proxyPort}/mesh`;
    const apiKey = coord.createTailnet('example.com', 'alice@example.com');
    await coord.start(['--listen', '127.0.0.1:0', '--public-url', publicUrl, '--stun-port', String(stunPort), '--stun-listen', wan]);
    const admin = api(coord.url, apiKey);
    expect((await admin.post('/tailnet/-/acl', POLICY)).status).toBe(200);

    const proxyFile = join(dir, 'proxy.cjs');
    writeFileSync(proxyFile, PROXY);
    proxy = spawn(process.execPath, [proxyFile, wan, String(proxyPort), cert, key, '127.0.0.1', new URL(coord.url).port, '/mesh'], { stdio: 'pipe' });
    await new Promise<void>((resolve, reject) => {
      proxy!.once('exit', (code) => reject(new Error(`the proxy exited with ${code}`)));
      createInterface({ input: proxy!.stdout! }).on('line', (l) => (l === 'ready' ? resolve() : upgrades.push(l)));
    });

    const authKey = await createAuthKey(admin, true);
    const envLab = { spawn: (n: string, cmd: string, args: string[]) => lab.spawn(n, cmd, args, { env }) };
    await upAgentsIn({ lab: envLab, dir, names: NAMES, sock, cli, status, coordUrl: publicUrl, authKey, addr, peers: 1 });
  }, 120_000);

  afterAll(async () => {
    proxy?.kill('SIGKILL');
    lab?.destroy();
    await coord.kill();
    await coord.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the agents talk through coord\'s relay, reached through the proxy', async () => {
    await waitFor('a ping a → b', () => pings('a', 'b'), 30_000);
    await waitFor('a ping b → a', () => pings('b', 'a'), 30_000);
    const p = status('a').peers[0]!;
    expect(p).toMatchObject({ path: 'relay', relay: 'coord', endpoint: null });
    // Both relay connections went through the proxy (its output is read while this test awaits).
    await waitFor('two relay upgrades through the proxy', () => upgrades.filter((u) => u === 'upgrade /mesh/relay').length >= 2);
  }, 90_000);

  it('netcheck: coord\'s STUN on --stun-listen gives b its public endpoint; a has no UDP; both time the relay', async () => {
    const rb = lab.host('rb').addr;
    // Each netcheck times the relay afresh (3 s at most): under load, ask again rather than fail.
    const b = await waitFor('b\'s netcheck to see UDP and time the relay', () => {
      const r = netcheck('b');
      return r.udp && r.preferredRelay ? r : undefined;
    }, 30_000);
    expect(b.publicEndpoints.some((e) => e.startsWith(`${rb}:`))).toBe(true);
    expect(b.mappingVariesByDest).toBe(false);
    const a = await waitFor('a\'s netcheck to time the relay', () => {
      const r = netcheck('a');
      return r.preferredRelay ? r : undefined;
    }, 30_000);
    expect(a).toMatchObject({ udp: false, publicEndpoints: [], mappingVariesByDest: null, preferredRelay: 'coord' });
    for (const r of [a, b]) {
      expect(r.relays).toEqual([{ name: 'coord', latencyMs: expect.any(Number) }]);
    }
  }, 60_000);
});
