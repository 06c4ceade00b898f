// The per-packet filter: decisions for packets arriving from peers (runIn) and leaving to them (runOut).
// Semantics follow Tailscale's wgengine/filter; see index.ts for the rules in one place.

import type { FilterRule } from '../wire/types.js';
import { maskOf } from '../wire/addr.js';
import { FlowTable, type FlowOptions } from './flows.js';
import {
  loadAddr,
  parsePacket,
  PROTO_ICMP,
  PROTO_ICMPV6,
  PROTO_SCTP,
  PROTO_TCP,
  PROTO_UDP,
  P_DPORT,
  P_DST,
  P_FAMILY,
  P_FRAG,
  P_INFO,
  P_PROTO,
  P_SPORT,
  P_SRC,
  TCP_ACK,
  TCP_SYN,
} from './packet.js';
import { DROP_REASON_NAMES, DropReason, REASON_COUNT, type DropReasonName } from './reasons.js';
import {
  capGrantsFor,
  compileAddrList,
  compileRules,
  MATCH_ALL_PORTS,
  MATCH_IP_ONLY,
  MATCH_PORT,
  RuleTable,
  type CapMap,
} from './rules.js';
import { buildTries, PrefixTrie, SetPool, type PrefixList } from './trie.js';

export interface FilterConfig {
  /** This device's compiled rules (Tailscale's tailcfg.FilterRule; docs/protocol.md). */
  rules: FilterRule[];
  /** Own addresses and (approved) subnet routes: IPs or CIDRs (or ranges), v4/v6. */
  localAddrs: string[];
  /** Addresses/prefixes of quarantined peers: only replies are let in from them. */
  quarantined?: string[];
  /**
   * Rules for connections this device starts towards quarantined peers (shared-in devices), in
   * FilterRule shape with SrcIPs = our addresses: the recipient network's own policy, checked on the
   * way out. Absent: no outbound check. Present (even empty): a new connection to a quarantined
   * address must match one, or drops as SHARED_DENIED.
   */
  outbound?: FilterRule[];
  /** Flow table options; used only when no previous filter hands its table over. */
  flows?: FlowOptions;
}

export interface FilterCounters {
  /** Accepted packets, both directions. */
  accepted: number;
  /** Dropped packets by reason, both directions. */
  dropped: Record<DropReasonName, number>;
  /** The same, per direction: in = from peers (runIn), out = towards peers (runOut). */
  in: { accepted: number; dropped: Record<DropReasonName, number> };
  out: { accepted: number; dropped: Record<DropReasonName, number> };
}

/**
 * "Is this address in the list" (local addresses, quarantine). Short lists (the usual case: a device's
 * own two addresses and a few routes) are compared word by word; long ones go through a trie.
 */
class AddrSet {
  private static readonly LINEAR_MAX = 8;
  readonly empty: boolean;
  private readonly v4: PrefixTrie | null = null;
  private readonly v6: PrefixTrie | null = null;
  private readonly n4: number;
  private readonly n6: number;
  /** Linear form: per entry 4 address words then 4 mask words (int32). */
  private readonly lin4: Int32Array;
  private readonly lin6: Int32Array;

  constructor(list: string[] | undefined, what: string) {
    const entries = compileAddrList(list, what);
    this.empty = entries.count === 0;
    const linear = (es: PrefixList, family: number): Int32Array => {
      const rows: number[] = [];
      for (let i = 0; i < es.count; i++) {
        if (es.family[i] !== family) continue;
        const m = maskOf(es.len[i]!);
        for (let k = 0; k < 4; k++) rows.push(es.words[4 * i + k]! | 0);
        for (let k = 0; k < 4; k++) rows.push(m[k]! | 0);
      }
      return Int32Array.from(rows);
    };
    this.lin4 = linear(entries, 4);
    this.lin6 = linear(entries, 6);
    this.n4 = this.lin4.length >> 3;
    this.n6 = this.lin6.length >> 3;
    if (this.n4 > AddrSet.LINEAR_MAX || this.n6 > AddrSet.LINEAR_MAX) {
      const tries = buildTries(entries, new SetPool());
      this.v4 = tries.v4;
      this.v6 = tries.v6;
    }
  }

  has(family: number, w0: number, w1: number, w2: number, w3: number): boolean {
    if (family === 4) {
      if (this.v4 !== null) return this.v4.lookup(w0, 0, 0, 0) >= 0;
      const l = this.lin4;
      for (let i = 0, n = this.n4 << 3; i < n; i += 8) if (((w0 ^ l[i]!) & l[i + 4]!) === 0) return true;
      return false;
    }
    if (this.v6 !== null) return this.v6.lookup(w0, w1, w2, w3) >= 0;
    const l = this.lin6;
    for (let i = 0, n = this.n6 << 3; i < n; i += 8) {
      if (
        (((w0 ^ l[i]!) & l[i + 4]!) |
          ((w1 ^ l[i + 1]!) & l[i + 5]!) |
          ((w2 ^ l[i + 2]!) & l[i + 6]!) |
          ((w3 ^ l[i + 3]!) & l[i + 7]!)) ===
        0
      ) {
        return true;
      }
    }
    return false;
  }
}

// Scratch for the packet being decided (single-threaded: one packet at a time per process).
const pkt = new Int32Array(8);
const key = new Int32Array(10); // flow key, see flows.ts; words 1-4 and 5-8 double as src/dst

export class Filter {
  private readonly table: RuleTable;
  private readonly pool: SetPool;
  private readonly src4: PrefixTrie;
  private readonly src6: PrefixTrie;
  private readonly local: AddrSet;
  private readonly quarantine: AddrSet;
  private readonly rules: FilterRule[];
  /** The outbound check towards quarantined peers (null: none configured). */
  private readonly outTable: RuleTable | null = null;
  private readonly outPool: SetPool | null = null;
  private readonly out4: PrefixTrie | null = null;
  private readonly out6: PrefixTrie | null = null;
  /** Flow table, shared with the filters built from this one. */
  readonly flows: FlowTable;
  /** Verdict counts: [in: accept, reasons...][out: accept, reasons...]; shared like the flows. */
  private readonly counts: Float64Array;

  private constructor(cfg: FilterConfig, previous: Filter | undefined) {
    const compiled = compileRules(cfg.rules);
    this.table = compiled.table;
    this.pool = new SetPool();
    const tries = buildTries(compiled.sources, this.pool);
    this.src4 = tries.v4;
    this.src6 = tries.v6;
    this.local = new AddrSet(cfg.localAddrs, 'localAddrs');
    this.quarantine = new AddrSet(cfg.quarantined, 'quarantined');
    this.rules = cfg.rules;
    if (cfg.outbound !== undefined) {
      const out = compileRules(cfg.outbound);
      this.outTable = out.table;
      this.outPool = new SetPool();
      const t = buildTries(out.sources, this.outPool);
      this.out4 = t.v4;
      this.out6 = t.v6;
    }
    this.flows = previous?.flows ?? new FlowTable(cfg.flows);
    this.counts = previous?.counts ?? new Float64Array(2 * REASON_COUNT);
  }

  /**
   * Builds a filter (off the packet path). With `previous`, the new filter takes over its flow table
   * and counters, so flows established before a swap keep working. Throws FilterConfigError on a bad
   * entry, naming it; the caller keeps using its old filter then.
   */
  static build(cfg: FilterConfig, previous?: Filter): Filter {
    return new Filter(cfg, previous);
  }

  /** Decides a packet that arrived from a peer. 0 = accept, else a DropReason. */
  runIn(buf: Uint8Array, offset: number, length: number): number {
    const v = this.decideIn(buf, offset, length);
    this.counts[v]++;
    return v;
  }

  /** Decides a packet leaving towards a peer, recording UDP/SCTP flows so that replies get in. */
  runOut(buf: Uint8Array, offset: number, length: number): number {
    const v = this.decideOut(buf, offset, length);
    this.counts[REASON_COUNT + v]++;
    return v;
  }

  private decideIn(buf: Uint8Array, offset: number, length: number): number {
    const bad = parsePacket(buf, offset, length, pkt);
    if (bad !== 0) return bad;
    const family = pkt[P_FAMILY]!;
    // Addresses as words, in flow-key order for a packet coming in: remote (src) at 1, local (dst) at 5.
    loadAddr(buf, pkt[P_DST]!, family, key, 5);
    const d0 = key[5]!;
    const special = destinationClass(d0, family);
    if (special !== 0) return special;
    const d1 = key[6]!;
    const d2 = key[7]!;
    const d3 = key[8]!;
    if (!this.local.has(family, d0, d1, d2, d3)) return DropReason.NOT_LOCAL;
    // A later fragment carries no header to judge; the first one was judged (and a tiny one dropped).
    if (pkt[P_FRAG] === 1) return DropReason.ACCEPT;

    // Replies need no rule, and are let in from quarantined peers too.
    const proto = pkt[P_PROTO]!;
    let kind = MATCH_PORT;
    if (proto === PROTO_TCP) {
      // Only a bare SYN opens a connection; anything else belongs to one (or is answered with RST).
      if ((pkt[P_INFO]! & (TCP_SYN | TCP_ACK)) !== TCP_SYN) return DropReason.ACCEPT;
    } else if ((proto === PROTO_ICMP && family === 4) || (proto === PROTO_ICMPV6 && family === 6)) {
      if (icmpIsReply(pkt[P_INFO]!, family)) return DropReason.ACCEPT;
      kind = MATCH_IP_ONLY;
    } else if (proto !== PROTO_UDP && proto !== PROTO_SCTP) {
      kind = MATCH_ALL_PORTS;
    }

    loadAddr(buf, pkt[P_SRC]!, family, key, 1);
    const s0 = key[1]!;
    const s1 = key[2]!;
    const s2 = key[3]!;
    const s3 = key[4]!;
    if (proto === PROTO_UDP || proto === PROTO_SCTP) {
      key[0] = proto | (family << 8);
      key[9] = (pkt[P_SPORT]! << 16) | pkt[P_DPORT]!;
      if (this.flows.lookup(key)) return DropReason.ACCEPT;
    }
    if (!this.quarantine.empty && this.quarantine.has(family, s0, s1, s2, s3)) return DropReason.QUARANTINED;

    const set = family === 4 ? this.src4.lookup(s0, 0, 0, 0) : this.src6.lookup(s0, s1, s2, s3);
    if (set < 0) return DropReason.NO_RULE;
    const sets = this.pool.data;
    const ok = this.table.match(sets, set + 1, set + 1 + sets[set]!, proto, family, d0, d1, d2, d3, pkt[P_DPORT]!, kind);
    return ok ? DropReason.ACCEPT : DropReason.NO_RULE;
  }

  private decideOut(buf: Uint8Array, offset: number, length: number): number {
    const bad = parsePacket(buf, offset, length, pkt);
    if (bad !== 0) return bad;
    const family = pkt[P_FAMILY]!;
    const dst = pkt[P_DST]!;
    loadAddr(buf, dst, family, key, 1);
    const special = destinationClass(key[1]!, family);
    if (special !== 0) return special;
    const proto = pkt[P_PROTO]!;
    const tracked = (proto === PROTO_UDP || proto === PROTO_SCTP) && pkt[P_FRAG] === 0;
    if (tracked) {
      // Keyed as the reply will look: remote (our dst), local (our src), remote port, local port.
      loadAddr(buf, pkt[P_SRC]!, family, key, 5);
      key[0] = proto | (family << 8);
      key[9] = (pkt[P_DPORT]! << 16) | pkt[P_SPORT]!;
    }
    if (this.outTable !== null && pkt[P_FRAG] === 0 && !this.quarantine.empty &&
        this.quarantine.has(family, key[1]!, key[2]!, key[3]!, key[4]!)) {
      const v = this.checkOutbound(buf, family, proto, tracked);
      if (v !== DropReason.ACCEPT) return v;
    }
    if (tracked) this.flows.record(key);
    return DropReason.ACCEPT;
  }

  /**
   * A packet towards a quarantined peer: replies and continuing flows pass; a new connection (TCP bare
   * SYN, untracked UDP/SCTP, ICMP echo request or other non-reply, other protocols) needs an outbound
   * rule from our source to its destination. Destination words are at key[1..4].
   */
  private checkOutbound(buf: Uint8Array, family: number, proto: number, tracked: boolean): number {
    let kind = MATCH_PORT;
    if (proto === PROTO_TCP) {
      if ((pkt[P_INFO]! & (TCP_SYN | TCP_ACK)) !== TCP_SYN) return DropReason.ACCEPT;
    } else if ((proto === PROTO_ICMP && family === 4) || (proto === PROTO_ICMPV6 && family === 6)) {
      if (icmpIsReply(pkt[P_INFO]!, family)) return DropReason.ACCEPT;
      kind = MATCH_IP_ONLY;
    } else if (tracked) {
      if (this.flows.lookup(key)) return DropReason.ACCEPT;
    } else if (proto !== PROTO_UDP && proto !== PROTO_SCTP) {
      kind = MATCH_ALL_PORTS;
    }
    if (!tracked) loadAddr(buf, pkt[P_SRC]!, family, key, 5);
    const set = family === 4 ? this.out4!.lookup(key[5]!, 0, 0, 0) : this.out6!.lookup(key[5]!, key[6]!, key[7]!, key[8]!);
    if (set < 0) return DropReason.SHARED_DENIED;
    const sets = this.outPool!.data;
    const ok = this.outTable!.match(sets, set + 1, set + 1 + sets[set]!, proto, family, key[1]!, key[2]!, key[3]!, key[4]!, pkt[P_DPORT]!, kind);
    return ok ? DropReason.ACCEPT : DropReason.SHARED_DENIED;
  }

  /** Snapshot of the counters (allocates). */
  counters(): FilterCounters {
    const side = (base: number) => {
      const dropped = {} as Record<DropReasonName, number>;
      for (let r = 1; r < REASON_COUNT; r++) dropped[DROP_REASON_NAMES[r] as DropReasonName] = this.counts[base + r]!;
      return { accepted: this.counts[base]!, dropped };
    };
    const i = side(0);
    const o = side(REASON_COUNT);
    const dropped = {} as Record<DropReasonName, number>;
    for (const name of Object.keys(i.dropped) as DropReasonName[]) dropped[name] = i.dropped[name] + o.dropped[name];
    return { accepted: i.accepted + o.accepted, dropped, in: i, out: o };
  }

  /** The CapGrant CapMaps that apply from `srcIP` towards `dstIP` under this filter's rules. */
  capGrantsFor(srcIP: string, dstIP: string): CapMap[] {
    return capGrantsFor(this.rules, srcIP, dstIP);
  }

  /** The rule ids whose SrcIPs contain the address given as bytes (4 or 16). Allocates; for tests and tools. */
  sourceCandidates(addr: Uint8Array): number[] {
    const set = addr.length === 4 ? this.src4.lookupBytes(addr) : this.src6.lookupBytes(addr);
    return this.pool.members(set);
  }
}

/** Drop reason for multicast and link-local destinations, else 0. */
function destinationClass(d0: number, family: number): number {
  if (family === 4) {
    if (d0 >>> 28 === 0xe) return DropReason.MULTICAST; // 224.0.0.0/4
    if (d0 >>> 16 === 0xa9fe) return DropReason.LINK_LOCAL; // 169.254.0.0/16
    return 0;
  }
  if (d0 >>> 24 === 0xff) return DropReason.MULTICAST; // ff00::/8
  if (d0 >>> 22 === 0x3fa) return DropReason.LINK_LOCAL; // fe80::/10
  return 0;
}

/** ICMP echo replies and errors (which only ever answer something this device sent). */
function icmpIsReply(type: number, family: number): boolean {
  if (family === 4) {
    // echo reply, destination unreachable, time exceeded, parameter problem
    return type === 0 || type === 3 || type === 11 || type === 12;
  }
  // destination unreachable, packet too big, time exceeded, parameter problem, echo reply
  return type === 1 || type === 2 || type === 3 || type === 4 || type === 129;
}
