// Benchmark of the per-packet filter. `npm run -s bench:filter -- --json` prints
// {"mpps": {"small": n, "large": n}, "linearRatio": n, "flatness": n, "buildMs": n, "heapMB": n, "allocsPerPacket": n,
//  "allocsPerPacketWithScrape": n}
// Without --json it prints the same figures for people.
//
// - small: 6 rules, ~1,300 source prefixes; large: 10,000 rules, 100,000 source prefixes. Both are fed
//   the same kind of mixed stream (TCP SYN allowed and denied, TCP non-SYN, UDP new and existing flow,
//   ICMP echo request and reply; half IPv4, half IPv6). mpps = million runIn decisions per
//   second of CPU time (see trial).
// - linearRatio: our mpps ÷ the linear baseline's (filter/linear.ts) on the large set, same packets,
//   same process. flatness: our ns/decision on large ÷ on small.
// - buildMs: median of 3 builds of the large filter, in CPU time of this process. heapMB: V8 heap +
//   typed-array growth over the first build of the large filter, garbage included (see main).
// - allocsPerPacket: see measureAllocs below. allocsPerPacketWithScrape: the same while the agent's
//   metrics (agent/daemon/metrics.ts) are scraped in the middle of each burst; see measureAllocsWithScrape.

import { performance } from 'node:perf_hooks';
import v8 from 'node:v8';
import { pathToFileURL } from 'node:url';
import { runInNewContext } from 'node:vm';
import { craft, type PacketSpec } from '../filter/craft.js';
import { Filter, type FilterConfig } from '../filter/index.js';
import { agentRegistry } from '../agent/daemon/metrics.js';
import { LinearFilter } from '../filter/linear.js';
import { formatIPv4, tailnetIPv6For } from '../wire/addr.js';
import type { FilterRule, NetPortRange } from '../wire/types.js';

v8.setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const json = process.argv.includes('--json');

// Deterministic PRNG (mulberry32), so every run measures the same sets and packets.
let seed = 0x6d657368;
function rand(): number {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const randInt = (n: number): number => Math.floor(rand() * n);

// Node addresses as meshward hands them out: 100.64.0.0/10 and fd7a:115c:a1e0::<ipv4 bits>.
function node(i: number): { v4: string; v6: string } {
  const n = (100 << 24) + (64 << 16) + 256 + i * 7; // spread, skipping 100.64.0.x
  return { v4: formatIPv4(n), v6: tailnetIPv6For(n) };
}

const SELF = { v4: '100.64.0.1', v6: 'fd7a:115c:a1e0::6440:1' };
export const localAddrs = [SELF.v4, SELF.v6, '10.9.0.0/24'];

function dsts(ports: [number, number][]): NetPortRange[] {
  return ports.flatMap(([First, Last]) => [
    { IP: SELF.v4, Ports: { First, Last } },
    { IP: SELF.v6, Ports: { First, Last } },
  ]);
}

interface RuleSet {
  rules: FilterRule[];
  /** Sources that some rule allows to port 22 (TCP) and 53 (UDP) and ICMP. */
  allowed: { v4: string; v6: string }[];
  prefixes: number;
}

/** 10,000 rules with 10 source prefixes each: 5 nodes (v4 /32 + v6 /128). */
export function largeSet(): RuleSet {
  const rules: FilterRule[] = [];
  const allowed: { v4: string; v6: string }[] = [];
  let prefixes = 0;
  for (let r = 0; r < 10_000; r++) {
    const srcs: string[] = [];
    for (let k = 0; k < 5; k++) {
      const a = node(r * 5 + k);
      srcs.push(a.v4, a.v6);
    }
    prefixes += srcs.length;
    // Each rule opens its own port; every 50th rule also opens 22 (TCP/UDP/ICMP).
    const port = 1000 + r;
    const ports: [number, number][] = r % 50 === 0 ? [[port, port], [22, 22], [53, 53]] : [[port, port]];
    rules.push({ SrcIPs: srcs, DstPorts: dsts(ports), ...(r % 7 === 3 ? { IPProto: [6] } : {}) });
    if (r % 50 === 0) for (let k = 0; k < 5; k++) allowed.push(node(r * 5 + k));
  }
  return { rules, allowed, prefixes };
}

/** 6 rules with about 1,300 source prefixes (650 nodes, v4 + v6), the shape of a small company. */
export function smallSet(): RuleSet {
  const groups: string[][] = [[], [], [], [], [], []];
  const allowed: { v4: string; v6: string }[] = [];
  let prefixes = 0;
  for (let i = 0; i < 650; i++) {
    const a = node(i);
    groups[i % 6]!.push(a.v4, a.v6);
    prefixes += 2;
    if (i % 2 === 0) allowed.push(a);
  }
  const rules: FilterRule[] = groups.map((srcs, g) => ({
    SrcIPs: srcs,
    // Even-indexed nodes (groups 0, 2, 4) get 22/53 and ICMP; the others only a high port.
    DstPorts: dsts(g % 2 === 0 ? [[22, 22], [53, 53], [8000 + g, 8000 + g]] : [[8000 + g, 8000 + g]]),
  }));
  return { rules, allowed, prefixes };
}

/** Packets from nodes no rule names. */
function stranger(i: number): { v4: string; v6: string } {
  return node(60_000 + i);
}

interface Batch {
  buf: Uint8Array;
  off: Int32Array;
  len: Int32Array;
  count: number;
}

/** A mixed stream of `count` packets; records the "existing" UDP flows on `filters` via runOut. */
export function makeStream(set: RuleSet, count: number, filters: { runOut(b: Uint8Array, o: number, l: number): number }[]): Batch {
  const specs: PacketSpec[] = [];
  const outs: PacketSpec[] = [];
  for (let i = 0; i < count; i++) {
    const fam = i % 2 === 0 ? 'v4' : 'v6';
    const ok = set.allowed[randInt(set.allowed.length)]![fam];
    const bad = stranger(randInt(5000))[fam];
    const self = SELF[fam];
    const sport = 30000 + randInt(30000);
    switch ((i >> 1) % 8) {
      case 0: specs.push({ src: ok, dst: self, proto: 'tcp', sport, dport: 22, flags: 0x02 }); break; // SYN allowed
      case 1: specs.push({ src: bad, dst: self, proto: 'tcp', sport, dport: 22, flags: 0x02 }); break; // SYN denied
      case 2: specs.push({ src: ok, dst: self, proto: 'tcp', sport, dport: 22, flags: 0x10, payload: 1200 }); break; // non-SYN
      case 3: specs.push({ src: bad, dst: self, proto: 'tcp', sport, dport: 443, flags: 0x18, payload: 100 }); break; // non-SYN
      case 4: specs.push({ src: ok, dst: self, proto: 'udp', sport, dport: 53, payload: 40 }); break; // UDP new (allowed)
      case 5: {
        // UDP existing flow: we sent to bad:sport from our port 4242; this is its reply.
        specs.push({ src: bad, dst: self, proto: 'udp', sport, dport: 4242, payload: 1200 });
        outs.push({ src: self, dst: bad, proto: 'udp', sport: 4242, dport: sport });
        break;
      }
      case 6: specs.push({ src: ok, dst: self, proto: 'icmp' }); break; // echo request (rule needed)
      default: specs.push({ src: bad, dst: self, proto: 'icmp', icmpType: fam === 'v4' ? 0 : 129 }); break; // echo reply
    }
  }
  const packets = specs.map(craft);
  const total = packets.reduce((s, p) => s + p.length, 0);
  const buf = new Uint8Array(total);
  const off = new Int32Array(count);
  const len = new Int32Array(count);
  let at = 0;
  packets.forEach((p, i) => {
    buf.set(p, at);
    off[i] = at;
    len[i] = p.length;
    at += p.length;
  });
  for (const spec of outs) {
    const p = craft(spec);
    for (const f of filters) f.runOut(p, 0, p.length);
  }
  return { buf, off, len, count };
}

/** Packets that end in every drop reason: truncated, malformed, fragments, multicast, not local... */
function junkStream(count: number): Batch {
  const self = SELF.v4;
  const peer = node(1).v4;
  const base: Uint8Array[] = [
    craft({ src: peer, dst: '224.0.0.251', proto: 'udp' }),
    craft({ src: peer, dst: '169.254.1.1', proto: 'tcp' }),
    craft({ src: peer, dst: '100.99.0.1', proto: 'tcp' }),
    craft({ src: peer, dst: self, proto: 'tcp', fragOffset: 8, payload: 40 }),
    craft({ src: peer, dst: self, proto: 'tcp', fragOffset: 1480, payload: 40 }),
    craft({ src: peer, dst: self, proto: 47 }),
    craft({ src: node(2).v6, dst: 'ff02::1', proto: 'udp' }),
    craft({ src: node(2).v6, dst: SELF.v6, proto: 'tcp', dport: 22, ext: [0, 60, 43, 44] }),
    craft({ src: node(2).v6, dst: SELF.v6, proto: 'tcp', dport: 22, ext: [0, 60, 60, 60, 60, 60, 60, 60, 60] }),
  ];
  const packets: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const p = base[i % base.length]!.slice();
    if (i % 3 === 1) packets.push(p.subarray(0, randInt(p.length))); // truncated
    else if (i % 7 === 3) {
      p[0] = 0x50; // version 5
      packets.push(p);
    } else packets.push(p);
  }
  const buf = new Uint8Array(packets.reduce((n, p) => n + p.length, 0));
  const off = new Int32Array(count);
  const len = new Int32Array(count);
  let at = 0;
  packets.forEach((p, i) => {
    buf.set(p, at);
    off[i] = at;
    len[i] = p.length;
    at += p.length;
  });
  return { buf, off, len, count };
}

type Runner = { runIn(b: Uint8Array, o: number, l: number): number };

/**
 * Runs the whole batch `rounds` times; returns the sum of verdicts (so nothing is optimised away).
 * One copy of the loop per implementation, so neither call site is polymorphic.
 */
function makeRunBatch(): (f: Runner, b: Batch, rounds: number) => number {
  return new Function(
    'f',
    'b',
    'rounds',
    `let sum = 0;
     const buf = b.buf, off = b.off, len = b.len, count = b.count;
     for (let r = 0; r < rounds; r++) for (let i = 0; i < count; i++) sum += f.runIn(buf, off[i], len[i]);
     return sum;`,
  ) as (f: Runner, b: Batch, rounds: number) => number;
}
const runners = new Map<Runner, (f: Runner, b: Batch, rounds: number) => number>();
function runBatch(f: Runner, b: Batch, rounds: number): number {
  let run = runners.get(f);
  if (!run) runners.set(f, (run = makeRunBatch()));
  return run(f, b, rounds);
}

/** The number of rounds of the batch that takes about `ms`. */
function calibrate(f: Runner, b: Batch, ms: number): number {
  let rounds = 1;
  for (;;) {
    const t0 = performance.now();
    runBatch(f, b, rounds);
    const dt = performance.now() - t0;
    if (dt > ms / 4) return Math.max(1, Math.round((rounds * ms) / dt));
    rounds *= 2;
  }
}

/**
 * Million decisions per second of one timed run, per second of CPU time of this process (user +
 * system) rather than wall-clock time: the machine is shared, and time spent waiting for a core is
 * not time spent deciding. The loop allocates nothing, so GC/compiler threads add next to nothing;
 * what they add counts against us.
 */
function trial(f: Runner, b: Batch, rounds: number): number {
  const c0 = process.cpuUsage();
  runBatch(f, b, rounds);
  const c = process.cpuUsage(c0);
  return (rounds * b.count) / (c.user + c.system);
}

/**
 * Allocations per decision, measured: V8's used heap is read before and after running many decisions
 * (after warm-up, so the code is optimised and no lazy state is left to create). gc() first empties
 * the young generation, and a window in which the used heap went down (a GC ran) is not used. The
 * growth is divided by the number of decisions and by 12 bytes, the smallest V8 object (a HeapNumber
 * with pointer compression), so the figure is an upper bound on allocations per packet. The filter's
 * coarse clock timer (filter/flows.ts) allocates a little every 100 ms, independently of packets, so
 * windows are short (~250k decisions) and the cleanest of 12 is kept; the reading itself costs a few
 * hundred bytes per window.
 */
function measureAllocs(f: Runner, b: Batch): number {
  const rounds = Math.max(1, Math.floor(250_000 / b.count));
  runBatch(f, b, rounds * 4); // warm-up
  let best = Infinity;
  for (let attempt = 0; attempt < 12; attempt++) {
    gc();
    const before = v8.getHeapStatistics().used_heap_size;
    runBatch(f, b, rounds);
    const after = v8.getHeapStatistics().used_heap_size;
    if (process.env.BENCH_DEBUG) console.error('alloc window', after - before, rounds * b.count);
    if (after >= before) best = Math.min(best, (after - before) / (rounds * b.count) / 12);
  }
  return best === Infinity ? -1 : best;
}

/**
 * Allocations per decision while a metrics scrape runs in the middle of each burst of ~100,000
 * packets (the scrape reads the filter's counters and renders the text, as `GET /metrics` does). The
 * scrape itself allocates a fixed amount (its text), whatever the number of packets; what matters is
 * whether the packets cost more. So bursts of N and 2N decisions are measured, each with one scrape,
 * the cleanest of 12 of each kept, and the figure is their difference per extra decision (in 12-byte
 * units, as in measureAllocs): the scrape's fixed cost cancels out. A burst in which V8 collected
 * garbage (GCProfiler says so) is not used; if every burst collected some, packets allocate and the
 * figure is -1.
 */
async function measureAllocsWithScrape(f: Runner, b: Batch, scrape: () => Promise<string>): Promise<number> {
  const rounds = Math.max(2, Math.round(100_000 / b.count));
  runBatch(f, b, rounds * 4); // warm-up, of the scrape too
  for (let i = 0; i < 3; i++) await scrape();
  const burst = async (r: number): Promise<number> => {
    let best = Infinity;
    for (let attempt = 0; attempt < 12; attempt++) {
      gc();
      const profiler = new v8.GCProfiler();
      profiler.start();
      const before = v8.getHeapStatistics().used_heap_size;
      runBatch(f, b, Math.floor(r / 2));
      await scrape();
      runBatch(f, b, r - Math.floor(r / 2));
      const after = v8.getHeapStatistics().used_heap_size;
      const collections = profiler.stop()?.statistics.length ?? 0;
      if (collections === 0 && after >= before) best = Math.min(best, after - before);
    }
    return best;
  };
  const one = await burst(rounds);
  const two = await burst(rounds * 2);
  if (one === Infinity || two === Infinity) return -1;
  return Math.max(0, two - one) / (rounds * b.count) / 12;
}

function heapNow(gcFirst: boolean): number {
  if (gcFirst) {
    gc();
    gc();
  }
  return v8.getHeapStatistics().used_heap_size + process.memoryUsage().arrayBuffers;
}

async function main(): Promise<void> {
  const small = smallSet();
  const large = largeSet();
  const cfgSmall: FilterConfig = { rules: small.rules, localAddrs };
  const cfgLarge: FilterConfig = { rules: large.rules, localAddrs };

  // Memory of building the large set. heapMB is the conservative figure: heap + typed-array growth
  // from before the build to right after it, without a GC in between, so it includes the build's
  // garbage (an upper bound of its peak). The typed arrays retained after GC are printed for people.
  const mem0 = heapNow(true);
  const ab0 = process.memoryUsage().arrayBuffers;
  let fLarge: Filter | null = Filter.build(cfgLarge);
  const heapMB = (heapNow(false) - mem0) / 1048576;
  gc();
  const typedMB = (process.memoryUsage().arrayBuffers - ab0) / 1048576;
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    fLarge = null;
    gc();
    const c0 = process.cpuUsage();
    fLarge = Filter.build(cfgLarge);
    const c = process.cpuUsage(c0);
    times.push((c.user + c.system) / 1000); // CPU ms, like the decision rates (see trial)
  }
  times.sort((a, b) => a - b);
  const buildMs = times[1]!;
  const big = fLarge!;

  const fSmall = Filter.build(cfgSmall);
  // Same flow table: the flows recorded through the filter serve the baseline too.
  const linear = new LinearFilter(large.rules, localAddrs, big.flows);
  const streamSmall = makeStream(small, 4096, [fSmall]);
  const streamLarge = makeStream(large, 4096, [big]);

  // The two implementations must agree on every packet, or the comparison means nothing.
  for (let i = 0; i < streamLarge.count; i++) {
    const a = big.runIn(streamLarge.buf, streamLarge.off[i]!, streamLarge.len[i]!);
    const c = linear.runIn(streamLarge.buf, streamLarge.off[i]!, streamLarge.len[i]!);
    if (a !== c) throw new Error(`filter and linear baseline disagree on packet ${i}: ${a} vs ${c}`);
  }

  // Trials interleave small, large and linear, so that load from other processes on this shared
  // machine hits all of them alike; each keeps its best trial.
  const rSmall = calibrate(fSmall, streamSmall, 150);
  const rLarge = calibrate(big, streamLarge, 150);
  const rLinear = calibrate(linear, streamLarge, 150);
  let mSmall = 0;
  let mLarge = 0;
  let mLinear = 0;
  for (let t = 0; t < 8; t++) {
    mSmall = Math.max(mSmall, trial(fSmall, streamSmall, rSmall));
    mLarge = Math.max(mLarge, trial(big, streamLarge, rLarge));
    if (t % 2 === 0) mLinear = Math.max(mLinear, trial(linear, streamLarge, rLinear));
  }
  // Allocation is also measured on the drop paths the mixed stream hardly takes.
  const junk = junkStream(4096);
  const allocs = Math.max(
    measureAllocs(big, streamLarge),
    measureAllocs(fSmall, streamSmall),
    measureAllocs(big, junk),
    measureAllocs({ runIn: (b, o, l) => big.runOut(b, o, l) }, streamLarge),
  );
  // The agent's registry, its filter figures read from this filter, as the daemon's scrape reads its own.
  const registry = agentRegistry(() => ({
    filter: big.counters(), wireguardDrops: null, handshakes: null, peers: [], netmapVersion: null,
    coord: { connected: false, connects: 0, losses: 0 }, dns: null,
  }));
  const allocsScraped = await measureAllocsWithScrape(big, streamLarge, () => registry.metrics());

  const round = (x: number, d: number): number => Number(x.toFixed(d));
  const result = {
    mpps: { small: round(mSmall, 2), large: round(mLarge, 2) },
    linearRatio: round(mLarge / mLinear, 1),
    flatness: round(mSmall / mLarge, 3),
    buildMs: round(buildMs, 1),
    heapMB: round(heapMB, 1),
    allocsPerPacket: round(allocs, 3),
    allocsPerPacketWithScrape: round(allocsScraped, 3),
  };
  if (json) {
    console.log(JSON.stringify(result));
    return;
  }
  console.log(`filter benchmark (one core; ${streamLarge.count}-packet mixed stream, v4+v6)`);
  console.log(`  small set: ${small.rules.length} rules, ${small.prefixes} source prefixes: ${result.mpps.small} Mpps`);
  console.log(`  large set: ${large.rules.length} rules, ${large.prefixes} source prefixes: ${result.mpps.large} Mpps`);
  console.log(`  linear baseline on the large set: ${round(mLinear, 4)} Mpps -> ratio ${result.linearRatio}`);
  console.log(`  flatness (ns/decision large / small): ${result.flatness}`);
  console.log(`  build of the large set: ${result.buildMs} ms (median of 3), ${result.heapMB} MB heap growth, ${round(typedMB, 1)} MB of typed arrays retained`);
  console.log(`  allocations per packet (upper bound): ${result.allocsPerPacket}`);
  console.log(`  allocations per packet with a metrics scrape in each 100,000-packet burst: ${result.allocsPerPacketWithScrape}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
