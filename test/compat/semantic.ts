// Compares two packet filters by meaning (compat README): for every protocol, destination address and
// port, the set of accepted source addresses must be the same; and for every capability (name and
// value), the same sources must hold it for the same destinations. Rule order, splitting, merging,
// ranges versus prefixes and duplicate entries do not matter.
import { isIPv4, isIPv6 } from 'node:net';
import type { FilterRule } from '../../wire/types.js';
import { DEFAULT_IPPROTO } from '../../wire/types.js';
import { parseRange } from '../../wire/addr.js';

type Iv = [bigint, bigint];

const V6_BASE = 1n << 32n;
const TOP = V6_BASE + (1n << 128n) - 1n;

type ToIv = (text: string) => Iv;

/** Our side: an address text ("*", IP, prefix, range) read with our own range parser. */
function ourIv(text: string): Iv {
  if (text === '*') return [0n, TOP];
  const r = parseRange(text);
  if (!r) throw new Error(`unparsable address ${JSON.stringify(text)}`);
  return r.v6 ? [V6_BASE + r.lo, V6_BASE + r.hi] : [r.lo, r.hi];
}

/** One address as a number in the shared space, written here apart from coord's parser. */
function addrNum(text: string): bigint {
  if (isIPv4(text)) return text.split('.').reduce((n, part) => (n << 8n) | BigInt(Number(part)), 0n);
  if (!isIPv6(text)) throw new Error(`captured address ${JSON.stringify(text)} is not an IP address`);
  let t = text;
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(t); // an IPv4 tail ("::ffff:1.2.3.4") is two groups
  if (dotted) {
    const v4 = addrNum(dotted[1]!);
    t = t.slice(0, -dotted[1]!.length) + `${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const [head, tail] = t.includes('::') ? t.split('::') : [t, undefined];
  const groupsOf = (x: string | undefined) => (x ? x.split(':') : []);
  const h = groupsOf(head);
  const tl = groupsOf(tail);
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - tl.length).fill('0'), ...tl];
  return V6_BASE + groups.reduce((n, g) => (n << 16n) | BigInt(parseInt(g, 16)), 0n);
}

/**
 * The captured (Tailscale) side, read without wire/addr.ts (our parser): a bug there must not be able to
 * cancel out by misreading both sides alike. node:net says what is an address; the arithmetic is here.
 */
function capturedIv(text: string): Iv {
  if (text === '*') return [0n, TOP];
  const dash = text.indexOf('-');
  if (dash > 0) return [addrNum(text.slice(0, dash)), addrNum(text.slice(dash + 1))];
  const [addr, bitsText] = text.split('/');
  const a = addrNum(addr!);
  if (bitsText === undefined) return [a, a];
  const width = a >= V6_BASE ? 128n : 32n;
  const bits = BigInt(Number(bitsText));
  if (!/^\d+$/.test(bitsText) || bits > width) throw new Error(`captured prefix ${JSON.stringify(text)} has a bad length`);
  const base = a >= V6_BASE ? V6_BASE : 0n;
  const host = (1n << (width - bits)) - 1n;
  const lo = base + ((a - base) & ~host);
  return [lo, lo + host];
}

export const parseCapturedAddress = capturedIv;

function merge(ivs: Iv[]): Iv[] {
  const s = [...ivs].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const out: Iv[] = [];
  for (const iv of s) {
    const last = out[out.length - 1];
    if (last && iv[0] <= last[1] + 1n) {
      if (iv[1] > last[1]) last[1] = iv[1];
    } else out.push([iv[0], iv[1]]);
  }
  return out;
}

function canon(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canon).join(',')}]`;
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${canon(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

interface Box {
  key: string;
  src: Iv[];
  dst: Iv;
  ports: Iv;
}

function boxes(rules: FilterRule[], toIv: ToIv): Box[] {
  const out: Box[] = [];
  for (const r of rules) {
    const src = r.SrcIPs.map(toIv);
    for (const d of r.DstPorts ?? []) {
      for (const p of r.IPProto && r.IPProto.length > 0 ? r.IPProto : DEFAULT_IPPROTO) {
        out.push({ key: `proto ${p}`, src, dst: toIv(d.IP), ports: [BigInt(d.Ports.First), BigInt(d.Ports.Last)] });
      }
    }
    for (const g of r.CapGrant ?? []) {
      for (const [name, values] of Object.entries(g.CapMap)) {
        const keys = values === null ? [`cap ${name}=null`] : values.length === 0 ? [`cap ${name}=[]`] : values.map((v) => `cap ${name}=${canon(v)}`);
        for (const key of keys) for (const dst of g.Dsts) out.push({ key, src, dst: toIv(dst), ports: [0n, 0n] });
      }
    }
  }
  return out;
}

function fmt(ivs: Iv[]): string {
  return ivs.map(([a, b]) => (a === b ? a.toString(16) : `${a.toString(16)}-${b.toString(16)}`)).join(' ') || '∅';
}

/**
 * Differences between two filters ([] when they mean the same); each a short human-readable line.
 * `expected` is the captured side (read by this file's own parser), `got` ours (read by coord's).
 */
export function diffFilters(expected: FilterRule[], got: FilterRule[]): string[] {
  const a = boxes(expected, capturedIv);
  const b = boxes(got, ourIv);
  const keys = new Set([...a, ...b].map((x) => x.key));
  const diffs: string[] = [];
  for (const key of keys) {
    const ka = a.filter((x) => x.key === key);
    const kb = b.filter((x) => x.key === key);
    const all = [...ka, ...kb];
    const dstCuts = [...new Set(all.flatMap((x) => [x.dst[0], x.dst[1] + 1n]))].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
    const portCuts = [...new Set(all.flatMap((x) => [x.ports[0], x.ports[1] + 1n]))].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
    for (let i = 0; i + 1 < dstCuts.length; i++) {
      const d0 = dstCuts[i]!;
      for (let j = 0; j + 1 < portCuts.length; j++) {
        const p0 = portCuts[j]!;
        const inCell = (x: Box): boolean => x.dst[0] <= d0 && d0 <= x.dst[1] && x.ports[0] <= p0 && p0 <= x.ports[1];
        const sa = fmt(merge(ka.filter(inCell).flatMap((x) => x.src)));
        const sb = fmt(merge(kb.filter(inCell).flatMap((x) => x.src)));
        if (sa !== sb) {
          diffs.push(`${key} dst ${d0.toString(16)} port ${p0}: expected src [${sa}] got [${sb}]`);
          if (diffs.length > 5) return diffs;
        }
      }
    }
  }
  return diffs;
}
