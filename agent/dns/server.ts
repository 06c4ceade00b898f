// The resolver's sockets: UDP and TCP port 53 on the service addresses (100.100.100.100 and
// fd7a:115c:a1e0::53, which the agent puts on its TUN device, so packets to them never leave the
// device). Only queries the device itself sends are answered: a source address must be local (the
// service addresses, loopback, or one of this device's tailnet addresses); a peer cannot forge one of
// those, since WireGuard only accepts sources inside the sending peer's allowed IPs.
import { createSocket, type Socket as NodeUdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import dnsPacket, { type Answer } from 'dns-packet';
import { nativeAvailable, UdpSocket } from '../../native/index.js';
import { addrToBytes, parseAddr } from '../../wire/addr.js';
import { forward } from './forwarder.js';
import {
  decodeQuery, errorAnswer, formErr, isTruncated, MAX_FAST_ANSWER, maxUdpSize, RCODE, truncatedAnswer, type AnswerSource, type MagicResolver,
} from './resolver.js';

/** How long an upstream may take before the client gets SERVFAIL. */
export const UPSTREAM_TIMEOUT_MS = 2500;
const TCP_IDLE_MS = 10_000;
const MAX_TCP_CLIENTS = 64;

export interface DnsCounters {
  queries: number;
  /** Answered from the netmap's names (including authoritative NXDOMAIN). */
  local: number;
  forwarded: number;
  servfail: number;
  /** Dropped: undecodable, or from a source that is not this device. */
  dropped: number;
}

export interface QueryOutcome {
  answer: Buffer;
  source: AnswerSource;
  upstream: string | null;
}

/** Datagrams per receive batch on the native socket, and the answers sent back in one sendmmsg. */
const BATCH = 64;

/** An address as a set key: IPv4 as its 32-bit number, IPv6 as the hex of its 16 bytes. */
function addrKey(addrs: Uint8Array, i: number, family: number): number | string {
  const o = 16 * i;
  if (family === 4) return ((addrs[o]! << 24) | (addrs[o + 1]! << 16) | (addrs[o + 2]! << 8) | addrs[o + 3]!) >>> 0;
  return Buffer.from(addrs.buffer, addrs.byteOffset + o, 16).toString('hex');
}

/** addrKey of an address written as text (an IPv4-mapped IPv6 address as its IPv4 one); null if none. */
function textKey(ip: string): number | string | null {
  const a = parseAddr(ip.replace(/^::ffff:(?=\d+\.)/i, ''));
  if (!a) return null;
  const bytes = new Uint8Array(16);
  bytes.set(addrToBytes(a));
  return addrKey(bytes, 0, a.family);
}

export interface DnsServerOptions {
  /**
   * Answer the sources this accepts instead of the device's own: an exit node's listener for the devices
   * that use it (the tunnel's filter has already decided which peers may send).
   */
  acceptSource?: (ip: string) => boolean;
  /** Forward only: a name this resolver would answer itself (MagicDNS) gets REFUSED, so no peer learns the netmap's names. */
  forwardOnly?: boolean;
}

export class DnsServer {
  readonly counters: DnsCounters = { queries: 0, local: 0, forwarded: 0, servfail: 0, dropped: 0 };
  private readonly udp: Array<UdpSocket | NodeUdpSocket> = [];
  private readonly tcp: Server[] = [];
  private readonly tcpClients = new Set<Socket>();
  private local = new Set<number | string>();

  constructor(
    private readonly resolver: MagicResolver,
    /** This device's own addresses (tailnet addresses, loopback, the service addresses): the only sources answered. */
    localAddresses: string[],
    private readonly log: Logger | null = null,
    private readonly opts: DnsServerOptions = {},
  ) {
    this.setLocalAddresses(localAddresses);
  }

  setLocalAddresses(list: string[]): void {
    const next = new Set<number | string>();
    for (const a of list) {
      const key = textKey(a);
      if (key !== null) next.add(key);
    }
    this.local = next;
  }

  private isLocalText(ip: string): boolean {
    if (this.opts.acceptSource) return this.opts.acceptSource(ip);
    const key = textKey(ip);
    return key !== null && this.local.has(key);
  }

  /**
   * Binds UDP and TCP port `port` on each address; resolves once all listen. UDP goes through the
   * native batched socket (recvmmsg/sendmmsg) when the addon is built, else node:dgram.
   */
  async listen(addresses: string[], port = 53, opts: { native?: boolean } = {}): Promise<void> {
    for (const addr of addresses) {
      // The native path checks sources against the local set only.
      if ((opts.native ?? true) && !this.opts.acceptSource && nativeAvailable()) this.udp.push(this.listenNative(addr, port));
      else this.udp.push(await this.listenDgram(addr, port));
      const tcp = createServer((sock) => this.onTcp(sock));
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen({ host: addr, port, exclusive: true }, () => {
          tcp.off('error', reject);
          resolve();
        });
      });
      this.tcp.push(tcp);
    }
  }

  private async listenDgram(addr: string, port: number): Promise<NodeUdpSocket> {
    const udp = createSocket({ type: addr.includes(':') ? 'udp6' : 'udp4' });
    udp.on('message', (msg, rinfo) => this.onUdp(udp, msg, rinfo.address, rinfo.port));
    udp.on('error', (err) => this.log?.warn({ err: err.message, addr }, 'dns: udp socket error'));
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind({ address: addr, port, exclusive: true }, () => {
        udp.off('error', reject);
        resolve();
      });
    });
    return udp;
  }

  /** A batch in, the answers the resolver has at hand out in one sendmmsg; the rest answered one by one. */
  private listenNative(addr: string, port: number): UdpSocket {
    const sock = UdpSocket.bind(port, addr, { batch: BATCH, maxPacket: 4096, gso: false, gro: false, rcvbuf: 1 << 20, sndbuf: 1 << 20 });
    const out = Buffer.alloc(BATCH * MAX_FAST_ANSWER);
    const outOffsets = new Uint32Array(BATCH);
    const outLengths = new Uint32Array(BATCH);
    const outAddrs = new Uint8Array(16 * BATCH);
    const outPorts = new Uint16Array(BATCH);
    const outFamilies = new Uint8Array(BATCH);
    for (let i = 0; i < BATCH; i++) outOffsets[i] = i * MAX_FAST_ANSWER;
    sock.start((buf, offsets, lengths, addrs, ports, families, count) => {
      let n = 0;
      for (let i = 0; i < count; i++) {
        if (!this.local.has(addrKey(addrs, i, families[i]!))) {
          this.counters.queries++;
          this.counters.dropped++;
          continue;
        }
        const len = this.resolver.fastAnswerInto(buf, offsets[i]!, lengths[i]!, out, outOffsets[n]!);
        if (len >= 0) {
          this.counters.queries++;
          this.counters.local++;
          outLengths[n] = len;
          outAddrs.set(addrs.subarray(16 * i, 16 * i + 16), 16 * n);
          outPorts[n] = ports[i]!;
          outFamilies[n] = families[i]!;
          n++;
          continue;
        }
        // The general path is asynchronous (it may forward): keep copies of what the batch reuses.
        const query = Buffer.from(buf.subarray(offsets[i]!, offsets[i]! + lengths[i]!));
        const peer = { addr: addrs.slice(16 * i, 16 * i + 16), port: ports[i]!, family: families[i]! };
        void this.answer(query, false).then((res) => {
          if (!res) return;
          sock.sendBatch(res.answer, new Uint32Array([0]), new Uint32Array([res.answer.length]), peer.addr, new Uint16Array([peer.port]), new Uint8Array([peer.family]), 1);
        });
      }
      // A full socket buffer drops the rest, as the kernel would a datagram: the client asks again.
      if (n > 0) sock.sendBatch(out, outOffsets, outLengths, outAddrs, outPorts, outFamilies, n);
    }, (err) => this.log?.warn({ err: err.message, addr }, 'dns: udp socket failed'));
    return sock;
  }

  close(): void {
    for (const s of this.udp) s.close();
    for (const s of this.tcp) s.close();
    for (const c of this.tcpClients) c.destroy();
    this.udp.length = 0;
    this.tcp.length = 0;
  }

  /** Answers one raw query; never rejects. Null when the packet deserves no answer at all. */
  async answer(raw: Buffer, overTcp: boolean): Promise<QueryOutcome | null> {
    this.counters.queries++;
    const fast = this.opts.forwardOnly ? null : this.resolver.fastAnswer(raw);
    if (fast) {
      this.counters.local++;
      return { answer: fast, source: 'magicdns', upstream: null };
    }
    const query = decodeQuery(raw);
    if (!query) {
      this.counters.dropped++;
      const err = formErr(raw);
      return err ? { answer: err, source: 'error', upstream: null } : null;
    }
    const d = this.resolver.decide(query);
    if (d.answer && this.opts.forwardOnly) {
      this.counters.local++;
      return { answer: errorAnswer(query, RCODE.REFUSED), source: 'error', upstream: null };
    }
    if (d.answer) {
      if (d.upstreams.length === 0 && (d.answer.readUInt16BE(2) & 0xf) === RCODE.SERVFAIL) this.counters.servfail++;
      else this.counters.local++;
      return { answer: d.answer, source: d.answer.readUInt16BE(2) & 0x0400 ? 'magicdns' : 'error', upstream: null };
    }
    try {
      const r = await forward(raw, d.upstreams, { timeoutMs: UPSTREAM_TIMEOUT_MS, tcp: overTcp });
      this.counters.forwarded++;
      let answer = r.answer;
      // A long answer fetched over TCP may not fit the client's UDP limit: let it ask us over TCP.
      if (!overTcp && answer.length > maxUdpSize(query)) answer = truncatedAnswer(query);
      return { answer, source: 'upstream', upstream: r.upstream };
    } catch (err) {
      this.counters.servfail++;
      this.log?.debug({ name: d.name, err: (err as Error).message }, 'dns: upstream failed');
      return { answer: errorAnswer(query, RCODE.SERVFAIL), source: 'error', upstream: null };
    }
  }

  private onUdp(sock: NodeUdpSocket, msg: Buffer, address: string, port: number): void {
    if (!this.isLocalText(address)) {
      this.counters.dropped++;
      return;
    }
    void this.answer(msg, false).then((out) => {
      if (out) sock.send(out.answer, port, address);
    });
  }

  private onTcp(sock: Socket): void {
    if (this.tcpClients.size >= MAX_TCP_CLIENTS || !this.isLocalText(sock.remoteAddress ?? '')) {
      this.counters.dropped++;
      sock.destroy();
      return;
    }
    this.tcpClients.add(sock);
    sock.setTimeout(TCP_IDLE_MS, () => sock.destroy());
    sock.on('close', () => this.tcpClients.delete(sock));
    sock.on('error', () => sock.destroy());
    let buffered: Buffer = Buffer.alloc(0);
    sock.on('data', (chunk: Buffer) => {
      buffered = buffered.length ? Buffer.concat([buffered, chunk]) : chunk;
      while (buffered.length >= 2) {
        const len = buffered.readUInt16BE(0);
        if (buffered.length < 2 + len) break;
        const msg = Buffer.from(buffered.subarray(2, 2 + len));
        buffered = buffered.subarray(2 + len);
        void this.answer(msg, true).then((out) => {
          if (!out || sock.destroyed) return;
          const framed = Buffer.alloc(2 + out.answer.length);
          framed.writeUInt16BE(out.answer.length, 0);
          out.answer.copy(framed, 2);
          sock.write(framed);
        });
      }
    });
  }
}

/** A query packet for `agent dns query NAME TYPE` (recursion desired, with EDNS). */
export function buildQuery(name: string, type: string): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id: Math.floor(Math.random() * 0x10000),
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: type as 'A', name }],
    additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: 0 } as Answer],
  });
}

/** A decoded answer as people read it: rcode and "name TTL TYPE data" lines. */
export function describeAnswer(answer: Buffer): { rcode: string; answers: string[]; authoritative: boolean; truncated: boolean } {
  const p = dnsPacket.decode(answer);
  const rcodes = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];
  const rc = (p.flags ?? 0) & 0xf;
  return {
    rcode: rcodes[rc] ?? `RCODE${rc}`,
    authoritative: ((p.flags ?? 0) & 0x0400) !== 0,
    truncated: isTruncated(answer),
    answers: (p.answers ?? []).map((a) => {
      const data = 'data' in a ? (typeof a.data === 'string' ? a.data : JSON.stringify(a.data)) : '';
      return `${a.name} ${'ttl' in a ? a.ttl : ''} ${a.type} ${data}`;
    }),
  };
}
