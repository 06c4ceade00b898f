// Wire types shared by coord and agent (and the filter): the shapes of Tailscale's tailcfg that
// meshward speaks (docs/protocol.md).

/** A port range, inclusive. Tailscale writes "*" as {First: 0, Last: 65535}. */
export interface PortRange {
  First: number;
  Last: number;
}

export interface NetPortRange {
  /** "*", an IP, or a CIDR prefix. */
  IP: string;
  Ports: PortRange;
}

export interface CapGrant {
  /** Destination prefixes the capabilities apply to. */
  Dsts: string[];
  /** Capability name → list of JSON values (Tailscale's tailcfg.PeerCapMap). */
  CapMap: Record<string, unknown[] | null>;
}

/**
 * One compiled rule. Absent IPProto means TCP, UDP, ICMP and ICMPv6. SrcIPs entries are "*", an IP,
 * a CIDR prefix, or a range "a-b". A rule has DstPorts or CapGrant.
 */
export interface FilterRule {
  SrcIPs: string[];
  DstPorts?: NetPortRange[];
  IPProto?: number[];
  CapGrant?: CapGrant[];
}

/** IANA protocol numbers the policy language and the filter use. */
export const IPPROTO = {
  ICMP: 1,
  IGMP: 2,
  TCP: 6,
  EGP: 8,
  IGP: 9,
  UDP: 17,
  GRE: 47,
  ESP: 50,
  AH: 51,
  ICMPV6: 58,
  SCTP: 132,
} as const;

/** The protocols a rule without IPProto covers. */
export const DEFAULT_IPPROTO: readonly number[] = [IPPROTO.TCP, IPPROTO.UDP, IPPROTO.ICMP, IPPROTO.ICMPV6];
