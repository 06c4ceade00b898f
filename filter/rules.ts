// Compiles FilterRules (Tailscale's tailcfg.FilterRule; docs/protocol.md) into flat arrays for the packet path, and the source prefixes
// into trie entries. Also the CapGrant lookup the agent's whois needs.

import { DEFAULT_IPPROTO, type FilterRule, type NetPortRange } from '../wire/types.js';
import { AddrError, entriesContain, isAddr, maskOf, parseEntryInto, type PrefixSink } from '../wire/addr.js';
import { PrefixList } from './trie.js';

/** Match kinds: which port condition a destination entry must meet. */
export const MATCH_PORT = 0; // port within the entry's range (TCP, UDP, SCTP)
export const MATCH_IP_ONLY = 1; // ports ignored (ICMP)
export const MATCH_ALL_PORTS = 2; // the entry must allow all ports (other protocols)

export class FilterConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FilterConfigError';
  }
}

// Row layouts, so that checking a rule touches one cache line for the rule and one per destination.
const RULE_ROW = 10; // protocol set (8 words, 256 bits), first destination, end of destinations
const R_DST_FROM = 8;
const R_DST_TO = 9;
const DST_ROW = 12; // family, address (4 words), mask (4 words), first port, last port, unused
const D_FAMILY = 0;
const D_ADDR = 1;
const D_MASK = 5;
const D_FIRST = 9;
const D_LAST = 10;

/** The destination side of the rules, in flat arrays. Rule ids are indexes of the rule list. */
export class RuleTable {
  readonly rules: Int32Array;
  readonly dsts: Int32Array;

  constructor(ruleCount: number, dstCount: number) {
    this.rules = new Int32Array(ruleCount * RULE_ROW);
    this.dsts = new Int32Array(dstCount * DST_ROW);
  }

  /** Whether rule r's IPProto includes proto. */
  hasProto(r: number, proto: number): boolean {
    return (this.rules[r * RULE_ROW + (proto >>> 5)]! & (1 << (proto & 31))) !== 0;
  }

  /**
   * Whether any rule of the candidate list items[from..to) allows protocol `proto` to the destination
   * (d0..d3 in `family`) and port under the given match kind. No allocation.
   */
  match(
    items: Int32Array,
    from: number,
    to: number,
    proto: number,
    family: number,
    d0: number,
    d1: number,
    d2: number,
    d3: number,
    port: number,
    kind: number,
  ): boolean {
    const rules = this.rules;
    const dsts = this.dsts;
    const pw = proto >>> 5;
    const pb = 1 << (proto & 31);
    for (let i = from; i < to; i++) {
      const r = items[i]! * RULE_ROW;
      if ((rules[r + pw]! & pb) === 0) continue;
      const end = rules[r + R_DST_TO]! * DST_ROW;
      for (let o = rules[r + R_DST_FROM]! * DST_ROW; o < end; o += DST_ROW) {
        if (dsts[o + D_FAMILY] !== family) continue;
        const a = o + D_ADDR;
        const m = o + D_MASK;
        if (((d0 ^ dsts[a]!) & dsts[m]!) !== 0) continue;
        if (
          family === 6 &&
          (((d1 ^ dsts[a + 1]!) & dsts[m + 1]!) | ((d2 ^ dsts[a + 2]!) & dsts[m + 2]!) | ((d3 ^ dsts[a + 3]!) & dsts[m + 3]!)) !== 0
        ) {
          continue;
        }
        const first = dsts[o + D_FIRST]!;
        const last = dsts[o + D_LAST]!;
        if (kind === MATCH_PORT) {
          if (port < first || port > last) continue;
        } else if (kind === MATCH_ALL_PORTS) {
          if (first !== 0 || last !== 65535) continue;
        }
        return true;
      }
    }
    return false;
  }
}

/** Parses an IP entry into `sink`, naming the rule and field when it is bad. */
function parseInto(s: unknown, where: string, sink: PrefixSink): void {
  if (typeof s !== 'string') throw new FilterConfigError(`${where}: not a string`);
  try {
    parseEntryInto(s, sink);
  } catch (err) {
    if (err instanceof AddrError) throw new FilterConfigError(`${where}: ${err.message}`);
    throw err;
  }
}

export interface CompiledRules {
  table: RuleTable;
  /** Every source prefix of every rule with DstPorts, valued with its rule id. */
  sources: PrefixList;
  ruleCount: number;
}

/** Compiles the packet rules. Throws FilterConfigError naming the first bad entry. */
export function compileRules(rules: readonly FilterRule[]): CompiledRules {
  if (!Array.isArray(rules)) throw new FilterConfigError('rules: not a list');
  const dsts = new PrefixList(); // valued with the rule id
  const dstPorts: number[] = []; // First, Last per destination entry
  const sources = new PrefixList();
  const n = rules.length;
  const protoLists: number[][] = [];
  let rule = 0;
  let first = 0;
  let last = 0;
  const addSource: PrefixSink = (family, w, len) => sources.add(family, w, len, rule);
  const addDst: PrefixSink = (family, w, len) => {
    dsts.add(family, w, len, rule);
    dstPorts.push(first, last);
  };
  for (rule = 0; rule < n; rule++) {
    const r = rules[rule] as FilterRule | null;
    const where = `rule ${rule}`;
    if (r === null || typeof r !== 'object') throw new FilterConfigError(`${where}: not an object`);
    const ipproto = r.IPProto && r.IPProto.length > 0 ? r.IPProto : DEFAULT_IPPROTO;
    for (const p of ipproto) {
      if (!Number.isInteger(p) || p < 0 || p > 255) throw new FilterConfigError(`${where}: invalid IPProto ${String(p)}`);
    }
    protoLists.push(ipproto as number[]);
    const dp: NetPortRange[] = r.DstPorts ?? [];
    if (!Array.isArray(dp)) throw new FilterConfigError(`${where}: DstPorts is not a list`);
    for (let i = 0; i < dp.length; i++) {
      const np = dp[i];
      first = np?.Ports?.First as number;
      last = np?.Ports?.Last as number;
      if (!Number.isInteger(first) || !Number.isInteger(last) || first < 0 || last > 65535 || first > last) {
        throw new FilterConfigError(`${where} DstPorts[${i}]: invalid port range`);
      }
      parseInto(np!.IP, `${where} DstPorts[${i}].IP`, addDst);
    }
    if (!Array.isArray(r.SrcIPs)) throw new FilterConfigError(`${where}: SrcIPs is not a list`);
    // Rules without destinations (CapGrant-only) never match packets: parse (to validate) but do not index.
    const sink: PrefixSink = dp.length > 0 ? addSource : () => {};
    const srcs = r.SrcIPs as unknown[];
    for (let i = 0; i < srcs.length; i++) parseInto(srcs[i], `${where} SrcIPs[${i}]`, sink);
  }

  const table = new RuleTable(n, dsts.count);
  protoLists.forEach((list, r) => {
    for (const p of list) table.rules[r * RULE_ROW + (p >>> 5)] |= 1 << (p & 31);
  });
  // Destinations were added rule by rule, so each rule's entries are contiguous.
  let d = 0;
  for (let r = 0; r < n; r++) {
    table.rules[r * RULE_ROW + R_DST_FROM] = d;
    while (d < dsts.count && dsts.value[d] === r) {
      const o = d * DST_ROW;
      const family = dsts.family[d]!;
      const m = maskOf(dsts.len[d]!);
      table.dsts[o + D_FAMILY] = family;
      for (let k = 0; k < 4; k++) {
        table.dsts[o + D_ADDR + k] = dsts.words[d * 4 + k]! | 0;
        table.dsts[o + D_MASK + k] = family === 4 && k > 0 ? 0 : m[k]! | 0;
      }
      table.dsts[o + D_FIRST] = dstPorts[2 * d]!;
      table.dsts[o + D_LAST] = dstPorts[2 * d + 1]!;
      d++;
    }
    table.rules[r * RULE_ROW + R_DST_TO] = d;
  }
  return { table, sources, ruleCount: n };
}

/** Compiles a list of address/prefix/range strings (local addresses, quarantined peers). */
export function compileAddrList(list: readonly string[] | undefined, what: string): PrefixList {
  const out = new PrefixList();
  if (list === undefined) return out;
  if (!Array.isArray(list)) throw new FilterConfigError(`${what}: not a list`);
  list.forEach((s, i) => parseInto(s, `${what}[${i}]`, (family, w, len) => out.add(family, w, len, 0)));
  return out;
}

/** A CapGrant's capability map, as Tailscale's tailcfg.PeerCapMap. */
export type CapMap = Record<string, unknown[] | null>;

/**
 * The CapMaps of the CapGrants that apply to traffic from `srcIP` towards `dstIP`: those of rules whose
 * SrcIPs contain the source and whose CapGrant Dsts contain the destination. For the agent's whois;
 * not for the packet path. Unparseable addresses give no grants; bad rule entries are skipped.
 */
export function capGrantsFor(rules: readonly FilterRule[], srcIP: string, dstIP: string): CapMap[] {
  if (!isAddr(srcIP) || !isAddr(dstIP)) return [];
  const out: CapMap[] = [];
  for (const rule of rules) {
    if (!Array.isArray(rule?.CapGrant) || !Array.isArray(rule.SrcIPs)) continue;
    if (!entriesContain(rule.SrcIPs, srcIP)) continue;
    for (const grant of rule.CapGrant) {
      if (Array.isArray(grant?.Dsts) && entriesContain(grant.Dsts, dstIP)) out.push(grant.CapMap);
    }
  }
  return out;
}
