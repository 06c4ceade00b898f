// bench:coord — netmap fan-out of a policy change.
//
//   npm run -s bench:coord -- --json [--devices N]      (default 10,000)
//
// Starts the real `coord serve` (a child process) on loopback with a fresh database holding one network
// of N/10 users; this process then registers N simulated devices through the machine API (agent/control,
// signed requests), opens N real netmap streams, changes the policy through the admin API, and measures
// per device the time from the API call until that device has a netmap with the new packet filter.
// Every device is affected (each filter changes). Baseline, measured the same way in the same run: one
// device reporting a new endpoint, until its peers have it.
// Then subnet-router failover: devices 0 and 1 advertise one subnet (approved through the admin API)
// that every device may reach; the primary's netmap stream closes, and per device the time until its
// netmap routes the subnet through the other one (failoverP50Ms, failoverP99Ms).
// Prints {"devices", "fanoutP50Ms", "fanoutP99Ms", "rssMB", …}; rssMB is the server's peak RSS.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Agent, request, setGlobalDispatcher } from 'undici';
import { ControlClient, generateMachineKey, type Netmap, type NetmapStream } from '../agent/control/index.js';
import { DEFAULT_POLICY, etagOf } from '../coord/domain/index.js';
import { Store } from '../coord/store/index.js';

const { values } = parseArgs({
  options: { json: { type: 'boolean' }, devices: { type: 'string', default: '10000' }, 'per-user': { type: 'string', default: '10' } },
  allowPositionals: false,
});
const N = Number(values.devices);
const PER_USER = Number(values['per-user']);
if (!Number.isInteger(N) || N < 2) {
  process.stderr.write('bench-coord: --devices must be a whole number ≥ 2\n');
  process.exit(2);
}

// Each stream is a socket here and one at the server: raise the soft file-descriptor limit to the hard
// one by re-running under `ulimit -n` (Node has no setrlimit).
const needFds = N + 512;
if (process.env.MW_BENCH_FDS !== '1') {
  const soft = Number(spawnSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).stdout.trim());
  if (soft < needFds) {
    const hard = spawnSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).stdout.trim();
    if (hard !== 'unlimited' && Number(hard) < needFds) {
      process.stderr.write(`bench-coord: need ${needFds} file descriptors, the hard limit is ${hard}; use fewer --devices or raise it\n`);
      process.exit(1);
    }
    const self = fileURLToPath(import.meta.url);
    const r = spawnSync('sh', ['-c', `ulimit -n ${hard === 'unlimited' ? needFds * 2 : hard} && exec "$0" "$@"`, process.execPath, self, ...process.argv.slice(2)], {
      stdio: 'inherit',
      env: { ...process.env, MW_BENCH_FDS: '1' },
    });
    process.exit(r.status ?? 1);
  }
}

const log = (s: string) => values.json || process.stderr.write(`bench-coord: ${s}\n`);
const root = fileURLToPath(new URL('../..', import.meta.url));
setGlobalDispatcher(new Agent({ connections: null, pipelining: 1, keepAliveTimeout: 60_000, connect: { timeout: 30_000 } }));

const POLICY_A = '{"acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]}]}';
const POLICY_W = '{"acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:80"]}]}';
const POLICY_B = '{"acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:22"]}]}';
const SUBNET = '10.99.0.0/24';
const POLICY_R = '{"acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:22", "10.99.0.0/24:*"]}]}';
/** The node key of the peer that carries SUBNET for this device now ('' for none). */
const primaryKey = (n: Netmap) => n.peers.find((p) => p.primaryRoutes?.includes(SUBNET))?.nodeKey ?? '';
const hasPort = (n: Netmap, port: number) => n.packetFilter.some((r) => r.DstPorts?.some((d) => d.Ports.First === port && d.Ports.Last === port));

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function peakRssMB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return Math.round(kb / 1024);
}

/** A distinct node key per device (coord refuses a key another device holds). */
function nodeKeyOf(i: number): string {
  const k = Buffer.alloc(32, 7);
  k.writeUInt32BE(i, 0);
  return k.toString('base64');
}

async function startCoord(db: string): Promise<{ url: string; proc: ChildProcess }> {
  // MW_BENCH_COORD_NODE_ARGS: extra node flags for the server, e.g. "--cpu-prof" to profile it.
  const nodeArgs = (process.env.MW_BENCH_COORD_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const proc = spawn(process.execPath, [...nodeArgs, join(root, 'dist/coord/main.js'), 'serve', '--listen', '127.0.0.1:0', '--db', db, '--log-level', 'warn', '--stun-port', '0'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    proc.once('exit', (c) => reject(new Error(`coord exited with ${c}`)));
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      try {
        const m = JSON.parse(line) as { listening?: string };
        if (m.listening) resolve(m.listening);
      } catch {
        /* log line */
      }
    });
  });
  return { url, proc };
}

async function pool<T>(items: T[], width: number, fn: (t: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i]!, i);
      }
    }),
  );
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'mw-bench-coord-'));
  let coord: { url: string; proc: ChildProcess } | undefined;
  const streams: NetmapStream[] = [];
  try {
    // Setup (not measured): the network, its users, one auth key per user, the policy.
    const db = join(dir, 'coord.db');
    const store = new Store(db);
    const users = Math.max(1, Math.ceil(N / PER_USER));
    const { tailnet, apiKey } = store.createTailnet('bench.example', 'owner@bench.example', DEFAULT_POLICY, etagOf(DEFAULT_POLICY));
    const authKeys: string[] = [];
    store.tx(() => {
      for (let u = 0; u < users; u++) {
        const user = store.createUser(tailnet.id, `user${u}@bench.example`, 'member');
        authKeys.push(store.createKey({ tailnetId: tailnet.id, keyType: 'auth', userId: user.id, deviceUserId: user.id, reusable: true, preauthorized: true, expires: new Date(Date.now() + 86_400_000).toISOString() }).secret.secret);
      }
      store.setPolicy(tailnet.id, POLICY_A, etagOf(POLICY_A));
    });
    store.close();
    coord = await startCoord(db);
    const pid = coord.proc.pid!;
    log(`coord at ${coord.url} (pid ${pid}); registering ${N} devices`);

    // Register every device through the machine API.
    let t = performance.now();
    const clients: ControlClient[] = [];
    const ids: string[] = [];
    await pool(Array.from({ length: N }, (_, i) => i), 64, async (i) => {
      const c = new ControlClient(coord!.url, generateMachineKey());
      clients[i] = c;
      ids[i] = (await c.register({ nodeKey: nodeKeyOf(i), hostname: `dev${i}`, authKey: authKeys[i % users], os: 'linux', endpoints: [`192.0.2.${(i % 250) + 1}:41641`] })).deviceId;
    });
    const registerMs = performance.now() - t;
    log(`registered in ${Math.round(registerMs)} ms; opening ${N} netmap streams`);

    // Open every stream; wait for each first netmap, then for the presence updates to settle.
    let phase: 'connect' | 'baseline' | 'fanout' | 'failover' = 'connect';
    let failover = new Array<number>(N).fill(-1);
    let failed = 0;
    let wantKey = '';
    let t0 = 0;
    let wantPort = 0;
    const first = new Array<number>(N).fill(-1);
    let fanout = new Array<number>(N).fill(-1);
    const baseline = new Map<number, number>();
    const baselineWanted = new Set<number>();
    let got = 0, fanned = 0, lastArrival = performance.now();
    const last: (Netmap | undefined)[] = new Array(N);
    t = performance.now();
    for (let i = 0; i < N; i++) {
      streams.push(
        clients[i]!.stream(
          {
            onNetmap: (n) => {
              const now = performance.now();
              lastArrival = now;
              last[i] = n;
              if (first[i] === -1) {
                first[i] = now - t;
                got++;
              }
              if (phase === 'baseline' && baselineWanted.has(i) && !baseline.has(i) && n.peers.some((p) => p.endpoints[0] === '198.51.100.1:41641')) baseline.set(i, now - t0);
              if (phase === 'failover' && i > 1 && failover[i] === -1 && primaryKey(n) === wantKey) {
                failover[i] = now - t0;
                failed++;
              }
              if (phase === 'fanout' && fanout[i] === -1 && hasPort(n, wantPort)) {
                fanout[i] = now - t0;
                fanned++;
              }
            },
            onError: (err, { fatal }) => {
              if (fatal) log(`device ${i}: ${err.message}`);
            },
          },
          { baseMs: 1000, maxMs: 10_000 },
        ),
      );
    }
    const waitUntil = async (cond: () => boolean, ms: number, what: string) => {
      const until = performance.now() + ms;
      while (!cond()) {
        if (performance.now() > until) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    await waitUntil(() => got === N, 300_000, `first netmaps (${got}/${N})`);
    const connectMs = performance.now() - t;
    await waitUntil(() => performance.now() - lastArrival > 1000, 300_000, 'the stream to settle');
    log(`all streams open in ${Math.round(connectMs)} ms`);

    // Baseline: one device reports a new endpoint; time until its peers have it.
    const peersOf0 = (last[0]?.peers ?? []).map((p) => Number(p.name.slice(3).split('.')[0]));
    for (const p of peersOf0) baselineWanted.add(p);
    phase = 'baseline';
    t0 = performance.now();
    await clients[0]!.update({ endpoints: ['198.51.100.1:41641'] });
    await waitUntil(() => baseline.size === baselineWanted.size, 30_000, 'baseline');
    const baselineMs = Math.max(0, ...baseline.values());

    // A policy update through the admin API that changes every device's filter; per device, the time
    // until it has the new filter. Run twice: the first (cold code paths) is reported apart.
    const change = async (policy: string, port: number): Promise<{ lat: number[]; apiMs: number }> => {
      fanout = new Array<number>(N).fill(-1);
      fanned = 0;
      wantPort = port;
      phase = 'fanout';
      t0 = performance.now();
      const res = await request(`${coord!.url}/api/v2/tailnet/-/acl`, { method: 'POST', body: policy, headers: { authorization: `Bearer ${apiKey.secret}`, 'content-type': 'application/hujson' } });
      const answer = await res.body.text();
      if (res.statusCode !== 200) throw new Error(`policy update refused: ${res.statusCode} ${answer}`);
      const apiMs = performance.now() - t0;
      await waitUntil(() => fanned === N, 120_000, `new netmaps (${fanned}/${N})`);
      phase = 'connect';
      return { lat: fanout.slice().sort((a, b) => a - b), apiMs };
    };
    const cold = await change(POLICY_W, 80);
    await new Promise((r) => setTimeout(r, 500));
    const { lat, apiMs } = await change(POLICY_B, 22);

    // Failover (setup not measured): two routers for one subnet, every device routed through one.
    const admin = async (method: 'POST', path: string, body: string, type = 'application/json') => {
      const res = await request(`${coord!.url}/api/v2${path}`, { method, body, headers: { authorization: `Bearer ${apiKey.secret}`, 'content-type': type } });
      const text = await res.body.text();
      if (res.statusCode !== 200) throw new Error(`${path}: ${res.statusCode} ${text}`);
    };
    for (const r of [0, 1]) {
      await clients[r]!.update({ advertisedRoutes: [SUBNET] });
      await admin('POST', `/device/${ids[r]}/routes`, JSON.stringify({ routes: [SUBNET] }));
    }
    await admin('POST', '/tailnet/-/acl', POLICY_R, 'application/hujson');
    const routed = () => last.every((n, i) => i < 2 || (n !== undefined && primaryKey(n) !== ''));
    await waitUntil(routed, 120_000, 'every device to route the subnet');
    const primary = primaryKey(last[2]!) === nodeKeyOf(0) ? 0 : 1;
    wantKey = nodeKeyOf(1 - primary);
    failover = new Array<number>(N).fill(-1);
    failed = 0;
    phase = 'failover';
    t0 = performance.now();
    streams[primary]!.close();
    await waitUntil(() => failed === N - 2, 120_000, `the new primary (${failed}/${N - 2})`);
    const fail = failover.filter((x) => x >= 0).sort((a, b) => a - b);
    const result = {
      devices: N,
      fanoutP50Ms: Math.round(percentile(lat, 50)),
      fanoutP99Ms: Math.round(percentile(lat, 99)),
      rssMB: peakRssMB(pid),
      fanoutMaxMs: Math.round(lat[lat.length - 1]!),
      policyApiMs: Math.round(apiMs),
      baselineMs: Math.round(baselineMs),
      p99OverBaseline: Math.round((percentile(lat, 99) / Math.max(1, baselineMs)) * 10) / 10,
      coldFanoutP99Ms: Math.round(percentile(cold.lat, 99)),
      failoverP50Ms: Math.round(percentile(fail, 50)),
      failoverP99Ms: Math.round(percentile(fail, 99)),
      registerMs: Math.round(registerMs),
      connectMs: Math.round(connectMs),
    };
    if (values.json) process.stdout.write(JSON.stringify(result) + '\n');
    else {
      for (const [k, v] of Object.entries(result)) process.stdout.write(`${k.padEnd(16)} ${v}\n`);
    }
  } finally {
    for (const s of streams) s.close();
    if (coord && coord.proc.exitCode === null) {
      const exited = new Promise((r) => coord!.proc.once('exit', r));
      coord.proc.kill('SIGTERM');
      const timer = setTimeout(() => coord!.proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`bench-coord: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
