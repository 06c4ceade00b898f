// Connectivity through coord's relay, end to end: real coord on the WAN of a NAT lab (scripts/natlab.ts),
// real agent daemons each behind its own home router in network namespaces. Behind two symmetric NATs
// (masquerade random) no UDP path can work, and one router drops all outgoing UDP on top: the agents
// still hold a TCP connection through the relay on coord's HTTP listener.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentStatus } from '../../agent/localapi/types.js';
import { AGENT, Coord, waitFor, writeNetHelper } from '../../scripts/lab.js';
import { NatLab } from '../../scripts/natlab.js';
import { RelayClient } from '../../agent/connectivity/relay-client.js';
import { relayUrlOf } from '../../coord/server.js';
import { X25519Key } from '../../wire/x25519.js';
import { api } from '../coord/harness.js';
import { sample } from '../prometheus.js';
import { canRunE2e, createAuthKey, upAgentsIn } from './harness.js';

const POLICY = `{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}`;
const NAMES = ['a', 'b'] as const;
type Name = (typeof NAMES)[number];

describe.skipIf(!canRunE2e)('agents behind symmetric NATs, UDP blocked, through the relay', () => {
  let lab: NatLab;
  let dir = '';
  let helper = '';
  const coord = new Coord();
  const addr: Partial<Record<Name, string>> = {};
  const sock = (n: Name) => join(dir, n, 'agent.sock');
  const cli = (n: Name, args: string[]) => lab.exec(n, process.execPath, [AGENT, ...args, '--socket', sock(n)]);
  const status = (n: Name) => JSON.parse(cli(n, ['status', '--json'])) as AgentStatus;
  let admin: ReturnType<typeof api>;
  const pings = (from: Name, to: Name) => lab.pingsOnce(from, addr[to]!);
  /** coord's metrics (the URL of its latest run: a restart picks a new metrics port). */
  const metrics = async () => {
    const urls = [...coord.stdout.matchAll(/"metrics":"([^"]+)"/g)];
    return (await fetch(urls[urls.length - 1]![1]!)).text();
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mw-relay-e2e-'));
    helper = writeNetHelper(dir);
    lab = NatLab.create();
    lab.addRouter('ra', 'symmetric');
    lab.addRouter('rb', 'symmetric');
    lab.addLanHost('ra', 'a', 10);
    lab.addLanHost('rb', 'b', 10);
    // b's router lets no UDP out at all (a network that allows only TCP).
    lab.exec('rb', 'nft', ['add rule inet home forward oifname "wan0" meta l4proto udp drop']);
    const apiKey = coord.createTailnet('example.com', 'alice@example.com');
    await coord.start(['--listen', `${lab.wanGateway}:0`, '--metrics-listen', '127.0.0.1:0']);
    admin = api(coord.url, apiKey);
    expect((await admin.post('/tailnet/-/acl', POLICY)).status).toBe(200);
    const key = await createAuthKey(admin, true);
    await upAgentsIn({ lab, dir, names: NAMES, sock, cli, status, coordUrl: coord.url, authKey: key, addr, peers: 1 });
  }, 90_000);

  afterAll(async () => {
    lab?.destroy();
    await coord.kill();
    await coord.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a TCP connection from a to b works, and carries data both ways', async () => {
    const listener = lab.spawn('b', process.execPath, [helper, 'listen', '7000']);
    await new Promise<void>((resolve) => createInterface({ input: listener.stdout! }).once('line', () => resolve()));
    const answer = await waitFor('a connection a → b:7000 through the relay', () => {
      try {
        const out = lab.exec('a', process.execPath, [helper, 'connect', addr.b!, '7000', '2000']).trim();
        return out === 'ok' ? out : false;
      } catch {
        return false;
      }
    }, 30_000);
    expect(answer).toBe('ok');
    // And the other way, and ICMP.
    const l2 = lab.spawn('a', process.execPath, [helper, 'listen', '7001']);
    await new Promise<void>((resolve) => createInterface({ input: l2.stdout! }).once('line', () => resolve()));
    expect(lab.exec('b', process.execPath, [helper, 'connect', addr.a!, '7001', '5000']).trim()).toBe('ok');
    expect(lab.exec('a', 'ping', ['-c', '3', '-i', '0.2', '-W', '2', addr.b!])).toMatch(/3 received/);
  }, 60_000);

  it('`agent status` shows the path: relay "coord", no direct endpoint', () => {
    for (const n of NAMES) {
      const p = status(n).peers[0]!;
      expect(p).toMatchObject({ path: 'relay', relay: 'coord', endpoint: null });
      expect(cli(n, ['status'])).toContain('active; relay "coord"');
    }
  });

  it('survives a restart of coord and its relay (same port and state): the pair pings again', async () => {
    expect(pings('a', 'b')).toBe(true);
    const port = new URL(coord.url).port;
    await coord.kill(); // a crash: nobody says goodbye
    await new Promise((r) => setTimeout(r, 500));
    expect(pings('a', 'b')).toBe(false); // the only path between them is gone
    await coord.start(['--listen', `${lab.wanGateway}:${port}`, '--metrics-listen', '127.0.0.1:0']);
    await waitFor('a ping a → b through the restarted relay', () => pings('a', 'b'), 60_000);
    await waitFor('a ping b → a', () => pings('b', 'a'), 30_000);
    expect(sample(await metrics(), 'meshward_relay_clients')).toBe(2);
  }, 120_000);

  it('refuses a key no device holds, and a device an admin removed', async () => {
    const stranger = new RelayClient({ url: relayUrlOf(coord.url), key: X25519Key.generate(), onPacket: () => {}, minBackoffMs: 10_000 }).start();
    try {
      // "refused: not authorized" from the refusal frame, then "4003 not authorized" from the close.
      await waitFor('the relay to refuse an unregistered key', () => /not authorized/.test(stranger.lastError), 20_000);
      expect(stranger.connected).toBe(false);
    } finally {
      stranger.close();
    }
    const text = await metrics();
    expect(sample(text, 'meshward_relay_connections_total', { outcome: 'refused' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'meshward_relay_clients')).toBe(2);
    // b's own key, as a removed device (or a thief of its key) would present it after the removal.
    const bKey = new X25519Key(Buffer.from((JSON.parse(readFileSync(join(dir, 'b', 'state', 'node.json'), 'utf8')) as { privateKey: string }).privateKey, 'base64'));
    const devices = (await admin.get('/tailnet/-/devices')).body.devices as { id: string; hostname: string }[];
    const b = devices.find((d) => d.hostname === 'b')!;
    expect((await admin.del(`/device/${b.id}`)).status).toBe(200);
    await waitFor('coord\'s relay to drop the removed device', async () => sample(await metrics(), 'meshward_relay_clients') === 1, 20_000);
    // It stays out: after a while, still only a is connected.
    await new Promise((r) => setTimeout(r, 1500));
    expect(sample(await metrics(), 'meshward_relay_clients')).toBe(1);
    expect(pings('a', 'b')).toBe(false);
    const removed = new RelayClient({ url: relayUrlOf(coord.url), key: bKey, onPacket: () => {}, minBackoffMs: 10_000 }).start();
    try {
      await waitFor('the relay to refuse the removed device\'s key', () => /not authorized/.test(removed.lastError), 20_000);
      expect(removed.connected).toBe(false);
    } finally {
      removed.close();
    }
  }, 60_000);
});
