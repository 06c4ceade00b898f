// meshward's per-packet filter. Pure and I/O-free; imports nothing of agent/ or coord/.
//
// Usage (agent):
//
//   let filter = Filter.build({ rules, localAddrs, quarantined });          // off the packet path
//     // optional: flows: { capacity, udpIdleMs, sctpIdleMs, clock } (FlowOptions, defaults 16384
//     // flows, UDP 120 s, SCTP 600 s idle, a coarse 100 ms monotonic clock)
//   const verdict = filter.runIn(batch, offset, length);                    // 0 = accept, else DropReason
//   filter.runOut(batch, offset, length);                                   // records UDP/SCTP flows
//   filter = Filter.build(nextConfig, filter);  // atomic swap: same flow table and counters
//   filter.counters();  // { accepted, dropped: { 'too-short': n, ... }, in: {...}, out: {...} }
//   filter.capGrantsFor(srcIP, dstIP) / capGrantsFor(rules, srcIP, dstIP)  // CapMap[] for whois
//
// Filter.build throws FilterConfigError naming the bad entry ("rule 3 SrcIPs[1]: invalid prefix ...");
// keep the old filter then. Packets for tests can be made with craft() from filter/craft.js.
//
// runIn/runOut take a raw IPv4/IPv6 packet at buf[offset .. offset+length) inside a batch buffer; they
// never throw and allocate nothing. Decisions (Tailscale's wgengine/filter as the baseline):
//
// - Parse: truncated packets drop as TOO_SHORT, inconsistent ones (not IPv4/IPv6, bad IHL, more than 8
//   IPv6 extension headers, out-of-bounds offset/length) as MALFORMED. IPv6 hop-by-hop, routing,
//   destination-options and fragment headers are walked. A non-first fragment starting before byte 80,
//   or a first fragment (more fragments following) shorter than 80 bytes, drops as FRAGMENT.
//   A zero-length packet is TOO_SHORT: WireGuard keepalives must not be handed to the filter.
// - Both directions: a multicast destination drops as MULTICAST, a link-local one as LINK_LOCAL.
// - runIn: the destination must be one of localAddrs (else NOT_LOCAL). A non-first fragment is then
//   accepted. TCP: anything but a bare SYN (SYN without ACK) is accepted; a SYN needs a rule. UDP and
//   SCTP: accepted when the flow was recorded by runOut (and has not idled out), else need a rule.
//   ICMP/ICMPv6: echo replies and errors (unreachable, time exceeded, parameter problem, v6 packet too
//   big) are accepted; echo requests and other types need a rule, ports ignored. Other protocols need a
//   rule naming the protocol whose destination entry allows all ports (0-65535). No rule: NO_RULE.
// - A rule matches when the source is in its SrcIPs ("*", IP, CIDR, range "a-b"), the protocol is in
//   its IPProto (absent = TCP, UDP, ICMP, ICMPv6) and the destination is in one DstPorts entry's IP
//   ("*" = any) with the port in its range. Rules with only CapGrant match no packets.
// - Quarantine: a packet whose source is in `quarantined` gets no rule at all: only the replies above
//   (TCP non-SYN, tracked UDP/SCTP flows, ICMP replies/errors) get in; the rest drops as QUARANTINED.
//   Packets to it go through runOut like any other: the flows we start towards it are recorded, so its
//   replies to them get in.
// - runOut accepts everything that parses and is not multicast/link-local, recording UDP/SCTP flows.
//   With `outbound` configured (sharing: the recipient network's own policy towards shared-in
//   devices), a packet to a quarantined address that starts something new (TCP bare SYN, UDP/SCTP
//   without a tracked flow, ICMP echo request or other non-reply, other protocols) must match an
//   outbound rule (our source, its destination, protocol, port), else it drops as SHARED_DENIED.
//
// The flow table is bounded (FlowOptions: capacity, per-protocol idle timeouts, injectable clock) with
// LRU eviction; see flows.ts. Source lookup is a path-compressed multibit trie per family whose slots
// hold the precomputed candidate rules; see trie.ts. Destination/port/protocol checks run only on the
// candidates (rules.ts). linear.ts is the benchmark's baseline (Tailscale-style linear scan).

export { Filter, type FilterConfig, type FilterCounters } from './filter.js';
export { DropReason, dropReasonName, DROP_REASON_NAMES, type DropReasonCode, type DropReasonName } from './reasons.js';
export { capGrantsFor, FilterConfigError, type CapMap } from './rules.js';
export { FlowTable, type FlowOptions } from './flows.js';
