// Route planning: for one device, which peer carries each subnet route it may use, and which exit
// nodes it may choose. Pure: coord/live-tailnet.ts feeds it the routers (their approved routes and
// compiled filters), the device's `via` grants and the routers' preference order (online first).
//
// A device is offered a peer's approved route when the router's own filter lets the device reach
// something inside it (the compiler lands a rule there only for the sources the policy allows, and
// `via` grants only on the routers they name), and no `via` grant covering the device steers that
// prefix to routers with other tags. Among the routers offering the same prefix, the device uses one,
// the "primary": the first in the preference order, the same for every device with the same choice.
// WireGuard allowed IPs may not hold one prefix for two peers; the primary alone puts it there.
import { entriesContain, formatPrefix, isFullRange, parsePrefix, parseRange, rangesOverlap, type Range } from '../wire/addr.js';
import type { FilterRule } from '../wire/types.js';
import { INTERNET_PREFIXES, type ViaSteer } from './policy/index.js';

const INTERNET = new Set(INTERNET_PREFIXES);

/** A router (or exit node) as route planning sees it. */
export interface RouterView {
  id: string;
  tags: string[];
  /** Approved subnet routes (canonical CIDR, exit routes left out), each with the SrcIPs of the rules reaching into it. */
  routes: { prefix: string; range: Range; sources: (readonly string[])[] }[];
  /** Approved default routes (0.0.0.0/0, ::/0); empty when it is not an exit node. */
  exitRoutes: string[];
  /** SrcIPs of the rules that let traffic through it to the internet. */
  exitSources: (readonly string[])[];
}

/** What one router offers one device. */
export interface RouterPlan {
  /** The approved subnet routes the device may use through it. */
  offered: string[];
  /** The part of `offered` the device sends through it now (it is the primary for these). */
  primary: string[];
  /** The default routes, when the device may use it as its exit node; else empty. */
  exitRoutes: string[];
}

/** "10.1.2.3/16" → "10.1.0.0/16"; null when it is not a prefix. */
export function canonicalPrefix(text: string): string | null {
  const p = parsePrefix(text);
  return p ? formatPrefix(p) : null;
}

/** A router's view from its approved routes and its compiled filter; null when it approves none. */
export function routerViewOf(id: string, tags: string[], approved: readonly string[], filter: readonly FilterRule[]): RouterView | null {
  const view: RouterView = { id, tags, routes: [], exitRoutes: [], exitSources: [] };
  const seen = new Set<string>();
  for (const text of approved) {
    const prefix = canonicalPrefix(text);
    const range = prefix === null ? null : parseRange(prefix);
    if (prefix === null || range === null || seen.has(prefix)) continue;
    seen.add(prefix);
    if (isFullRange(range)) view.exitRoutes.push(prefix);
    else view.routes.push({ prefix, range, sources: [] });
  }
  if (view.routes.length === 0 && view.exitRoutes.length === 0) return null;
  for (const rule of filter) {
    if (!rule.DstPorts || rule.DstPorts.length === 0) continue;
    const hits = new Set<number>();
    let toInternet = false;
    for (const dp of rule.DstPorts) {
      const all = dp.IP === '*';
      if (all || INTERNET.has(dp.IP)) toInternet = true;
      const r = all ? null : parseRange(dp.IP);
      for (let i = 0; i < view.routes.length; i++) if (all || (r !== null && rangesOverlap(r, view.routes[i]!.range))) hits.add(i);
    }
    for (const i of hits) view.routes[i]!.sources.push(rule.SrcIPs);
    if (toInternet && view.exitRoutes.length > 0) view.exitSources.push(rule.SrcIPs);
  }
  return view;
}

function reaches(sources: readonly (readonly string[])[], addrs: readonly string[]): boolean {
  return sources.some((src) => addrs.some((a) => entriesContain(src, a)));
}

/** The router tags a device's `via` grants allow for a prefix (null: no grant steers it). */
function viaTagsFor(via: readonly ViaSteer[], range: Range | 'internet'): Set<string> | null {
  let tags: Set<string> | null = null;
  for (const v of via) {
    const hit = v.all || (range === 'internet' ? v.internet : v.prefixes.some((p) => rangesOverlap(p, range)));
    if (!hit) continue;
    tags ??= new Set();
    for (const t of v.tags) tags.add(t);
  }
  return tags;
}

function viaAllows(tags: Set<string> | null, router: RouterView): boolean {
  return tags === null || router.tags.some((t) => tags.has(t));
}

/**
 * The plan of one device: per router (by id) what it offers the device and carries for it. `routers`
 * come in preference order (the primary of a prefix is the first that offers it); `own` are the
 * device's own approved routes, which it never takes from a peer. Routers offering nothing are absent.
 */
export function planRoutes(device: { addrs: readonly string[]; via: readonly ViaSteer[]; own?: readonly string[] }, routers: readonly RouterView[]): Map<string, RouterPlan> {
  const out = new Map<string, RouterPlan>();
  const own = new Set((device.own ?? []).map(canonicalPrefix));
  const taken = new Set<string>();
  const viaMemo = new Map<string, Set<string> | null>();
  const plan = (id: string): RouterPlan => {
    let p = out.get(id);
    if (!p) out.set(id, (p = { offered: [], primary: [], exitRoutes: [] }));
    return p;
  };
  for (const r of routers) {
    for (const route of r.routes) {
      if (own.has(route.prefix)) continue;
      if (!viaMemo.has(route.prefix)) viaMemo.set(route.prefix, viaTagsFor(device.via, route.range));
      if (!viaAllows(viaMemo.get(route.prefix)!, r) || !reaches(route.sources, device.addrs)) continue;
      const p = plan(r.id);
      p.offered.push(route.prefix);
      if (!taken.has(route.prefix)) {
        taken.add(route.prefix);
        p.primary.push(route.prefix);
      }
    }
    if (r.exitRoutes.length > 0 && viaAllows(viaTagsFor(device.via, 'internet'), r) && reaches(r.exitSources, device.addrs)) {
      plan(r.id).exitRoutes = [...r.exitRoutes];
    }
  }
  return out;
}
