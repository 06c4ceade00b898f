// STUN through the agent's WireGuard socket over IPv6: coord (and its STUN server) on an IPv6 address of
// a lab's WAN (scripts/natlab.ts, with a ULA /64 added to the WAN bridge), a real agent daemon on a WAN
// host with an address in that /64. `agent netcheck` must find the IPv6 endpoint its WireGuard socket
// sends from (the IPv4 side is covered behind real NAT in relay-map.test.ts and paths.test.ts).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NetcheckReport } from '../../agent/connectivity/netcheck.js';
import type { AgentStatus } from '../../agent/localapi/types.js';
import { AGENT, Coord, waitFor } from '../../scripts/lab.js';
import { NatLab } from '../../scripts/natlab.js';
import { api } from '../coord/harness.js';
import { canRunE2e, createAuthKey, upAgentsIn } from './harness.js';

const NAMES = ['a'] as const;
type Name = (typeof NAMES)[number];

describe.skipIf(!canRunE2e)('netcheck over IPv6 through the WireGuard socket', () => {
  let lab: NatLab;
  let dir = '';
  const coord = new Coord();
  const addr: Partial<Record<Name, string>> = {};
  const prefix = `fd${randomBytes(1).toString('hex')}:${randomBytes(2).toString('hex')}:${randomBytes(2).toString('hex')}:1`;
  const sock = (n: Name) => join(dir, n, 'agent.sock');
  const cli = (n: Name, args: string[]) => lab.exec(n, process.execPath, [AGENT, ...args, '--socket', sock(n)], { timeoutMs: 30_000 });
  const status = (n: Name) => JSON.parse(cli(n, ['status', '--json'])) as AgentStatus;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mw-natv6-e2e-'));
    lab = NatLab.create();
    const a = lab.addWanHost('a');
    execFileSync('ip', ['-6', 'addr', 'add', `${prefix}::1/64`, 'dev', lab.wanBridge, 'nodad']);
    execFileSync('ip', ['-n', a.ns, '-6', 'addr', 'add', `${prefix}::2/64`, 'dev', 'wan0', 'nodad']);
    const apiKey = coord.createTailnet('example.com', 'alice@example.com');
    const stunPort = 20_000 + Math.floor(Math.random() * 40_000);
    await coord.start(['--listen', `[${prefix}::1]:0`, '--stun-port', String(stunPort)]);
    const admin = api(coord.url, apiKey);
    const authKey = await createAuthKey(admin, true);
    await upAgentsIn({ lab, dir, names: NAMES, sock, cli, status, coordUrl: coord.url, authKey, addr, peers: 0 });
  }, 90_000);

  afterAll(async () => {
    lab?.destroy(); // the bridge goes, and its IPv6 address with it
    await coord.kill();
    await coord.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('finds the IPv6 endpoint of the WireGuard socket, the same from both STUN ports', async () => {
    const port = status('a').interface!.listenPort;
    const r = await waitFor('a netcheck that saw UDP', () => {
      const report = JSON.parse(cli('a', ['netcheck', '--json'])) as NetcheckReport;
      return report.udp ? report : undefined;
    }, 30_000);
    expect(r.publicEndpoints).toEqual([`[${prefix}::2]:${port}`]);
    expect(r.mappingVariesByDest).toBe(false);
    expect(cli('a', ['netcheck'])).toContain(`IPv6: yes, [${prefix}::2]:${port}`);
  }, 60_000);
});
