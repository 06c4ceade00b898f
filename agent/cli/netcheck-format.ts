// `agent netcheck`'s text form (the JSON form is the NetcheckReport itself), laid out as
// `tailscale netcheck` lays out its report.
import type { NetcheckReport } from '../connectivity/netcheck.js';
import { printable } from '../../wire/printable.js';

const ms = (v: number) => `${v < 10 ? v.toFixed(1) : Math.round(v)}ms`;

export function formatNetcheck(r: NetcheckReport): string {
  const v4 = r.publicEndpoints.filter((e) => !e.startsWith('['));
  const v6 = r.publicEndpoints.filter((e) => e.startsWith('['));
  const varies = r.mappingVariesByDest === null ? 'unknown (fewer than two STUN answers)' : r.mappingVariesByDest ? 'true (symmetric NAT: direct paths are unlikely, peers go through a relay)' : 'false';
  const lines = [
    'Report:',
    `\t* UDP: ${r.udp}${r.udp ? '' : ' (no STUN answer: peers are reached through a relay, over TCP)'}`,
    `\t* IPv4: ${v4.length ? `yes, ${v4.join(', ')}` : 'no public address seen'}`,
    `\t* IPv6: ${v6.length ? `yes, ${v6.join(', ')}` : 'no public address seen'}`,
    `\t* Mapping varies by destination: ${varies}`,
    `\t* Nearest relay: ${r.preferredRelay === null ? 'none answered' : printable(r.preferredRelay)}`,
    '\t* Relay latency:',
    ...(r.relays.length ? r.relays.map((x) => `\t\t- ${printable(x.name)}: ${x.latencyMs === null ? 'no answer' : ms(x.latencyMs)}`) : ['\t\t(the relay map is empty)']),
  ];
  return lines.join('\n');
}
