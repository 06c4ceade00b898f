// Address allocation: IPv4 from 100.64.0.0/10 (CGNAT, as Tailscale) skipping 100.100.100.100 (the
// service address) and 100.115.92.0/23 (reserved by ChromeOS); IPv6 in fd7a:115c:a1e0::/48 derived
// from the IPv4 address, so it is unique whenever the IPv4 one is. Uniqueness across all networks is
// enforced by the store (UNIQUE columns); this module only proposes candidates.
import { randomInt } from 'node:crypto';
import { CHROMEOS_VM_RANGE, formatIPv4, parseIPv4, parsePrefix, SERVICE_IPV4, TAILNET_IPV4_RANGE, tailnetIPv6For } from '../wire/addr.js';

const CGNAT = parsePrefix(TAILNET_IPV4_RANGE)!;
const BASE = CGNAT.w[0]!;
const SIZE = 2 ** (32 - CGNAT.len);
const SERVICE = parseIPv4(SERVICE_IPV4)!;
const CHROMEOS = parsePrefix(CHROMEOS_VM_RANGE)!;
const CHROMEOS_START = CHROMEOS.w[0]!;
const CHROMEOS_END = CHROMEOS_START + 2 ** (32 - CHROMEOS.len) - 1;

/** Whether an IPv4 address (as integer) may be handed to a device. */
export function usableIp4(n: number): boolean {
  if (n < BASE || n >= BASE + SIZE) return false;
  const last = n & 255;
  if (last === 0 || last === 255) return false; // avoid addresses that look like network/broadcast
  if (n === SERVICE) return false;
  if (n >= CHROMEOS_START && n <= CHROMEOS_END) return false;
  return true;
}

/** A random usable IPv4 address of the range. The caller retries while it is taken. */
export function randomIp4(): string {
  for (;;) {
    const n = BASE + randomInt(SIZE);
    if (usableIp4(n)) return formatIPv4(n);
  }
}

/** The IPv6 address that goes with an IPv4 one: fd7a:115c:a1e0::XXXX:XXXX (low 32 bits = IPv4). */
export function ip6For(ip4: string): string {
  const n = parseIPv4(ip4);
  if (n === null) throw new Error(`not an IPv4 address: ${JSON.stringify(ip4)}`);
  return tailnetIPv6For(n);
}
