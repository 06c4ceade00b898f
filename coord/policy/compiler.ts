// The compiler: policy + topology → each node's FilterRules, kept up to date incrementally.
//
// A policy rule becomes one or more "units" (an ACL; a grant's ip part; a grant's app part). For each
// unit we keep its source addresses (cached) and the set of nodes it targets; a node's filter is the
// ordered list of its units, each reduced to the destinations on that node (its own addresses, the
// approved subnet routes it serves, the internet when it is an approved exit node). When one node
// changes, only units whose selectors mention it are touched, and only nodes that receive those
// units are invalidated.
import type { FilterRule, NetPortRange, PortRange } from '../../wire/types.js';
import { carveSources, excludedOf, type Excluded } from '../sharing.js';
import { entriesContain, hostPrefix, isFullRange, parseRange, rangesOverlap, TAILNET_SOURCES, type Range } from '../../wire/addr.js';
import { INTERNET_PREFIXES } from './internet.js';
import { portRange, type Policy, type Sel } from './parse.js';
import { postureMatches } from './posture.js';
import type { Role, SharedUser, Topology, TopoNode, TopoUser, ViaSteer } from './types.js';

/** Capabilities that bring a companion capability along (Tailscale's peer-capability pairs). */
const COMPANION_CAPS: Record<string, string> = {
  'tailscale.com/cap/drive': 'tailscale.com/cap/drive-sharer',
  'tailscale.com/cap/relay': 'tailscale.com/cap/relay-target',
};

interface NodeInfo {
  name: string;
  node: TopoNode;
  addrs: string[];
  addrRanges: Range[];
  /** Approved subnet routes (exit routes excluded). */
  routes: { text: string; range: Range }[];
  /** Approved exit node (0.0.0.0/0 or ::/0 approved). */
  exit: boolean;
  tagged: boolean;
  /** Owner's email (lower case) for untagged nodes. */
  email?: string;
  role?: Role;
}

interface DstSpec {
  sel: Sel;
  /** ACL entries carry their own ports; grant entries use the ip specs. */
  ports: PortRange[] | null;
}

interface Unit {
  order: number;
  line: number;
  src: Sel[];
  /** The sources that make up the address list: `src` without selectors another one already covers. */
  srcEff: Sel[];
  posture: string[];
  dsts: DstSpec[];
  selfDsts: DstSpec[];
  /** Protocol groups, each with ports (null: the dst entry's ports). Empty for cap units. */
  groups: { protos?: number[]; ports: PortRange[] | null }[];
  caps?: Record<string, unknown[] | null>;
  via: string[];
  star: boolean;
}

interface Built {
  units: number[];
  offsets: number[];
  rules: FilterRule[];
}

interface Entry {
  ip: string;
  ports: PortRange[] | null;
  /** For CapGrant Dsts: the prefix text to use. */
  capDst: string;
}

const ALL_PORTS: PortRange = portRange(0, 65535);
const ALL: PortRange[] = [ALL_PORTS];

/** Selectors that stand for devices (their address sets can be patched device by device). */
const NODE_SELECTORS = new Set<Sel['k']>(['user', 'domain', 'group', 'tag', 'member', 'tagged', 'role']);

function sameFilter(a: FilterRule[] | undefined, b: FilterRule[]): boolean {
  if (!a || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (!sameList(x.SrcIPs, y.SrcIPs)) return false;
    if ((x.IPProto ?? []).join() !== (y.IPProto ?? []).join()) return false;
    const dx = x.DstPorts ?? [];
    const dy = y.DstPorts ?? [];
    if (dx.length !== dy.length) return false;
    for (let j = 0; j < dx.length; j++) {
      const p = dx[j]!;
      const q = dy[j]!;
      if (p.IP !== q.IP || p.Ports.First !== q.Ports.First || p.Ports.Last !== q.Ports.Last) return false;
    }
    if ((x.CapGrant || y.CapGrant) && JSON.stringify(x.CapGrant) !== JSON.stringify(y.CapGrant)) return false;
  }
  return true;
}

function sameList(a: string[], b: string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The first index in a sorted list whose element is not less than `v`. */
function lowerBound<T extends number | string>(arr: readonly T[], v: T): number {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (arr[mid]! < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Removes `remove` from and inserts `add` into a sorted list, in place; true when it changed. */
function patchInPlace(arr: string[], remove: string[], add: string[]): boolean {
  if (remove.length === add.length && remove.every((x, i) => x === add[i])) return false;
  let changed = false;
  for (const r of remove) {
    const i = lowerBound(arr, r);
    if (arr[i] === r) {
      arr.splice(i, 1);
      changed = true;
    }
  }
  for (const a of add) {
    const i = lowerBound(arr, a);
    if (arr[i] !== a) {
      arr.splice(i, 0, a);
      changed = true;
    }
  }
  return changed;
}

/** Merges sorted string lists into one sorted list without duplicates. */
function mergeSorted(lists: string[][]): string[] {
  let acc = lists[0] ?? [];
  for (let k = 1; k < lists.length; k++) {
    const b = lists[k]!;
    const out: string[] = [];
    let i = 0;
    let j = 0;
    while (i < acc.length || j < b.length) {
      const x = acc[i];
      const y = b[j];
      let v: string;
      if (y === undefined || (x !== undefined && x < y)) { v = x!; i++; } else if (x === undefined || y < x) { v = y; j++; } else { v = x; i++; j++; }
      if (out[out.length - 1] !== v) out.push(v);
    }
    acc = out;
  }
  return acc;
}

function protoKey(p?: number[]): string {
  return p ? p.join(',') : '';
}

/** A selector's identity (for caches and de-duplication). */
function selKeyOf(sel: Sel): string {
  switch (sel.k) {
    case 'user': return `user ${sel.email}`;
    case 'domain': return `domain ${sel.domain}`;
    case 'group': case 'tag': return sel.name;
    case 'role': return `role ${sel.role}`;
    case 'prefix': return `prefix ${sel.text}`;
    default: return sel.k;
  }
}

/**
 * Drops source selectors another one covers: every user's device is a member's device, every tagged
 * device is in autogroup:tagged. Fewer lists to merge, and most units then share one list.
 */
function effective(src: Sel[]): Sel[] {
  const member = src.some((s) => s.k === 'member');
  const tagged = src.some((s) => s.k === 'tagged');
  const seen = new Set<string>();
  return src.filter((s) => {
    if (member && (s.k === 'user' || s.k === 'group' || s.k === 'domain' || s.k === 'role')) return false;
    if (tagged && s.k === 'tag') return false;
    const key = selKeyOf(s);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** Builds the units of a policy in file order. */
function unitsOf(policy: Policy): Unit[] {
  const units: Unit[] = [];
  const posture = (p: string[]): string[] => (p.length > 0 ? p : policy.defaultSrcPosture);
  for (const rule of [...policy.acls, ...policy.grants].sort((a, b) => a.line - b.line || a.at.column - b.at.column)) {
    if (rule.kind === 'acl') {
      const dsts = rule.dst.filter((d) => d.sel.k !== 'self').map((d) => ({ sel: d.sel, ports: d.ports }));
      const selfDsts = rule.dst.filter((d) => d.sel.k === 'self').map((d) => ({ sel: d.sel, ports: d.ports }));
      units.push({
        order: units.length, line: rule.line, src: rule.src.map((s) => s.sel), srcEff: effective(rule.src.map((s) => s.sel)), posture: posture(rule.srcPosture),
        dsts, selfDsts, groups: [{ ...(rule.protos ? { protos: rule.protos } : {}), ports: null }], via: [],
        star: dsts.some((d) => d.sel.k === 'all'),
      });
      continue;
    }
    const dsts = rule.dst.filter((d) => d.sel.k !== 'self').map((d) => ({ sel: d.sel, ports: null }));
    const selfDsts = rule.dst.filter((d) => d.sel.k === 'self').map((d) => ({ sel: d.sel, ports: null }));
    const base = {
      line: rule.line, src: rule.src.map((s) => s.sel), srcEff: effective(rule.src.map((s) => s.sel)), posture: posture(rule.srcPosture), dsts, selfDsts, via: rule.via,
      star: rule.via.length === 0 && dsts.some((d) => d.sel.k === 'all'),
    };
    if (rule.ip.length > 0) {
      const byProto = new Map<string, { protos?: number[]; ports: PortRange[] }>();
      for (const spec of rule.ip) {
        const k = protoKey(spec.protos);
        const g = byProto.get(k) ?? { ...(spec.protos ? { protos: spec.protos } : {}), ports: [] };
        g.ports.push(...spec.ports);
        byProto.set(k, g);
      }
      units.push({ ...base, order: units.length, groups: [...byProto.values()] });
    }
    // App capabilities reach devices directly; through a router (via) there is no device to hold them.
    if (rule.app && rule.via.length === 0) {
      units.push({ ...base, order: units.length, groups: [], caps: rule.app });
      // Some capabilities come with a companion the other way round: the destinations get it from
      // the sources (drive → drive-sharer: "these devices may share with you").
      const companions = Object.keys(rule.app).map((c) => COMPANION_CAPS[c]).filter((c): c is string => c !== undefined);
      if (companions.length > 0) {
        const caps: Record<string, null> = Object.fromEntries(companions.map((c) => [c, null]));
        const revSrc = dsts.map((d) => d.sel);
        const revDsts = rule.src.map((s) => ({ sel: s.sel.k === 'danger' ? ({ k: 'all' } as Sel) : s.sel, ports: null }));
        if (revSrc.length > 0) {
          units.push({
            order: units.length, line: rule.line, src: revSrc, srcEff: effective(revSrc), posture: [], dsts: revDsts, selfDsts: [],
            via: [], star: revDsts.some((d) => d.sel.k === 'all'), groups: [], caps,
          });
        }
        // autogroup:self is its own reverse: the same user's devices on both sides.
        if (selfDsts.length > 0) units.push({ ...base, dsts: [], order: units.length, groups: [], caps, posture: [] });
      }
    }
  }
  return units;
}

/** Compiles a policy for a topology, keeping per-node results and updating them incrementally. */
export class PolicyCompiler {
  private policy: Policy;
  private users = new Map<string, TopoUser>(); // by name
  private usersByEmail = new Map<string, TopoUser>();
  private shared: SharedUser[] = [];
  /** Per node shared with someone: their addresses, to carve out of the network's own rules there. */
  private visitorCarve = new Map<string, { ex: Excluded; memo: Map<string, string[]> } | null>();
  private nodes = new Map<string, NodeInfo>();
  private nodesByEmail = new Map<string, Set<string>>();
  private nodesByTag = new Map<string, Set<string>>();
  private memberNodes = new Set<string>();
  private taggedNodes = new Set<string>();
  private routers = new Set<string>();
  private exitNodes = new Set<string>();
  private groupsOf = new Map<string, Set<string>>(); // email → groups
  private v4Env: [bigint, bigint] | null = null; // the span of all node IPv4 addresses (grows only)
  private v6Env: [bigint, bigint] | null = null;
  private selCache = new Map<string, { sel: Sel; addrs: string[] }>();

  private units: Unit[] = [];
  private starUnits: number[] = [];
  private unitTargets: string[][] = []; // per unit: the nodes it reaches (star units: none listed)
  private nodeUnits = new Map<string, number[]>(); // sorted unit indices (star units excluded)
  private srcCache: (string[] | null)[] = [];
  private selfSrcCache = new Map<string, Map<number, string[]>>(); // email → unit → addrs
  /**
   * Per node: its filter, with the units it came from in order and where each unit's rules start
   * (`offsets[k]`..`offsets[k+1]`), so one unit can be re-emitted or updated alone.
   */
  private built = new Map<string, Built>();
  /** Per node: units whose sources changed since its filter was built. */
  private pending = new Map<string, Set<number>>();
  private starRuleCache = new Map<string, FilterRule>();

  constructor(policy: Policy, topo: Topology) {
    this.policy = policy;
    this.loadUsers(topo.users);
    this.shared = topo.sharedUsers ?? [];
    this.visitorCarve.clear();
    for (const [name, node] of Object.entries(topo.nodes)) this.indexNode(this.info(name, node));
    this.rebuild();
  }

  /** Node names, in insertion order. */
  nodeNames(): string[] {
    return [...this.nodes.keys()];
  }

  /** The FilterRules node `name` receives ([] when it accepts nothing, or is unknown). */
  filterFor(name: string): FilterRule[] {
    const b = this.built.get(name);
    const pend = this.pending.get(name);
    if (b && !pend) return b.rules;
    const info = this.nodes.get(name);
    if (!info) return [];
    let next: Built;
    if (!b) {
      next = this.emitAll(info);
    } else {
      // Only some units' sources changed: re-emit those, keep the other rule objects.
      next = { units: b.units, offsets: [0], rules: [] };
      for (let k = 0; k < b.units.length; k++) {
        const idx = b.units[k]!;
        if (pend!.has(idx)) this.emitUnit(this.units[idx]!, info, next.rules);
        else for (let i = b.offsets[k]!; i < b.offsets[k + 1]!; i++) next.rules.push(b.rules[i]!);
        next.offsets.push(next.rules.length);
      }
    }
    this.pending.delete(name);
    this.built.set(name, next);
    return next.rules;
  }

  /**
   * The `via` grants whose sources include node `name` (posture included), each as the destinations
   * it steers and the router tags it names: coord routes the node's traffic for those destinations
   * through devices carrying one of the tags, and no other (coord/route-plan.ts).
   */
  viaFor(name: string): ViaSteer[] {
    const n = this.nodes.get(name);
    if (!n) return [];
    const out: ViaSteer[] = [];
    for (const u of this.units) {
      if (u.via.length === 0 || u.caps) continue;
      const src = this.srcIPs(u);
      if (!n.addrs.some((a) => entriesContain(src, a))) continue;
      const steer: ViaSteer = { prefixes: [], internet: false, all: false, tags: u.via, line: u.line };
      for (const d of u.dsts) {
        if (d.sel.k === 'prefix') steer.prefixes.push(d.sel.range);
        else if (d.sel.k === 'internet') steer.internet = true;
        else if (d.sel.k === 'all') steer.all = true;
      }
      if (steer.all || steer.internet || steer.prefixes.length > 0) out.push(steer);
    }
    return out;
  }

  /** Every node's filter. */
  compileAll(): Record<string, FilterRule[]> {
    const out: Record<string, FilterRule[]> = {};
    for (const name of this.nodes.keys()) out[name] = this.filterFor(name);
    return out;
  }

  /** Adds or replaces a node; returns the nodes whose filter may have changed (including this one). */
  setNode(name: string, node: TopoNode): Set<string> {
    const old = this.nodes.get(name);
    const next = this.info(name, node);
    if (old) this.unindexNode(old);
    this.indexNode(next);
    const affected = this.nodeChanged(name, old, next);
    affected.add(name);
    this.invalidate(name);
    return affected;
  }

  /** Removes a node; returns the remaining nodes whose filter may have changed. */
  removeNode(name: string): Set<string> {
    const old = this.nodes.get(name);
    if (!old) return new Set();
    this.unindexNode(old);
    const affected = this.nodeChanged(name, old, undefined);
    affected.delete(name);
    this.invalidate(name);
    return affected;
  }

  /** Replaces the policy; returns the nodes whose filter changed. */
  setPolicy(policy: Policy): Set<string> {
    this.policy = policy;
    return this.rebuildAndDiff();
  }

  /** Replaces the users (roles, emails); returns the nodes whose filter changed. */
  setUsers(users: TopoUser[]): Set<string> {
    this.loadUsers(users);
    const nodes = [...this.nodes.values()];
    this.clearIndices();
    for (const n of nodes) this.indexNode(this.info(n.name, n.node));
    return this.rebuildAndDiff();
  }

  /** Replaces the shared-in users; returns the nodes whose filter changed. */
  setSharedUsers(list: SharedUser[]): Set<string> {
    this.shared = list;
    this.visitorCarve.clear();
    return this.rebuildAndDiff();
  }

  // ---- topology indices ----

  private loadUsers(users: TopoUser[]): void {
    this.users.clear();
    this.usersByEmail.clear();
    for (const u of users) {
      this.users.set(u.name, u);
      this.usersByEmail.set(u.email.toLowerCase(), u);
    }
  }

  private info(name: string, node: TopoNode): NodeInfo {
    const addrs = [node.ipv4, node.ipv6].filter((a): a is string => typeof a === 'string' && a !== '');
    const addrRanges = addrs.map((a) => parseRange(a)).filter((r): r is Range => r !== null);
    const routes: { text: string; range: Range }[] = [];
    let exit = false;
    for (const text of node.approved_routes ?? []) {
      const range = parseRange(text);
      if (!range) continue;
      if (isFullRange(range)) exit = true;
      else routes.push({ text, range });
    }
    const tagged = (node.tags ?? []).length > 0;
    const info: NodeInfo = { name, node, addrs, addrRanges, routes, exit, tagged };
    if (!tagged && node.user !== null && node.user !== undefined) {
      const user = this.users.get(node.user) ?? this.usersByEmail.get(node.user.toLowerCase());
      info.email = (user?.email ?? node.user).toLowerCase();
      info.role = user?.role ?? 'member';
    }
    return info;
  }

  private indexNode(n: NodeInfo): void {
    this.nodes.set(n.name, n);
    for (const r of n.addrRanges) {
      const env = r.v6 ? this.v6Env : this.v4Env;
      const next: [bigint, bigint] = env ? [r.lo < env[0] ? r.lo : env[0], r.hi > env[1] ? r.hi : env[1]] : [r.lo, r.hi];
      if (r.v6) this.v6Env = next;
      else this.v4Env = next;
    }
    if (n.email !== undefined) {
      add(this.nodesByEmail, n.email, n.name);
      this.memberNodes.add(n.name);
    }
    if (n.tagged) this.taggedNodes.add(n.name);
    for (const t of n.node.tags ?? []) add(this.nodesByTag, t, n.name);
    if (n.routes.length > 0) this.routers.add(n.name);
    if (n.exit) this.exitNodes.add(n.name);
  }

  private unindexNode(n: NodeInfo): void {
    this.nodes.delete(n.name);
    if (n.email !== undefined) remove(this.nodesByEmail, n.email, n.name);
    this.memberNodes.delete(n.name);
    this.taggedNodes.delete(n.name);
    for (const t of n.node.tags ?? []) remove(this.nodesByTag, t, n.name);
    this.routers.delete(n.name);
    this.exitNodes.delete(n.name);
  }

  private clearIndices(): void {
    this.nodes.clear();
    this.nodesByEmail.clear();
    this.nodesByTag.clear();
    this.memberNodes.clear();
    this.taggedNodes.clear();
    this.routers.clear();
    this.exitNodes.clear();
  }

  private inGroup(email: string, group: string): boolean {
    return this.groupsOf.get(email)?.has(group) ?? false;
  }

  // ---- units and targets ----

  private rebuild(): void {
    this.groupsOf.clear();
    for (const [g, members] of this.policy.groups) for (const m of members) {
      const e = m.toLowerCase();
      const set = this.groupsOf.get(e) ?? new Set<string>();
      set.add(g);
      this.groupsOf.set(e, set);
    }
    this.units = unitsOf(this.policy);
    this.starUnits = this.units.filter((u) => u.star).map((u) => u.order);
    this.unitTargets = this.units.map(() => []);
    this.nodeUnits.clear();
    this.srcCache = this.units.map(() => null);
    this.selCache.clear();
    this.selfSrcCache.clear();
    this.built.clear();
    this.pending.clear();
    this.starRuleCache.clear();
    // Units are visited in order, so each node's unit list comes out sorted.
    for (const u of this.units) {
      if (u.star) continue;
      const targets = this.unitTargets[u.order]!;
      const add = (name: string): boolean => {
        let list = this.nodeUnits.get(name);
        if (!list) this.nodeUnits.set(name, (list = []));
        if (list[list.length - 1] === u.order) return false;
        list.push(u.order);
        return true;
      };
      // unitTargets lists the nodes that get the unit's own sources (not its self rules).
      for (const d of u.dsts) {
        const exact = d.sel.k !== 'prefix' && d.sel.k !== 'internet';
        for (const name of this.selNodes(d.sel, 'dst', u.via)) {
          if ((exact || this.entries(u, this.nodes.get(name)!).length > 0) && add(name)) targets.push(name);
        }
      }
      if (u.selfDsts.length > 0) {
        for (const s of u.src) {
          const names = s.k === 'all' || s.k === 'member' ? this.memberNodes : s.k === 'user' || s.k === 'group' || s.k === 'domain' || s.k === 'role' ? this.selNodes(s, 'src') : [];
          for (const name of names) add(name);
        }
      }
    }
  }

  private rebuildAndDiff(): Set<string> {
    // Old filters stay intact: the rebuild makes new rule objects instead of updating these.
    const before = new Map<string, FilterRule[]>();
    for (const name of this.nodes.keys()) before.set(name, this.filterFor(name));
    this.rebuild();
    const changed = new Set<string>();
    for (const name of this.nodes.keys()) if (!sameFilter(before.get(name), this.filterFor(name))) changed.add(name);
    return changed;
  }


  /** The nodes a selector can name. */
  private *selNodes(sel: Sel, side: 'src' | 'dst', via: string[] = []): Iterable<string> {
    switch (sel.k) {
      case 'all': yield* this.nodes.keys(); return;
      case 'user': yield* this.nodesByEmail.get(sel.email) ?? []; return;
      case 'domain':
        for (const [e, s] of this.nodesByEmail) if (e.endsWith('@' + sel.domain)) yield* s;
        return;
      case 'group':
        for (const m of this.policy.groups.get(sel.name) ?? []) yield* this.nodesByEmail.get(m.toLowerCase()) ?? [];
        return;
      case 'tag': yield* this.nodesByTag.get(sel.name) ?? []; return;
      case 'member': yield* this.memberNodes; return;
      case 'tagged': yield* this.taggedNodes; return;
      case 'role':
        for (const n of this.memberNodes) if (this.nodes.get(n)!.role === sel.role) yield n;
        return;
      case 'prefix': {
        yield* this.routers;
        if (side === 'dst' && via.length > 0) return;
        const env = sel.range.v6 ? this.v6Env : this.v4Env;
        if (!env || sel.range.hi < env[0] || sel.range.lo > env[1]) return;
        for (const n of this.nodes.values()) if (n.addrRanges.some((r) => rangesOverlap(r, sel.range))) yield n.name;
        return;
      }
      case 'internet': yield* this.exitNodes; return;
      default: return;
    }
  }

  /** Does a selector name this node (as a device: users' untagged devices, tagged devices by tag)? */
  private selMatches(sel: Sel, n: NodeInfo): boolean {
    switch (sel.k) {
      case 'all': return true;
      case 'user': return n.email === sel.email;
      case 'domain': return n.email !== undefined && n.email.endsWith('@' + sel.domain);
      case 'group': return n.email !== undefined && this.inGroup(n.email, sel.name);
      case 'tag': return (n.node.tags ?? []).includes(sel.name);
      case 'member': return n.email !== undefined;
      case 'tagged': return n.tagged;
      case 'role': return n.role === sel.role;
      case 'prefix': return n.addrRanges.some((r) => rangesOverlap(r, sel.range));
      default: return false;
    }
  }

  private viaOk(u: Unit, n: NodeInfo): boolean {
    return u.via.length === 0 || u.via.some((t) => (n.node.tags ?? []).includes(t));
  }

  /** The destinations of unit `u` that live on node `n`. */
  private entries(u: Unit, n: NodeInfo): Entry[] {
    const out: Entry[] = [];
    for (const d of u.dsts) {
      const s = d.sel;
      if (s.k === 'all') {
        if (u.caps) for (const a of n.addrs) out.push({ ip: a, ports: d.ports, capDst: hostPrefix(a) });
        else out.push({ ip: '*', ports: d.ports, capDst: '*' });
      } else if (s.k === 'prefix') {
        const viaRouter = u.via.length > 0;
        const served = n.routes.some((r) => rangesOverlap(r.range, s.range));
        const local = !viaRouter && n.addrRanges.some((r) => rangesOverlap(r, s.range));
        if ((served && this.viaOk(u, n)) || local) out.push({ ip: s.text, ports: d.ports, capDst: s.text });
      } else if (s.k === 'internet') {
        if (n.exit && this.viaOk(u, n)) for (const p of INTERNET_PREFIXES) out.push({ ip: p, ports: d.ports, capDst: p });
      } else if (this.selMatches(s, n)) {
        for (const a of n.addrs) out.push({ ip: a, ports: d.ports, capDst: hostPrefix(a) });
      }
    }
    return out;
  }

  private selfApplies(u: Unit, n: NodeInfo): boolean {
    return u.selfDsts.length > 0 && n.email !== undefined && this.srcMatchesUser(u, n.email, n.role);
  }


  private srcMatchesUser(u: Unit, email: string, role: Role | undefined): boolean {
    return u.src.some((s) => {
      switch (s.k) {
        case 'all': case 'member': return true;
        case 'user': return s.email === email;
        case 'domain': return email.endsWith('@' + s.domain);
        case 'group': return this.inGroup(email, s.name);
        case 'role': return role === s.role;
        default: return false;
      }
    });
  }

  // ---- sources ----

  private postureOk(u: Unit, n: NodeInfo): boolean {
    if (u.posture.length === 0) return true;
    return u.posture.some((p) => (this.policy.postures.get(p) ?? []).every((c) => postureMatches(c, n.node.posture)));
  }

  private selKey(sel: Sel): string {
    return selKeyOf(sel);
  }

  /** The addresses one source selector stands for (no posture), sorted; cached per selector. */
  private selAddrs(sel: Sel): string[] {
    const key = this.selKey(sel);
    const hit = this.selCache.get(key);
    if (hit) return hit.addrs;
    let addrs: string[];
    switch (sel.k) {
      case 'danger': addrs = ['*']; break;
      case 'all': {
        const out = new Set<string>(TAILNET_SOURCES);
        for (const name of this.routers) for (const r of this.nodes.get(name)!.routes) out.add(r.text);
        addrs = [...out].sort();
        break;
      }
      case 'prefix': addrs = [sel.text]; break;
      case 'shared': case 'self': case 'internet': addrs = []; break;
      default: {
        const out: string[] = [];
        const seen = new Set<string>();
        for (const name of this.selNodes(sel, 'src')) {
          if (seen.has(name)) continue;
          seen.add(name);
          out.push(...this.nodes.get(name)!.addrs);
        }
        addrs = out.sort();
      }
    }
    this.selCache.set(key, { sel, addrs });
    return addrs;
  }

  private srcIPs(u: Unit): string[] {
    const cached = this.srcCache[u.order];
    if (cached) return cached;
    let list: string[];
    if (u.posture.length > 0) {
      // Only devices whose posture matches; addresses that are not devices have no posture.
      const out = new Set<string>();
      for (const s of u.srcEff) {
        const names = s.k === 'all' || s.k === 'danger' ? this.nodes.keys() : this.selNodes(s, 'src');
        for (const name of names) {
          const n = this.nodes.get(name)!;
          if (this.postureOk(u, n)) for (const a of n.addrs) out.add(a);
        }
      }
      list = [...out].sort();
    } else if (u.srcEff.length === 1) {
      list = this.selAddrs(u.srcEff[0]!);
    } else {
      list = mergeSorted(u.srcEff.map((s) => this.selAddrs(s)));
    }
    this.srcCache[u.order] = list;
    return list;
  }

  /** The addresses of the users node `n` is shared with (null when it is shared with nobody). */
  private visitorsOf(n: NodeInfo): { ex: Excluded; memo: Map<string, string[]> } | null {
    if (this.shared.length === 0) return null;
    let v = this.visitorCarve.get(n.name);
    if (v === undefined) {
      const addrs = this.shared.filter((su) => su.sharedNodes.includes(n.name)).flatMap((su) => su.addrs);
      v = addrs.length > 0 ? { ex: excludedOf(addrs), memo: new Map() } : null;
      this.visitorCarve.set(n.name, v);
    }
    return v;
  }

  /** Addresses of shared-in users that unit `u`'s sources name, for a node shared with them. */
  private sharedSrc(u: Unit, n: NodeInfo): string[] {
    if (this.shared.length === 0) return [];
    const out: string[] = [];
    for (const su of this.shared) {
      if (!su.sharedNodes.includes(n.name)) continue;
      const email = su.email.toLowerCase();
      const named = u.src.some((s) =>
        s.k === 'shared' || s.k === 'all' || s.k === 'danger' || (s.k === 'user' && s.email === email) ||
        (s.k === 'domain' && email.endsWith('@' + s.domain)) || (s.k === 'group' && this.inGroup(email, s.name)));
      if (named) out.push(...su.addrs);
    }
    return out;
  }

  private selfSrc(u: Unit, email: string): string[] {
    let byUnit = this.selfSrcCache.get(email);
    if (!byUnit) this.selfSrcCache.set(email, (byUnit = new Map()));
    const cached = byUnit.get(u.order);
    if (cached) return cached;
    const out: string[] = [];
    for (const name of this.nodesByEmail.get(email) ?? []) {
      const n = this.nodes.get(name)!;
      if (this.postureOk(u, n)) out.push(...n.addrs);
    }
    out.sort();
    byUnit.set(u.order, out);
    return out;
  }

  // ---- emission ----

  private emitAll(n: NodeInfo): Built {
    const mine = this.nodeUnits.get(n.name) ?? [];
    const star = this.starUnits;
    const b: Built = { units: [], offsets: [0], rules: [] };
    for (let i = 0, j = 0; i < mine.length || j < star.length;) {
      const idx = j >= star.length || (i < mine.length && mine[i]! < star[j]!) ? mine[i++]! : star[j++]!;
      if (b.units[b.units.length - 1] === idx) continue;
      b.units.push(idx);
      this.emitUnit(this.units[idx]!, n, b.rules);
      b.offsets.push(b.rules.length);
    }
    return b;
  }

  /** Appends the rules one unit gives node `n` to `rules`. */
  private emitUnit(u: Unit, n: NodeInfo, rules: FilterRule[]): void {
    const base = this.srcIPs(u);
    const visitors = this.visitorsOf(n);
    if (base.length > 0 && visitors) {
      // Visitors' addresses lie in the tailnet range that "*" and prefixes name: they reach this device
      // only through the rules below, narrowed to its own addresses.
      const mine: FilterRule[] = [];
      this.emitFrom(u, n, base, mine, true);
      for (const r of carveSources(mine, visitors.ex, visitors.memo)) rules.push(r);
    } else if (base.length > 0) {
      this.emitFrom(u, n, base, rules, true);
    }
    const extra = this.sharedSrc(u, n);
    if (extra.length > 0) {
      // Users this device was shared with reach the device itself: never "*" through it, nor the
      // subnets it routes, whatever the rule's destinations say.
      const theirs: FilterRule[] = [];
      this.emitFrom(u, n, [...extra].sort(), theirs, false);
      for (const r of theirs) {
        const own = toOwnAddrs(r, n.addrs);
        if (own) rules.push(own);
      }
    }
    if (this.selfApplies(u, n)) {
      const selfSrc = this.selfSrc(u, n.email!);
      if (selfSrc.length > 0) {
        const entries: Entry[] = [];
        for (const d of u.selfDsts) for (const a of n.addrs) entries.push({ ip: a, ports: d.ports, capDst: hostPrefix(a) });
        this.push(rules, u, selfSrc, entries);
      }
    }
  }

  /** The unit's rules for sources `src` on node `n`; `shareable`: "*" rules may be one object for all nodes. */
  private emitFrom(u: Unit, n: NodeInfo, src: string[], rules: FilterRule[], shareable: boolean): void {
    if (shareable && u.star && u.dsts.length === 1 && !u.caps) {
      for (const r of this.starRules(u, src)) rules.push(r);
    } else if (u.caps) {
      const entries = this.entries(u, n);
      if (entries.length > 0) this.push(rules, u, src, entries);
    } else {
      this.pushPorts(rules, u, n, src);
    }
  }

  /** Rules of a unit whose only destination is "*": the same objects on every node. */
  private starRules(u: Unit, src: string[]): FilterRule[] {
    const out: FilterRule[] = [];
    for (let g = 0; g < u.groups.length; g++) {
      const key = `${u.order}|${g}`;
      let rule = this.starRuleCache.get(key);
      if (!rule || rule.SrcIPs !== src) {
        const grp = u.groups[g]!;
        const d = u.dsts[0]!;
        rule = {
          SrcIPs: src,
          DstPorts: (d.ports ?? grp.ports ?? [ALL_PORTS]).map((p) => ({ IP: '*', Ports: p })),
          ...(grp.protos ? { IPProto: [...grp.protos] } : {}),
        };
        this.starRuleCache.set(key, rule);
      }
      out.push(rule);
    }
    return out;
  }

  /** The packet rules of a unit on node `n`, built directly (the hot path of a full compile). */
  private pushPorts(rules: FilterRule[], u: Unit, n: NodeInfo, src: string[]): void {
    for (const g of u.groups) {
      const dstPorts: NetPortRange[] = [];
      for (const d of u.dsts) {
        const ports = d.ports ?? g.ports ?? ALL;
        const s = d.sel;
        if (s.k === 'all') {
          for (const p of ports) dstPorts.push({ IP: '*', Ports: p });
        } else if (s.k === 'prefix' || s.k === 'internet') {
          for (const e of this.entries({ ...u, dsts: [d] }, n)) for (const p of ports) dstPorts.push({ IP: e.ip, Ports: p });
        } else if (this.selMatches(s, n)) {
          for (const a of n.addrs) for (const p of ports) dstPorts.push({ IP: a, Ports: p });
        }
      }
      if (dstPorts.length === 0) continue;
      const rule: FilterRule = { SrcIPs: src, DstPorts: dstPorts };
      if (g.protos) rule.IPProto = g.protos; // shared with the policy, read-only
      rules.push(rule);
    }
  }

  private push(rules: FilterRule[], u: Unit, src: string[], entries: Entry[]): void {
    if (u.caps) {
      const dsts = [...new Set(entries.map((e) => e.capDst))];
      rules.push({ SrcIPs: src, CapGrant: [{ Dsts: dsts, CapMap: u.caps }] });
      return;
    }
    for (const g of u.groups) {
      const dstPorts: NetPortRange[] = [];
      // Port ranges are shared with the parsed policy (read-only, like every compiled rule).
      for (const e of entries) for (const p of e.ports ?? g.ports ?? ALL) dstPorts.push({ IP: e.ip, Ports: p });
      const rule: FilterRule = { SrcIPs: src, DstPorts: dstPorts };
      if (g.protos) rule.IPProto = g.protos; // shared with the policy, read-only
      rules.push(rule);
    }
  }

  // ---- incremental updates ----

  /**
   * Updates source sets and targets for a changed node (old → next; either may be absent) and marks
   * the units of other nodes whose sources changed. Returns those nodes.
   */
  private nodeChanged(name: string, old: NodeInfo | undefined, next: NodeInfo | undefined): Set<string> {
    const affected = new Set<string>();
    const routesChanged = (old?.routes.length ?? 0) > 0 || (next?.routes.length ?? 0) > 0;
    const emails = new Set([old?.email, next?.email].filter((e): e is string => e !== undefined));
    for (const e of emails) this.selfSrcCache.delete(e);
    const oldAddrs = old?.addrs ?? [];
    const newAddrs = next?.addrs ?? [];
    const matches = (sel: Sel, n: NodeInfo | undefined): boolean => n !== undefined && this.selMatches(sel, n);

    // Selector address sets are patched in place (a device's addresses are its own), so every rule
    // that carries such a list sees the change without being rebuilt. -1: recomputed as a new list.
    const changedSel = new Map<string, number>(); // key → length before
    for (const [key, entry] of this.selCache) {
      const sel = entry.sel;
      if (sel.k === 'all') {
        if (routesChanged) {
          this.selCache.delete(key);
          changedSel.set(key, -1);
        }
        continue;
      }
      if (!NODE_SELECTORS.has(sel.k)) continue;
      const was = matches(sel, old);
      const is = matches(sel, next);
      if (!was && !is) continue;
      const lenBefore = entry.addrs.length;
      if (patchInPlace(entry.addrs, was ? oldAddrs : [], is ? newAddrs : [])) changedSel.set(key, lenBefore);
    }

    // The changed node leaves every unit's target list; it re-enters those it is a target of below.
    for (const idx of this.nodeUnits.get(name) ?? []) {
      const t = this.unitTargets[idx]!;
      const i = t.indexOf(name);
      if (i >= 0) t.splice(i, 1);
    }
    const mine: number[] = [];
    for (const u of this.units) {
      const before = this.srcCache[u.order];
      let after = before;
      let changed = false;
      let lenBefore = before?.length ?? 0;
      if (before) {
        if (u.posture.length > 0) {
          const touches = (n: NodeInfo | undefined): boolean =>
            n !== undefined && u.srcEff.some((s) => s.k === 'all' || s.k === 'danger' || (NODE_SELECTORS.has(s.k) && this.selMatches(s, n)));
          if (touches(old) || touches(next)) {
            this.srcCache[u.order] = null;
            after = this.srcIPs(u);
            changed = !sameList(before, after);
          }
        } else if (u.srcEff.some((s) => changedSel.has(this.selKey(s)))) {
          if (u.srcEff.length === 1) {
            const lb = changedSel.get(this.selKey(u.srcEff[0]!))!;
            if (lb >= 0) {
              lenBefore = lb; // the shared list was patched in place
              changed = true;
            } else {
              after = this.selAddrs(u.srcEff[0]!);
              changed = !sameList(before, after);
            }
          } else if (u.srcEff.some((s) => !NODE_SELECTORS.has(s.k))) {
            this.srcCache[u.order] = null;
            after = this.srcIPs(u);
            changed = !sameList(before, after);
          } else {
            const was = u.srcEff.some((s) => matches(s, old));
            const is = u.srcEff.some((s) => matches(s, next));
            changed = patchInPlace(before, was ? oldAddrs : [], is ? newAddrs : []);
          }
        }
        // Rule objects hold the unit's list by identity: keep the old list when nothing changed.
        if (!changed) after = before;
        this.srcCache[u.order] = after;
      }
      if (changed && after) {
        if (lenBefore > 0 && after.length > 0 && this.shared.length === 0) {
          // Same rules, new sources: the rule objects carry the new list where they are (patched in
          // place, or given the new list here).
          for (const n of u.star ? this.nodes.keys() : this.unitTargets[u.order]!) {
            if (n === name) continue;
            const b = this.built.get(n);
            if (!b) {
              affected.add(n);
              continue;
            }
            const k = lowerBound(b.units, u.order);
            if (b.units[k] !== u.order) continue;
            let carried = false;
            for (let i = b.offsets[k]!; i < b.offsets[k + 1]!; i++) {
              const r = b.rules[i]!;
              // Self rules carry their user's list; rules shared by many nodes may already be updated.
              if (r.SrcIPs !== before && r.SrcIPs !== after) continue;
              r.SrcIPs = after;
              carried = true;
            }
            if (carried) {
              affected.add(n);
            }
          }
        } else {
          for (const n of u.star ? this.nodes.keys() : this.unitTargets[u.order]!) this.markPending(n, u.order, affected);
        }
      }
      // Self rules: the user's other devices see the changed device among their sources.
      if (u.selfDsts.length > 0) {
        for (const e of emails) for (const n of this.nodesByEmail.get(e) ?? []) if (n !== name && this.hasUnit(n, u.order)) this.markPending(n, u.order, affected);
      }
      // Destinations: is the changed node a target now?
      if (!u.star && next) {
        const main = this.entries(u, next).length > 0;
        if (main) this.unitTargets[u.order]!.push(name);
        if (main || this.selfApplies(u, next)) mine.push(u.order);
      }
    }
    if (next) this.nodeUnits.set(name, mine);
    else this.nodeUnits.delete(name);
    return affected;
  }

  /** Whether node `name` is a target of unit `idx` (star units excluded). */
  private hasUnit(name: string, idx: number): boolean {
    const list = this.nodeUnits.get(name);
    if (!list) return false;
    const i = lowerBound(list, idx);
    return list[i] === idx;
  }

  private markPending(name: string, unit: number, affected: Set<string>): void {
    affected.add(name);
    if (!this.built.has(name)) return;
    let p = this.pending.get(name);
    if (!p) this.pending.set(name, (p = new Set()));
    p.add(unit);
  }

  private invalidate(name: string): void {
    this.built.delete(name);
    this.pending.delete(name);
  }
}

function add(m: Map<string, Set<string>>, k: string, v: string): void {
  let s = m.get(k);
  if (!s) m.set(k, (s = new Set()));
  s.add(v);
}

function remove(m: Map<string, Set<string>>, k: string, v: string): void {
  const s = m.get(k);
  if (!s) return;
  s.delete(v);
  if (s.size === 0) m.delete(k);
}

/**
 * A rule narrowed to destinations among the node's own addresses: "*" and prefixes become the node's
 * addresses they hold (ports and protocols kept); null when none is left.
 */
function toOwnAddrs(r: FilterRule, addrs: readonly string[]): FilterRule | null {
  const holds = (dst: string, a: string): boolean => {
    if (dst === '*' || dst === a || dst === hostPrefix(a)) return true;
    const d = parseRange(dst);
    const x = parseRange(a);
    return d !== null && x !== null && d.v6 === x.v6 && d.lo <= x.lo && x.hi <= d.hi;
  };
  if (r.CapGrant) {
    const grants = r.CapGrant.map((g) => ({ ...g, Dsts: addrs.filter((a) => g.Dsts.some((d) => holds(d, a))).map(hostPrefix) })).filter((g) => g.Dsts.length > 0);
    return grants.length > 0 ? { SrcIPs: r.SrcIPs, CapGrant: grants } : null;
  }
  const ports: NetPortRange[] = [];
  for (const dp of r.DstPorts ?? []) for (const a of addrs) if (holds(dp.IP, a)) ports.push({ IP: a, Ports: dp.Ports });
  if (ports.length === 0) return null;
  const out: FilterRule = { SrcIPs: r.SrcIPs, DstPorts: ports };
  if (r.IPProto) out.IPProto = r.IPProto;
  return out;
}
