// A crashed agent, restarted with the same command line, is reachable again by the peers that were
// talking to it within about two seconds: it handshakes with them as it starts, and answers their
// packets for sessions it no longer has with a handshake (agent/wireguard/handshakes.ts).
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '../coord/harness.js';
import { AgentLan, canRunE2e, createAuthKey, waitFor } from './harness.js';

/** When each start of the agent whose log this is brought its data path up (ms since the epoch). */
function dataPathUps(log: string): number[] {
  const lines = readFileSync(log, 'utf8').split('\n').filter((l) => l.includes('"data path up"'));
  return lines.map((l) => JSON.parse(l).time as number);
}

const NAMES = ['a', 'b'] as const;
const POLICY = `{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}`;

describe.skipIf(!canRunE2e)('a restarted agent is back for its peers (coord + two agents in namespaces)', () => {
  const net = new AgentLan('restart', NAMES);
  let coordUrl = '';
  let apiKey = '';

  beforeAll(async () => {
    net.setUp();
    apiKey = net.coord.createTailnet('example.com', 'alice@example.com');
    coordUrl = await net.startCoord();
    expect((await api(coordUrl, apiKey).post('/tailnet/-/acl', POLICY)).status).toBe(200);
    await net.startAgents();
    const key = await createAuthKey(api(coordUrl, apiKey), true);
    for (const n of NAMES) {
      const r = net.cli(n, ['up', '--coord', coordUrl, '--authkey', key, '--hostname', n]);
      expect(r.status, r.stderr).toBe(0);
      net.addr[n] = net.status(n).self!.addresses[0];
    }
    await waitFor('netmaps with peers', () => NAMES.every((n) => net.status(n).peers.length === 1));
    await net.listen('a', [22]);
    await net.listen('b', [22]);
  }, 60_000);

  afterAll(() => net.destroy());

  it('kill -9 of b mid-conversation: a reaches b again within 2 s of the restart (ceiling 6 s under load)', async () => {
    const talk = net.hold('a', 'b', 22);
    await talk.up;
    await net.killAgent('b');
    await talk.dead;
    const starts = dataPathUps(net.logOf('b')).length;
    const t0 = Date.now();
    net.startAgent('b');
    // Only a tries: b must not be the one that happens to start a handshake by sending first.
    const aToB = await net.probeOpen('a', 'b', 22);
    const up = await waitFor('b logs that its data path is up', () => dataPathUps(net.logOf('b'))[starts]);
    process.stderr.write(`agent b restarted after kill -9: its data path up after ${up - t0} ms, a → b works after ${aToB - t0} ms\n`);
    expect(aToB - t0).toBeLessThan(6000);
    expect(net.connect('b', 'a', 22)).toBe('ok');
  }, 40_000);
});
