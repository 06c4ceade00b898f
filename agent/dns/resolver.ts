// The decisions of the device's resolver (quad-100): answer a query from the netmap's names, refuse it,
// or say where to forward it. Wire format by dns-packet; the sockets live in ./server.ts and the
// upstream exchange in ./forwarder.ts.
import dnsPacket, { type Answer, type Packet, type Question } from 'dns-packet';
import { inZone, normalizeName, recordsFromNetmap, type DnsRecords, type ResolverSettings } from './records.js';
import { isTailnetAddr, parseAddr } from '../../wire/addr.js';
import type { Netmap } from '../../wire/protocol.js';

/** How long clients may cache the names this resolver answers itself. */
export const LOCAL_TTL = 300;

/** The largest answer the fast path writes (a 512-byte query with a few addresses). */
export const MAX_FAST_ANSWER = 1024;

const QR = 0x8000;
const AA = 0x0400;
const TC = 0x0200;
const RD = 0x0100;
const RA = 0x0080;

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;

/** Where an answer came from, for `agent dns query` and the counters. */
export type AnswerSource = 'magicdns' | 'upstream' | 'error';

export interface Decision {
  /** A complete answer to send back, or null to forward the query to `upstreams`. */
  answer: Buffer | null;
  upstreams: string[];
  /** The question's name, lowercase, for logs and `agent dns query`. */
  name: string;
}

/** A header-only reply to a packet that could not be decoded: FORMERR with the same id, or nothing. */
export function formErr(query: Buffer): Buffer | null {
  if (query.length < 12 || (query.readUInt16BE(2) & QR) !== 0) return null;
  const out = Buffer.alloc(12);
  query.copy(out, 0, 0, 2);
  out.writeUInt16BE(QR | (query.readUInt16BE(2) & RD) | RA | RCODE.FORMERR, 2);
  return out;
}

/** An answer with `rcode` and no records to a decoded query (SERVFAIL after an upstream failure, ...). */
export function errorAnswer(query: Packet, rcode: number): Buffer {
  return reply(query, rcode, [], false);
}

function reply(query: Packet, rcode: number, answers: Answer[], authoritative: boolean): Buffer {
  const rd = (query.flags ?? 0) & RD;
  const opt = query.additionals?.find((a) => a.type === 'OPT');
  const pkt: Packet = {
    id: query.id ?? 0,
    type: 'response',
    flags: rd | RA | (authoritative ? AA : 0) | rcode,
    questions: query.questions ?? [],
    answers,
    additionals: opt ? [{ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: 0 } as Answer] : [],
  };
  return dnsPacket.encode(pkt);
}

/** "1.0.64.100.in-addr.arpa" → "100.64.0.1"; null when the name is not a complete reverse name. */
export function addressOfReverseName(name: string): string | null {
  if (name.endsWith('.in-addr.arpa')) {
    const parts = name.slice(0, -'.in-addr.arpa'.length).split('.');
    if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) < 256)) return null;
    return parts.reverse().map(Number).join('.');
  }
  if (name.endsWith('.ip6.arpa')) {
    const nibbles = name.slice(0, -'.ip6.arpa'.length).split('.');
    if (nibbles.length !== 32 || !nibbles.every((n) => /^[0-9a-f]$/.test(n))) return null;
    const hex = nibbles.reverse().join('');
    const groups: string[] = [];
    for (let i = 0; i < 32; i += 4) groups.push(hex.slice(i, i + 4).replace(/^0+(?=.)/, ''));
    return groups.join(':');
  }
  return null;
}

/** The tailnet's ranges, whose reverse names this resolver owns: 100.64.0.0/10 and fd7a:115c:a1e0::/48. */
function inTailnetRange(ip: string): boolean {
  const a = parseAddr(ip);
  return a !== null && isTailnetAddr(a);
}

function isReverseZone(name: string): boolean {
  return name.endsWith('.in-addr.arpa') || name.endsWith('.ip6.arpa') || name === 'in-addr.arpa' || name === 'ip6.arpa';
}

/** The resolver's state: the names from the latest netmap and the network's DNS settings. */
export class MagicResolver {
  private records: DnsRecords = { hosts: new Map(), ptr: new Map(), zones: [] };
  private settings: ResolverSettings = { magicDNS: true, nameservers: [], routes: {}, searchDomains: [] };
  /** The system's own resolvers, from before the agent configured the system to use this one. */
  private systemResolvers: string[] = [];
  /** The tailnet addresses of the exit node in use: it resolves the names no split-DNS route claims. */
  private exitNodeResolvers: string[] = [];

  setNetmap(netmap: Netmap, settings: ResolverSettings): void {
    this.records = recordsFromNetmap(netmap);
    this.settings = settings;
  }

  setSystemResolvers(servers: string[]): void {
    this.systemResolvers = servers;
  }

  setExitNodeResolvers(servers: string[]): void {
    this.exitNodeResolvers = servers;
  }

  get current(): { settings: ResolverSettings; zones: string[]; names: number; systemResolvers: string[] } {
    return { settings: this.settings, zones: this.records.zones, names: this.records.hosts.size, systemResolvers: this.systemResolvers };
  }

  /**
   * Which nameservers a name goes to: the longest matching split-DNS route, else the exit node in use,
   * else the global ones, else the system's.
   */
  upstreamsFor(name: string): string[] {
    let best = '';
    let servers: string[] | null = null;
    for (const [suffix, list] of Object.entries(this.settings.routes)) {
      if ((suffix === '' || inZone(name, suffix)) && suffix.length >= best.length) {
        best = suffix;
        servers = list;
      }
    }
    if (servers) return servers;
    if (this.exitNodeResolvers.length > 0) return this.exitNodeResolvers;
    return this.settings.nameservers.length > 0 ? this.settings.nameservers : this.systemResolvers;
  }

  /**
   * The common case without the codec: one A or AAAA question (class IN) for a name this resolver has,
   * at most an EDNS OPT record beside it. Returns the answer, or null to take the general path.
   */
  fastAnswer(q: Buffer): Buffer | null {
    const out = Buffer.allocUnsafe(MAX_FAST_ANSWER);
    const n = this.fastAnswerInto(q, 0, q.length, out, 0);
    return n < 0 ? null : Buffer.from(out.subarray(0, n));
  }

  /**
   * fastAnswer over buffers the caller owns (a receive batch and a send batch): reads the query at
   * q[qOff, qOff+qLen), writes the answer at out[outOff..] (room for MAX_FAST_ANSWER bytes) and returns
   * its length, or -1 to take the general path. Allocates only the name it looks up.
   */
  fastAnswerInto(q: Buffer, qOff: number, qLen: number, out: Buffer, outOff: number): number {
    if (!this.settings.magicDNS || qLen < 17 || qLen > 512) return -1;
    const flags = q.readUInt16BE(qOff + 2);
    // QR=0, opcode 0; one question, no answers or authority, at most one additional (OPT).
    if ((flags & 0xf800) !== 0 || q.readUInt16BE(qOff + 4) !== 1 || q.readUInt16BE(qOff + 6) !== 0 || q.readUInt16BE(qOff + 8) !== 0) return -1;
    const arcount = q.readUInt16BE(qOff + 10);
    if (arcount > 1) return -1;
    const qEndAll = qOff + qLen;
    let off = qOff + 12;
    for (;;) {
      if (off >= qEndAll) return -1;
      const len = q[off]!;
      if (len === 0) break;
      if (len > 63 || off + 1 + len >= qEndAll) return -1;
      for (let i = off + 1; i <= off + len; i++) if (q[i] === 0x2e) return -1; // a dot inside a label
      off += 1 + len;
    }
    const qEnd = off + 5;
    if (qEnd > qEndAll) return -1;
    const qtype = q.readUInt16BE(off + 1);
    if ((qtype !== 1 && qtype !== 28) || q.readUInt16BE(off + 3) !== 1) return -1;
    const edns = arcount === 1 && qEnd + 11 <= qEndAll && q[qEnd] === 0 && q.readUInt16BE(qEnd + 1) === 41;
    if (arcount === 1 && !edns) return -1;
    // The name in presentation form: labels joined by dots (the wire's length bytes become dots).
    let name = '';
    for (let p = qOff + 12; q[p] !== 0; p += 1 + q[p]!) name += (name ? '.' : '') + q.toString('latin1', p + 1, p + 1 + q[p]!);
    const host = this.records.hosts.get(name.toLowerCase());
    if (!host) return -1;
    const raws = qtype === 1 ? host.v4Raw : host.v6Raw;
    const qBytes = qEnd - qOff;
    let size = qBytes + (edns ? 11 : 0);
    for (const r of raws) size += 12 + r.length;
    if (size > MAX_FAST_ANSWER) return -1;
    q.copy(out, outOff, qOff, qEnd);
    out.writeUInt16BE(QR | AA | (flags & RD) | RA, outOff + 2);
    out.writeUInt16BE(raws.length, outOff + 6);
    out.writeUInt16BE(0, outOff + 8);
    out.writeUInt16BE(edns ? 1 : 0, outOff + 10);
    let w = outOff + qBytes;
    for (const r of raws) {
      out.writeUInt16BE(0xc00c, w); // the name: a pointer to the question's
      out.writeUInt16BE(qtype, w + 2);
      out.writeUInt16BE(1, w + 4);
      out.writeUInt32BE(LOCAL_TTL, w + 6);
      out.writeUInt16BE(r.length, w + 10);
      r.copy(out, w + 12);
      w += 12 + r.length;
    }
    if (edns) {
      out[w] = 0;
      out.writeUInt16BE(41, w + 1);
      out.writeUInt16BE(1232, w + 3);
      out.writeUInt32BE(0, w + 5);
      out.writeUInt16BE(0, w + 9);
      w += 11;
    }
    return w - outOff;
  }

  /** Decides one query (already decoded). */
  decide(query: Packet): Decision {
    const questions = query.questions ?? [];
    if (query.type !== 'query' || ((query.flags ?? 0) >> 11) & 0xf) {
      return { answer: reply(query, RCODE.NOTIMP, [], false), upstreams: [], name: '' };
    }
    if (questions.length !== 1) return { answer: reply(query, RCODE.FORMERR, [], false), upstreams: [], name: '' };
    const q = questions[0]!;
    const name = normalizeName(q.name);
    if (this.settings.magicDNS) {
      const local = this.answerLocally(query, q, name);
      if (local) return { answer: local, upstreams: [], name };
    }
    const upstreams = this.upstreamsFor(name);
    if (upstreams.length === 0) return { answer: reply(query, RCODE.SERVFAIL, [], false), upstreams: [], name };
    return { answer: null, upstreams, name };
  }

  /** The answer for a name this resolver owns, or null when the name is not ours to answer. */
  private answerLocally(query: Packet, q: Question, name: string): Buffer | null {
    if (isReverseZone(name)) {
      const ip = addressOfReverseName(name);
      if (ip === null || !inTailnetRange(ip)) return null;
      const target = this.records.ptr.get(name);
      if (!target) return reply(query, RCODE.NXDOMAIN, [], true);
      const answers: Answer[] = q.type === 'PTR' || (q.type as string) === 'ANY' ? [{ type: 'PTR', name: q.name, ttl: LOCAL_TTL, data: `${target}.` }] : [];
      return reply(query, RCODE.NOERROR, answers, true);
    }
    const host = this.records.hosts.get(name);
    if (!host) {
      const zone = this.records.zones.some((z) => inZone(name, z));
      return zone ? reply(query, name === '' || this.records.zones.includes(name) ? RCODE.NOERROR : RCODE.NXDOMAIN, [], true) : null;
    }
    const answers: Answer[] = [];
    const any = (q.type as string) === 'ANY';
    if (q.type === 'A' || any) for (const ip of host.v4) answers.push({ type: 'A', name: q.name, ttl: LOCAL_TTL, data: ip });
    if (q.type === 'AAAA' || any) for (const ip of host.v6) answers.push({ type: 'AAAA', name: q.name, ttl: LOCAL_TTL, data: ip });
    return reply(query, RCODE.NOERROR, answers, true);
  }
}

/** Decodes a query packet, or null when it is not one. Never throws. */
export function decodeQuery(buf: Buffer): Packet | null {
  try {
    const p = dnsPacket.decode(buf);
    return p.type === 'query' ? p : null;
  } catch {
    return null;
  }
}

/** The largest UDP answer a query's sender accepts (EDNS payload size, else 512). */
export function maxUdpSize(query: Packet): number {
  const opt = query.additionals?.find((a) => a.type === 'OPT') as { udpPayloadSize?: number } | undefined;
  return Math.max(512, Math.min(opt?.udpPayloadSize ?? 512, 65535));
}

/** Is the TC (truncated) bit set in this answer? */
export function isTruncated(answer: Buffer): boolean {
  return answer.length >= 4 && (answer.readUInt16BE(2) & TC) !== 0;
}

/** An answer cut to its header and question with TC set, so the client retries over TCP. */
export function truncatedAnswer(query: Packet): Buffer {
  const b = reply(query, RCODE.NOERROR, [], false);
  b.writeUInt16BE(b.readUInt16BE(2) | TC, 2);
  return b;
}
