// bench:flood — an allowed connection's throughput while a WireGuard device is flooded with handshake
// initiations that carry a valid mac1 (anyone who knows the device's public key can make them; each
// costs the device a cookie reply or a Diffie-Hellman). Two network namespaces, ours ⇄ ours (`agent
// wireguard`), iperf3 TCP a → b with and without a flood from a third address into b's UDP port for
// the whole measurement: by default the fault-injection report's 20,000 initiations in 0.2 s, once
// every second (--burst N changes the 20,000); --rate R instead sends R a second, evenly. The report
// says how many were sent (one node sender on a shared machine may fall short of the target). Prints {"gbps": {"normal", "flood"}, "ratio", "flood": {"sent", "rate",
// "kernelDrops"}}; kernelDrops is what b's socket lost at its receive buffer (/proc/net/udp).
// Options: --seconds N (each iperf3 run, default 5), --rounds N (median of N pairs, default 1), --json,
// --control (the same flood sent to a port where nothing listens: what the flood costs the machine,
// sender and kernel, without the WireGuard device's part; on a shared machine that is much of it).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { addNamespace, removeNamespace } from './netns.js';
import { CookieGenerator } from '../agent/wireguard/cookie.js';
import { PublicKey } from '../agent/wireguard/crypto.js';
import { INITIATION_SIZE, MSG_INITIATION } from '../agent/wireguard/messages.js';
import { UdpSocket, parseAddrInto } from '../native/index.js';

const self = fileURLToPath(import.meta.url);
const agentMain = join(fileURLToPath(new URL('../..', import.meta.url)), 'dist/agent/main.js');
const PORT_B = 51922;
const FLOOD_SOURCE = '192.168.239.3';

const sh = (cmd: string, input?: string) => execFileSync('bash', ['-c', cmd], { encoding: 'utf8', input, timeout: 120_000 });
const inNs = (ns: string, cmd: string) => `ip netns exec ${ns} bash -c '${cmd.replace(/'/g, `'\\''`)}'`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

/**
 * The flooder (run in a namespace as `bench-flood.js --flood HOST PORT PUBKEY_HEX RATE SECONDS`): distinct
 * initiations with random contents and a valid mac1 for PUBKEY, sent in batches every 5 ms to keep
 * RATE per second; prints how many it sent.
 */
async function flood(host: string, port: number, pubHex: string, rate: number, burst: number, seconds: number): Promise<void> {
  const n = 1024;
  const macs = new CookieGenerator(new PublicKey(Buffer.from(pubHex, 'hex')), () => Date.now());
  const buf = Buffer.alloc(n * INITIATION_SIZE);
  const offsets = new Uint32Array(n);
  const lengths = new Uint32Array(n).fill(INITIATION_SIZE);
  for (let i = 0; i < n; i++) {
    const msg = randomBytes(INITIATION_SIZE);
    msg.writeUInt32LE(MSG_INITIATION, 0);
    macs.addMacs(msg);
    msg.copy(buf, i * INITIATION_SIZE);
    offsets[i] = i * INITIATION_SIZE;
  }
  const addrs = new Uint8Array(16 * n);
  const ports = new Uint16Array(n).fill(port);
  const families = new Uint8Array(n);
  for (let i = 0; i < n; i++) families[i] = parseAddrInto(addrs, i, host);
  const sock = UdpSocket.bind(0, FLOOD_SOURCE, { batch: 128, gso: false });
  sock.start(() => {}); // cookie replies: read and ignored
  const start = Date.now();
  let sent = 0;
  let next = 0;
  while (Date.now() - start < seconds * 1000) {
    const t = (Date.now() - start) / 1000;
    // Evenly at `rate`, or `burst` in the first 0.2 s of every second.
    const target = burst > 0 ? Math.floor(t) * burst + Math.min(burst, Math.floor(((t % 1) / 0.2) * burst)) : Math.floor(t * rate);
    const due = target - sent;
    let left = Math.min(due, 4096);
    while (left > 0) {
      const k = Math.min(left, n - next, 128);
      const m = sock.sendBatch(buf.subarray(next * INITIATION_SIZE), offsets.subarray(0, k), lengths.subarray(0, k), addrs, ports, families, k);
      sent += m;
      next = (next + m) % n;
      if (m < k) break; // the socket's buffer is full: the next turn goes on
      left -= k;
    }
    await sleep(5);
  }
  sock.close();
  process.stdout.write(`${sent}\n`);
}

interface Pair {
  normal: number;
  flood: number;
  sent: number;
  rate: number;
  kernelDrops: number;
}

async function measure(seconds: number, rate: number, burst: number, rounds: number, control: boolean, log: (m: string) => void): Promise<Pair[]> {
  const P = `mwfl${process.pid % 10000}`;
  const ns = { a: `${P}-a`, b: `${P}-b` };
  const ifn = { a: `${P}a0`, b: `${P}b0` };
  const procs: ChildProcess[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'mw-bench-flood-'));
  try {
    for (const n of [ns.a, ns.b]) addNamespace(n);
    sh(`ip link add ${P}va type veth peer name ${P}vb && ip link set ${P}va netns ${ns.a} && ip link set ${P}vb netns ${ns.b}`);
    // The flood comes from a second address on a's side, so that it is not the tunnel's own peer.
    sh(inNs(ns.a, `ip addr add 192.168.239.1/24 dev ${P}va && ip addr add ${FLOOD_SOURCE}/24 dev ${P}va && ip link set ${P}va up && ip link set lo up`));
    sh(inNs(ns.b, `ip addr add 192.168.239.2/24 dev ${P}vb && ip link set ${P}vb up && ip link set lo up`));
    for (const side of ['a', 'b'] as const) {
      procs.push(spawn('ip', ['netns', 'exec', ns[side], process.execPath, agentMain, 'wireguard', '-f', ifn[side]], { stdio: 'ignore' }));
    }
    const sock = (side: 'a' | 'b') => `/var/run/wireguard/${ifn[side]}.sock`;
    for (let i = 0; i < 100 && !(existsSync(sock('a')) && existsSync(sock('b'))); i++) await sleep(100);
    const ka = sh('wg genkey').trim();
    const kb = sh('wg genkey').trim();
    writeFileSync(join(dir, 'a'), ka, { mode: 0o600 });
    writeFileSync(join(dir, 'b'), kb, { mode: 0o600 });
    const pa = sh('wg pubkey', ka).trim();
    const pb = sh('wg pubkey', kb).trim();
    sh(inNs(ns.a, `wg set ${ifn.a} private-key ${dir}/a listen-port 51921 peer ${pb} endpoint 192.168.239.2:${PORT_B} allowed-ips 10.239.0.2/32`));
    sh(inNs(ns.b, `wg set ${ifn.b} private-key ${dir}/b listen-port ${PORT_B} peer ${pa} endpoint 192.168.239.1:51921 allowed-ips 10.239.0.1/32`));
    sh(inNs(ns.a, `ip addr add 10.239.0.1/24 dev ${ifn.a} && ip link set ${ifn.a} up`));
    sh(inNs(ns.b, `ip addr add 10.239.0.2/24 dev ${ifn.b} && ip link set ${ifn.b} up`));
    sh(inNs(ns.a, 'ping -c 2 -i 0.2 -W 2 10.239.0.2'));
    const pubHex = Buffer.from(pb, 'base64').toString('hex');
    /** Receive-buffer drops of b's WireGuard socket so far. */
    const drops = () => {
      const hex = PORT_B.toString(16).toUpperCase().padStart(4, '0');
      const lines = sh(inNs(ns.b, 'cat /proc/net/udp /proc/net/udp6')).split('\n').filter((l) => l.includes(`:${hex} `));
      return lines.reduce((sum, l) => sum + Number(l.trim().split(/\s+/).at(-1)), 0);
    };
    const iperf = async (): Promise<number> => {
      const srv = spawn('ip', ['netns', 'exec', ns.b, 'iperf3', '-s', '-1', '-B', '10.239.0.2', '-p', '5212'], { stdio: 'ignore' });
      procs.push(srv);
      await sleep(500);
      const out = JSON.parse(sh(inNs(ns.a, `iperf3 -c 10.239.0.2 -p 5212 -t ${seconds} -J`))) as { end: { sum_received: { bits_per_second: number } } };
      return out.end.sum_received.bits_per_second / 1e9;
    };
    const pairs: Pair[] = [];
    for (let r = 0; r < rounds; r++) {
      const normal = await iperf();
      const before = drops();
      const flooder = spawn('ip', ['netns', 'exec', ns.a, process.execPath, self, '--flood', '192.168.239.2', String(control ? PORT_B + 1 : PORT_B), pubHex, String(rate), String(burst), String(seconds + 1.5)], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      procs.push(flooder);
      let out = '';
      flooder.stdout!.on('data', (c: Buffer) => (out += c.toString()));
      const ended = new Promise((res) => flooder.once('exit', res));
      await sleep(500); // the flood is on before iperf3 starts (its own 0.5 s wait adds to it)
      const flooded = await iperf();
      await ended;
      const sent = Number(out.trim());
      const pair = { normal, flood: flooded, sent, rate: Math.round(sent / (seconds + 1.5)), kernelDrops: drops() - before };
      log(`round ${r + 1}: ${normal.toFixed(3)} Gbit/s normal, ${flooded.toFixed(3)} Gbit/s during a flood of ${sent} initiations (${pair.rate}/s); b's socket dropped ${pair.kernelDrops}`);
      pairs.push(pair);
    }
    return pairs;
  } finally {
    for (const n of [ns.a, ns.b]) {
      try {
        sh(`ip netns pids ${n} | xargs -r kill`);
      } catch {
        // no such namespace
      }
    }
    for (const p of procs) p.kill();
    await sleep(500);
    for (const n of [ns.a, ns.b]) removeNamespace(n);
    for (const f of [ifn.a, ifn.b]) rmSync(`/var/run/wireguard/${f}.sock`, { force: true });
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      json: { type: 'boolean' }, control: { type: 'boolean' }, burst: { type: 'string' }, seconds: { type: 'string' }, rounds: { type: 'string' }, rate: { type: 'string' }, flood: { type: 'boolean' },
    },
    allowPositionals: true,
    strict: false,
  });
  if (values.flood) {
    const [host, port, pub, rate, burst, seconds] = process.argv.slice(process.argv.indexOf('--flood') + 1);
    return flood(host!, Number(port), pub!, Number(rate), Number(burst), Number(seconds));
  }
  if (process.getuid?.() !== 0) throw new Error('bench:flood needs root (network namespaces, TUN devices)');
  for (const tool of ['wg', 'iperf3']) sh(`command -v ${tool} >/dev/null || (echo "${tool} missing" >&2; exit 1)`);
  const seconds = Number(values.seconds ?? 5);
  const rate = Number(values.rate ?? 0);
  const burst = rate > 0 ? 0 : Number(values.burst ?? 20_000);
  const rounds = Math.max(1, Number(values.rounds ?? 1));
  const log = values.json ? () => {} : (m: string) => process.stderr.write(m + '\n');
  const pairs = await measure(seconds, rate, burst, rounds, Boolean(values.control), log);
  const round = (n: number) => Math.round(n * 1000) / 1000;
  const normal = median(pairs.map((p) => p.normal));
  const flooded = median(pairs.map((p) => p.flood));
  process.stdout.write(
    JSON.stringify({
      gbps: { normal: round(normal), flood: round(flooded) },
      // Per pair (the machine's load drifts between pairs, less within one), then the median.
      ratio: round(median(pairs.map((p) => p.flood / p.normal))),
      flood: { sent: median(pairs.map((p) => p.sent)), rate: median(pairs.map((p) => p.rate)), kernelDrops: median(pairs.map((p) => p.kernelDrops)) },
    }) + '\n',
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:flood: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
