// bench:policy — compile a generated network (10,000 devices, 1,000 users, 100 groups, 200 tags,
// 1,000 ACL rules, 500 grants), then let one more device join and recompile only what changed.
// Prints {"devices", "rules", "compileAllMs", "oneDeviceJoinMs", "heapMB"} (with --json), plus, as a
// same-process baseline, the time of a from-scratch recompile after the join and the ratio to it, and
// the CPU time of the compile (a check on wall times taken on a busy machine). The JIT is warmed on a
// 500-device network first.
//
//   npm run -s bench:policy -- --json [--devices N]
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { parsePolicy, PolicyCompiler, type Topology, type TopoNode } from '../coord/policy/index.js';

// A full collection between phases, so one phase does not pay for another's garbage.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const args = process.argv.slice(2);
const json = args.includes('--json');
const devIdx = args.indexOf('--devices');
const DEVICES = devIdx >= 0 ? Number(args[devIdx + 1]) : 10_000;
if (!Number.isInteger(DEVICES) || DEVICES < 10) {
  process.stderr.write('usage: bench-policy [--json] [--devices N (>= 10)]\n');
  process.exit(2);
}
const USERS = 1_000;
const GROUPS = 100;
const TAGS = 200;
const ACLS = 1_000;
const GRANTS = 500;

// A small deterministic generator (mulberry32) so every run measures the same network.
let seed = 0x5eed;
function rand(): number {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
const int = (n: number): number => Math.floor(rand() * n);

function addr(i: number): { ipv4: string; ipv6: string } {
  const n = i + 1;
  return { ipv4: `100.${64 + ((n >> 16) & 63)}.${(n >> 8) & 255}.${n & 255}`, ipv6: `fd7a:115c:a1e0::${n.toString(16)}` };
}

function generate(devices = DEVICES): { policyText: string; topo: Topology } {
  const users = Array.from({ length: USERS }, (_, i) => ({
    id: i, name: `user${i}`, email: `user${i}@example.com`, role: (i < 5 ? 'admin' : i < 10 ? 'network-admin' : 'member') as 'admin' | 'network-admin' | 'member',
  }));
  const groups: Record<string, string[]> = {};
  for (let g = 0; g < GROUPS; g++) {
    const members = new Set<string>();
    const size = 5 + int(25);
    while (members.size < size) members.add(pick(users).email);
    groups[`group:g${g}`] = [...members];
  }
  const tags = Array.from({ length: TAGS }, (_, t) => `tag:t${t}`);
  const tagOwners = Object.fromEntries(tags.map((t, i) => [t, [`group:g${i % GROUPS}`]]));
  const hosts: Record<string, string> = {};
  for (let h = 0; h < 20; h++) hosts[`net${h}`] = `10.${h}.0.0/16`;

  const nodes: Record<string, TopoNode> = {};
  for (let i = 0; i < devices; i++) {
    const a = addr(i);
    const tagged = i % 10 < 3;
    const node: TopoNode = tagged
      ? { hostname: `d${i}`, tags: rand() < 0.2 ? [pick(tags), pick(tags)] : [pick(tags)], ...a, user: null }
      : { hostname: `d${i}`, tags: [], ...a, user: users[i % USERS]!.name };
    if (i < 20) node.tags = ['tag:t0'];
    if (i < 20) node.approved_routes = [hosts[`net${i}`]!];
    nodes[`d${i}`] = node;
  }

  const userSel = () => {
    const r = rand();
    if (r < 0.45) return `group:g${int(GROUPS)}`;
    if (r < 0.7) return pick(tags);
    if (r < 0.9) return pick(users).email;
    if (r < 0.95) return 'autogroup:admin';
    return 'autogroup:member';
  };
  const port = () => pick(['22', '80', '443', '5432', '8000-8100', '3000,3001', '*']);
  const acls = [];
  for (let i = 0; i < ACLS; i++) {
    const dst: string[] = [];
    const n = 1 + int(3);
    for (let j = 0; j < n; j++) {
      const r = rand();
      if (r < 0.55) dst.push(`${pick(tags)}:${port()}`);
      else if (r < 0.75) dst.push(`group:g${int(GROUPS)}:${port()}`);
      else if (r < 0.85) dst.push(`net${int(20)}:${port()}`);
      else if (r < 0.95) dst.push(`${pick(users).email}:${port()}`);
      else dst.push(`autogroup:self:${port()}`);
    }
    const hasSelf = dst.some((d) => d.startsWith('autogroup:self'));
    const src = Array.from({ length: 1 + int(2) }, () => userSel()).filter((s) => !hasSelf || !s.startsWith('tag:'));
    if (src.length === 0) src.push('autogroup:member');
    acls.push({ action: 'accept', src, dst, ...(rand() < 0.05 ? { proto: 'udp' } : {}) });
  }
  acls.push({ action: 'accept', src: ['autogroup:admin'], dst: ['*:22'] });
  const grants = [];
  for (let i = 0; i < GRANTS; i++) {
    const src = [userSel()];
    const r = rand();
    if (r < 0.6) grants.push({ src, dst: [pick(tags)], ip: [`tcp:${pick(['22', '443', '8443'])}`, 'udp:53'] });
    else if (r < 0.85) grants.push({ src, dst: [pick(tags)], app: { 'example.com/cap/app': [{ level: pick(['ro', 'rw']) }] } });
    else grants.push({ src, dst: [`net${int(20)}`], ip: ['*'], via: ['tag:t0'] });
  }
  const policyText = JSON.stringify({ groups, hosts, tagOwners, acls, grants }, null, 1);
  return { policyText, topo: { users, nodes } };
}

function ms(t0: bigint): number {
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

// Warm the JIT on a small network first, as a running coord is: the numbers are the steady state.
{
  const small = generate(500);
  const warm = new PolicyCompiler(parsePolicy(small.policyText), small.topo);
  for (const name of warm.nodeNames()) warm.filterFor(name);
  warm.setNode('warm', { hostname: 'warm', tags: [], ...addr(600), user: 'user7' });
  seed = 0x5eed;
}

const { policyText, topo } = generate();
if (process.env.BENCH_POLICY_DUMP) {
  const { writeFileSync } = await import('node:fs');
  writeFileSync(process.env.BENCH_POLICY_DUMP, JSON.stringify({ policyText, topo }));
}
const policy = parsePolicy(policyText);

const c0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
const compiler = new PolicyCompiler(policy, topo);
let ruleCount = 0;
for (const name of compiler.nodeNames()) ruleCount += compiler.filterFor(name).length;
const compileAllMs = ms(t0);
const cpu = process.cpuUsage(c0);
// CPU time of the whole process (all threads) during the compile: a check on wall times taken on a busy machine.
const compileAllCpuMs = (cpu.user + cpu.system) / 1000;

// One more device joins: a user device of someone in several groups.
const joinName = `d${DEVICES}`;
const joining: TopoNode = { hostname: joinName, tags: [], ...addr(DEVICES), user: 'user7' };
const t1 = process.hrtime.bigint();
const affected = compiler.setNode(joinName, joining);
const setNodeMs = ms(t1);
for (const name of affected) compiler.filterFor(name);
const oneDeviceJoinMs = ms(t1);

gc();
const heapMB = process.memoryUsage().heapUsed / 2 ** 20;

// Baseline in the same process: what the join would cost if everything were recompiled.
gc();
const t2 = process.hrtime.bigint();
const fresh = new PolicyCompiler(policy, { ...topo, nodes: { ...topo.nodes, [joinName]: joining } });
for (const name of fresh.nodeNames()) fresh.filterFor(name);
const fullRecompileMs = ms(t2);

const result = {
  devices: DEVICES + 1,
  rules: policy.acls.length + policy.grants.length,
  compileAllMs: Math.round(compileAllMs),
  oneDeviceJoinMs: Math.round(oneDeviceJoinMs * 100) / 100,
  heapMB: Math.round(heapMB),
  filterRules: ruleCount,
  compileAllCpuMs: Math.round(compileAllCpuMs),
  joinAffectedDevices: affected.size,
  joinSetNodeMs: Math.round(setNodeMs * 100) / 100,
  fullRecompileMs: Math.round(fullRecompileMs),
  joinVsFullRecompile: Math.round((oneDeviceJoinMs / fullRecompileMs) * 10000) / 10000,
};
if (json) process.stdout.write(JSON.stringify(result) + '\n');
else {
  for (const [k, v] of Object.entries(result)) process.stdout.write(`${k.padEnd(22)} ${v}\n`);
}
