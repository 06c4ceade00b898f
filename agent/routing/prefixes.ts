// Subnet routes and exit nodes as `agent up` takes them: checks with messages a person can act on.
// Pure; the CLI and the daemon (whose socket may have other clients) both use these.
import { formatAddr, formatPrefix, isAddr, parseAddr, parsePrefix, prefixWithin, TAILNET_ROUTES, type Prefix } from '../../wire/addr.js';
import { isDnsLabel } from '../../wire/names.js';

/** What an exit node advertises (and what makes a peer one). */
export const EXIT_ROUTES: readonly string[] = ['0.0.0.0/0', '::/0'];

const tailnet = TAILNET_ROUTES.map((p) => parsePrefix(p)!);

/** Whether two prefixes share any address (one lies within the other). */
export function prefixesOverlap(a: Prefix, b: Prefix): boolean {
  return a.family === b.family && (prefixWithin(a, b) || prefixWithin(b, a));
}

/** An error in a route the user gave; the message says what to write instead. */
export class RouteError extends Error {}

/**
 * One advertised route, checked and in canonical form ("10.1.0.0/24", "fd00:1::/64"). Refused: text that
 * is no CIDR prefix, host bits set (10.1.2.3/24: which one was meant?), 0.0.0.0/0 and ::/0 (that is
 * --advertise-exit-node), and anything overlapping the tailnet's own ranges.
 */
export function parseRoute(raw: string): string {
  const text = raw.trim();
  const p = text.includes('/') ? parsePrefix(text) : null;
  if (!p) {
    const hint = isAddr(text) ? ` (for one address write ${text}/${text.includes(':') ? 128 : 32})` : '';
    throw new RouteError(`${JSON.stringify(raw)} is not a CIDR prefix like 10.0.0.0/24${hint}`);
  }
  const canonical = formatPrefix(p);
  const given = parseAddr(text.slice(0, text.indexOf('/')))!;
  if (formatAddr(given) !== formatAddr(p)) throw new RouteError(`${text} has bits set after the prefix length; did you mean ${canonical}?`);
  if (p.len === 0) throw new RouteError(`${canonical} is the whole internet: to offer it, use --advertise-exit-node`);
  const clash = tailnet.find((t) => prefixesOverlap(p, t));
  if (clash) throw new RouteError(`${canonical} overlaps the tailnet's own range ${formatPrefix(clash)}; its addresses are reached through their devices, not a subnet router`);
  return canonical;
}

/** A comma-separated list of routes (`--advertise-routes`), checked, without duplicates; "" is none. */
export function parseRouteList(list: string): string[] {
  const out: string[] = [];
  for (const item of list.split(',')) {
    if (item.trim() === '') continue;
    const r = parseRoute(item);
    if (!out.includes(r)) out.push(r);
  }
  return out;
}

/**
 * `--exit-node`: a peer's tailnet IP address or its name (short or full); "" turns the exit node off.
 * Returns the canonical text. Whether the peer offers an exit node is known only once the netmap is in.
 */
export function parseExitNode(raw: string): string {
  const text = raw.trim();
  if (text === '') return '';
  if (isAddr(text)) {
    const p = parsePrefix(text, { bare: true })!;
    if (!tailnet.some((t) => prefixWithin(p, t))) {
      throw new RouteError(`--exit-node ${text} is not a tailnet address (100.64.0.0/10 or fd7a:115c:a1e0::/48); give the exit node's tailnet IP or its name`);
    }
    return formatPrefix(p).split('/')[0]!;
  }
  const name = text.replace(/\.$/, '').toLowerCase();
  if (name.split('.').every(isDnsLabel)) return name;
  throw new RouteError(`--exit-node ${JSON.stringify(raw)} is neither an IP address nor a device name`);
}

/** The routes a device advertises to coord: its subnet routes, and 0.0.0.0/0 and ::/0 when it offers an exit node. */
export function advertisedRoutesOf(routes: readonly string[], exitNode: boolean): string[] {
  return exitNode ? [...routes, ...EXIT_ROUTES] : [...routes];
}
