// Subnet routers and exit nodes on the agent (issue 14). The daemon hands each netmap and its route
// preferences here; the plan (plan.ts) decides, the host (host.ts) carries it out. Changes to the host
// run one at a time, the latest netmap winning; `clear()` undoes everything.
import { parseAddr, parsePrefix, prefixContains } from '../../wire/addr.js';
import type { Netmap } from '../../wire/protocol.js';
import type { StateDir } from '../state.js';
import { HostRouting, type HostOptions, type Runner } from './host.js';
import { BypassNames, type LookupFunction, type Resolver } from './names.js';
import { planRouting, type LocalNet, type PeerRoutes, type RoutePrefs, type RoutingPlan } from './plan.js';

export { addressesVia, BypassNames, type LookupFunction, type Resolver } from './names.js';
export { BYPASS_MARK, NFT_TABLE, ROUTE_TABLE } from './host.js';
export { EXIT_DNS_PORT, exitNodeDnsRule, isApprovedExitNode, isExitDnsClient } from './exit-dns.js';
export { chosenExitNode, DEFAULT_ROUTE_PREFS, exitNodeProblem, localNetsOf, withExitRoutes, type LocalNet, type PeerRoutes, type RoutePrefs } from './plan.js';
export { advertisedRoutesOf, EXIT_ROUTES, parseExitNode, parseRoute, parseRouteList, RouteError } from './prefixes.js';

export interface RoutingInput {
  netmap: Netmap | null;
  prefs: RoutePrefs;
  tun: string;
  localNets: LocalNet[];
  /** Hosts whose traffic must never enter the tunnel: coord and the relays (names or IPs). */
  bypassHosts: string[];
  /** The resolvers DNS queries are forwarded to: a LAN one stays reachable while an exit node is in use. */
  resolvers: string[];
}

/** Resolved names are reused this long (coord's and the relays' addresses rarely change). */
const RESOLVE_TTL_MS = 5 * 60_000;

export class Routing {
  private readonly host: HostRouting;
  private plan: RoutingPlan | null = null;
  private chain: Promise<void> = Promise.resolve();
  private pending: RoutingInput | null = null;
  /** Coord's and the relays' addresses, as kept out of the tunnel. */
  private readonly names: BypassNames;
  private lastInput: RoutingInput | null = null;
  private lastNotes = '';

  /** `hostless`: plan and report only, never touch the host (a data path in memory, in tests). */
  constructor(
    state: StateDir,
    private readonly log: HostOptions['log'],
    run?: Runner,
    private readonly hostless = false,
    resolve?: Resolver,
  ) {
    this.host = new HostRouting({ state, log, ...(run ? { run } : {}) });
    this.names = new BypassNames({
      ttlMs: RESOLVE_TTL_MS,
      log,
      // coord or a relay moved: the bypass rules follow.
      onChange: () => void (this.lastInput && this.update(this.lastInput)),
      ...(resolve ? { resolve } : {}),
    });
  }

  /**
   * The `lookup` for the agent's connections to coord and the relays. While routes go through the
   * tunnel, their names are answered with the addresses kept out of it, so reaching them never needs
   * DNS through the tunnel (blocked while the chosen exit node is unavailable); otherwise DNS answers
   * first, and what it answered is kept for then.
   */
  get lookup(): LookupFunction {
    return this.names.lookup;
  }

  /** Undoes what a previous process left installed (it crashed or was killed). */
  async recover(): Promise<void> {
    if (this.hostless || !this.host.active) return;
    this.log('info', 'undoing the routing a previous run left behind');
    await this.host.clear();
  }

  /** Plans from this input now (status reads it) and brings the host in line soon after. */
  update(input: RoutingInput): Promise<void> {
    this.plan = planRouting(input.netmap, input.prefs, input.localNets);
    const notes = this.plan.notes.join('\n');
    if (notes !== this.lastNotes) {
      this.lastNotes = notes;
      for (const n of this.plan.notes) this.log('warn', n);
    }
    this.pending = input;
    this.lastInput = input;
    const run = this.chain.then(() => this.applyPending());
    this.chain = run.catch((err: unknown) => this.log('warn', `could not apply the routing: ${(err as Error).message}`));
    return this.chain;
  }

  private async applyPending(): Promise<void> {
    const input = this.pending;
    if (!input || this.hostless) return; // a later update already applied it
    this.pending = null;
    const plan = planRouting(input.netmap, input.prefs, input.localNets);
    const bypass = new Set<string>();
    if (plan.routes.length > 0) {
      for (const h of input.bypassHosts) for (const a of await this.names.resolve(h)) bypass.add(a);
      // A resolver on this device's LAN stays reachable when the exit node takes the LAN's traffic.
      if (input.prefs.exitNode !== '' && !input.prefs.exitNodeAllowLanAccess) {
        const nets = input.localNets.map((n) => parsePrefix(n.prefix)!);
        for (const r of input.resolvers) {
          const a = parseAddr(r);
          if (a && nets.some((n) => prefixContains(n, a))) bypass.add(r);
        }
      }
    }
    // Names are answered from the cache while the tunnel may take DNS away; either way they are kept,
    // so that they are known before an exit node is chosen.
    this.names.cacheFirst = plan.routes.length > 0;
    this.names.retain(input.bypassHosts);
    await this.host.apply({ tun: input.tun, forwarding: plan.forwarding, snat: plan.snat, routes: plan.routes, throws: plan.throws, bypass: [...bypass] });
  }

  /** Removes every route, rule and nftables table, and restores the sysctls. Waits for changes in flight. */
  async clear(): Promise<void> {
    this.pending = null;
    this.lastInput = null;
    await this.chain;
    this.names.cacheFirst = false;
    this.plan = null;
    this.lastNotes = '';
    if (!this.hostless) await this.host.clear();
  }

  peerRoutes(id: string): PeerRoutes | undefined {
    return this.plan?.peers.get(id);
  }

  get exitNode(): RoutingPlan['exitNode'] {
    return this.plan?.exitNode ?? null;
  }

  /** Sentences for `agent status`: routes not taken, an exit node not available, commands that failed. */
  get notes(): string[] {
    return [...(this.plan?.notes ?? []), ...this.host.errors];
  }

  get forwarding(): { v4: boolean; v6: boolean } {
    return this.plan?.forwarding ?? { v4: false, v6: false };
  }
}
