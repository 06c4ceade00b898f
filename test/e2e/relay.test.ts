// Connectivity through coord's relay, end to end: real coord on the WAN of a NAT lab (scripts/natlab.ts),
// real agent daemons each behind its own home router in network namespaces. Behind two symmetric NATs
// (masquerade random) no UDP path can work, and one router drops all outgoing UDP on top: the agents
// still hold a TCP connection through the relay on coord's HTTP listener.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentStatus } from '../../agent/localapi/types.js';
import { AGENT, Coord, waitFor, writeNetHelper } from '../../scripts/lab.js';
import { NatLab } from '../../scripts/natlab.js';
import { api } from '../coord/harness.js';
import { canRunE2e, createAuthKey } from './harness.js';

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
    await coord.start(['--listen', `${lab.wanGateway}:0`]);
    const admin = api(coord.url, apiKey);
    expect((await admin.post('/tailnet/-/acl', POLICY)).status).toBe(200);
    const key = await createAuthKey(admin, true);
    for (const n of NAMES) {
      lab.spawn(n, process.execPath, [AGENT, 'daemon', '--state-dir', join(dir, n, 'state'), '--socket', sock(n), '--log-level', 'debug']);
    }
    await waitFor('agent sockets', () => NAMES.every((n) => existsSync(sock(n))));
    for (const n of NAMES) {
      cli(n, ['up', '--coord', coord.url, '--authkey', key, '--hostname', n]);
      addr[n] = status(n).self!.addresses[0];
    }
    await waitFor('netmaps with peers', () => NAMES.every((n) => status(n).peers.length === 1), 20_000);
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
});
