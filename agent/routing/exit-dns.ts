// Name resolution through an exit node, as Tailscale does it: a device using an exit node sends the
// names MagicDNS does not answer to the exit node, which resolves them with its own nameservers. So DNS
// keeps working whatever ports the policy opens to the internet (a grant of autogroup:internet on
// tcp:443 only still needs names), and no query leaks around the exit node.
//
// On the exit node: port 53 on its own tailnet addresses answers the peers that the policy lets use
// it for the internet at all (Tailscale's test: would a packet from them to "the internet", 0.0.0.0
// or 2000::, be accepted on some port). This module gives the filter rule that lets those queries in.
import { bareAddr, entriesContain, parseAddr, isTailnetAddr } from '../../wire/addr.js';
import type { Netmap } from '../../wire/protocol.js';
import { IPPROTO, type FilterRule } from '../../wire/types.js';
import { EXIT_ROUTES } from './prefixes.js';

/** The port an exit node answers its users' DNS queries on (on its tailnet addresses). */
export const EXIT_DNS_PORT = 53;

/** Addresses that stand for "the internet" in the rules (inside autogroup:internet, as Tailscale probes it). */
const INTERNET_PROBES = ['0.0.0.0', '2000::'];

/** Whether coord approved this device as an exit node. */
export function isApprovedExitNode(netmap: Netmap): boolean {
  return (netmap.self.approvedRoutes ?? []).some((r) => EXIT_ROUTES.includes(r));
}

/**
 * On an approved exit node: a rule letting the sources the policy allows to the internet (on any port or
 * protocol) send DNS queries to this device's own addresses; null otherwise.
 */
export function exitNodeDnsRule(netmap: Netmap): FilterRule | null {
  if (!isApprovedExitNode(netmap)) return null;
  const srcs: string[] = [];
  for (const rule of netmap.packetFilter ?? []) {
    if (!Array.isArray(rule.DstPorts) || !Array.isArray(rule.SrcIPs)) continue;
    const toInternet = rule.DstPorts.some((d) => INTERNET_PROBES.some((probe) => entriesContain([d.IP], probe)));
    if (toInternet) for (const s of rule.SrcIPs) if (!srcs.includes(s)) srcs.push(s);
  }
  if (srcs.length === 0) return null;
  return {
    SrcIPs: srcs,
    DstPorts: netmap.self.addresses.map((a) => ({ IP: bareAddr(a), Ports: { First: EXIT_DNS_PORT, Last: EXIT_DNS_PORT } })),
    IPProto: [IPPROTO.TCP, IPPROTO.UDP],
  };
}

/** Whether the exit node's DNS listener answers a query from this source: a tailnet address (the tunnel's filter already decided). */
export function isExitDnsClient(source: string): boolean {
  const a = parseAddr(bareAddr(source.replace(/^::ffff:(?=\d+\.)/i, '')));
  return a !== null && isTailnetAddr(a);
}
