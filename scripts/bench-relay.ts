// The relay end to end, in a NAT lab of network namespaces (scripts/natlab.ts; needs root):
// `npm run -s bench:relay [-- --json]`. coord (dist/coord) runs on the lab's WAN; agents (dist/agent):
//
//   - relay pair: two agents each behind its own symmetric NAT (masquerade random): only the relay works.
//   - direct pair: two agents with public addresses on the WAN: the direct path works.
//
// Measured in one run: iperf3 over the tunnel on each pair (Gbit/s, 3 s, one stream); firstPacketMs: from
// `agent up` of the second device of the relay pair to the first answered ping (through the relay);
// directMs: from `agent up` of the second device of the direct pair, pinging 10 times a second, to its
// status saying the peer's path is direct (path discovery confirmed it with a pong: packets go direct
// from then on); failoverGapMs: on the direct pair, the longest gap between answers in a 10 pings/s
// stream when the direct path is cut (all UDP between the two dropped) — the time to fall back to the
// relay, seen in the status too — and healMs, from restoring UDP to the status saying direct again.
// {"gbps": {"direct": n, "relay": n}, "firstPacketMs": n, "directMs": n, "failoverGapMs": n}
// plus relayCpu: CPU seconds per GB carried through the relay, of the sending agent, coord and the
// receiving agent during that iperf3 run (read from /proc): what the relay path costs per byte, which
// other load on a shared machine disturbs far less than Gbit/s.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { callDaemon } from '../agent/localapi/client.js';
import type { AgentStatus } from '../agent/localapi/types.js';
import { AGENT, Coord, waitFor } from './lab.js';
import { NatLab } from './natlab.js';

const POLICY = `{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}`;

async function main(): Promise<void> {
  const json = process.argv.includes('--json');
  if (process.getuid?.() !== 0) throw new Error('bench:relay needs root (network namespaces and TUN devices)');
  const dir = mkdtempSync(join(tmpdir(), 'mw-bench-relay-'));
  const lab = NatLab.create();
  const coord = new Coord();
  try {
    lab.addRouter('ra', 'symmetric');
    lab.addRouter('rb', 'symmetric');
    lab.addLanHost('ra', 'ra1', 10);
    lab.addLanHost('rb', 'rb1', 10);
    lab.addWanHost('da');
    lab.addWanHost('db');
    const apiKey = coord.createTailnet('bench.example', 'bench@example.com');
    await coord.start(['--listen', `${lab.wanGateway}:0`, '--stun-port', String(20_000 + Math.floor(Math.random() * 40_000))]);
    const call = coord.adminApi(apiKey);
    const post = (path: string, body: string | object) => call('POST', path, body);
    await post('/tailnet/-/acl', POLICY);
    const key = (await post('/tailnet/-/keys', { capabilities: { devices: { create: { reusable: true, preauthorized: true } } }, expirySeconds: 3600 })).key as string;
    const sock = (n: string) => join(dir, n, 'agent.sock');
    const cli = (n: string, args: string[]) => lab.exec(n, process.execPath, [AGENT, ...args, '--socket', sock(n)]);
    const addrOf = (n: string) => (JSON.parse(cli(n, ['status', '--json'])) as { self: { addresses: string[] } }).self.addresses[0]!;
    const names = ['ra1', 'rb1', 'da', 'db'];
    const pids: Record<string, number> = {};
    for (const n of names) pids[n] = lab.spawn(n, process.execPath, [AGENT, 'daemon', '--state-dir', join(dir, n, 'state'), '--socket', sock(n), '--log-level', 'warn']).pid!;
    await waitFor('agent sockets', () => names.every((n) => existsSync(sock(n))));

    /** Brings `first` up, then times `second`'s `agent up` to the first ping answered from `first`. */
    const upAndPing = async (first: string, second: string): Promise<{ ms: number; target: string }> => {
      cli(first, ['up', '--coord', coord.url, '--authkey', key, '--hostname', first]);
      const target = addrOf(first);
      const t0 = performance.now();
      cli(second, ['up', '--coord', coord.url, '--authkey', key, '--hostname', second]);
      await waitFor(`a ping ${second} → ${first}`, () => {
        try {
          lab.exec(second, 'ping', ['-c', '1', '-W', '0.2', target]);
          return true;
        } catch {
          return false;
        }
      }, 30_000);
      return { ms: Math.round(performance.now() - t0), target };
    };
    const iperf = (server: string, client: string, target: string): { gbps: number; bytes: number } => {
      const srv = lab.spawn(server, 'iperf3', ['-s', '-1']);
      try {
        execFileSync('sleep', ['0.3']);
        const out = lab.exec(client, 'iperf3', ['-c', target, '-t', '3', '-J'], { timeoutMs: 30_000 });
        const r = JSON.parse(out) as { end: { sum_received: { bits_per_second: number; bytes: number } } };
        return { gbps: Math.round((r.end.sum_received.bits_per_second / 1e9) * 1000) / 1000, bytes: r.end.sum_received.bytes };
      } finally {
        srv.kill();
      }
    };

    // The local API socket is a file: the bench asks it from here, without a CLI process per look.
    const pathOf = async (n: string, peer: string) => (await callDaemon<AgentStatus>(sock(n), 'GET', '/status')).peers.find((p) => p.name === peer)?.path ?? null;

    const relay = await upAndPing('ra1', 'rb1');
    const relayProcs = { sender: pids.rb1!, coord: coord.proc!.pid!, receiver: pids.ra1! };
    const cpuBefore = Object.values(relayProcs).map(cpuSeconds);
    const relayRun = iperf('ra1', 'rb1', relay.target);
    const relayGbps = relayRun.gbps;
    const relayCpu = Object.fromEntries(
      Object.entries(relayProcs).map(([k, pid], i) => [k, Math.round(((cpuSeconds(pid) - cpuBefore[i]!) / (relayRun.bytes / 1e9)) * 100) / 100]),
    );

    // directMs: `agent up` of db while it pings da 10 times a second, to its status saying direct.
    cli('da', ['up', '--coord', coord.url, '--authkey', key, '--hostname', 'da']);
    const directTarget = addrOf('da');
    const t0 = performance.now();
    cli('db', ['up', '--coord', coord.url, '--authkey', key, '--hostname', 'db']);
    const pinger = lab.spawn('db', 'ping', ['-i', '0.1', '-W', '1', '-w', '30', directTarget]);
    let directMs = -1;
    try {
      await waitFor('db → da on the direct path', async () => (await pathOf('db', 'da')) === 'direct', 30_000);
      directMs = Math.round(performance.now() - t0);
    } finally {
      pinger.kill();
    }
    const direct = { ms: directMs, target: directTarget };
    const directGbps = iperf('da', 'db', direct.target).gbps;
    const paths: Record<string, string | null> = { relayPair: await pathOf('rb1', 'ra1'), directPair: await pathOf('db', 'da') };

    // Failover: 10 pings/s from db to da; cut UDP between them after 2 s; longest gap between answers.
    const ping = lab.spawn('db', 'ping', ['-D', '-i', '0.1', '-W', '1', '-w', '30', direct.target]);
    const answers: number[] = [];
    createInterface({ input: ping.stdout! }).on('line', (line) => {
      const m = /^\[(\d+\.\d+)\].*bytes from/.exec(line);
      if (m) answers.push(Number(m[1]) * 1000);
    });
    await new Promise((r) => setTimeout(r, 2000));
    const cutAt = Date.now();
    lab.exec('da', 'nft', ['-f', '-'], {
      input: `table inet cut {
  chain out {
    type filter hook output priority 0; policy accept;
    ip daddr ${lab.host('db').addr} meta l4proto udp drop
  }
  chain in {
    type filter hook input priority 0; policy accept;
    ip saddr ${lab.host('db').addr} meta l4proto udp drop
  }
}
`,
    });
    await waitFor('db → da on the relay after the cut', async () => (await pathOf('db', 'da')) === 'relay', 15_000);
    paths.directPairAfterCut = await pathOf('db', 'da');
    // Heal: UDP back; path discovery keeps probing while relayed and goes direct again.
    await new Promise((r) => setTimeout(r, 3000));
    lab.exec('da', 'nft', ['delete', 'table', 'inet', 'cut']);
    const healedAt = performance.now();
    await waitFor('db → da direct again after the heal', async () => (await pathOf('db', 'da')) === 'direct', 20_000);
    const healMs = Math.round(performance.now() - healedAt);
    paths.directPairAfterHeal = await pathOf('db', 'da');
    await new Promise<void>((resolve) => ping.once('exit', () => resolve()));
    let gap = 0;
    for (let i = 1; i < answers.length; i++) if (answers[i]! >= cutAt - 200) gap = Math.max(gap, answers[i]! - answers[i - 1]!);
    const last = answers[answers.length - 1] ?? 0;
    const failoverGapMs = last < cutAt ? null : Math.round(gap);

    const result = { gbps: { direct: directGbps, relay: relayGbps }, firstPacketMs: relay.ms, directMs: direct.ms, failoverGapMs, healMs, paths, relayCpu };
    if (json) process.stdout.write(JSON.stringify(result) + '\n');
    else {
      process.stdout.write(`iperf3 over the tunnel: direct ${directGbps} Gbit/s, relay ${relayGbps} Gbit/s\n`);
      process.stdout.write(`CPU seconds per GB through the relay: sender ${relayCpu.sender}, coord ${relayCpu.coord}, receiver ${relayCpu.receiver}\n`);
      process.stdout.write(`paths seen: relay pair ${paths.relayPair}, direct pair ${paths.directPair}\n`);
      process.stdout.write(`agent up → first packet through the relay ${relay.ms} ms; → direct path confirmed ${direct.ms} ms\n`);
      process.stdout.write(`longest gap in a 10/s ping stream when the direct path is cut: ${failoverGapMs ?? 'never recovered'} ms\n`);
      process.stdout.write(`UDP restored → direct again: ${healMs} ms\n`);
    }
  } finally {
    lab.destroy();
    await coord.kill();
    await coord.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** CPU time (user + system) a process has used, in seconds. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    process.stderr.write(`bench:relay: ${err.message}\n`);
    process.exit(1);
  },
);
