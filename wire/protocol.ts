// The machine API's wire types: what coord and agent exchange (docs/protocol.md describes the
// protocol). coord and agent never import each other; both import this module.
import type { FilterRule } from './types.js';

export const PROTOCOL_VERSION = 1;

/** Request headers of the machine-key signature (lowercase, as node:http presents them). */
export const HDR_MACHINE_KEY = 'mw-machine-key';
export const HDR_TIMESTAMP = 'mw-timestamp';
export const HDR_NONCE = 'mw-nonce';
export const HDR_SIGNATURE = 'mw-signature';

/**
 * Response header of the netmap stream: how often (ms) coord writes a line even when nothing changed.
 * The agent declares the stream dead after three intervals of silence; a coord without it sends every 30 s.
 */
export const HDR_KEEPALIVE_MS = 'mw-keepalive-ms';

/** How far a request's timestamp may be from the server's clock. */
export const MAX_CLOCK_SKEW_MS = 60_000;

/**
 * The bytes a device signs with its Ed25519 machine key: every part that an attacker could otherwise
 * replay or alter. The nonce is single-use at the server within the clock-skew window.
 */
export function signingString(method: string, pathAndQuery: string, bodySha256Hex: string, timestamp: string, nonce: string): string {
  return `meshward-machine-v1\n${method.toUpperCase()}\n${pathAndQuery}\n${bodySha256Hex}\n${timestamp}\n${nonce}`;
}

export const MACHINE_PATHS = {
  register: '/machine/register',
  update: '/machine/update',
  map: '/machine/map',
  /** The device deletes itself (`agent logout`); the answer is `{}`. */
  logout: '/machine/logout',
} as const;

export interface RegisterRequest {
  /** The device's WireGuard public key (base64, 32 bytes). */
  nodeKey: string;
  hostname: string;
  /** Needed for the first registration, and to change the tags of a registered device. */
  authKey?: string;
  /** Requested tags (`agent up --advertise-tags`). Absent: keep the device's tags. */
  tags?: string[];
  os?: string;
  version?: string;
  endpoints?: string[];
  /** Subnet routes (and 0.0.0.0/0, ::/0 for an exit node) the device offers. */
  advertisedRoutes?: string[];
  /** The device's disco public key (base64 of 32 bytes): peers seal path probes to it. */
  discoKey?: string;
  /** The name of the relay (from the netmap's `relays`) the device prefers; '' for none. */
  homeRelay?: string;
}

export interface RegisterResponse {
  deviceId: string;
  /** Fully qualified DNS name (`host.network-domain`). */
  name: string;
  addresses: string[];
  user: string;
  tags: string[];
  network: string;
  /** False while the network requires approval and no admin has approved the device. */
  authorized: boolean;
  expires: string | null;
}

/** Posture and reachability a registered device reports (any subset). */
export interface UpdateRequest {
  endpoints?: string[];
  os?: string;
  version?: string;
  nodeKey?: string;
  advertisedRoutes?: string[];
  discoKey?: string;
  homeRelay?: string;
}

export interface UserRef {
  id: string;
  loginName: string;
  displayName: string;
}

export interface SelfNode {
  id: string;
  name: string;
  hostname: string;
  addresses: string[];
  user: UserRef;
  tags: string[];
  network: { name: string; domain: string };
  nodeKey: string;
  authorized: boolean;
  expires: string | null;
  /** The routes this device advertises (subnets; 0.0.0.0/0 and ::/0 for an exit node). coord always sends it. */
  advertisedRoutes?: string[];
  /**
   * The advertised routes coord approved (an admin, or the policy's autoApprovers). coord always sends
   * it. The agent's filter accepts packets to an approved route only (an advertised but unapproved
   * route carries nothing); absent (older coord): nothing approved.
   */
  approvedRoutes?: string[];
}

export interface PeerNode {
  id: string;
  /** Fully qualified DNS name. */
  name: string;
  addresses: string[];
  /** WireGuard public key (base64). */
  nodeKey: string;
  endpoints: string[];
  /**
   * What WireGuard may send to and accept from this peer: its addresses plus `primaryRoutes`. Never
   * the exit routes, and never a prefix another peer of the same netmap holds, so the whole list can
   * go into WireGuard as it is.
   */
  allowedIPs: string[];
  /** The owner; for a device shared into this network, the sharer. */
  user: UserRef;
  tags: string[];
  os: string;
  online: boolean;
  lastSeen: string | null;
  /** Shared in from another network. */
  shared: boolean;
  /** May answer connections but never start one (shared-in devices). */
  quarantined: boolean;
  /** The peer's disco public key (base64); absent until the peer reports one. */
  discoKey?: string;
  /** The relay the peer prefers (a name in the netmap's `relays`): reach it there. Absent: none reported. */
  homeRelay?: string;
  /**
   * The peer's approved subnet routes this device may use: the policy lets it reach something in
   * them through this peer, and no `via` grant sends them elsewhere. Absent: none. Never on shared peers.
   */
  routes?: string[];
  /**
   * The part of `routes` this device sends through this peer now (also in `allowedIPs`). When several
   * peers offer one prefix, exactly one of them lists it here (the primary: online, kept while it stays
   * online); the others list it in `routes` only, and coord moves it when the primary goes offline.
   */
  primaryRoutes?: string[];
  /** The peer is an exit node this device may use (approved, and the policy allows autogroup:internet through it). */
  exitNodeOption?: boolean;
  /**
   * With `exitNodeOption`: its approved default routes (0.0.0.0/0, ::/0). Not in `allowedIPs`: the
   * agent adds them to the one exit node it uses (`agent up --exit-node`), and to no other peer.
   */
  exitRoutes?: string[];
}

/** A relay devices may use: `url` is ws:// or wss://, path included. */
export interface RelayInfo {
  name: string;
  url: string;
  /**
   * Its STUN server: UDP on this port and the next, on the URL's host (netcheck sends Binding requests
   * there). Absent or 0: the relay runs no STUN server.
   */
  stunPort?: number;
}

export interface DnsConfig {
  /** The network's domain; peers resolve as `name.domain`. */
  domain: string;
  magicDNS: boolean;
  nameservers: string[];
  searchPaths: string[];
  /** Split DNS: domain → nameservers for names under it (absent: none). */
  routes?: Record<string, string[]>;
}

export interface Netmap {
  /** Increases with every netmap a device is sent (also across coord restarts). */
  version: number;
  self: SelfNode;
  peers: PeerNode[];
  packetFilter: FilterRule[];
  /**
   * Sharing: what this network's own policy lets this device start towards the devices
   * shared into it (SrcIPs = this device's addresses, destinations = the shared-in devices'). The
   * agent enforces it on the way out (filter `outbound`). Absent or empty: no shared-in device may be
   * reached.
   */
  sharedPeerRules?: FilterRule[];
  dns: DnsConfig;
  /** The relays (coord's own first); absent or empty: none. */
  relays?: RelayInfo[];
  /**
   * coord's STUN ports (`coord serve --stun-port N`: N and N+1), at the host of the coord URL the device
   * uses; absent or empty: STUN is off.
   */
  stunPorts?: number[];
}

/**
 * The changes since the previous netmap of the same stream: each present top-level field replaces the
 * old one; `peersUpsert` adds or replaces peers (by id); `peersRemove` removes peers by id.
 */
export interface NetmapDelta {
  version: number;
  self?: SelfNode;
  packetFilter?: FilterRule[];
  sharedPeerRules?: FilterRule[];
  dns?: DnsConfig;
  relays?: RelayInfo[];
  stunPorts?: number[];
  peersUpsert?: PeerNode[];
  peersRemove?: string[];
}

/** Applies a delta to a netmap, returning the new netmap (the old one is not modified). */
export function applyDelta(prev: Netmap, d: NetmapDelta): Netmap {
  let peers = prev.peers;
  if (d.peersUpsert || d.peersRemove) {
    const byId = new Map(prev.peers.map((p) => [p.id, p]));
    for (const id of d.peersRemove ?? []) byId.delete(id);
    for (const p of d.peersUpsert ?? []) byId.set(p.id, p);
    peers = [...byId.values()];
  }
  const out: Netmap = {
    version: d.version,
    self: d.self ?? prev.self,
    peers,
    packetFilter: d.packetFilter ?? prev.packetFilter,
    dns: d.dns ?? prev.dns,
  };
  const shared = d.sharedPeerRules ?? prev.sharedPeerRules;
  if (shared !== undefined) out.sharedPeerRules = shared;
  const relays = d.relays ?? prev.relays;
  if (relays !== undefined) out.relays = relays;
  const stunPorts = d.stunPorts ?? prev.stunPorts;
  if (stunPorts !== undefined) out.stunPorts = stunPorts;
  return out;
}

/** One line of the netmap stream (newline-delimited JSON). */
export type StreamMessage =
  | { type: 'netmap'; netmap: Netmap }
  | { type: 'delta'; delta: NetmapDelta }
  | { type: 'keepalive' }
  /** The device was deleted or its key expired: the stream ends and the device must re-register. */
  | { type: 'logout'; message: string };

/** Errors of the machine API: HTTP status plus `{"message": ...}`. */
export interface ErrorBody {
  message: string;
}
