// Verdict codes of runIn/runOut: 0 accepts, anything else is the reason of a drop.

export const DropReason = {
  /** Not a drop: the packet is accepted. */
  ACCEPT: 0,
  /** Truncated: shorter than its headers or than its own length fields say. */
  TOO_SHORT: 1,
  /** Inconsistent headers: not IPv4/IPv6, bad header length, too many IPv6 extension headers, bad bounds. */
  MALFORMED: 2,
  /** A fragment that could hide or overwrite an L4 header (tiny first fragment or tiny offset). */
  FRAGMENT: 3,
  /** Destination is a multicast address. */
  MULTICAST: 4,
  /** Destination is a link-local address. */
  LINK_LOCAL: 5,
  /** Destination is none of this device's addresses or routes. */
  NOT_LOCAL: 6,
  /** No rule allows this new connection/packet (Tailscale's "acl"). */
  NO_RULE: 7,
  /** A new connection from a quarantined peer (only replies may come from it). */
  QUARANTINED: 8,
  /** A new connection towards a quarantined (shared-in) peer that no `outbound` rule allows. */
  SHARED_DENIED: 9,
} as const;

export type DropReasonCode = (typeof DropReason)[keyof typeof DropReason];

export const DROP_REASON_NAMES = [
  'accepted',
  'too-short',
  'malformed',
  'fragment',
  'multicast',
  'link-local',
  'not-local',
  'no-rule',
  'quarantined',
  'shared-denied',
] as const;

export type DropReasonName = Exclude<(typeof DROP_REASON_NAMES)[number], 'accepted'>;

export const REASON_COUNT = DROP_REASON_NAMES.length;

/** The name of a verdict code ("accepted" for 0, "unknown" for codes that do not exist). */
export function dropReasonName(code: number): string {
  return DROP_REASON_NAMES[code] ?? 'unknown';
}
