// Address allocation: IPv4 from 100.64.0.0/10 (CGNAT, as Tailscale) skipping 100.100.100.100 (the
// service address) and 100.115.92.0/23 (reserved by ChromeOS); IPv6 in fd7a:115c:a1e0::/48 derived
// from the IPv4 address, so it is unique whenever the IPv4 one is. Uniqueness across all networks is
// enforced by the store (UNIQUE columns); this module only proposes candidates.
import { randomInt } from 'node:crypto';

const BASE = (100 << 24) >>> 0 | (64 << 16); // 100.64.0.0
const SIZE = 1 << 22; // /10
const SERVICE = ip4ToInt('100.100.100.100');
const CHROMEOS_START = ip4ToInt('100.115.92.0');
const CHROMEOS_END = ip4ToInt('100.115.93.255');

export function ip4ToInt(ip: string): number {
  const p = ip.split('.').map(Number);
  return (((p[0]! << 24) >>> 0) + (p[1]! << 16) + (p[2]! << 8) + p[3]!) >>> 0;
}

export function intToIp4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

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
    if (usableIp4(n)) return intToIp4(n);
  }
}

/** The IPv6 address that goes with an IPv4 one: fd7a:115c:a1e0::XXXX:XXXX (low 32 bits = IPv4). */
export function ip6For(ip4: string): string {
  const n = ip4ToInt(ip4);
  return `fd7a:115c:a1e0::${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
}
