// The names this device's resolver answers for itself (MagicDNS), built from a netmap: this network's
// devices as `host.<network domain>`, devices shared into it only under their full name in the
// sharer's domain, and the reverse (PTR) names of every tailnet address it knows. Pure: no I/O.
import { isIP } from 'node:net';
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

function rawIPv4(ip: string): Buffer {
  return Buffer.from(ip.split('.').map(Number));
}

function rawIPv6(ip: string): Buffer {
  const [head, tail] = ip.toLowerCase().split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
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

function bare(cidr: string): string {
  const slash = cidr.indexOf('/');
  return slash < 0 ? cidr : cidr.slice(0, slash);
}

/** The reverse-lookup name of an IP address: "100.64.0.1" → "1.0.64.100.in-addr.arpa". */
export function reverseName(ip: string): string | null {
  const family = isIP(ip);
  if (family === 4) return `${ip.split('.').reverse().join('.')}.in-addr.arpa`;
  if (family !== 6) return null;
  const [head, tail] = ip.toLowerCase().split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const nibbles = groups.map((g) => g.padStart(4, '0')).join('');
  return `${[...nibbles].reverse().join('.')}.ip6.arpa`;
}

function addHost(hosts: Map<string, HostRecord>, ptr: Map<string, string>, fqdn: string, addresses: string[]): void {
  const name = normalizeName(fqdn);
  if (!name || hosts.has(name)) return;
  const rec: HostRecord = { name, v4: [], v6: [], v4Raw: [], v6Raw: [] };
  for (const a of addresses) {
    const ip = bare(a);
    const family = isIP(ip);
    if (family === 4) {
      rec.v4.push(ip);
      rec.v4Raw.push(rawIPv4(ip));
    } else if (family === 6) {
      rec.v6.push(ip);
      rec.v6Raw.push(rawIPv6(ip));
    } else continue;
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
