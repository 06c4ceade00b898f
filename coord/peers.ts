// Who may talk to whom, from the compiled filters: X and Y are peers when Y's address is among the
// sources of X's rules, or X's among Y's. Computed incrementally so that a join, a leave, or a node's
// new filter costs about what it changes, not the size of the tailnet.
//
// Nodes whose rules have the same set of sources share a "group" holding the devices that set matches
// (or `all`, when it matches every device — the common allow-all case, without an n² set). A reverse
// index says which groups' sources contain a device, so the peers of X are: X's own group's sources,
// plus the members of every group whose sources contain X.
import { addrToBig, parseAddr, parseIPv4, parseRange, type Range } from '../wire/addr.js';
import type { FilterRule } from '../wire/types.js';

/** One source entry, parsed: exact addresses go through a map, the rest are ranges. */
interface Sources {
  any: boolean;
  exact4: number[];
  exact6: bigint[];
  ranges4: Range[];
  ranges6: Range[];
}

interface Group {
  key: string;
  src: Sources;
  /** Sources other than exact addresses ("*", prefixes, ranges): a join must be tested against them. */
  hasRanges: boolean;
  all: boolean;
  /** The devices the sources match (when not `all`). */
  set: Set<string>;
  members: Set<string>;
}

/** An IPv4 address as the index keys it (a number); undefined when it is not one. */
function v4(s: string): number | undefined {
  return parseIPv4(s) ?? undefined;
}

/** An IPv6 address as the index keys it (a bigint); undefined when it is not one. */
function v6(s: string): bigint | undefined {
  const a = parseAddr(s);
  return a?.family === 6 ? addrToBig(a) : undefined;
}

export function parseSources(entries: Iterable<string>): Sources {
  const s: Sources = { any: false, exact4: [], exact6: [], ranges4: [], ranges6: [] };
  for (const e of entries) {
    if (e === '*') {
      s.any = true;
    } else if (e.includes('/') || e.includes('-')) {
      const r = parseRange(e);
      if (r) (r.v6 ? s.ranges6 : s.ranges4).push(r);
    } else {
      const a = parseAddr(e);
      if (a?.family === 4) s.exact4.push(a.w[0]!);
      else if (a) s.exact6.push(addrToBig(a));
    }
  }
  return s;
}

interface Dev {
  id: string;
  a4: number;
  a6: bigint;
}

function inRanges(x: bigint, ranges: Range[]): boolean {
  for (const r of ranges) if (x >= r.lo && x <= r.hi) return true;
  return false;
}

function matches(src: Sources, d: Dev, a4: bigint, exact4: Set<number>, exact6: Set<bigint>): boolean {
  return src.any || exact4.has(d.a4) || exact6.has(d.a6) || inRanges(a4, src.ranges4) || inRanges(d.a6, src.ranges6);
}

/** Lowest index i with arr[i].k >= x. */
function lowerBound<T>(arr: T[], key: (t: T) => bigint, x: bigint): number {
  let lo = 0, hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (key(arr[mid]!) < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function addTo<K>(m: Map<K, Set<Group>>, k: K, g: Group): void {
  let s = m.get(k);
  if (!s) m.set(k, (s = new Set()));
  s.add(g);
}

function removeFrom<K>(m: Map<K, Set<Group>>, k: K, g: Group): void {
  const s = m.get(k);
  if (s?.delete(g) && s.size === 0) m.delete(k);
}

export class PeerIndex {
  private readonly devices = new Map<string, Dev>();
  private readonly by4 = new Map<number, string>();
  private readonly by6 = new Map<bigint, string>();
  private sorted4: Dev[] = [];
  private sorted6: Dev[] = [];
  private sortedDirty = false;

  private readonly groups = new Map<string, Group>();
  private readonly groupOf = new Map<string, Group>();
  private readonly allGroups = new Set<Group>();
  /** device → the non-`all` groups whose sources contain it. */
  private readonly inGroups = new Map<string, Set<Group>>();
  /** Exact-address sets per group (kept beside the group for O(1) membership tests on joins). */
  private readonly exact = new Map<Group, { e4: Set<number>; e6: Set<bigint> }>();
  /** Address → the groups that list it exactly; and the groups with ranges. A join looks only at these. */
  private readonly exactIndex4 = new Map<number, Set<Group>>();
  private readonly exactIndex6 = new Map<bigint, Set<Group>>();
  private readonly rangeGroups = new Set<Group>();

  /** An index over a whole network at once: devices by id, and each one's compiled filter. */
  static of(devices: Record<string, { ipv4: string; ipv6: string }>, filters: Record<string, FilterRule[]>): PeerIndex {
    const idx = new PeerIndex();
    for (const [id, d] of Object.entries(devices)) idx.addDevice(id, d.ipv4, d.ipv6);
    for (const id of Object.keys(devices)) idx.setFilter(id, filters[id] ?? []);
    return idx;
  }

  get size(): number {
    return this.devices.size;
  }

  has(id: string): boolean {
    return this.devices.has(id);
  }

  /** A device joins (or is re-added): it becomes a source of every group that matches it. */
  addDevice(id: string, ipv4: string, ipv6: string): void {
    if (this.devices.has(id)) this.removeDevice(id);
    const d: Dev = { id, a4: v4(ipv4) ?? 0, a6: v6(ipv6) ?? 0n };
    this.devices.set(id, d);
    this.by4.set(d.a4, id);
    this.by6.set(d.a6, id);
    this.sortedDirty = true;
    const a4 = BigInt(d.a4);
    const hit = (g: Group) => {
      const ex = this.exact.get(g)!;
      return matches(g.src, d, a4, ex.e4, ex.e6);
    };
    for (const g of [...this.allGroups]) if (!hit(g)) this.materialize(g); // no longer every device
    const candidates = new Set<Group>([...(this.exactIndex4.get(d.a4) ?? []), ...(this.exactIndex6.get(d.a6) ?? []), ...this.rangeGroups]);
    for (const g of candidates) if (!g.all && hit(g)) this.addToSet(g, id);
  }

  /** A device leaves: out of every group's sources, and out of its own group. */
  removeDevice(id: string): void {
    const d = this.devices.get(id);
    if (!d) return;
    this.setFilter(id, undefined);
    for (const g of this.inGroups.get(id) ?? []) g.set.delete(id);
    this.inGroups.delete(id);
    this.devices.delete(id);
    if (this.by4.get(d.a4) === id) this.by4.delete(d.a4);
    if (this.by6.get(d.a6) === id) this.by6.delete(d.a6);
    this.sortedDirty = true;
    // A group that matched every device except this one now matches every device.
    for (const g of this.groups.values()) if (!g.all && g.set.size === this.devices.size && this.devices.size > 0) this.becomeAll(g);
  }

  /** The device's filter changed (undefined: it has none any more). */
  setFilter(id: string, rules: FilterRule[] | undefined): void {
    let key: string | undefined;
    if (rules && this.devices.has(id)) {
      // Same sources in another order make another group: harmless, and much cheaper than sorting.
      key = rules.length === 1 ? rules[0]!.SrcIPs.join(',') : rules.map((r) => r.SrcIPs.join(',')).join(',');
    }
    const old = this.groupOf.get(id);
    if (old && old.key === key) return;
    if (old) {
      old.members.delete(id);
      this.groupOf.delete(id);
      if (old.members.size === 0) this.dropGroup(old);
    }
    if (key === undefined) return;
    let g = this.groups.get(key);
    if (!g) {
      const src = parseSources(key === '' ? [] : key.split(','));
      const hasRanges = src.any || src.ranges4.length > 0 || src.ranges6.length > 0;
      g = { key, src, hasRanges, all: false, set: new Set(), members: new Set() };
      this.groups.set(key, g);
      this.exact.set(g, { e4: new Set(src.exact4), e6: new Set(src.exact6) });
      for (const a of src.exact4) addTo(this.exactIndex4, a, g);
      for (const a of src.exact6) addTo(this.exactIndex6, a, g);
      if (hasRanges) this.rangeGroups.add(g);
      this.materialize(g);
    }
    g.members.add(id);
    this.groupOf.set(id, g);
  }

  /** The devices `id` may talk to in either direction (never itself). */
  peersOf(id: string): string[] {
    const g = this.groupOf.get(id);
    if (!this.devices.has(id)) return [];
    if (g?.all) return [...this.devices.keys()].filter((x) => x !== id);
    const out = new Set<string>(g?.set);
    for (const h of this.inGroups.get(id) ?? []) for (const m of h.members) out.add(m);
    for (const h of this.allGroups) for (const m of h.members) out.add(m);
    out.delete(id);
    return [...out];
  }

  private sortIfNeeded(): void {
    if (!this.sortedDirty) return;
    const list = [...this.devices.values()];
    this.sorted4 = list.slice().sort((a, b) => a.a4 - b.a4);
    this.sorted6 = list.sort((a, b) => (a.a6 < b.a6 ? -1 : a.a6 > b.a6 ? 1 : 0));
    this.sortedDirty = false;
  }

  /** Computes the group's matched devices from scratch. */
  private materialize(g: Group): void {
    this.clearSet(g);
    if (g.src.any) return this.becomeAll(g);
    // Exact addresses go through the maps; only ranges need the sorted arrays (re-sorted after joins).
    if (g.src.ranges4.length > 0 || g.src.ranges6.length > 0) this.sortIfNeeded();
    const found = new Set<string>();
    for (const a of g.src.exact4) {
      const id = this.by4.get(a);
      if (id) found.add(id);
    }
    for (const a of g.src.exact6) {
      const id = this.by6.get(a);
      if (id) found.add(id);
    }
    for (const r of g.src.ranges4) {
      for (let i = lowerBound(this.sorted4, (d) => BigInt(d.a4), r.lo); i < this.sorted4.length && BigInt(this.sorted4[i]!.a4) <= r.hi; i++) found.add(this.sorted4[i]!.id);
    }
    for (const r of g.src.ranges6) {
      for (let i = lowerBound(this.sorted6, (d) => d.a6, r.lo); i < this.sorted6.length && this.sorted6[i]!.a6 <= r.hi; i++) found.add(this.sorted6[i]!.id);
    }
    if (found.size === this.devices.size && found.size > 0) return this.becomeAll(g);
    for (const id of found) this.addToSet(g, id);
  }

  private becomeAll(g: Group): void {
    this.clearSet(g);
    g.all = true;
    this.allGroups.add(g);
  }

  private clearSet(g: Group): void {
    for (const id of g.set) this.inGroups.get(id)?.delete(g);
    g.set.clear();
    g.all = false;
    this.allGroups.delete(g);
  }

  private addToSet(g: Group, id: string): void {
    g.set.add(id);
    let s = this.inGroups.get(id);
    if (!s) this.inGroups.set(id, (s = new Set()));
    s.add(g);
  }

  private dropGroup(g: Group): void {
    this.clearSet(g);
    this.groups.delete(g.key);
    this.exact.delete(g);
    for (const a of g.src.exact4) removeFrom(this.exactIndex4, a, g);
    for (const a of g.src.exact6) removeFrom(this.exactIndex6, a, g);
    this.rangeGroups.delete(g);
  }
}
