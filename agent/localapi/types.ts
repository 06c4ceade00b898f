// The agent's local API (a unix socket, root only) and the stable `agent status --json` schema.
// docs/operations.md documents these shapes; keep the two in step.

export type BackendState = 'NeedsLogin' | 'Stopped' | 'Starting' | 'Running';

export interface PeerStatus {
  id: string;
  /** What `agent status` prints: the short name in our own network, the full DNS name for a shared-in device. */
  name: string;
  dnsName: string;
  addresses: string[];
  /** Login name of the owner; for a shared-in device, the user who shared it. */
  owner: string;
  os: string;
  tags: string[];
  online: boolean;
  /** RFC 3339, or null when never seen. */
  lastSeen: string | null;
  shared: boolean;
  quarantined: boolean;
  /** The direct UDP endpoint packets go to ("IP:PORT"); null while relayed or when there is none. */
  endpoint: string | null;
  /** How packets reach an active peer (a handshake in the last 3 minutes): "direct", "relay", or null. */
  path: 'direct' | 'relay' | null;
  /** The relay's name while the path is "relay", else null. */
  relay: string | null;
  /** RFC 3339 time of the last completed WireGuard handshake, or null. */
  lastHandshake: string | null;
  txBytes: number;
  rxBytes: number;
  /** Subnet routes the peer offers this device (approved by coord). */
  routes?: string[];
  /** Those this device routes through the tunnel now (`--accept-routes`). */
  routesInUse?: string[];
  /** The peer offers this device an exit node. */
  exitNodeOption?: boolean;
  /** This device sends its internet traffic through the peer now (`--exit-node`). */
  exitNode?: boolean;
}

/** This device's subnet routes and exit node: what it offers, what coord approved, what it uses. */
export interface RoutingStatus {
  /** The subnet routes it advertises (`--advertise-routes`). */
  advertisedRoutes: string[];
  advertiseExitNode: boolean;
  /** Of what it advertises (0.0.0.0/0 and ::/0 for the exit node), what coord approved. */
  approvedRoutes: string[];
  /** Advertised but not approved: they carry nothing. */
  pendingRoutes: string[];
  acceptRoutes: boolean;
  /** Peers' routes inside (or equal to) this device's own LANs are taken over too (`--accept-routes-over-lan`). */
  acceptRoutesOverLan: boolean;
  snatSubnetRoutes: boolean;
  /** The exit node asked for (`--exit-node`, '' for none) and the one in use (null: none). */
  exitNodeWanted: string;
  exitNode: { id: string; name: string; address: string } | null;
  exitNodeAllowLanAccess: boolean;
  /** IP forwarding this device switched on to route for others. */
  forwarding: { v4: boolean; v6: boolean };
  /** Routes not taken over, an exit node not available, host changes that failed. */
  notes: string[];
}

export interface SelfStatus {
  name: string;
  dnsName: string;
  addresses: string[];
  owner: string;
  os: string;
  tags: string[];
  network: string;
}

export interface AgentStatus {
  /** Schema version of this object; bumped only on incompatible changes. */
  schema: 1;
  version: string;
  backendState: BackendState;
  coord: { url: string | null; connected: boolean; lastContact: string | null; error: string | null };
  self: SelfStatus | null;
  peers: PeerStatus[];
  filter: {
    accepted: number;
    /**
     * Packets dropped since the data path started, by reason: the filter's reasons (`no-rule`,
     * `quarantined`, `not-local`, ...) in both directions, and the WireGuard data path's as
     * `wireguard-<reason>` (`wireguard-source-not-allowed`, `wireguard-no-route`, ...).
     */
    dropped: Record<string, number>;
    /** The filter's verdicts per direction: in = packets from peers, out = packets towards them. */
    in?: DirectionCounters | null;
    out?: DirectionCounters | null;
  };
  /** The TUN device and UDP port, or null while the data path is down. */
  interface?: { name: string; listenPort: number } | null;
  /** The relay peers reach this device through (lowest measured latency), or null without a relay map or data path. */
  homeRelay?: { name: string; connected: boolean } | null;
  /** The netmap in use: its version, and whether it was loaded from disk (coord not reached since start). */
  netmap?: { version: number; fromDisk: boolean } | null;
  /** Problems a person should know about, as sentences. */
  health?: string[];
  /** Subnet routes and exit nodes (null while no netmap). */
  routing?: RoutingStatus | null;
}

export interface DirectionCounters {
  accepted: number;
  dropped: Record<string, number>;
}

export interface UpRequest {
  coord?: string;
  authkey?: string;
  hostname?: string;
  /** Undefined: keep what the device has; [] clears them. */
  advertiseTags?: string[];
  /** Point the system's resolver at MagicDNS (remembered; default true). */
  acceptDns?: boolean;
  /** Route settings (each remembered; absent: keep). Subnet routes canonical; [] when given empty. */
  advertiseRoutes?: string[];
  advertiseExitNode?: boolean;
  acceptRoutes?: boolean;
  /** Needs acceptRoutes (given or remembered). */
  acceptRoutesOverLan?: boolean;
  /** Tailnet IP or name of the exit node; '' for none. */
  exitNode?: string;
  exitNodeAllowLanAccess?: boolean;
  snatSubnetRoutes?: boolean;
}

export interface WhoisResponse {
  device: { id: string; name: string; dnsName: string; addresses: string[]; os: string; tags: string[]; shared: boolean };
  user: { loginName: string; displayName: string } | null;
  /** Application capabilities (grants' `app`) this peer has towards this device: name → values. */
  capabilities: Record<string, unknown[]>;
}

/** POST /ping `{"peer": NAME | DNS NAME | IP}`: one round of `agent ping`. */
export interface PingResponse {
  peer: { name: string; dnsName: string; address: string | null };
  /** The first pong, or null when none came in time. */
  pong: {
    path: 'direct' | 'relay';
    /** The peer's endpoint the pong came from ("IP:PORT"), while direct; else null. */
    endpoint: string | null;
    /** The relay's name, while relayed; else null. */
    relay: string | null;
    latencyMs: number;
  } | null;
}

/** Error body of every non-2xx local API answer. */
export interface LocalApiError {
  message: string;
}
