// What this device's routing should be, from the netmap and the route preferences: pure, so that each
// decision (which peer route is taken, which LAN stays local, which exit node) is testable alone.
// agent/routing/host.ts then makes the host's routing table, rules and nftables match the plan.
import type { NetworkInterfaceInfo } from 'node:os';
import { canonicalAddr, bareAddr, formatPrefix, hostPrefix, isTailnetAddr, parsePrefix, prefixWithin, type Prefix } from '../../wire/addr.js';
import { firstLabel } from '../../wire/names.js';
import type { Netmap, PeerNode } from '../../wire/protocol.js';
import { EXIT_ROUTES, prefixesOverlap } from './prefixes.js';

/** The route settings of `agent up`, as remembered in prefs. */
export interface RoutePrefs {
  /** Subnet routes this device offers (canonical CIDR). */
  advertiseRoutes: string[];
  advertiseExitNode: boolean;
  /** Install the routes peers offer. */
  acceptRoutes: boolean;
  /** With acceptRoutes: also take over a peer's route that lies inside (or equals) one of this device's LANs. */
  acceptRoutesOverLan: boolean;
  /** The exit node to use: a tailnet IP or a device name; '' for none. */
  exitNode: string;
  exitNodeAllowLanAccess: boolean;
  /** Source NAT for traffic this router forwards from the tunnel (default true). */
  snatSubnetRoutes: boolean;
}

export const DEFAULT_ROUTE_PREFS: RoutePrefs = {
  advertiseRoutes: [],
  advertiseExitNode: false,
  acceptRoutes: false,
  acceptRoutesOverLan: false,
  exitNode: '',
  exitNodeAllowLanAccess: false,
  snatSubnetRoutes: true,
};

/** A network this device is directly connected to (not through the tunnel). */
export interface LocalNet {
  prefix: string;
  iface: string;
}

export interface PeerRoutes {
  /** Subnet routes the peer offers here (approved by coord). */
  offered: string[];
  /** Those routed through the tunnel on this device now. */
  inUse: string[];
  /** It offers an exit node that this device may use. */
  exitNodeOption: boolean;
  /** This device sends its internet traffic through it now. */
  exitNode: boolean;
}

export interface RoutingPlan {
  /** IP forwarding needed (this device routes for others), per family. */
  forwarding: { v4: boolean; v6: boolean };
  /** Masquerade what is forwarded from the tunnel. */
  snat: boolean;
  /** Prefixes routed through the TUN device in meshward's table. */
  routes: string[];
  /** Local networks inside those routes that stay local (looked up in the main table instead). */
  throws: string[];
  exitNode: { id: string; name: string; address: string } | null;
  peers: Map<string, PeerRoutes>;
  /** What a person should know (a route not taken over, an exit node not available), as sentences. */
  notes: string[];
}

const UNROUTABLE = ['127.0.0.0/8', '169.254.0.0/16', '::1/128', 'fe80::/10'].map((p) => parsePrefix(p)!);

/** The networks of this device's interfaces (not the TUN device, loopback, link-local or tailnet ones). */
export function localNetsOf(ifaces: NodeJS.Dict<NetworkInterfaceInfo[]>, tunName: string): LocalNet[] {
  const out: LocalNet[] = [];
  for (const [iface, list] of Object.entries(ifaces)) {
    if (iface === tunName || !list) continue;
    for (const a of list) {
      const p = a.internal || !a.cidr ? null : parsePrefix(a.cidr);
      if (!p || isTailnetAddr(p) || UNROUTABLE.some((u) => prefixWithin(p, u))) continue;
      const prefix = formatPrefix(p);
      if (!out.some((n) => n.prefix === prefix)) out.push({ prefix, iface });
    }
  }
  return out;
}

const isExitRoute = (r: string) => EXIT_ROUTES.includes(r);

/**
 * The subnet routes a peer offers this device (coord's `routes`); from a coord that does not send them,
 * its allowed IPs other than its own addresses and the exit routes.
 */
export function offeredRoutes(p: PeerNode): string[] {
  return canonicalRoutes(p.routes ?? extraAllowedIPs(p));
}

/** Those this device routes through the peer (coord's `primaryRoutes`: for each prefix, one peer). */
export function primaryRoutes(p: PeerNode): string[] {
  return canonicalRoutes(p.primaryRoutes ?? (p.routes ? [] : extraAllowedIPs(p)));
}

function extraAllowedIPs(p: PeerNode): string[] {
  const own = new Set(p.addresses.map(hostPrefix));
  return (p.allowedIPs ?? []).filter((r) => !own.has(hostPrefix(r)));
}

function canonicalRoutes(list: string[]): string[] {
  const out: string[] = [];
  for (const r of list) {
    const prefix = parsePrefix(r);
    if (!prefix || isExitRoute(formatPrefix(prefix)) || isTailnetAddr(prefix)) continue;
    const text = formatPrefix(prefix);
    if (!out.includes(text)) out.push(text);
  }
  return out;
}

/** The default routes coord lets this device send through the peer as an exit node ([]: it is none). */
export function exitRoutesOf(p: PeerNode): string[] {
  if (p.shared) return [];
  if (p.exitNodeOption !== undefined || p.exitRoutes !== undefined) return p.exitNodeOption ? (p.exitRoutes ?? [...EXIT_ROUTES]).filter(isExitRoute) : [];
  return (p.allowedIPs ?? []).filter(isExitRoute); // a coord that puts them in allowedIPs
}

/** The exit node the settings ask for, if it is a peer offering one. */
export function chosenExitNode(netmap: Netmap, prefs: RoutePrefs): { peer: PeerNode; routes: string[] } | null {
  if (prefs.exitNode === '') return null;
  const peer = findPeer(netmap.peers, prefs.exitNode);
  const routes = peer ? exitRoutesOf(peer) : [];
  return peer && routes.length > 0 ? { peer, routes } : null;
}

/**
 * Why the exit node the settings ask for cannot be used with this netmap (a sentence), or null when it
 * can (or none is asked for). `agent up --exit-node` refuses with it; a running agent reports it.
 */
export function exitNodeProblem(netmap: Netmap, prefs: RoutePrefs): string | null {
  if (prefs.exitNode === '' || chosenExitNode(netmap, prefs)) return null;
  const peer = findPeer(netmap.peers, prefs.exitNode);
  if (!peer && findPeer([netmap.self], prefs.exitNode)) {
    return `exit node ${prefs.exitNode} is this device; choose another device that offers one (agent status lists them: "offers: … exit node")`;
  }
  if (!peer) return `exit node ${prefs.exitNode} is not a peer of this device (see the peers in: agent status)`;
  const name = firstLabel(peer.name);
  if (peer.shared) return `${name} does not offer an exit node to this device: it is shared into this network, and a shared device never routes for it`;
  return (
    `${name} does not offer an exit node to this device (it does not advertise one: agent up --advertise-exit-node on it; ` +
    `an admin has not approved it: coord devices routes ${name} --approve exit-node; ` +
    `or the policy does not allow autogroup:internet for this device: a grant with "dst": ["autogroup:internet"])`
  );
}

/**
 * The netmap as the WireGuard device should see it: the exit routes on the one exit node in use (coord
 * sends them apart from allowedIPs) and on no other peer; a device shared into this network with its
 * own addresses only (it never routes here: a subnet on it would win WireGuard's longest match).
 */
export function withExitRoutes(netmap: Netmap, prefs: RoutePrefs): Netmap {
  const exit = chosenExitNode(netmap, prefs);
  const notOwn = (p: PeerNode) => extraAllowedIPs(p).length > 0;
  const needs = (p: PeerNode) =>
    p.shared ? notOwn(p) : p === exit?.peer ? exit.routes.some((r) => !p.allowedIPs.includes(r)) : p.allowedIPs.some(isExitRoute);
  if (!netmap.peers.some(needs)) return netmap;
  const peers = netmap.peers.map((p) => {
    if (!needs(p)) return p;
    if (p.shared) return { ...p, allowedIPs: p.allowedIPs.filter((r) => !extraAllowedIPs(p).includes(r)) };
    const rest = p.allowedIPs.filter((r) => !isExitRoute(r));
    return { ...p, allowedIPs: p === exit?.peer ? [...rest, ...exit.routes] : rest };
  });
  return { ...netmap, peers };
}

/** The peer `want` names (a tailnet IP, its short name or its full name), or undefined. */
export function findPeer<T extends Pick<PeerNode, 'addresses' | 'name'> & { shared?: boolean }>(peers: T[], want: string): T | undefined {
  const ip = canonicalAddr(want);
  const name = want.replace(/\.$/, '').toLowerCase();
  return (
    peers.find((p) => p.addresses.some((a) => canonicalAddr(bareAddr(a)) === ip)) ??
    peers.find((p) => p.name.replace(/\.$/, '').toLowerCase() === name) ??
    peers.find((p) => !p.shared && firstLabel(p.name).toLowerCase() === name)
  );
}

export function planRouting(netmap: Netmap | null, prefs: RoutePrefs, localNets: LocalNet[]): RoutingPlan {
  const advertised = [...prefs.advertiseRoutes, ...(prefs.advertiseExitNode ? EXIT_ROUTES : [])];
  const plan: RoutingPlan = {
    forwarding: { v4: advertised.some((r) => !r.includes(':')), v6: advertised.some((r) => r.includes(':')) },
    snat: prefs.snatSubnetRoutes && advertised.length > 0,
    routes: [],
    throws: [],
    exitNode: null,
    peers: new Map(),
    notes: [],
  };
  if (!netmap) return plan;
  const locals = localNets.map((n) => ({ ...n, p: parsePrefix(n.prefix)! }));
  const routes = new Set<string>();
  const throws = new Set<string>();
  const take = (route: string, p: Prefix) => {
    routes.add(route);
    // A LAN of ours inside a peer's route stays on the LAN: the most specific route wins.
    for (const l of locals) if (prefixWithin(l.p, p) && l.prefix !== route) throws.add(l.prefix);
  };

  for (const peer of netmap.peers) {
    // A device shared into this network never routes for it (coord sends none; keep it so here).
    const offered = peer.shared ? [] : offeredRoutes(peer);
    const entry: PeerRoutes = { offered, inUse: [], exitNodeOption: exitRoutesOf(peer).length > 0, exitNode: false };
    plan.peers.set(peer.id, entry);
    if (!prefs.acceptRoutes || peer.shared) continue;
    for (const route of primaryRoutes(peer)) {
      const p = parsePrefix(route)!;
      // Taken over, such a route is more specific than the LAN (or equal to it, and table 52 is looked up
      // before main), so it wins for its addresses; the rest of the LAN stays local.
      const lan = locals.find((l) => prefixWithin(p, l.p));
      if (lan && !prefs.acceptRoutesOverLan) {
        plan.notes.push(
          `route ${route} of ${firstLabel(peer.name)} not used: this device reaches ${lan.prefix} directly on ${lan.iface}` +
            ' (agent up --accept-routes-over-lan takes it over)',
        );
        continue;
      }
      take(route, p);
      entry.inUse.push(route);
    }
  }

  const chosen = chosenExitNode(netmap, prefs);
  const problem = exitNodeProblem(netmap, prefs);
  if (problem) plan.notes.push(`${problem}; internet traffic is blocked until it is available (agent up --exit-node= sends it out directly)`);
  if (prefs.exitNode !== '') {
    // Both default routes whenever an exit node is asked for, as Tailscale does: while it is not
    // available (or offers one family only) no WireGuard peer takes them and the traffic is dropped,
    // rather than leaking out around the exit node the user chose.
    for (const r of EXIT_ROUTES) routes.add(r);
    // Without LAN access the exit node carries the LAN's traffic too (coord, relays and the tunnel's
    // own packets excepted by the host rules); with it, each LAN of this device stays local.
    if (prefs.exitNodeAllowLanAccess) for (const l of locals) throws.add(l.prefix);
  }
  if (chosen) {
    const peer = chosen.peer;
    plan.peers.get(peer.id)!.exitNode = true;
    const address = bareAddr(peer.addresses.find((a) => !a.includes(':')) ?? peer.addresses[0] ?? '');
    plan.exitNode = { id: peer.id, name: firstLabel(peer.name), address };
  }
  plan.routes = [...routes];
  // A throw only matters inside a route we take; and never for a LAN a peer's route equals.
  plan.throws = [...throws].filter((t) => !routes.has(t) && plan.routes.some((r) => prefixesOverlap(parsePrefix(r)!, parsePrefix(t)!)));
  return plan;
}
