// The linear baseline the benchmark compares against: decisions like Filter's, but rules are scanned
// in order as Tailscale's client does (protocol, then sources, then destinations), each rule's sources
// held as sorted, merged address ranges searched by binary search. A fair baseline, not a strawman:
// same parser, same flow table, same destination check; only the source lookup differs.

import type { FilterRule } from '../wire/types.js';
import { parseEntry, rangeOfPrefix, type Prefix } from '../wire/addr.js';
import { FlowTable } from './flows.js';
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
import { DropReason } from './reasons.js';
import { compileAddrList, compileRules, MATCH_ALL_PORTS, MATCH_IP_ONLY, MATCH_PORT, RuleTable } from './rules.js';
import { buildTries, PrefixTrie, SetPool } from './trie.js';

const pkt = new Int32Array(8);
const key = new Int32Array(10);
const w = new Int32Array(8);

function toBig(p: Prefix): [bigint, bigint] {
  const r = rangeOfPrefix(p);
  return [r.lo, r.hi];
}

/** Sorted, merged ranges of one family: v4 as numbers, v6 as 4 words each (lo and hi). */
function mergedRanges(prefixes: Prefix[], family: 4 | 6): bigint[][] {
  const rs = prefixes.filter((p) => p.family === family).map(toBig);
  rs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const out: bigint[][] = [];
  for (const r of rs) {
    const last = out[out.length - 1];
    if (last && r[0] <= last[1]! + 1n) {
      if (r[1] > last[1]!) last[1] = r[1];
    } else out.push([r[0], r[1]]);
  }
  return out;
}

export class LinearFilter {
  private readonly table: RuleTable;
  private readonly ruleIds: Int32Array;
  /** Per rule: v4 ranges [start4[r], start4[r+1]) in lo4/hi4 (uint32 as numbers). */
  private readonly start4: Int32Array;
  private readonly lo4: Float64Array;
  private readonly hi4: Float64Array;
  /** Per rule: v6 ranges, 4 words (uint32) per bound. */
  private readonly start6: Int32Array;
  private readonly lo6: Uint32Array;
  private readonly hi6: Uint32Array;
  private readonly local4: PrefixTrie;
  private readonly local6: PrefixTrie;
  readonly flows: FlowTable;

  constructor(rules: FilterRule[], localAddrs: string[], flows?: FlowTable) {
    const compiled = compileRules(rules);
    this.table = compiled.table;
    const n = rules.length;
    this.ruleIds = Int32Array.from({ length: n }, (_, i) => i);
    const perRule: Prefix[][] = rules.map((r) => (r.DstPorts && r.DstPorts.length > 0 ? r.SrcIPs.flatMap(parseEntry) : []));
    const r4 = perRule.map((ps) => mergedRanges(ps, 4));
    const r6 = perRule.map((ps) => mergedRanges(ps, 6));
    this.start4 = new Int32Array(n + 1);
    this.start6 = new Int32Array(n + 1);
    let c4 = 0;
    let c6 = 0;
    for (let r = 0; r < n; r++) {
      this.start4[r] = c4;
      this.start6[r] = c6;
      c4 += r4[r]!.length;
      c6 += r6[r]!.length;
    }
    this.start4[n] = c4;
    this.start6[n] = c6;
    this.lo4 = new Float64Array(c4);
    this.hi4 = new Float64Array(c4);
    this.lo6 = new Uint32Array(c6 * 4);
    this.hi6 = new Uint32Array(c6 * 4);
    let i4 = 0;
    let i6 = 0;
    const words = (v: bigint, arr: Uint32Array, at: number) => {
      for (let k = 0; k < 4; k++) arr[at + k] = Number((v >> BigInt(96 - 32 * k)) & 0xffffffffn);
    };
    for (let r = 0; r < n; r++) {
      for (const [lo, hi] of r4[r]!) {
        this.lo4[i4] = Number(lo);
        this.hi4[i4++] = Number(hi);
      }
      for (const [lo, hi] of r6[r]!) {
        words(lo!, this.lo6, i6 * 4);
        words(hi!, this.hi6, i6 * 4);
        i6++;
      }
    }
    const locals = buildTries(compileAddrList(localAddrs, 'localAddrs'), new SetPool());
    this.local4 = locals.v4;
    this.local6 = locals.v6;
    this.flows = flows ?? new FlowTable();
  }

  private src4In(r: number, a: number): boolean {
    let lo = this.start4[r]!;
    let hi = this.start4[r + 1]! - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (a < this.lo4[mid]!) hi = mid - 1;
      else if (a > this.hi4[mid]!) lo = mid + 1;
      else return true;
    }
    return false;
  }

  /** Compares the address in w[0..3] (as uint32) with the 4 words at arr[at]. */
  private static cmp6(arr: Uint32Array, at: number): number {
    for (let k = 0; k < 4; k++) {
      const a = w[k]! >>> 0;
      const b = arr[at + k]!;
      if (a !== b) return a < b ? -1 : 1;
    }
    return 0;
  }

  private src6In(r: number): boolean {
    let lo = this.start6[r]!;
    let hi = this.start6[r + 1]! - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (LinearFilter.cmp6(this.lo6, mid * 4) < 0) hi = mid - 1;
      else if (LinearFilter.cmp6(this.hi6, mid * 4) > 0) lo = mid + 1;
      else return true;
    }
    return false;
  }

  runIn(buf: Uint8Array, offset: number, length: number): number {
    const bad = parsePacket(buf, offset, length, pkt);
    if (bad !== 0) return bad;
    const family = pkt[P_FAMILY]!;
    const dst = pkt[P_DST]!;
    const src = pkt[P_SRC]!;
    const b0 = buf[dst]!;
    if (family === 4 ? (b0 & 0xf0) === 0xe0 : b0 === 0xff) return DropReason.MULTICAST;
    if (family === 4 ? b0 === 169 && buf[dst + 1] === 254 : b0 === 0xfe && (buf[dst + 1]! & 0xc0) === 0x80) {
      return DropReason.LINK_LOCAL;
    }
    loadAddr(buf, src, family, w, 0);
    loadAddr(buf, dst, family, w, 4);
    if ((family === 4 ? this.local4.lookup(w[4]!, 0, 0, 0) : this.local6.lookup(w[4]!, w[5]!, w[6]!, w[7]!)) < 0) {
      return DropReason.NOT_LOCAL;
    }
    if (pkt[P_FRAG] === 1) return DropReason.ACCEPT;
    const proto = pkt[P_PROTO]!;
    let kind = MATCH_PORT;
    if (proto === PROTO_TCP) {
      if ((pkt[P_INFO]! & (TCP_SYN | TCP_ACK)) !== TCP_SYN) return DropReason.ACCEPT;
    } else if (proto === PROTO_UDP || proto === PROTO_SCTP) {
      loadAddr(buf, src, family, key, 1);
      loadAddr(buf, dst, family, key, 5);
      key[0] = proto | (family << 8);
      key[9] = (pkt[P_SPORT]! << 16) | pkt[P_DPORT]!;
      if (this.flows.lookup(key)) return DropReason.ACCEPT;
    } else if ((proto === PROTO_ICMP && family === 4) || (proto === PROTO_ICMPV6 && family === 6)) {
      const t = pkt[P_INFO]!;
      const reply = family === 4 ? t === 0 || t === 3 || t === 11 || t === 12 : (t >= 1 && t <= 4) || t === 129;
      if (reply) return DropReason.ACCEPT;
      kind = MATCH_IP_ONLY;
    } else {
      kind = MATCH_ALL_PORTS;
    }
    const a4 = w[0]! >>> 0;
    const n = this.ruleIds.length;
    const table = this.table;
    for (let r = 0; r < n; r++) {
      if (!table.hasProto(r, proto)) continue;
      if (family === 4 ? !this.src4In(r, a4) : !this.src6In(r)) continue;
      if (this.table.match(this.ruleIds, r, r + 1, proto, family, w[4]!, w[5]!, w[6]!, w[7]!, pkt[P_DPORT]!, kind)) {
        return DropReason.ACCEPT;
      }
    }
    return DropReason.NO_RULE;
  }
}
