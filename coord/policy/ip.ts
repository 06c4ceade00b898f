// Addresses and prefixes as inclusive bigint ranges, enough for the policy engine's set logic
// (not for the packet path). IPv4 and IPv6 live in separate families.

export interface Range {
  v6: boolean;
  lo: bigint;
  hi: bigint;
}

const V4_MAX = (1n << 32n) - 1n;
const V6_MAX = (1n << 128n) - 1n;

function parseV4(s: string): bigint | null {
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  let v = 0n;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    v = (v << 8n) | BigInt(n);
  }
  return v;
}

function parseV6(s: string): bigint | null {
  if (!/^[0-9a-fA-F:.]+$/.test(s) || !s.includes(':')) return null;
  let head = s;
  let tailV4: bigint | null = null;
  const lastColon = s.lastIndexOf(':');
  if (s.slice(lastColon + 1).includes('.')) {
    tailV4 = parseV4(s.slice(lastColon + 1));
    if (tailV4 === null) return null;
    head = s.slice(0, lastColon + 1) + '0:0';
  }
  const dbl = head.split('::');
  if (dbl.length > 2) return null;
  const left = dbl[0] === '' ? [] : dbl[0]!.split(':');
  const right = dbl.length === 2 ? (dbl[1] === '' ? [] : dbl[1]!.split(':')) : [];
  const groups = dbl.length === 2 ? 8 - left.length - right.length : 0;
  if (dbl.length === 1 && left.length !== 8) return null;
  if (dbl.length === 2 && groups < 1) return null;
  const all = [...left, ...Array<string>(groups).fill('0'), ...right];
  let v = 0n;
  for (const g of all) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
    v = (v << 16n) | BigInt(parseInt(g, 16));
  }
  if (tailV4 !== null) v = (v & ~0xffffffffn) | tailV4;
  return v;
}

/** Parses an address ("100.64.0.1", "fd7a::1") into a one-address range; null when not an address. */
export function parseAddr(s: string): Range | null {
  const v4 = parseV4(s);
  if (v4 !== null) return { v6: false, lo: v4, hi: v4 };
  const v6 = parseV6(s);
  if (v6 !== null) return { v6: true, lo: v6, hi: v6 };
  return null;
}

/** Parses "addr", "addr/bits" or "a-b" into a range; null when malformed. Host bits are masked off. */
export function parseRange(s: string): Range | null {
  const dash = s.indexOf('-');
  if (dash > 0) {
    const a = parseAddr(s.slice(0, dash));
    const b = parseAddr(s.slice(dash + 1));
    if (!a || !b || a.v6 !== b.v6 || a.lo > b.lo) return null;
    return { v6: a.v6, lo: a.lo, hi: b.hi };
  }
  const slash = s.indexOf('/');
  if (slash < 0) return parseAddr(s);
  const a = parseAddr(s.slice(0, slash));
  const bitsText = s.slice(slash + 1);
  if (!a || !/^\d{1,3}$/.test(bitsText)) return null;
  const bits = BigInt(Number(bitsText));
  const width = a.v6 ? 128n : 32n;
  if (bits > width) return null;
  const hostMask = (1n << (width - bits)) - 1n;
  const lo = a.lo & ~hostMask & (a.v6 ? V6_MAX : V4_MAX);
  return { v6: a.v6, lo, hi: lo | hostMask };
}

/** True when the text is a prefix of all addresses of its family (0.0.0.0/0, ::/0). */
export function isDefaultRoute(r: Range): boolean {
  return r.lo === 0n && r.hi === (r.v6 ? V6_MAX : V4_MAX);
}

export function overlaps(a: Range, b: Range): boolean {
  return a.v6 === b.v6 && a.lo <= b.hi && b.lo <= a.hi;
}

export function contains(outer: Range, inner: Range): boolean {
  return outer.v6 === inner.v6 && outer.lo <= inner.lo && inner.hi <= outer.hi;
}

/** The single-address prefix text Tailscale writes in CapGrant Dsts: "100.1.2.3/32", "fd7a::1/128". */
export function hostPrefix(addr: string): string {
  return addr.includes(':') ? `${addr}/128` : `${addr}/32`;
}

/**
 * The tailnet's address space as Tailscale writes "*" in SrcIPs: 100.64.0.0/10 without 100.115.92.0/23
 * (reserved), and the tailnet's IPv6 ULA prefix.
 */
export const TAILNET_RANGES: readonly string[] = [
  '100.64.0.0-100.115.91.255',
  '100.115.94.0-100.127.255.255',
  'fd7a:115c:a1e0::/48',
];

/**
 * autogroup:internet: the public IPv4 and IPv6 space an exit node routes (everything outside the
 * private, shared, loopback, link-local, multicast and tailnet ranges), as prefixes.
 */
export const INTERNET_PREFIXES: readonly string[] = [
  '0.0.0.0/5', '8.0.0.0/7', '11.0.0.0/8', '12.0.0.0/6', '16.0.0.0/4', '32.0.0.0/3', '64.0.0.0/3',
  '96.0.0.0/6', '100.0.0.0/10', '100.128.0.0/9', '101.0.0.0/8', '102.0.0.0/7', '104.0.0.0/5',
  '112.0.0.0/5', '120.0.0.0/6', '124.0.0.0/7', '126.0.0.0/8', '128.0.0.0/3', '160.0.0.0/5',
  '168.0.0.0/8', '169.0.0.0/9', '169.128.0.0/10', '169.192.0.0/11', '169.224.0.0/12',
  '169.240.0.0/13', '169.248.0.0/14', '169.252.0.0/15', '169.255.0.0/16', '170.0.0.0/7',
  '172.0.0.0/12', '172.32.0.0/11', '172.64.0.0/10', '172.128.0.0/9', '173.0.0.0/8', '174.0.0.0/7',
  '176.0.0.0/4', '192.0.0.0/9', '192.128.0.0/11', '192.160.0.0/13', '192.169.0.0/16',
  '192.170.0.0/15', '192.172.0.0/14', '192.176.0.0/12', '192.192.0.0/10', '193.0.0.0/8',
  '194.0.0.0/7', '196.0.0.0/6', '200.0.0.0/5', '208.0.0.0/4',
  '2000::/3',
];
