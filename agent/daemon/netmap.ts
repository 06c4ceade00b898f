// Pure functions from a netmap to what the daemon configures and shows: the WireGuard peer plan, the
// filter configuration, `agent status` and `agent whois` answers, and this device's endpoints.
// Nothing here does I/O, so each decision can be tested on its own.
import type { NetworkInterfaceInfo } from 'node:os';
import type { FilterConfig } from '../../filter/index.js';
import {
  bareAddr, canonicalAddr, familyOf, formatAddr, hostPrefix, isAddr, parseAddr, parsePrefix, prefixContains, TAILNET_IPV4_RANGE, TAILNET_IPV6_RANGE,
  type Prefix,
} from '../../wire/addr.js';
import { firstLabel } from '../../wire/names.js';
import type { Netmap, PeerNode } from '../../wire/protocol.js';
import type { PeerStatus, SelfStatus, WhoisResponse } from '../localapi/types.js';
import { exitNodeDnsRule } from '../routing/exit-dns.js';

export interface PeerPlan {
  /** WireGuard public key, base64. */
  nodeKey: string;
  /** The 32 raw bytes of the key. */
  publicKey: Buffer;
  allowedIPs: string[];
  /** Candidate UDP endpoints in order of preference. */
  endpoints: string[];
}

/** A base64 WireGuard key, or null when it is not 32 bytes of canonical base64. */
export function decodeKey(b64: string): Buffer | null {
  if (typeof b64 !== 'string') return null;
  const raw = Buffer.from(b64, 'base64');
  return raw.length === 32 && raw.toString('base64') === b64 ? raw : null;
}

/** "1.2.3.4:41641" or "[fd00::1]:41641" as an address (canonical text) and port; null when it is neither. */
export function parseEndpoint(ep: string): { address: string; port: number } | null {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(ep) ?? /^([^:]+):(\d+)$/.exec(ep);
  const a = m ? parseAddr(m[1]!) : null;
  const port = m ? Number(m[2]) : 0;
  return a && port > 0 && port < 65536 ? { address: formatAddr(a), port } : null;
}

function endpointHost(ep: string): string | null {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(ep) ?? /^([^:]+):(\d+)$/.exec(ep);
  if (!m) return null;
  const port = Number(m[2]);
  return isAddr(m[1]!) && port > 0 && port < 65536 ? m[1]! : null;
}

/** Loopback, "this network", link-local and tailnet addresses are useless (or harmful) as another device's endpoint. */
const UNUSABLE_ENDPOINTS: Prefix[] = [
  '127.0.0.0/8', '0.0.0.0/8', '169.254.0.0/16', TAILNET_IPV4_RANGE, '::1/128', '::/128', 'fe80::/10', TAILNET_IPV6_RANGE,
].map((p) => parsePrefix(p)!);

function usableEndpointIP(ip: string): boolean {
  const a = parseAddr(ip);
  return a !== null && !UNUSABLE_ENDPOINTS.some((p) => prefixContains(p, a));
}

/**
 * Orders a peer's endpoints: valid ones only, IPv4 before IPv6 (the common case on servers), and
 * those on one of our own subnets first (a LAN path beats a routed one).
 */
export function orderEndpoints(endpoints: string[], localSubnets: ((ip: string) => boolean) | null = null): string[] {
  const valid = endpoints.filter((ep) => {
    const host = endpointHost(ep);
    return host !== null && usableEndpointIP(host);
  });
  const score = (ep: string) => {
    const host = endpointHost(ep)!;
    return (localSubnets?.(host) ? 0 : 2) + (familyOf(host) === 4 ? 0 : 1);
  };
  return valid.map((ep, i) => ({ ep, i, s: score(ep) })).sort((x, y) => x.s - y.s || x.i - y.i).map((e) => e.ep);
}

/** The WireGuard peers a netmap asks for; peers with an unusable key are skipped (and named). */
export function planPeers(netmap: Netmap, localSubnets: ((ip: string) => boolean) | null = null): { peers: PeerPlan[]; skipped: string[] } {
  const peers: PeerPlan[] = [];
  const skipped: string[] = [];
  const seen = new Set<string>();
  for (const p of netmap.peers) {
    const key = decodeKey(p.nodeKey);
    if (!key || seen.has(p.nodeKey) || p.nodeKey === netmap.self.nodeKey) {
      skipped.push(p.name);
      continue;
    }
    seen.add(p.nodeKey);
    const allowed = (p.allowedIPs?.length ? p.allowedIPs : p.addresses).map(hostPrefix);
    peers.push({ nodeKey: p.nodeKey, publicKey: key, allowedIPs: allowed, endpoints: orderEndpoints(p.endpoints ?? [], localSubnets) });
  }
  return { peers, skipped };
}

/**
 * The packet filter a netmap asks for: its rules, our addresses as local, quarantined peers' prefixes,
 * and (when there are quarantined peers) the outbound rules towards them: this network's own policy
 * for shared-in devices (`sharedPeerRules`; none: they may not be reached at all).
 */
export function filterConfigOf(netmap: Netmap): FilterConfig {
  const quarantined = new Set<string>();
  for (const p of netmap.peers) {
    if (!p.quarantined) continue;
    for (const a of [...p.addresses, ...(p.allowedIPs ?? [])]) quarantined.add(hostPrefix(a));
  }
  // An exit node answers DNS for the peers the policy lets use it (agent/routing/exit-dns.ts).
  const exitDns = exitNodeDnsRule(netmap);
  const cfg: FilterConfig = {
    rules: exitDns ? [...(netmap.packetFilter ?? []), exitDns] : (netmap.packetFilter ?? []),
    // A subnet router or exit node also receives packets for the routes coord approved (never for
    // those it only advertises): the rules then decide them like packets to its own addresses.
    localAddrs: [...netmap.self.addresses, ...(netmap.self.approvedRoutes ?? [])].map(hostPrefix),
    quarantined: [...quarantined],
  };
  if (quarantined.size > 0) cfg.outbound = netmap.sharedPeerRules ?? [];
  return cfg;
}

export function selfStatusOf(netmap: Netmap, os: string): SelfStatus {
  const s = netmap.self;
  return {
    name: firstLabel(s.name),
    dnsName: s.name,
    addresses: s.addresses.map(bareAddr),
    owner: s.user.loginName,
    os,
    tags: s.tags,
    network: s.network.name,
  };
}

/** What the data path knows about a peer right now (from the WireGuard device). */
export interface PeerLive {
  endpoint: string | null;
  /** Through the relay of this name now (null: over UDP). */
  relay: string | null;
  /** Wall-clock ms, 0 if never. */
  lastHandshake: number;
  txBytes: number;
  rxBytes: number;
}

/** A handshake younger than this (WireGuard's reject-after time) makes a peer active: it has a path. */
const ACTIVE_MS = 180_000;

function pathOf(live: PeerLive | undefined, now: number): Pick<PeerStatus, 'path' | 'relay'> {
  if (!live || live.lastHandshake === 0 || now - live.lastHandshake >= ACTIVE_MS) return { path: null, relay: null };
  if (live.relay !== null) return { path: 'relay', relay: live.relay };
  return live.endpoint !== null ? { path: 'direct', relay: null } : { path: null, relay: null };
}

export function peerStatusOf(p: PeerNode, live: PeerLive | undefined, now = Date.now()): PeerStatus {
  return {
    id: p.id,
    // A shared-in device is known here only by its full name in the sharer's network.
    name: p.shared ? p.name.replace(/\.$/, '') : firstLabel(p.name),
    dnsName: p.name,
    addresses: p.addresses.map(bareAddr),
    owner: p.user.loginName,
    os: p.os,
    tags: p.shared ? [] : p.tags,
    online: p.online,
    lastSeen: p.lastSeen,
    shared: p.shared,
    quarantined: p.quarantined,
    endpoint: live?.relay ? null : (live?.endpoint ?? null),
    ...pathOf(live, now),
    lastHandshake: live && live.lastHandshake > 0 ? new Date(live.lastHandshake).toISOString() : null,
    txBytes: live?.txBytes ?? 0,
    rxBytes: live?.rxBytes ?? 0,
  };
}

/**
 * The peer a person means (`agent ping PEER`): by tailnet address, by full DNS name (with or without
 * the final dot), or by the name `agent status` shows (case-insensitive); null when none matches.
 */
export function findPeer(netmap: Netmap, query: string): PeerNode | null {
  const q = query.trim().toLowerCase().replace(/\.$/, '');
  if (isAddr(q)) {
    const want = canonicalAddr(q);
    return netmap.peers.find((p) => p.addresses.some((a) => canonicalAddr(bareAddr(a)) === want)) ?? null;
  }
  const full = netmap.peers.find((p) => p.name.toLowerCase().replace(/\.$/, '') === q);
  if (full) return full;
  return netmap.peers.find((p) => !p.shared && firstLabel(p.name).toLowerCase() === q) ?? null;
}

/**
 * `agent whois IP`: the device behind a tailnet address (a peer or this device), its user and tags, and
 * the application capabilities the policy grants it towards this device.
 */
export function whoisOf(
  netmap: Netmap,
  ip: string,
  capGrantsFor: (srcIP: string, dstIP: string) => Record<string, unknown[] | null>[],
): WhoisResponse | null {
  const want = canonicalAddr(ip);
  const has = (addrs: string[]) => addrs.some((a) => canonicalAddr(bareAddr(a)) === want);
  const self = netmap.self;
  const peer = netmap.peers.find((p) => has(p.addresses));
  if (!peer && !has(self.addresses)) return null;
  const family = familyOf(ip);
  const dst = self.addresses.map(bareAddr).find((a) => familyOf(a) === family);
  const capabilities: Record<string, unknown[]> = {};
  if (peer && dst) {
    for (const capMap of capGrantsFor(ip, dst)) {
      for (const [name, values] of Object.entries(capMap)) {
        (capabilities[name] ??= []).push(...(values ?? []));
      }
    }
  }
  if (peer) {
    return {
      device: {
        id: peer.id, name: peerStatusOf(peer, undefined).name, dnsName: peer.name, addresses: peer.addresses.map(bareAddr),
        os: peer.os, tags: peer.shared ? [] : peer.tags, shared: peer.shared,
      },
      // A tagged device belongs to its tags, not to the person who registered it (as in Tailscale).
      user: peer.tags.length && !peer.shared ? null : { loginName: peer.user.loginName, displayName: peer.user.displayName },
      capabilities,
    };
  }
  return {
    device: { id: self.id, name: firstLabel(self.name), dnsName: self.name, addresses: self.addresses.map(bareAddr), os: 'linux', tags: self.tags, shared: false },
    user: self.tags.length ? null : { loginName: self.user.loginName, displayName: self.user.displayName },
    capabilities,
  };
}

/**
 * This device's UDP endpoints to report to coord: every address of an up, non-loopback interface
 * (but not link-local or tailnet addresses, nor the TUN device itself) with the listen port.
 */
export function localEndpoints(ifaces: NodeJS.Dict<NetworkInterfaceInfo[]>, port: number, tunName: string): string[] {
  const out: string[] = [];
  for (const [name, list] of Object.entries(ifaces)) {
    if (name === tunName || !list) continue;
    for (const a of list) {
      if (a.internal || !usableEndpointIP(a.address)) continue;
      out.push(a.family === 'IPv6' ? `[${a.address}]:${port}` : `${a.address}:${port}`);
    }
  }
  // IPv4 first: the order is the order peers try them in.
  return orderEndpoints(out);
}

/** A predicate "is this IPv4 address on one of our own subnets", from the interfaces' CIDRs. */
export function onLocalSubnet(ifaces: NodeJS.Dict<NetworkInterfaceInfo[]>, tunName: string): (ip: string) => boolean {
  const nets: Prefix[] = [];
  for (const [name, list] of Object.entries(ifaces)) {
    if (name === tunName || !list) continue;
    for (const a of list) {
      if (a.family !== 'IPv4' || a.internal || !a.cidr) continue;
      const net = parsePrefix(a.cidr);
      if (net) nets.push(net);
    }
  }
  return (ip: string) => {
    const a = parseAddr(ip);
    return a !== null && a.family === 4 && nets.some((n) => prefixContains(n, a));
  };
}
