// The "routed" figure of bench:dataplane, through the whole agent as a user runs it: coord on a
// virtual LAN, a client (`agent up --accept-routes`) and a subnet router (`--advertise-routes`, the
// route approved) as full daemons in namespaces, and a LAN host without an agent behind the router.
// Every packet crosses the client's TUN, filter and WireGuard, then the router's WireGuard and filter
// (which decides each forwarded packet from the policy), its kernel forwarding and source NAT (the
// agent's own nftables table) to the LAN host. The direct figure is the same two daemons, client to
// router's tailnet address, in the same run: the ratio compares like with like.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AGENT, Coord, median, sleep, waitFor } from './lab.js';
import { VirtualLan } from './netns.js';

export interface PathResult {
  gbps: number;
  rttMs: number;
}

const PORT = 5211;

export async function measureRoutedDaemons(seconds: number, pings: number, log: (m: string) => void): Promise<{ direct: PathResult; routed: PathResult }> {
  const dir = mkdtempSync(join(tmpdir(), 'mw-bench-routed-'));
  const lan = VirtualLan.create();
  const coord = new Coord();
  try {
    const sub = '198.19.78';
    lan.addHost('client', 2);
    lan.addHost('router', 3);
    lan.addHostBehind('lanhost', 'router', sub, 'sub0');
    const apiKey = coord.createTailnet('bench.example', 'bench@example.com');
    await coord.start(['--listen', `${lan.gateway}:0`]);
    const call = coord.adminApi(apiKey);
    const ip = `["tcp:${PORT}", "icmp:*"]`;
    await call(
      'POST',
      '/tailnet/-/acl',
      `{"tagOwners": {"tag:c": ["bench@example.com"], "tag:r": ["bench@example.com"]}, "grants": [` +
        `{"src": ["tag:c"], "dst": ["${sub}.0/24"], "ip": ${ip}}, {"src": ["tag:c"], "dst": ["tag:r"], "ip": ${ip}}]}`,
    );
    const key = (await call('POST', '/tailnet/-/keys', { capabilities: { devices: { create: { reusable: true, preauthorized: true } } }, expirySeconds: 3600 })).key as string;
    const sock = (n: string) => join(dir, n, 'agent.sock');
    for (const n of ['client', 'router']) lan.spawn(n, process.execPath, [AGENT, 'daemon', '--state-dir', join(dir, n, 'state'), '--socket', sock(n), '--log-level', 'warn']);
    await waitFor('agent sockets', () => existsSync(sock('client')) && existsSync(sock('router')), 15_000);
    const cli = (n: string, args: string[]) => lan.exec(n, process.execPath, [AGENT, ...args, '--socket', sock(n)]);
    cli('router', ['up', '--coord', coord.url, '--authkey', key, '--hostname', 'router', '--advertise-tags', 'tag:r', '--advertise-routes', `${sub}.0/24`]);
    cli('client', ['up', '--coord', coord.url, '--authkey', key, '--hostname', 'client', '--advertise-tags', 'tag:c', '--accept-routes']);
    const devices = (await call('GET', '/tailnet/-/devices')).devices as Array<{ id: string; hostname: string; addresses: string[] }>;
    const router = devices.find((d) => d.hostname === 'router')!;
    await call('POST', `/device/${router.id}/routes`, { routes: [`${sub}.0/24`] });
    const routerIp = router.addresses.find((a) => !a.includes(':'))!;
    const lanHost = `${sub}.2`;
    const table52 = () => {
      try {
        return lan.exec('client', 'ip', ['route', 'show', 'table', '52']);
      } catch {
        return ''; // no such table yet
      }
    };
    await waitFor('the subnet route on the client', () => table52().includes(`${sub}.0/24`), 20_000);

    const one = async (what: string, serverHost: string, target: string): Promise<PathResult> => {
      // The first packets wait for the handshake: warm the path up before timing anything.
      await waitFor(`${what} answering ping`, () => {
        try {
          lan.exec('client', 'ping', ['-c', '1', '-W', '1', target]);
          return true;
        } catch {
          return false;
        }
      }, 20_000);
      const ping = lan.exec('client', 'ping', ['-c', String(pings), '-i', '0.05', '-W', '2', target]);
      const times = [...ping.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
      const srv = lan.spawn(serverHost, 'iperf3', ['-s', '-1', '-p', String(PORT)]);
      try {
        await sleep(500);
        const out = JSON.parse(lan.exec('client', 'iperf3', ['-c', target, '-p', String(PORT), '-t', String(seconds), '-J'], { timeoutMs: (seconds + 30) * 1000 })) as {
          end: { sum_received: { bits_per_second: number } };
        };
        const r = { gbps: out.end.sum_received.bits_per_second / 1e9, rttMs: median(times) };
        log(`daemons, ${what}: ${r.gbps.toFixed(3)} Gbit/s, rtt median ${r.rttMs} ms (${times.length} pings)`);
        return r;
      } finally {
        srv.kill();
      }
    };
    const direct = await one('client → router (direct peer to peer)', 'router', routerIp);
    const routed = await one('client → router → LAN host (routed)', 'lanhost', lanHost);
    return { direct, routed };
  } finally {
    await coord.kill();
    lan.destroy();
    await coord.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
}
