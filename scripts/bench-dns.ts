// bench:dns — queries per second and latency of the agent's resolver for tailnet names (MagicDNS),
// one core: the resolver runs in this process on loopback with the names of a 1,000-device netmap; a
// load generator in a child process keeps WINDOW queries in flight (random names, A and AAAA) for
// SECONDS. As a baseline in the same run, the same load against dnsmasq (Debian's) answering the same
// names from --host-record, also on loopback.
//
//   npm run -s bench:dns -- --json [--seconds N]
// Prints {"qps", "p99Ms", "baseline": {"name", "qps", "p99Ms"} | null, "ratio"}.
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createServer, type AddressInfo } from 'node:net';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dnsPacket from 'dns-packet';
import { DnsServer, MagicResolver, settingsFromDns } from '../agent/dns/index.js';
import type { Netmap, PeerNode } from '../wire/protocol.js';

const args = process.argv.slice(2);
const json = args.includes('--json');
const secIdx = args.indexOf('--seconds');
const SECONDS = secIdx >= 0 ? Number(args[secIdx + 1]) : 4;
const DEVICES = 1000;
const WINDOW = 64;
const DOMAIN = 'bench.meshward.internal';

function addrOf(i: number): [string, string] {
  return [`100.64.${(i >> 8) & 255}.${i & 255}`, `fd7a:115c:a1e0::${i.toString(16)}`];
}

function netmap(): Netmap {
  const peers: PeerNode[] = [];
  for (let i = 2; i < DEVICES + 2; i++) {
    const [v4, v6] = addrOf(i);
    peers.push({
      id: `d${i}`, name: `host${i}.${DOMAIN}`, addresses: [`${v4}/32`, `${v6}/128`], nodeKey: `k${i}`, endpoints: [], allowedIPs: [],
      user: { id: 'u', loginName: 'u@example.com', displayName: 'U' }, tags: [], os: 'linux', online: true, lastSeen: null, shared: false, quarantined: false,
    });
  }
  return {
    version: 1,
    self: {
      id: 'self', name: `host1.${DOMAIN}`, hostname: 'host1', addresses: ['100.64.0.1/32'], user: { id: 'u', loginName: 'u@example.com', displayName: 'U' },
      tags: [], network: { name: 'bench', domain: DOMAIN }, nodeKey: 'self', authorized: true, expires: null,
    },
    peers, packetFilter: [], dns: { domain: DOMAIN, magicDNS: true, nameservers: [], searchPaths: [] },
  };
}

// The load generator (a child process, so it does not share the resolver's core): prints one JSON line.
const LOADGEN = `
const dgram = require('dgram');
const [port, seconds, window, devices, domain] = process.argv.slice(2).map((v, i) => (i < 4 ? Number(v) : v));
const s = dgram.createSocket('udp4');
const pending = new Map();
const lat = [];
let id = 0, done = 0, lost = 0;
function encodeName(name) {
  const parts = name.split('.');
  const bufs = parts.map((p) => Buffer.concat([Buffer.from([p.length]), Buffer.from(p)]));
  return Buffer.concat([...bufs, Buffer.from([0])]);
}
const names = [];
for (let i = 2; i < devices + 2; i++) names.push(encodeName('host' + i + '.' + domain));
function query() {
  id = (id + 1) & 0xffff;
  const name = names[(Math.random() * names.length) | 0];
  const q = Buffer.alloc(12 + name.length + 4);
  q.writeUInt16BE(id, 0); q.writeUInt16BE(0x0100, 2); q.writeUInt16BE(1, 4);
  name.copy(q, 12);
  q.writeUInt16BE(id & 1 ? 28 : 1, 12 + name.length); q.writeUInt16BE(1, 14 + name.length);
  pending.set(id, process.hrtime.bigint());
  s.send(q, port, '127.0.0.1');
}
let measuring = false;
s.on('message', (m) => {
  const qid = m.readUInt16BE(0);
  const t = pending.get(qid);
  if (t === undefined) return;
  pending.delete(qid);
  if (measuring) { done++; lat.push(Number(process.hrtime.bigint() - t) / 1e6); }
  query();
});
s.bind(0, '127.0.0.1', () => {
  for (let i = 0; i < window; i++) query();
  // Lost datagrams would shrink the window: top it up.
  const refill = setInterval(() => { const now = process.hrtime.bigint(); for (const [k, t] of pending) if (now - t > 500000000n) { pending.delete(k); lost++; query(); } }, 200);
  setTimeout(() => { measuring = true; const t0 = Date.now();
    setTimeout(() => {
      measuring = false; clearInterval(refill);
      lat.sort((a, b) => a - b);
      const secs = (Date.now() - t0) / 1000;
      console.log(JSON.stringify({ qps: Math.round(done / secs), p99Ms: +(lat[Math.floor(lat.length * 0.99)] || 0).toFixed(3), lost }));
      process.exit(0);
    }, seconds * 1000);
  }, 500);
});
`;

function runLoad(dir: string, port: number): Promise<{ qps: number; p99Ms: number; lost: number }> {
  const gen = join(dir, 'loadgen.cjs');
  writeFileSync(gen, LOADGEN);
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [gen, String(port), String(SECONDS), String(WINDOW), String(DEVICES), DOMAIN], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`load generator exited ${code}`))));
  });
}

/** A loopback port free for both UDP and TCP (the resolver listens on both). */
async function freePort(): Promise<number> {
  for (;;) {
    const tcp = createServer();
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
    const port = (tcp.address() as AddressInfo).port;
    const udp = createSocket('udp4');
    const ok = await new Promise<boolean>((r) => {
      udp.once('error', () => r(false));
      udp.bind(port, '127.0.0.1', () => r(true));
    });
    udp.close();
    await new Promise((r) => tcp.close(r));
    if (ok) return port;
  }
}

/** Resolves once the server on `port` answers `name` with `addr`; rejects when `proc` exits or after 15 s. */
async function untilAnswered(port: number, proc: ChildProcess, name: string, addr: string): Promise<void> {
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const sock = createSocket('udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      const query = dnsPacket.encode({ type: 'query', id: 7, flags: 0x100, questions: [{ type: 'A', name }] });
      const timer = setInterval(() => sock.send(query, port, '127.0.0.1'), 100);
      const fail = (why: string) => {
        clearInterval(timer);
        reject(new Error(`dnsmasq ${why}${stderr ? `: ${stderr.trim()}` : ''}`));
      };
      const deadline = setTimeout(() => fail('did not answer within 15 s'), 15_000);
      proc.once('exit', (code) => {
        clearTimeout(deadline);
        fail(`exited (${code})`);
      });
      sock.on('message', (m) => {
        const a = dnsPacket.decode(m).answers?.[0];
        if (a && 'data' in a && a.data === addr) {
          clearInterval(timer);
          clearTimeout(deadline);
          resolve();
        }
      });
      sock.send(query, port, '127.0.0.1');
    });
  } finally {
    sock.close();
  }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'mw-bench-dns-'));
  let dnsmasq: ChildProcess | null = null;
  try {
    const nm = netmap();
    const resolver = new MagicResolver();
    resolver.setNetmap(nm, settingsFromDns(nm.dns));
    const server = new DnsServer(resolver, ['127.0.0.1']);
    const port = await freePort();
    await server.listen(['127.0.0.1'], port);
    // Check one answer before measuring.
    const check = await server.answer(dnsPacket.encode({ type: 'query', id: 1, flags: 0x100, questions: [{ type: 'A', name: `host7.${DOMAIN}` }] }), false);
    const ans = dnsPacket.decode(check!.answer).answers?.[0];
    if (!ans || !('data' in ans) || ans.data !== '100.64.0.7') throw new Error('the resolver does not answer the bench names');
    const ours = await runLoad(dir, port);
    server.close();

    let baseline: { name: string; qps: number; p99Ms: number } | null = null;
    if (existsSync('/usr/sbin/dnsmasq')) {
      const hosts = join(dir, 'hosts');
      const lines: string[] = [];
      for (let i = 2; i < DEVICES + 2; i++) {
        const [v4, v6] = addrOf(i);
        lines.push(`${v4} host${i}.${DOMAIN}`, `${v6} host${i}.${DOMAIN}`);
      }
      writeFileSync(hosts, lines.join('\n') + '\n');
      const bport = await freePort();
      dnsmasq = spawn('/usr/sbin/dnsmasq', [
        '--keep-in-foreground', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', `--addn-hosts=${hosts}`, '--pid-file=',
        '--listen-address=127.0.0.1', '--bind-interfaces', `--port=${bport}`, '--cache-size=10000', `--local=/${DOMAIN}/`, ...(process.getuid?.() === 0 ? ['--user=root'] : []),
      ], { stdio: ['ignore', 'ignore', 'pipe'] });
      // Measure only once it answers (it reads the hosts file after it starts; a loaded machine takes a while).
      await untilAnswered(bport, dnsmasq, 'host7.' + DOMAIN, '100.64.0.7');
      const b = await runLoad(dir, bport);
      if (b.qps === 0) throw new Error('dnsmasq answered the first query but none under load');
      baseline = { name: 'dnsmasq', qps: b.qps, p99Ms: b.p99Ms };
    }
    const result = { qps: ours.qps, p99Ms: ours.p99Ms, baseline, ratio: baseline ? +(ours.qps / baseline.qps).toFixed(2) : null };
    if (json) process.stdout.write(JSON.stringify(result) + '\n');
    else {
      process.stdout.write(`MagicDNS resolver, ${DEVICES} names, ${WINDOW} in flight, ${SECONDS} s: ${ours.qps} queries/s, p99 ${ours.p99Ms} ms (lost ${ours.lost})\n`);
      if (baseline) process.stdout.write(`dnsmasq, same names and load:            ${baseline.qps} queries/s, p99 ${baseline.p99Ms} ms; ratio ${result.ratio}\n`);
      process.stdout.write(`target: ≥ 20,000 queries/s → ${ours.qps >= 20_000 ? 'met' : 'NOT met'}\n`);
    }
  } finally {
    dnsmasq?.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
