// The policy's own `tests` (Tailscale semantics): each test names a source (a user, tag, group, host or
// IP) and destinations "host:port" that must be accepted or denied. Like Tailscale, tests do not depend
// on which devices exist: we build a small network with one device per user and tag the tests mention,
// compile the policy for it, and ask each destination device's filter whether it accepts the packet.
import type { FilterRule } from '../../wire/types.js';
import { DEFAULT_IPPROTO, IPPROTO } from '../../wire/types.js';
import { PolicyCompiler } from './compiler.js';
import { PolicyError, type TestFailure } from './errors.js';
import { addrFromBig, formatAddr, isTailnetAddr, parseAddr as parseAddrText, parseRange, rangeOfAddr, type Range } from '../../wire/addr.js';
import { parsePolicy, splitTestDst, type Policy, type PostureValue, type Sel } from './parse.js';
import type { Topology, TopoNode, TopoUser } from './types.js';

/** A single address as a one-address range; null when the text is no address. */
function parseAddr(text: string): Range | null {
  const a = parseAddrText(text);
  return a && rangeOfAddr(a);
}

/** Whether a filter accepts a new connection from `src` to `dst`:`port` over `proto`. */
export function filterAccepts(rules: FilterRule[], src: string, dst: string, port: number, proto: number): boolean {
  const s = parseAddr(src);
  const d = parseAddr(dst);
  return s !== null && d !== null && new FilterIndex(rules).accepts(s, addrKey(s), d, port, proto);
}

/** The bigint key of a single address, the same for every spelling of it. */
function addrKey(a: Range): string {
  return `${a.v6 ? 6 : 4}:${a.lo}`;
}

interface IndexedRule {
  protos: readonly number[];
  anySrc: boolean;
  /** Single-address sources, by addrKey: a lookup, not a scan, whatever the rule's size. */
  srcAddrs: Set<string>;
  srcRanges: Range[];
  dsts: { any: boolean; range: Range | null; first: number; last: number }[];
}

/**
 * A node's filter with every address parsed once, so the tests can ask it thousands of questions
 * without re-parsing its (possibly very long) source lists each time.
 */
class FilterIndex {
  private rules: IndexedRule[] = [];

  /** `range` parses an address or prefix; pass a memoized one when indexing many filters. */
  constructor(rules: FilterRule[], range: (text: string) => Range | null = parseRange) {
    for (const r of rules) {
      if (!r.DstPorts) continue;
      const ir: IndexedRule = {
        protos: r.IPProto && r.IPProto.length > 0 ? r.IPProto : DEFAULT_IPPROTO,
        anySrc: false,
        srcAddrs: new Set(),
        srcRanges: [],
        dsts: r.DstPorts.map((dp) => ({ any: dp.IP === '*', range: dp.IP === '*' ? null : range(dp.IP), first: dp.Ports.First, last: dp.Ports.Last })),
      };
      for (const text of r.SrcIPs) {
        if (text === '*') ir.anySrc = true;
        const src = text === '*' ? null : range(text);
        if (!src) continue;
        if (src.lo === src.hi) ir.srcAddrs.add(addrKey(src));
        else ir.srcRanges.push(src);
      }
      this.rules.push(ir);
    }
  }

  /** `sKey` is addrKey(s), passed in so a caller asking many questions computes it once. */
  accepts(s: Range, sKey: string, d: Range, port: number, proto: number): boolean {
    if (s.v6 !== d.v6) return false; // no packet has an IPv4 source and an IPv6 destination
    for (const r of this.rules) {
      if (!r.protos.includes(proto)) continue;
      if (!r.anySrc && !r.srcAddrs.has(sKey) && !r.srcRanges.some((x) => contains(x, s))) continue;
      for (const dp of r.dsts) {
        if ((dp.any || (dp.range !== null && contains(dp.range, d))) && dp.first <= port && port <= dp.last) return true;
      }
    }
    return false;
  }
}

function contains(r: Range, a: Range): boolean {
  return r.v6 === a.v6 && r.lo <= a.lo && a.hi <= r.hi;
}

/**
 * The network the tests run against: the real devices (when a topology is given) plus one synthetic
 * device per user and tag the tests name, and one per address no device holds.
 */
class TestNet {
  nodes: Record<string, TopoNode> = {};
  users: TopoUser[] = [];
  private next = 1;
  private byKey = new Map<string, string>();
  private used = new Set<string>();
  /** Address text → node holding it, and lower-cased email → user: lookups, never scans. */
  private byAddr = new Map<string, string>();
  private userByEmail = new Map<string, TopoUser>();
  private exits: Target[] | undefined;
  /** The topology's users (null without a topology: then every user is known). */
  private topoEmails: Set<string> | null = null;

  constructor(policy: Policy, topo: Topology | undefined) {
    for (const h of policy.hosts.values()) this.used.add(h.text);
    if (topo) {
      this.users = topo.users.map((u) => ({ ...u }));
      for (const u of this.users) if (!this.userByEmail.has(u.email.toLowerCase())) this.userByEmail.set(u.email.toLowerCase(), u);
      this.topoEmails = new Set(this.userByEmail.keys());
      for (const [name, n] of Object.entries(topo.nodes)) this.place(name, n);
    }
  }

  private place(name: string, n: TopoNode): void {
    this.nodes[name] = n;
    for (const a of [n.ipv4, n.ipv6]) {
      if (!a) continue;
      this.used.add(a);
      if (!this.byAddr.has(a)) this.byAddr.set(a, name);
    }
  }

  private addr(): { v4: string; v6: string } {
    for (;;) {
      const n = this.next++;
      const v4 = `100.96.${(n >> 8) & 255}.${n & 255}`;
      const v6 = `fd7a:115c:a1e0::ffff:${n.toString(16)}`;
      if (!this.used.has(v4) && !this.used.has(v6)) return { v4, v6 };
    }
  }

  private add(key: string, make: (name: string) => TopoNode): string {
    let name = this.byKey.get(key);
    if (!name) {
      name = `__test-${this.byKey.size}`;
      this.place(name, make(name));
      this.byKey.set(key, name);
    }
    return name;
  }

  knownUser(email: string): boolean {
    return this.topoEmails === null || this.topoEmails.has(email);
  }

  /** The user's device; with `posture`, a device of theirs with those posture attributes (a test's srcPostureAttrs). */
  userNode(email: string, posture?: Record<string, PostureValue>): string {
    let user = this.userByEmail.get(email);
    if (!user) {
      user = { name: email, email };
      this.users.push(user);
      this.userByEmail.set(email, user);
    }
    return this.add(`user ${email}${postureKey(posture)}`, (name) => {
      const a = this.addr();
      return { hostname: name, tags: [], ipv4: a.v4, ipv6: a.v6, user: user.name, ...(posture ? { posture } : {}) };
    });
  }

  tagNode(tag: string, posture?: Record<string, PostureValue>): string {
    return this.add(`tag ${tag}${postureKey(posture)}`, (name) => {
      const a = this.addr();
      return { hostname: name, tags: [tag], ipv4: a.v4, ipv6: a.v6, user: null, ...(posture ? { posture } : {}) };
    });
  }

  /** The device that holds (or routes to) a single address. */
  addrNode(addr: string, range: Range): string {
    const holder = this.byAddr.get(addr);
    if (holder !== undefined) return holder;
    return this.add(`addr ${addr}`, (name) => {
      const inTailnet = isTailnetAddr(addrFromBig(range.v6 ? 6 : 4, range.lo));
      if (inTailnet) return { hostname: name, tags: ['tag:__test-host'], ipv4: range.v6 ? '' : addr, ipv6: range.v6 ? addr : '', user: null };
      const a = this.addr();
      return { hostname: name, tags: ['tag:__test-router'], ipv4: a.v4, ipv6: a.v6, user: null, approved_routes: [`${addr}/${range.v6 ? 128 : 32}`] };
    });
  }

  /** Approved exit nodes (autogroup:internet), reached at a public address. */
  exitTargets(): Target[] {
    // Synthetic nodes never route the internet, so the topology's exit nodes are the answer throughout.
    this.exits ??= Object.entries(this.nodes)
      .filter(([, n]) => (n.approved_routes ?? []).some((r) => r === '0.0.0.0/0'))
      .map(([node]) => ({ node, addr: '8.8.8.8' }));
    return this.exits;
  }
}

interface Target {
  node: string;
  addr: string;
}

function rangeFirst(r: Range): string {
  return formatAddr(addrFromBig(r.v6 ? 6 : 4, r.lo));
}

/** The part of a synthetic device's key that tells devices of different posture apart. */
function postureKey(posture: Record<string, PostureValue> | undefined): string {
  return posture ? ` posture ${JSON.stringify(Object.entries(posture).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))}` : '';
}

/**
 * A test's source devices' addresses, or why the source is not usable. With `posture` (srcPostureAttrs)
 * the user's, group members' or tag's source device has those attributes; an address keeps its device's.
 */
function testSources(policy: Policy, net: TestNet, sel: Sel, posture?: Record<string, PostureValue>): string[] | string {
  switch (sel.k) {
    case 'user':
      if (!net.knownUser(sel.email)) return `user ${JSON.stringify(sel.email)} not found`;
      return [net.nodes[net.userNode(sel.email, posture)]!.ipv4];
    case 'group':
      return (policy.groups.get(sel.name) ?? []).map((m) => net.nodes[net.userNode(m.toLowerCase(), posture)]!.ipv4);
    case 'tag':
      return [net.nodes[net.tagNode(sel.name, posture)]!.ipv4];
    case 'prefix':
      if (sel.range.lo !== sel.range.hi) return `src ${JSON.stringify(sel.text)} must be a single address`;
      return [rangeFirst(sel.range)];
    default:
      return `src ${JSON.stringify(sel.k === 'all' ? '*' : `autogroup:${sel.k}`)} cannot be tested; name a user, group, tag, host or IP`;
  }
}

/** A test destination's devices and addresses, or why it names nothing testable. */
function testTargets(policy: Policy, net: TestNet, alias: string, src: Sel): Target[] | string {
  const userTarget = (email: string): Target => {
    const n = net.userNode(email);
    return { node: n, addr: net.nodes[n]!.ipv4 };
  };
  if (alias === '*') return 'a test names one destination, not "*"';
  if (alias === 'autogroup:self') {
    if (src.k === 'user') return [userTarget(src.email)];
    if (src.k === 'group') return (policy.groups.get(src.name) ?? []).map((m) => userTarget(m.toLowerCase()));
    return 'autogroup:self needs a user or group as the src';
  }
  if (alias === 'autogroup:internet') return net.exitTargets();
  if (alias.startsWith('tag:')) {
    if (!policy.tagOwners.has(alias)) return `tag ${JSON.stringify(alias)} not found`;
    const n = net.tagNode(alias);
    return [{ node: n, addr: net.nodes[n]!.ipv4 }];
  }
  if (alias.startsWith('group:')) {
    const members = policy.groups.get(alias);
    if (!members) return `group ${JSON.stringify(alias)} not found`;
    return members.map((m) => userTarget(m.toLowerCase()));
  }
  if (alias.startsWith('autogroup:')) return `${alias} cannot be a test destination`;
  if (alias.includes('@')) {
    const email = alias.replace(/^user:/, '').toLowerCase();
    if (!net.knownUser(email)) return `user ${JSON.stringify(email)} not found`;
    return [userTarget(email)];
  }
  const host = policy.hosts.get(alias);
  const text = host ? host.text : alias;
  const range = host ? host.range : parseRange(alias);
  if (!range || text.includes('/') || text.includes('-')) return host ? `host ${JSON.stringify(alias)} is a prefix; a test names one address` : `host ${JSON.stringify(alias)} not found`;
  const addr = rangeFirst(range);
  return [{ node: net.addrNode(addr, range), addr }];
}

/**
 * The most work one policy's tests may ask for. A test costs one check per source device per
 * destination device, and every destination may add a device to the network the tests compile; without
 * a bound a read-only caller could make coord work for hours on one request.
 */
export const MAX_TEST_DESTINATIONS = 10_000;
export const MAX_TEST_CHECKS = 100_000;

function tooMuchWork(what: string, n: number, max: number): PolicyError {
  return new PolicyError(`the policy's tests ask for too much work: ${n} ${what}, at most ${max} are allowed; split the tests across policy changes or name fewer destinations`);
}

/** Runs the policy's tests; returns the failures ([] when all pass). Pass the network's topology when there is one. */
export function runPolicyTests(policy: Policy, topo?: Topology): TestFailure[] {
  if (policy.tests.length === 0) return [];
  const destinations = policy.tests.reduce((n, t) => n + t.accept.length + t.deny.length, 0);
  if (destinations > MAX_TEST_DESTINATIONS) throw tooMuchWork('destinations', destinations, MAX_TEST_DESTINATIONS);
  const net = new TestNet(policy, topo);
  // Resolve everything first so the compiled network holds every device the tests need.
  const plans = policy.tests.map((t) => {
    const problems: string[] = [];
    let srcs: string[] = [];
    if (!t.src) problems.push('missing src');
    else if (!t.srcSel) problems.push(`src ${JSON.stringify(t.src)} not found`);
    else {
      const s = testSources(policy, net, t.srcSel, t.srcPostureAttrs);
      if (typeof s === 'string') problems.push(s);
      else srcs = s;
    }
    if (t.accept.length === 0 && t.deny.length === 0) problems.push('the test has neither accept nor deny');
    const resolve = (d: string): { text: string; port: number; targets: Target[] | string } => {
      const { alias, port } = splitTestDst(d);
      if (Number.isNaN(port)) return { text: d, port, targets: 'needs host:port with one port number, e.g. "tag:web:443"' };
      return { text: d, port, targets: t.srcSel ? testTargets(policy, net, alias, t.srcSel) : [] };
    };
    return { t, problems, srcs, accept: t.accept.map(resolve), deny: t.deny.map(resolve) };
  });
  let checks = 0;
  for (const p of plans) {
    for (const d of [...p.accept, ...p.deny]) if (typeof d.targets !== 'string') checks += Math.max(1, p.srcs.length) * d.targets.length;
  }
  if (checks > MAX_TEST_CHECKS) throw tooMuchWork('checks (source devices × destination devices, summed over the tests)', checks, MAX_TEST_CHECKS);
  const compiler = new PolicyCompiler(policy, { users: net.users, nodes: net.nodes });
  const indexes = new Map<string, FilterIndex>();
  const ranges = new Map<string, Range | null>();
  const rangeOf = (text: string): Range | null => {
    let r = ranges.get(text);
    if (r === undefined) ranges.set(text, (r = parseRange(text)));
    return r;
  };
  const addrs = new Map<string, { range: Range; key: string } | null>();
  const parsed = (text: string): { range: Range; key: string } | null => {
    let a = addrs.get(text);
    if (a === undefined) {
      const range = parseAddr(text);
      addrs.set(text, (a = range && { range, key: addrKey(range) }));
    }
    return a;
  };
  const indexFor = (node: string): FilterIndex => {
    let ix = indexes.get(node);
    if (!ix) indexes.set(node, (ix = new FilterIndex(compiler.filterFor(node), rangeOf)));
    return ix;
  };
  const failures: TestFailure[] = [];
  for (const { t, problems, srcs, accept, deny } of plans) {
    const proto = t.protos?.[0] ?? IPPROTO.TCP;
    const reach = (src: string, x: Target, port: number): boolean => {
      const s = parsed(src);
      const d = parsed(x.addr);
      return s !== null && d !== null && indexFor(x.node).accepts(s.range, s.key, d.range, port, proto);
    };
    const parts = [...problems];
    const failedAccept: string[] = [];
    const failedDeny: string[] = [];
    for (const d of accept) {
      if (typeof d.targets === 'string') parts.push(`${JSON.stringify(d.text)}: ${d.targets}`);
      else if (srcs.length > 0 && d.targets.length > 0 && srcs.every((s) => (d.targets as Target[]).every((x) => reach(s, x, d.port)))) continue;
      else if (problems.length === 0) parts.push(`expected accept ${JSON.stringify(d.text)}, got drop`);
      failedAccept.push(d.text);
    }
    for (const d of deny) {
      if (typeof d.targets === 'string') parts.push(`${JSON.stringify(d.text)}: ${d.targets}`);
      else if (srcs.every((s) => (d.targets as Target[]).every((x) => !reach(s, x, d.port)))) continue;
      else parts.push(`expected drop ${JSON.stringify(d.text)}, got accept`);
      failedDeny.push(d.text);
    }
    if (parts.length === 0) continue;
    failures.push({ src: t.src, line: t.line, failedAccept, failedDeny, message: `src ${JSON.stringify(t.src)} (line ${t.line}): ${parts.join('; ')}` });
  }
  return failures;
}

/**
 * Parses a policy and runs its tests, the gate for every policy write: throws PolicyError (line:column
 * for a malformed file; "test(s) failed: …" with `failures` and the first failing test's position).
 */
export function checkPolicy(text: string, topo?: Topology): Policy {
  const policy = parsePolicy(text);
  const failures = runPolicyTests(policy, topo);
  if (failures.length > 0) {
    const first = policy.tests.find((t) => t.line === failures[0]!.line);
    throw new PolicyError(`test(s) failed: ${failures.map((f) => f.message).join('; ')}`, first?.at, failures);
  }
  return policy;
}
