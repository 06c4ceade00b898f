// The names this device's resolver answers for itself (MagicDNS), built from a netmap: this network's
// devices as `host.<network domain>`, devices shared into it only under their full name in the
// sharer's domain, and the reverse (PTR) names of every tailnet address it knows. Pure: no I/O.
import { addrToBytes, bareAddr, parseAddr } from '../../wire/addr.js';
import type { DnsConfig, Netmap } from '../../wire/protocol.js';

/** A device's addresses by family, as the resolver answers them. */
export interface HostRecord {
  /** The name as coord spelled it (lowercase, no trailing dot). */
  name: string;
  v4: string[];
  v6: string[];
  /** The same addresses in wire form (4 and 16 bytes), for answers built without a codec. */
  v4Raw: Buffer[];
  v6Raw: Buffer[];
}



export interface DnsRecords {
  /** Lowercase FQDN without the trailing dot → its addresses. */
  hosts: Map<string, HostRecord>;
  /** Reverse name ("1.0.64.100.in-addr.arpa", lowercase) → FQDN. */
  ptr: Map<string, string>;
  /**
   * The domains this resolver is the authority for (this network's, and the sharers' domains of devices
   * shared into it): a name under one of them that is not in `hosts` is NXDOMAIN, never forwarded.
   */
  zones: string[];
}

/** The netmap's DNS settings with the optional split-DNS routes filled in. */
export interface ResolverSettings {
  magicDNS: boolean;
  /** Global nameservers ("IP" or "IP:PORT"); empty: use the system's own resolvers. */
  nameservers: string[];
  /** Split DNS: domain suffix → nameservers, tried before the global ones. */
  routes: Record<string, string[]>;
  /** Search domains, this network's own domain first. */
  searchDomains: string[];
}

export function normalizeName(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

/** The reverse-lookup name of an IP address: "100.64.0.1" → "1.0.64.100.in-addr.arpa". */
export function reverseName(ip: string): string | null {
  const a = parseAddr(ip);
  if (!a) return null;
  const bytes = [...addrToBytes(a)];
  if (a.family === 4) return `${bytes.reverse().join('.')}.in-addr.arpa`;
  const nibbles = bytes.flatMap((b) => [b >> 4, b & 15].map((n) => n.toString(16)));
  return `${nibbles.reverse().join('.')}.ip6.arpa`;
}

function addHost(hosts: Map<string, HostRecord>, ptr: Map<string, string>, fqdn: string, addresses: string[]): void {
  const name = normalizeName(fqdn);
  if (!name || hosts.has(name)) return;
  const rec: HostRecord = { name, v4: [], v6: [], v4Raw: [], v6Raw: [] };
  for (const a of addresses) {
    const ip = bareAddr(a);
    const parsed = parseAddr(ip);
    if (!parsed) continue;
    const raw = Buffer.from(addrToBytes(parsed));
    if (parsed.family === 4) {
      rec.v4.push(ip);
      rec.v4Raw.push(raw);
    } else {
      rec.v6.push(ip);
      rec.v6Raw.push(raw);
    }
    const rev = reverseName(ip);
    if (rev && !ptr.has(rev)) ptr.set(rev, name);
  }
  hosts.set(name, rec);
}

function parentDomain(fqdn: string): string {
  const dot = fqdn.indexOf('.');
  return dot < 0 ? '' : fqdn.slice(dot + 1);
}

/**
 * The resolver's own names. This device and this network's devices come first, so that when a name of
 * a shared-in device equals one of ours, ours wins. Only devices in the netmap (those the policy lets
 * this device see) have names here.
 */
export function recordsFromNetmap(netmap: Netmap): DnsRecords {
  const hosts = new Map<string, HostRecord>();
  const ptr = new Map<string, string>();
  const zones = new Set<string>();
  const ownDomain = normalizeName(netmap.dns?.domain ?? netmap.self.network.domain);
  if (ownDomain) zones.add(ownDomain);
  addHost(hosts, ptr, netmap.self.name, netmap.self.addresses);
  for (const p of netmap.peers) if (!p.shared) addHost(hosts, ptr, p.name, p.addresses);
  for (const p of netmap.peers) {
    if (!p.shared) continue;
    addHost(hosts, ptr, p.name, p.addresses);
    const zone = parentDomain(normalizeName(p.name));
    if (zone) zones.add(zone);
  }
  return { hosts, ptr, zones: [...zones] };
}

/** The resolver's settings from a netmap's `dns` object (absent fields: defaults). */
export function settingsFromDns(dns: DnsConfig | undefined): ResolverSettings {
  const domain = dns?.domain ? normalizeName(dns.domain) : '';
  const search = [domain, ...(dns?.searchPaths ?? []).map(normalizeName)].filter((d, i, all) => d && all.indexOf(d) === i);
  const routes: Record<string, string[]> = {};
  for (const [suffix, servers] of Object.entries(dns?.routes ?? {})) {
    if (Array.isArray(servers)) routes[normalizeName(suffix)] = servers.filter((s) => typeof s === 'string');
  }
  return {
    magicDNS: dns?.magicDNS !== false,
    nameservers: dns?.nameservers ?? [],
    routes,
    searchDomains: dns?.magicDNS === false ? search.slice(1) : search,
  };
}

/** Is `name` equal to `zone` or below it? Both lowercase, without trailing dots. */
export function inZone(name: string, zone: string): boolean {
  return name === zone || (name.length > zone.length && name.endsWith(zone) && name.charCodeAt(name.length - zone.length - 1) === 46);
}
