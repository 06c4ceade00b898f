// Several relays, end to end in a NAT lab (scripts/natlab.ts): coord (with its relay and STUN) on the WAN
// gateway, a standalone `coord relay` on a WAN host, and two agent daemons behind home routers: a behind
// a symmetric NAT, b behind an endpoint-independent one. No direct path can work between them (a's
// mappings are random; the peers report only LAN endpoints), so they talk through relays. A TCP delay
// line in front of each relay (this kernel has no netem) slows what one router's devices send to it:
// coord is nearer to a and the standalone relay nearer to b, each picks that one as its home, and each
// reaches the other through the OTHER's home relay. The standalone
// relay refuses an unregistered key and a device removed from coord. `agent netcheck --json` sees UDP,
// the router's public address, and whether the NAT's mapping varies by destination.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NetcheckReport } from '../../agent/connectivity/netcheck.js';
import { RelayClient } from '../../agent/connectivity/relay-client.js';
import type { AgentStatus } from '../../agent/localapi/types.js';
import { AGENT, COORD, Coord, coordCli, waitFor, writeNetHelper } from '../../scripts/lab.js';
import { NatLab, type NatRouter } from '../../scripts/natlab.js';
import { X25519Key } from '../../wire/x25519.js';
import { api } from '../coord/harness.js';
import { canRunE2e, createAuthKey, upAgentsIn } from './harness.js';

const POLICY = `{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}`;
const NAMES = ['a', 'b'] as const;
type Name = (typeof NAMES)[number];
const STUN_PORT = 3478;
const DELAY_MS = 80;

// A TCP delay line: node FILE LISTEN_HOST LISTEN_PORT TARGET_HOST TARGET_PORT DELAY_MS SLOW_SOURCE...
// Bytes from a client whose address is a SLOW_SOURCE reach the target DELAY_MS late (in order); prints
// "ready" once it listens.
const DELAY_LINE = `
const net = require('net');
const [lh, lp, th, tp, delay, ...slow] = process.argv.slice(2);
net.createServer((c) => {
  const d = slow.includes((c.remoteAddress || '').replace(/^::ffff:/, '')) ? Number(delay) : 0;
  const u = net.connect(Number(tp), th);
  const later = (f) => (d ? setTimeout(f, d) : f());
  c.on('data', (b) => later(() => u.write(b)));
  c.on('end', () => later(() => u.end()));
  u.on('data', (b) => c.write(b));
  u.on('end', () => c.end());
  for (const s of [c, u]) s.on('error', () => { c.destroy(); u.destroy(); });
}).listen(Number(lp), lh, () => console.log('ready'));
`;

describe.skipIf(!canRunE2e)('two relays, two agents with different home relays', () => {
  let lab: NatLab;
  let dir = '';
  let helper = '';
  const coord = new Coord();
  let relayProc: ChildProcess | undefined;
  let relayArgs: string[] = [];
  let relayUrl = '';
  let admin: ReturnType<typeof api>;
  const addr: Partial<Record<Name, string>> = {};
  const sock = (n: Name) => join(dir, n, 'agent.sock');
  const cli = (n: Name, args: string[]) => lab.exec(n, process.execPath, [AGENT, ...args, '--socket', sock(n)], { timeoutMs: 30_000 });
  const status = (n: Name) => JSON.parse(cli(n, ['status', '--json'])) as AgentStatus;
  const netcheck = (n: Name) => JSON.parse(cli(n, ['netcheck', '--json'])) as NetcheckReport;

  const children: ChildProcess[] = [];

  /** Waits for a child's first line of output that contains `what`. */
  function lineOf(child: ChildProcess, what: string, name: string): Promise<void> {
    let err = '';
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    return new Promise<void>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`${name} exited with ${code}: ${err}`)));
      createInterface({ input: child.stdout! }).on('line', (l) => l.includes(what) && resolve());
    });
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mw-relaymap-e2e-'));
    helper = writeNetHelper(dir);
    lab = NatLab.create();
    lab.addRouter('ra', 'symmetric');
    lab.addRouter('rb', 'endpoint-independent');
    lab.addLanHost('ra', 'a', 10);
    lab.addLanHost('rb', 'b', 10);
    const relayHost = lab.addWanHost('relay2');
    const delayLine = join(dir, 'delay-line.js');
    writeFileSync(delayLine, DELAY_LINE);
    const ra = lab.host('ra').addr;
    const rb = lab.host('rb').addr;

    // coord, with its relay behind a delay line that slows b (coord's relay URL is its public URL's).
    const coordProxyPort = 20_000 + Math.floor(Math.random() * 20_000);
    const coordPublic = `http://${lab.wanGateway}:${coordProxyPort}`;
    const apiKey = coord.createTailnet('example.com', 'alice@example.com');
    await coord.start(['--listen', `${lab.wanGateway}:0`, '--stun-port', String(STUN_PORT), '--public-url', coordPublic]);
    const coordLine = spawn(process.execPath, [delayLine, lab.wanGateway, String(coordProxyPort), lab.wanGateway, new URL(coord.url).port, String(DELAY_MS), rb], { stdio: 'pipe' });
    children.push(coordLine);
    await lineOf(coordLine, 'ready', 'the delay line in front of coord');
    admin = api(coord.url, apiKey);
    expect((await admin.post('/tailnet/-/acl', POLICY)).status).toBe(200);

    // The standalone relay, registered with coord before it starts, behind a delay line that slows a.
    relayUrl = `ws://${relayHost.addr}:8443/relay`;
    const added = coordCli(['relays', 'add', 'relay2', '--url', relayUrl, '--stun-port', String(STUN_PORT), '--db', coord.db, '--json']);
    expect(added.status, added.stderr).toBe(0);
    const secretFile = join(dir, 'relay2.secret');
    writeFileSync(secretFile, (JSON.parse(added.stdout) as { secret: string }).secret, { mode: 0o600 });
    relayArgs = [COORD, 'relay', '--coord', coord.url, '--secret-file', secretFile, '--listen', '127.0.0.1:8444', '--stun-port', String(STUN_PORT), '--stun-listen', relayHost.addr, '--refresh', '1s', '--log-level', 'warn'];
    relayProc = lab.spawn('relay2', process.execPath, relayArgs);
    await lineOf(relayProc, '"listening"', 'coord relay');
    const relayLine = lab.spawn('relay2', process.execPath, [delayLine, relayHost.addr, '8443', '127.0.0.1', '8444', String(DELAY_MS), ra]);
    await lineOf(relayLine, 'ready', 'the delay line in front of relay2');

    const key = await createAuthKey(admin, true);
    await upAgentsIn({ lab, dir, names: NAMES, sock, cli, status, coordUrl: coord.url, authKey: key, addr, peers: 1 });
  }, 120_000);

  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    lab?.destroy();
    await coord.kill();
    await coord.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('each device picks the nearer relay as its home and reports it', async () => {
    await waitFor('homes: a on coord, b on relay2', () => {
      const [sa, sb] = [status('a'), status('b')];
      return sa.homeRelay?.name === 'coord' && sa.homeRelay.connected && sb.homeRelay?.name === 'relay2' && sb.homeRelay.connected;
    }, 20_000);
    // coord has them, and sends them to the peers (the admin API lists the devices; the netmap is the agent's).
    const devices = (await admin.get('/tailnet/-/devices')).body.devices as { hostname: string }[];
    expect(devices.map((d) => d.hostname).sort()).toEqual(['a', 'b']);
  }, 30_000);

  it("they talk through each other's home relay", async () => {
    const listener = lab.spawn('b', process.execPath, [helper, 'listen', '7000']);
    await new Promise<void>((resolve) => createInterface({ input: listener.stdout! }).once('line', () => resolve()));
    await waitFor('a → b:7000', () => {
      try {
        return lab.exec('a', process.execPath, [helper, 'connect', addr.b!, '7000', '2000']).trim() === 'ok';
      } catch {
        return false;
      }
    }, 30_000);
    expect(lab.exec('b', 'ping', ['-c', '3', '-i', '0.2', '-W', '2', addr.a!])).toMatch(/3 received/);
    const pa = status('a').peers[0]!;
    const pb = status('b').peers[0]!;
    expect(pa).toMatchObject({ path: 'relay', relay: 'relay2', endpoint: null }); // b's home
    expect(pb).toMatchObject({ path: 'relay', relay: 'coord', endpoint: null }); // a's home
    expect(cli('a', ['status'])).toContain('relay "relay2"');
  }, 60_000);

  it('agent netcheck --json: UDP, the router as public endpoint, and the NAT type', async () => {
    const ra = lab.host('ra') as NatRouter;
    const rb = lab.host('rb') as NatRouter;
    // Each netcheck times every relay afresh (3 s at most each): under load, ask again rather than fail.
    const timedAll = (n: Name) => waitFor(`a netcheck on ${n} that timed both relays`, () => {
      const r = netcheck(n);
      return r.relays.length === 2 && r.relays.every((x) => x.latencyMs !== null) ? r : undefined;
    }, 30_000);
    const na = await timedAll('a');
    expect(na.udp).toBe(true);
    expect(na.mappingVariesByDest).toBe(true); // symmetric: a new port per destination
    expect(na.publicEndpoints.length).toBeGreaterThan(1);
    for (const e of na.publicEndpoints) expect(e.startsWith(`${ra.addr}:`)).toBe(true);
    expect(na.relays.map((r) => r.name)).toEqual(['coord', 'relay2']);
    expect(na.relays.every((r) => r.latencyMs !== null)).toBe(true);
    expect(na.preferredRelay).toBe('coord');

    const nb = await timedAll('b');
    const bPort = status('b').interface!.listenPort;
    expect(nb).toMatchObject({ udp: true, mappingVariesByDest: false, preferredRelay: 'relay2' });
    expect(nb.publicEndpoints).toEqual([`${rb.addr}:${bPort}`]); // masquerade keeps the port
    const text = cli('b', ['netcheck']);
    expect(text).toContain(`IPv4: yes, ${rb.addr}:${bPort}`);
    expect(text).toContain('Nearest relay: relay2');
  }, 60_000);

  it('survives a restart of the standalone relay: both directions work again through it', async () => {
    const aToB = () => {
      try {
        return lab.exec('a', process.execPath, [helper, 'connect', addr.b!, '7000', '2000']).trim() === 'ok';
      } catch {
        return false;
      }
    };
    const exited = new Promise((resolve) => relayProc!.once('exit', resolve));
    relayProc!.kill('SIGKILL');
    await exited;
    relayProc = lab.spawn('relay2', process.execPath, relayArgs);
    await lineOf(relayProc, '"listening"', 'the restarted coord relay');
    // b's home is relay2 (or coord, if a netcheck ran while relay2 was down): connected again either way.
    await waitFor("b's home relay to reconnect", () => status('b').homeRelay?.connected === true, 30_000);
    await waitFor('a → b:7000 after the restart', aToB, 30_000);
    expect(lab.exec('b', 'ping', ['-c', '3', '-i', '0.2', '-W', '2', addr.a!])).toMatch(/3 received/);
    // a reaches b through b's home (which may have moved while relay2 was down, and back: a's netmap follows).
    await waitFor("a to reach b through b's home relay", () => {
      const pa = status('a').peers[0];
      return pa?.path === 'relay' && pa.endpoint === null && pa.relay === status('b').homeRelay?.name;
    }, 30_000);
  }, 90_000);

  it('the standalone relay refuses an unregistered key, and a device removed from coord', async () => {
    // From the relay's own WAN, a stranger's key (this process is in the root namespace, on the WAN bridge).
    const stranger = new RelayClient({ url: relayUrl, key: X25519Key.generate(), onPacket: () => {}, minBackoffMs: 100, maxBackoffMs: 500 }).start();
    try {
      await waitFor('a refusal', () => stranger.lastError.startsWith('refused'), 10_000);
      expect(stranger.connected).toBe(false);
    } finally {
      stranger.close();
    }
    // b is connected to relay2 (its home). Removed at coord, its key is refused there within seconds.
    const bKey = new X25519Key(Buffer.from((JSON.parse(readFileSync(join(dir, 'b', 'state', 'node.json'), 'utf8')) as { privateKey: string }).privateKey, 'base64'));
    const devices = (await admin.get('/tailnet/-/devices')).body.devices as { id: string; hostname: string }[];
    const b = devices.find((d) => d.hostname === 'b')!;
    expect((await admin.del(`/device/${b.id}`)).status).toBe(200);
    const removed = new RelayClient({ url: relayUrl, key: bKey, onPacket: () => {}, minBackoffMs: 100, maxBackoffMs: 500 }).start();
    try {
      await waitFor("b's key refused by relay2", () => removed.lastError.startsWith('refused'), 15_000);
      // Refused at connect, or (when relay2 still held coord's earlier answer) cut at its next re-check.
      expect(removed.lastError).toMatch(/(not|no longer) authorized/);
      expect(removed.connected).toBe(false);
    } finally {
      removed.close();
    }
  }, 60_000);
});
