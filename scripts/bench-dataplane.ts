// bench:dataplane — iperf3 TCP throughput (10 s) and ping RTT through a WireGuard tunnel between two
// network namespaces, for (a) wireguard-go ⇄ wireguard-go, (b) ours ⇄ ours, (c) ours ⇄ wireguard-go
// (`agent wireguard`: the WireGuard device alone). The ratio ours ÷ wggo comes from the same run.
// (d) "routed" (issue 14: ≥ 0.8 of the direct figure): the whole agent as users run it (coord, two
// daemons with their filters, table 52, the router's forwarding and source NAT; scripts/bench-routed.ts),
// client → subnet router → LAN host, against the same daemons' direct client → router figure of the
// same run. `--json` prints only the JSON line.
// Options: --seconds N (iperf3 duration, default 10), --rounds N (repeat them, interleaved, and
// report medians; default 1), --only wggo,ours,mixed,routed, --pings N (pings for the RTT median, default 60).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { addNamespace, removeNamespace } from './netns.js';
import { measureRoutedDaemons } from './bench-routed.js';
import { median } from './lab.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const agentMain = join(root, 'dist/agent/main.js');

type Impl = 'ours' | 'wggo';

function sh(cmd: string, input?: string): string {
  return execFileSync('bash', ['-c', cmd], { encoding: 'utf8', input, timeout: 120_000 });
}
const inNs = (ns: string, cmd: string) => `ip netns exec ${ns} bash -c '${cmd.replace(/'/g, `'\\''`)}'`;

async function waitFor(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

interface Result {
  gbps: number;
  rttMs: number;
}

/** One tunnel: `client` impl in namespace A sends to `server` impl in namespace B. */
async function measure(
  tag: string,
  client: Impl,
  server: Impl,
  seconds: number,
  pings: number,
  log: (m: string) => void,
): Promise<Result> {
  const P = `mwbd${process.pid % 10000}${tag}`;
  const ns = { a: `${P}-a`, b: `${P}-b` };
  const made = [ns.a, ns.b];
  const ifn = { a: `${P}a0`, b: `${P}b0` };
  const procs: ChildProcess[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'mw-bench-dp-'));
  try {
    for (const n of made) addNamespace(n);
    sh(`ip link add ${P}va type veth peer name ${P}vb && ip link set ${P}va netns ${ns.a} && ip link set ${P}vb netns ${ns.b}`);
    sh(inNs(ns.a, `ip addr add 192.168.238.1/24 dev ${P}va && ip link set ${P}va up && ip link set lo up`));
    sh(inNs(ns.b, `ip addr add 192.168.238.2/24 dev ${P}vb && ip link set ${P}vb up && ip link set lo up`));
    const start = (side: 'a' | 'b', impl: Impl) => {
      const argv = impl === 'ours' ? [process.execPath, agentMain, 'wireguard', '-f', ifn[side]] : ['wireguard-go', '-f', ifn[side]];
      procs.push(spawn('ip', ['netns', 'exec', ns[side], ...argv], { stdio: 'ignore' }));
    };
    start('a', client);
    start('b', server);
    await waitFor('UAPI sockets', () => existsSync(`/var/run/wireguard/${ifn.a}.sock`) && existsSync(`/var/run/wireguard/${ifn.b}.sock`));
    const ka = sh('wg genkey').trim();
    const kb = sh('wg genkey').trim();
    writeFileSync(join(dir, 'a'), ka, { mode: 0o600 });
    writeFileSync(join(dir, 'b'), kb, { mode: 0o600 });
    const pa = sh('wg pubkey', ka).trim();
    const pb = sh('wg pubkey', kb).trim();
    sh(inNs(ns.a, `wg set ${ifn.a} private-key ${dir}/a listen-port 51911 peer ${pb} endpoint 192.168.238.2:51912 allowed-ips 10.238.0.2/32`));
    sh(inNs(ns.b, `wg set ${ifn.b} private-key ${dir}/b listen-port 51912 peer ${pa} endpoint 192.168.238.1:51911 allowed-ips 10.238.0.1/32`));
    sh(inNs(ns.a, `ip addr add 10.238.0.1/24 dev ${ifn.a} && ip link set ${ifn.a} up`));
    sh(inNs(ns.b, `ip addr add 10.238.0.2/24 dev ${ifn.b} && ip link set ${ifn.b} up`));
    const target = '10.238.0.2';
    const serverNs = ns.b;
    sh(inNs(ns.a, `ping -c 2 -i 0.2 -W 2 ${target}`)); // handshake
    // RTT: the median of pings 50 ms apart (each finds both sides idle, like sporadic traffic); on a
    // shared machine a few scheduling outliers move the mean but not the median.
    const ping = sh(inNs(ns.a, `ping -c ${pings} -i 0.05 -W 2 ${target}`));
    const times = [...ping.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
    const rtt = median(times);
    const srv = spawn('ip', ['netns', 'exec', serverNs, 'iperf3', '-s', '-1', '-B', target, '-p', '5211'], { stdio: 'ignore' });
    procs.push(srv);
    await new Promise((r) => setTimeout(r, 500));
    const out = JSON.parse(sh(inNs(ns.a, `iperf3 -c ${target} -p 5211 -t ${seconds} -J`))) as {
      end: { sum_received: { bits_per_second: number } };
    };
    const result = { gbps: out.end.sum_received.bits_per_second / 1e9, rttMs: rtt };
    const q = (f: number) => [...times].sort((x, y) => x - y)[Math.min(times.length - 1, Math.floor(f * times.length))];
    log(`${client} → ${server}: ${result.gbps.toFixed(3)} Gbit/s, rtt median ${rtt} ms (min ${q(0)}, p90 ${q(0.9)}, max ${q(1)}, ${times.length} pings)`);
    return result;
  } finally {
    for (const n of made) {
      try {
        sh(`ip netns pids ${n} | xargs -r kill`);
      } catch {
        // no such namespace
      }
    }
    for (const p of procs) p.kill();
    await new Promise((r) => setTimeout(r, 500));
    for (const n of made) removeNamespace(n);
    for (const f of [ifn.a, ifn.b]) rmSync(`/var/run/wireguard/${f}.sock`, { force: true });
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { json: { type: 'boolean' }, seconds: { type: 'string' }, rounds: { type: 'string' }, only: { type: 'string' }, pings: { type: 'string' } },
  });
  const seconds = Number(values.seconds ?? 10);
  const pings = Math.max(1, Number(values.pings ?? 60));
  const only = new Set((values.only ?? 'wggo,ours,mixed,routed').split(','));
  const log = values.json ? () => {} : (m: string) => process.stderr.write(m + '\n');
  if (process.getuid?.() !== 0) throw new Error('bench:dataplane needs root (network namespaces, TUN devices)');
  for (const tool of ['wg', 'wireguard-go', 'iperf3']) sh(`command -v ${tool} >/dev/null || (echo "${tool} missing (apt-get install wireguard-tools wireguard-go iperf3)" >&2; exit 1)`);

  const rounds = Math.max(1, Number(values.rounds ?? 1));
  const runs: Record<'wggo' | 'ours' | 'mixed' | 'routed' | 'direct', Result[]> = { wggo: [], ours: [], mixed: [], routed: [], direct: [] };
  for (let r = 0; r < rounds; r++) {
    if (only.has('wggo')) runs.wggo.push(await measure('g', 'wggo', 'wggo', seconds, pings, log));
    if (only.has('ours')) runs.ours.push(await measure('o', 'ours', 'ours', seconds, pings, log));
    if (only.has('mixed')) runs.mixed.push(await measure('m', 'ours', 'wggo', seconds, pings, log));
    if (only.has('routed')) {
      const d = await measureRoutedDaemons(seconds, pings, log);
      runs.routed.push(d.routed);
      runs.direct.push(d.direct);
    }
  }
  const med = (rs: Result[]): Result => ({ gbps: median(rs.map((x) => x.gbps)), rttMs: median(rs.map((x) => x.rttMs)) });
  const wggo = med(runs.wggo);
  const ours = med(runs.ours);
  const mixed = med(runs.mixed);
  const routed = med(runs.routed);
  const direct = med(runs.direct);
  const round = (n: number) => Math.round(n * 1000) / 1000;
  const report = {
    gbps: { wggo: round(wggo.gbps), ours: round(ours.gbps), mixed: round(mixed.gbps) },
    ratio: round(ours.gbps / wggo.gbps),
    rttMs: { wggo: round(wggo.rttMs), ours: round(ours.rttMs) },
    /**
     * Full daemons: client → subnet router → LAN host, the same daemons' direct client → router figure,
     * and the share of it the routed path keeps.
     */
    routed: { gbps: round(routed.gbps), rttMs: round(routed.rttMs), directGbps: round(direct.gbps), directRttMs: round(direct.rttMs), ratio: round(routed.gbps / direct.gbps) },
  };
  process.stdout.write(JSON.stringify(report) + '\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:dataplane: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
