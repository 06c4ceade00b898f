// The relay map every netmap carries: coord's own relay (from `coord serve`'s flags) first, then the
// standalone relays of coord's settings (`coord relays add`, the store's `relays` table). This module
// checks a relay's settings and puts the map together; it does no I/O.
import { InvalidInput } from '../errors.js';
import type { RelayInfo } from '../../wire/protocol.js';

/** A relay's name: a DNS label (devices show it, `agent netcheck` prints it). */
export const RELAY_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

export function checkRelayName(name: string): string {
  if (!RELAY_NAME.test(name)) {
    throw new InvalidInput(`relay name ${JSON.stringify(name)}: letters, digits and "-" (not first or last), at most 63`);
  }
  return name;
}

/** A relay URL as devices dial it: ws:// or wss://, a host, no query or fragment, no credentials. */
export function checkRelayUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new InvalidInput(`relay URL ${JSON.stringify(url)} is not a URL (e.g. wss://relay1.example.com/relay)`);
  }
  if (u.protocol !== 'ws:' && u.protocol !== 'wss:') throw new InvalidInput(`relay URL ${JSON.stringify(url)}: must start with wss:// (or ws:// without TLS)`);
  if (!u.hostname) throw new InvalidInput(`relay URL ${JSON.stringify(url)} has no host`);
  if (u.username || u.password) throw new InvalidInput(`relay URL ${JSON.stringify(url)}: no user or password in it (the relay checks devices by their keys)`);
  if (u.search || u.hash) throw new InvalidInput(`relay URL ${JSON.stringify(url)}: no query or fragment`);
  return u.toString();
}

/** 0 (no STUN) or the first of the two STUN ports (the second is the next one). */
export function checkStunPort(port: number): number {
  if (!Number.isInteger(port) || port < 0 || port > 65534) throw new InvalidInput(`STUN port ${port}: 0 (none) or a UDP port below 65535 (it uses that port and the next)`);
  return port;
}

export function checkRelay(r: { name: string; url: string; stunPort: number }): { name: string; url: string; stunPort: number } {
  return { name: checkRelayName(r.name), url: checkRelayUrl(r.url), stunPort: checkStunPort(r.stunPort) };
}

/**
 * The map devices get: `own` (coord's relay, or null when `coord serve --no-relay`) first, then the
 * extras. An extra that would shadow coord's own name, repeats a name, or no longer passes the checks
 * is left out and reported in `skipped` (so one bad row cannot take the map away from every device).
 */
export function buildRelayMap(own: RelayInfo | null, extras: readonly { name: string; url: string; stunPort: number }[]): { relays: RelayInfo[]; skipped: { name: string; why: string }[] } {
  const relays: RelayInfo[] = own ? [own] : [];
  const skipped: { name: string; why: string }[] = [];
  const names = new Set(relays.map((r) => r.name));
  for (const e of extras) {
    if (names.has(e.name)) {
      skipped.push({ name: e.name, why: own?.name === e.name ? `coord's own relay has this name (coord serve --relay-name)` : 'a relay of this name is already in the map' });
      continue;
    }
    try {
      const ok = checkRelay(e);
      relays.push(ok.stunPort ? { name: ok.name, url: ok.url, stunPort: ok.stunPort } : { name: ok.name, url: ok.url });
      names.add(ok.name);
    } catch (err) {
      skipped.push({ name: e.name, why: (err as Error).message });
    }
  }
  return { relays, skipped };
}
