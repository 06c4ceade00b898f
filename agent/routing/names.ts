// The addresses of coord and the relays, as resolved to keep them out of the tunnel, and a `lookup`
// for the agent's own connections to them (coord's API, relay links). While an exit node is asked for
// but unavailable, internet traffic is blocked, the system resolver's too when it is not on the LAN:
// a reconnection then takes the address from here instead of asking DNS through the blocked tunnel.
// Only the address lookup changes: TLS still checks the certificate against the host name.
import { lookup as systemLookup } from 'node:dns/promises';
import type { LookupAddress, LookupOptions } from 'node:dns';
import { isIP } from 'node:net';

/** Resolves a name to its addresses (the system resolver unless a test passes its own). */
export type Resolver = (name: string) => Promise<string[]>;

const resolveWithSystem: Resolver = async (name) => (await systemLookup(name, { all: true })).map((r) => r.address);

/** The callback of net's `lookup` option, in both of its shapes (one address, or all of them). */
type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/** A function for the `lookup` option of net.connect, tls.connect, undici's connect and ws. */
export type LookupFunction = (hostname: string, options: LookupOptions, callback: LookupCallback) => void;

export interface BypassNamesOptions {
  /** Answers older than this are resolved again when next used (the address may change). */
  ttlMs: number;
  resolve?: Resolver;
  log?: (level: 'warn', msg: string) => void;
  /** A name now has other addresses than before (the bypass rules must follow). */
  onChange?: (name: string) => void;
  now?: () => number;
}

export class BypassNames {
  private readonly cache = new Map<string, { at: number; addrs: string[] }>();
  private readonly inFlight = new Map<string, Promise<string[]>>();
  private readonly resolver: Resolver;
  private readonly now: () => number;
  /**
   * Whether `lookup` answers from the cache before DNS: while routes go through the tunnel (DNS may
   * then be unreachable). Otherwise DNS answers first, and the cache only when DNS fails.
   */
  cacheFirst = false;

  constructor(private readonly o: BypassNamesOptions) {
    this.resolver = o.resolve ?? resolveWithSystem;
    this.now = o.now ?? Date.now;
  }

  /**
   * The addresses of `host` (a name, or an IP address, bracketed or not), from the cache while fresh;
   * when DNS fails, the last addresses it gave (none if it never answered).
   */
  async resolve(host: string): Promise<string[]> {
    const bare = host.replace(/^\[|\]$/g, '');
    if (isIP(bare)) return [bare];
    const hit = this.cache.get(bare);
    if (hit && this.now() - hit.at < this.o.ttlMs) return hit.addrs;
    return this.refresh(bare).catch(() => []);
  }

  /** Forgets the names not in `hosts` (a relay that left the map). */
  retain(hosts: string[]): void {
    const keep = new Set(hosts.map((h) => h.replace(/^\[|\]$/g, '')));
    for (const name of this.cache.keys()) if (!keep.has(name)) this.cache.delete(name);
  }

  /**
   * For the agent's connections to coord and the relays. Every answer is kept, so that the addresses
   * are known before an exit node is chosen (its DNS may be unreachable from then on). With
   * `cacheFirst`, a known name is answered from the cache at once (a stale answer too, resolved again
   * in the background); otherwise DNS answers, and the cache when DNS fails.
   */
  readonly lookup: LookupFunction = (hostname, options, callback) => {
    const hit = this.cache.get(hostname);
    if (hit && this.cacheFirst) {
      if (this.now() - hit.at >= this.o.ttlMs) void this.refresh(hostname).catch(() => {});
      answer(hostname, hit.addrs, options, callback);
      return;
    }
    this.refresh(hostname).then(
      (addrs) => answer(hostname, addrs, options, callback),
      (err: NodeJS.ErrnoException) => callback(err, options.all ? [] : ''),
    );
  };

  /** Asks DNS (once at a time per name) and keeps the answer; when DNS fails, the last answer, or the error if none. */
  private refresh(name: string): Promise<string[]> {
    const running = this.inFlight.get(name);
    if (running) return running;
    const had = this.cache.get(name);
    const p = this.resolver(name)
      .then(
        (addrs) => {
          this.cache.set(name, { at: this.now(), addrs });
          if (had && (had.addrs.length !== addrs.length || had.addrs.some((a, i) => a !== addrs[i]))) this.o.onChange?.(name);
          return addrs;
        },
        (err: Error) => {
          if (!had) throw err;
          this.o.log?.('warn', `could not resolve ${name} (keeping it outside the tunnel by its last addresses): ${err.message}`);
          return had.addrs;
        },
      )
      .finally(() => this.inFlight.delete(name));
    this.inFlight.set(name, p);
    return p;
  }
}

/** All the addresses `lookup` gives for `host` (for STUN to coord and the relays). */
export function addressesVia(lookup: LookupFunction, host: string): Promise<string[]> {
  return new Promise((resolve, reject) =>
    lookup(host, { all: true }, (err, found) => (err ? reject(err) : resolve((found as LookupAddress[]).map((a) => a.address)))),
  );
}

/** Calls back as dns.lookup would with these addresses, honouring `family` and `all`. */
function answer(hostname: string, addrs: string[], options: LookupOptions, callback: LookupCallback): void {
  const family = options.family === 'IPv4' ? 4 : options.family === 'IPv6' ? 6 : (options.family ?? 0);
  const found = addrs.map((address) => ({ address, family: isIP(address) })).filter((a) => family === 0 || a.family === family);
  if (found.length === 0) {
    const err: NodeJS.ErrnoException = new Error(`getaddrinfo ENOTFOUND ${hostname}`);
    err.code = 'ENOTFOUND';
    return process.nextTick(callback, err, options.all ? [] : '');
  }
  if (options.all) process.nextTick(callback, null, found);
  else process.nextTick(callback, null, found[0]!.address, found[0]!.family);
}
