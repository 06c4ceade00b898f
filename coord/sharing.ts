// Device sharing: pure helpers on compiled rules. The recipient tailnet must never let a
// shared-in device start a connection, so its addresses are carved out of the sources of every rule
// the recipient's devices get; and the recipient's own policy towards a shared-in device is handed to
// the recipient's devices as outbound rules (restricted to their own addresses).
import { addrToBig, bareAddr, entriesContain, entryRanges, parseAddr, rangeToCidrs, type Range } from '../wire/addr.js';
import type { FilterRule } from '../wire/types.js';

/** Addresses to carve out ("100.64.0.7/32", "fd7a:…/128" or bare IPs). */
export interface Excluded {
  v4: bigint[];
  v6: bigint[];
}

export function excludedOf(addrs: Iterable<string>): Excluded {
  const ex: Excluded = { v4: [], v6: [] };
  for (const text of addrs) {
    const a = parseAddr(bareAddr(text));
    if (a) (a.family === 6 ? ex.v6 : ex.v4).push(addrToBig(a));
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
  const spans = entryRanges(entry);
  let out: string[] = [entry];
  if (spans) {
    const inside = (s: Range) => (s.v6 ? ex.v6 : ex.v4).filter((x) => x >= s.lo && x <= s.hi);
    if (spans.some((s) => inside(s).length > 0)) {
      out = [];
      for (const s of spans) {
        let lo = s.lo;
        for (const x of inside(s)) {
          if (x > lo) out.push(...rangeToCidrs({ v6: s.v6, lo, hi: x - 1n }));
          lo = x + 1n;
        }
        if (lo <= s.hi) out.push(...rangeToCidrs({ v6: s.v6, lo, hi: s.hi }));
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

/** Whether a SrcIPs list contains the address (which may carry a length: "100.64.0.1/32"). */
export function sourcesContain(srcIPs: readonly string[], addr: string): boolean {
  return entriesContain(srcIPs, bareAddr(addr));
}

/**
 * What a device with addresses `src` may start towards a device with addresses `dst` under `rules`:
 * the packet rules whose sources include one of `src`, with SrcIPs narrowed to those addresses and
 * DstPorts narrowed to `dst` ("*" or a prefix becomes the addresses it holds). All bare IPs.
 */
export function rulesBetween(rules: readonly FilterRule[], src: readonly string[], dst: readonly string[]): FilterRule[] {
  const out: FilterRule[] = [];
  const from = src.map(bareAddr);
  const to = dst.map(bareAddr);
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
