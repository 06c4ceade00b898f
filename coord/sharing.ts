// Device sharing (issue 7): pure helpers on compiled rules. The recipient tailnet must never let a
// shared-in device start a connection, so its addresses are carved out of the sources of every rule
// the recipient's devices get; and the recipient's own policy towards a shared-in device is handed to
// the recipient's devices as outbound rules (restricted to their own addresses).
import ipaddr from 'ipaddr.js';
import type { FilterRule } from '../wire/types.js';

interface Span {
  v6: boolean;
  lo: bigint;
  hi: bigint;
}

const MAX4 = (1n << 32n) - 1n;
const MAX6 = (1n << 128n) - 1n;

function addrNum(s: string): { v6: boolean; n: bigint } | undefined {
  if (!ipaddr.isValid(s)) return undefined;
  const a = ipaddr.parse(s);
  let n = 0n;
  for (const b of a.toByteArray()) n = (n << 8n) | BigInt(b);
  return { v6: a.kind() === 'ipv6', n };
}

/** A SrcIPs entry ("*", IP, CIDR, range "a-b") as spans; undefined when it does not parse. */
export function spansOf(entry: string): Span[] | undefined {
  if (entry === '*') return [{ v6: false, lo: 0n, hi: MAX4 }, { v6: true, lo: 0n, hi: MAX6 }];
  const dash = entry.indexOf('-');
  if (dash > 0) {
    const a = addrNum(entry.slice(0, dash));
    const b = addrNum(entry.slice(dash + 1));
    if (!a || !b || a.v6 !== b.v6 || a.n > b.n) return undefined;
    return [{ v6: a.v6, lo: a.n, hi: b.n }];
  }
  const slash = entry.indexOf('/');
  const a = addrNum(slash > 0 ? entry.slice(0, slash) : entry);
  if (!a) return undefined;
  const width = a.v6 ? 128n : 32n;
  const bits = slash > 0 ? BigInt(Number(entry.slice(slash + 1))) : width;
  if (bits < 0n || bits > width) return undefined;
  const size = 1n << (width - bits);
  const lo = (a.n / size) * size;
  return [{ v6: a.v6, lo, hi: lo + size - 1n }];
}

function numText(v6: boolean, n: bigint): string {
  const bytes: number[] = [];
  for (let i = v6 ? 15 : 3; i >= 0; i--) bytes.push(Number((n >> BigInt(i * 8)) & 255n));
  return ipaddr.fromByteArray(bytes).toString();
}

/** The smallest list of CIDRs covering exactly [lo, hi]. */
function cidrsOf(v6: boolean, lo: bigint, hi: bigint): string[] {
  const width = v6 ? 128n : 32n;
  const out: string[] = [];
  while (lo <= hi) {
    let size = 1n;
    let bits = width;
    // Grow the block while it stays aligned and inside the range.
    while (bits > 0n && lo % (size * 2n) === 0n && lo + size * 2n - 1n <= hi) {
      size *= 2n;
      bits--;
    }
    out.push(bits === width ? numText(v6, lo) : `${numText(v6, lo)}/${bits}`);
    lo += size;
  }
  return out;
}

/** Addresses to carve out ("100.64.0.7/32", "fd7a:…/128" or bare IPs). */
export interface Excluded {
  v4: bigint[];
  v6: bigint[];
}

export function excludedOf(addrs: Iterable<string>): Excluded {
  const ex: Excluded = { v4: [], v6: [] };
  for (const a of addrs) {
    const n = addrNum(a.split('/')[0]!);
    if (n) (n.v6 ? ex.v6 : ex.v4).push(n.n);
  }
  ex.v4.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  ex.v6.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return ex;
}

export function sameExcluded(a: Excluded, b: Excluded): boolean {
  const eq = (x: bigint[], y: bigint[]) => x.length === y.length && x.every((v, i) => v === y[i]);
  return eq(a.v4, b.v4) && eq(a.v6, b.v6);
}

/** One SrcIPs entry without the excluded addresses: the entry itself when it holds none of them. */
function carveEntry(entry: string, ex: Excluded, memo: Map<string, string[]>): string[] {
  const hit = memo.get(entry);
  if (hit) return hit;
  const spans = spansOf(entry);
  let out: string[] = [entry];
  if (spans) {
    const inside = (s: Span) => (s.v6 ? ex.v6 : ex.v4).filter((x) => x >= s.lo && x <= s.hi);
    if (spans.some((s) => inside(s).length > 0)) {
      out = [];
      for (const s of spans) {
        let lo = s.lo;
        for (const x of inside(s)) {
          if (x > lo) out.push(...cidrsOf(s.v6, lo, x - 1n));
          lo = x + 1n;
        }
        if (lo <= s.hi) out.push(...cidrsOf(s.v6, lo, s.hi));
      }
    }
  }
  memo.set(entry, out);
  return out;
}

/**
 * The rules with the excluded addresses removed from every SrcIPs ("*" and prefixes are split around
 * them). Rules left without sources are dropped. Returns `rules` itself when nothing changes.
 * `memo` (entry → carved entries) may be kept between calls with the same `ex`.
 */
export function carveSources(rules: FilterRule[], ex: Excluded, memo = new Map<string, string[]>()): FilterRule[] {
  if (ex.v4.length === 0 && ex.v6.length === 0) return rules;
  let changed = false;
  const out: FilterRule[] = [];
  for (const r of rules) {
    const src: string[] = [];
    let touched = false;
    for (const e of r.SrcIPs) {
      const c = carveEntry(e, ex, memo);
      if (c.length !== 1 || c[0] !== e) touched = true;
      src.push(...c);
    }
    if (!touched) {
      out.push(r);
      continue;
    }
    changed = true;
    if (src.length > 0) out.push({ ...r, SrcIPs: src });
  }
  return changed ? out : rules;
}

/** Whether a SrcIPs list contains the address. */
export function sourcesContain(srcIPs: readonly string[], addr: string): boolean {
  const a = addrNum(addr.split('/')[0]!);
  if (!a) return false;
  for (const e of srcIPs) {
    for (const s of spansOf(e) ?? []) if (s.v6 === a.v6 && a.n >= s.lo && a.n <= s.hi) return true;
  }
  return false;
}

/**
 * What a device with addresses `src` may start towards a device with addresses `dst` under `rules`:
 * the packet rules whose sources include one of `src`, with SrcIPs narrowed to those addresses and
 * DstPorts narrowed to `dst` ("*" or a prefix becomes the addresses it holds). All bare IPs.
 */
export function rulesBetween(rules: readonly FilterRule[], src: readonly string[], dst: readonly string[]): FilterRule[] {
  const out: FilterRule[] = [];
  const from = src.map((a) => a.split('/')[0]!);
  const to = dst.map((a) => a.split('/')[0]!);
  for (const r of rules) {
    if (!r.DstPorts || r.DstPorts.length === 0) continue;
    const s = from.filter((a) => sourcesContain(r.SrcIPs, a));
    if (s.length === 0) continue;
    const ports = [];
    for (const d of r.DstPorts) for (const a of to) if (sourcesContain([d.IP], a)) ports.push({ IP: a, Ports: d.Ports });
    if (ports.length === 0) continue;
    const rule: FilterRule = { SrcIPs: s, DstPorts: ports };
    if (r.IPProto) rule.IPProto = r.IPProto;
    out.push(rule);
  }
  return out;
}
