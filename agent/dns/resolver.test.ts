import { createSocket, type Socket } from 'node:dgram';
import { createServer, type Server } from 'node:net';
import dnsPacket, { type Answer, type Packet } from 'dns-packet';
import { afterEach, describe, expect, it } from 'vitest';
import type { Netmap, PeerNode } from '../../wire/protocol.js';
import { reverseName, settingsFromDns } from './records.js';
import { addressOfReverseName, MagicResolver } from './resolver.js';
import { buildQuery, DnsServer } from './server.js';

function peer(name: string, v4: string, v6: string, extra: Partial<PeerNode> = {}): PeerNode {
  return {
    id: name, name, addresses: [`${v4}/32`, `${v6}/128`], nodeKey: 'k', endpoints: [], allowedIPs: [],
    user: { id: 'u', loginName: 'u@example.com', displayName: 'U' }, tags: [], os: 'linux', online: true,
    lastSeen: null, shared: false, quarantined: false, ...extra,
  };
}

function netmap(dns: Partial<Netmap['dns']> = {}, peers: PeerNode[] = []): Netmap {
  return {
    version: 1,
    self: {
      id: 'self', name: 'laptop.acme.meshward.internal', hostname: 'laptop', addresses: ['100.64.0.1/32', 'fd7a:115c:a1e0::1/128'],
      user: { id: 'u', loginName: 'u@example.com', displayName: 'U' }, tags: [], network: { name: 'acme', domain: 'acme.meshward.internal' },
      nodeKey: 'self', authorized: true, expires: null,
    },
    peers: peers.length ? peers : [
      peer('git.acme.meshward.internal', '100.64.0.2', 'fd7a:115c:a1e0::2'),
      // A device shared in from another network, with a name that clashes with ours.
      peer('git.partner.meshward.internal', '100.64.0.9', 'fd7a:115c:a1e0::9', { shared: true, quarantined: true }),
      peer('db.partner.meshward.internal', '100.64.0.10', 'fd7a:115c:a1e0::a', { shared: true, quarantined: true }),
    ],
    packetFilter: [],
    dns: { domain: 'acme.meshward.internal', magicDNS: true, nameservers: [], searchPaths: [], ...dns },
  };
}

function resolverFor(nm: Netmap): MagicResolver {
  const r = new MagicResolver();
  r.setNetmap(nm, settingsFromDns(nm.dns));
  return r;
}

function ask(r: MagicResolver, name: string, type: string): { decided: ReturnType<MagicResolver['decide']>; packet: Packet | null } {
  const query = dnsPacket.decode(buildQuery(name, type));
  const decided = r.decide(query);
  return { decided, packet: decided.answer ? dnsPacket.decode(decided.answer) : null };
}

const rcode = (p: Packet | null) => (p?.flags ?? -1) & 0xf;
const data = (p: Packet | null) => (p?.answers ?? []).map((a) => ('data' in a ? a.data : null));

describe('MagicResolver', () => {
  it('answers A and AAAA for this network\'s devices under the network domain, authoritatively', () => {
    const r = resolverFor(netmap());
    const a = ask(r, 'git.acme.meshward.internal', 'A');
    expect(rcode(a.packet)).toBe(0);
    expect((a.packet!.flags ?? 0) & 0x0400).toBe(0x0400);
    expect(data(a.packet)).toEqual(['100.64.0.2']);
    expect(data(ask(r, 'GIT.Acme.meshward.internal.', 'AAAA').packet)).toEqual(['fd7a:115c:a1e0::2']);
    expect(data(ask(r, 'laptop.acme.meshward.internal', 'A').packet)).toEqual(['100.64.0.1']);
  });

  it('answers a shared-in device under its full name in the sharer\'s domain only', () => {
    const r = resolverFor(netmap());
    expect(data(ask(r, 'db.partner.meshward.internal', 'A').packet)).toEqual(['100.64.0.10']);
    expect(rcode(ask(r, 'db.acme.meshward.internal', 'A').packet)).toBe(3);
    // Where the names meet, our own device keeps its own name; the shared one keeps the sharer's.
    expect(data(ask(r, 'git.acme.meshward.internal', 'A').packet)).toEqual(['100.64.0.2']);
    expect(data(ask(r, 'git.partner.meshward.internal', 'A').packet)).toEqual(['100.64.0.9']);
  });

  it('is authoritative for its domains: unknown names are NXDOMAIN and never forwarded', () => {
    const r = resolverFor(netmap({ nameservers: ['192.0.2.53'] }));
    const nx = ask(r, 'nope.acme.meshward.internal', 'A');
    expect(rcode(nx.packet)).toBe(3);
    expect(nx.decided.upstreams).toEqual([]);
    expect(rcode(ask(r, 'nope.partner.meshward.internal', 'A').packet)).toBe(3);
    // An existing name without addresses of the asked type: NOERROR with no answer.
    const mx = ask(r, 'git.acme.meshward.internal', 'MX');
    expect(rcode(mx.packet)).toBe(0);
    expect(mx.packet!.answers).toEqual([]);
  });

  it('answers PTR for the tailnet addresses it knows, NXDOMAIN for others in the tailnet ranges', () => {
    const r = resolverFor(netmap());
    expect(data(ask(r, reverseName('100.64.0.2')!, 'PTR').packet)).toEqual(['git.acme.meshward.internal']);
    expect(data(ask(r, reverseName('fd7a:115c:a1e0::a')!, 'PTR').packet)).toEqual(['db.partner.meshward.internal']);
    expect(rcode(ask(r, reverseName('100.64.7.7')!, 'PTR').packet)).toBe(3);
    // Outside the tailnet: not ours; forwarded (no upstream here, so SERVFAIL).
    expect(rcode(ask(r, reverseName('192.0.2.1')!, 'PTR').packet)).toBe(2);
    expect(addressOfReverseName(reverseName('fd7a:115c:a1e0::a')!)).toBe('fd7a:115c:a1e0:0:0:0:0:a');
  });

  it('does not answer names of devices it cannot see', () => {
    const r = resolverFor(netmap({}, [peer('git.acme.meshward.internal', '100.64.0.2', 'fd7a:115c:a1e0::2')]));
    expect(rcode(ask(r, 'ci.acme.meshward.internal', 'A').packet)).toBe(3);
  });

  it('with MagicDNS off, tailnet names are not answered but forwarded', () => {
    const r = resolverFor(netmap({ magicDNS: false, nameservers: ['192.0.2.53'] }));
    const q = ask(r, 'git.acme.meshward.internal', 'A');
    expect(q.decided.answer).toBeNull();
    expect(q.decided.upstreams).toEqual(['192.0.2.53']);
  });

  it('routes names to split-DNS nameservers by the longest suffix, else global, else the system\'s', () => {
    const r = resolverFor(netmap({ nameservers: ['192.0.2.1'], routes: { 'corp.example': ['192.0.2.2'], 'db.corp.example': ['192.0.2.3'] } }));
    r.setSystemResolvers(['192.0.2.9']);
    expect(r.upstreamsFor('x.corp.example')).toEqual(['192.0.2.2']);
    expect(r.upstreamsFor('a.db.corp.example')).toEqual(['192.0.2.3']);
    expect(r.upstreamsFor('xcorp.example')).toEqual(['192.0.2.1']);
    const sys = resolverFor(netmap());
    sys.setSystemResolvers(['192.0.2.9']);
    expect(sys.upstreamsFor('example.org')).toEqual(['192.0.2.9']);
  });

  it('sends the names no split-DNS route claims to the exit node in use, before the global and the system\'s', () => {
    const r = resolverFor(netmap({ nameservers: ['192.0.2.1'], routes: { 'corp.example': ['192.0.2.2'] } }));
    r.setSystemResolvers(['192.0.2.9']);
    r.setExitNodeResolvers(['100.64.0.7', 'fd7a:115c:a1e0::7']);
    expect(r.upstreamsFor('example.org')).toEqual(['100.64.0.7', 'fd7a:115c:a1e0::7']);
    expect(r.upstreamsFor('x.corp.example')).toEqual(['192.0.2.2']);
    r.setExitNodeResolvers([]);
    expect(r.upstreamsFor('example.org')).toEqual(['192.0.2.1']);
  });

  it('answers the common A/AAAA case without the codec exactly as the general path does', () => {
    const r = resolverFor(netmap());
    const names = ['git.acme.meshward.internal', 'GIT.acme.meshward.internal', 'db.partner.meshward.internal', 'laptop.acme.meshward.internal'];
    for (const name of names) for (const type of ['A', 'AAAA'] as const) for (const edns of [true, false]) {
      const q = dnsPacket.encode({
        type: 'query', id: 4242, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name }],
        additionals: edns ? [{ type: 'OPT', name: '.', udpPayloadSize: 4096, flags: 0 } as Answer] : [],
      });
      const fast = r.fastAnswer(q);
      expect(fast, `${name} ${type}`).not.toBeNull();
      const slow = r.decide(dnsPacket.decode(q)).answer!;
      const [f, s] = [dnsPacket.decode(fast!), dnsPacket.decode(slow)];
      expect(f.id).toBe(s.id);
      expect(f.flags).toBe(s.flags);
      expect(f.questions).toEqual(s.questions);
      expect(f.answers!.map((a) => ('data' in a ? [a.type, a.data, a.ttl] : null))).toEqual(s.answers!.map((a) => ('data' in a ? [a.type, a.data, a.ttl] : null)));
      expect((f.additionals ?? []).length).toBe(edns ? 1 : 0);
    }
    // Everything else takes the general path.
    for (const [name, type] of [['nope.acme.meshward.internal', 'A'], ['git.acme.meshward.internal', 'MX'], ['example.org', 'A']] as const) {
      expect(r.fastAnswer(dnsPacket.encode({ type: 'query', id: 1, flags: 0x100, questions: [{ type, name }] }))).toBeNull();
    }
    expect(r.fastAnswer(Buffer.alloc(40))).toBeNull();
  });

  it('search domains put this network first, then the configured search paths', () => {
    expect(settingsFromDns({ domain: 'a.internal', magicDNS: true, nameservers: [], searchPaths: ['b.internal', 'a.internal'] }).searchDomains)
      .toEqual(['a.internal', 'b.internal']);
  });
});

// An upstream nameserver on loopback (a stand-in for the network's DNS server, not for our resolver).
class Upstream {
  udp!: Socket;
  tcp!: Server;
  port = 0;
  udpQueries = 0;
  tcpQueries = 0;
  constructor(private readonly answer: (q: Packet, overTcp: boolean) => Packet | null) {}
  async start(): Promise<void> {
    this.udp = createSocket('udp4');
    await new Promise<void>((res) => this.udp.bind(0, '127.0.0.1', res));
    this.port = this.udp.address().port;
    this.udp.on('message', (msg, rinfo) => {
      this.udpQueries++;
      const out = this.answer(dnsPacket.decode(msg), false);
      if (out) this.udp.send(dnsPacket.encode(out), rinfo.port, rinfo.address);
    });
    this.tcp = createServer((s) => s.on('data', (buf: Buffer) => {
      this.tcpQueries++;
      const out = this.answer(dnsPacket.decode(buf.subarray(2)), true);
      if (out) s.end(dnsPacket.streamEncode(out));
    }));
    await new Promise<void>((res) => this.tcp.listen(this.port, '127.0.0.1', res));
  }
  stop(): void {
    this.udp.close();
    this.tcp.close();
  }
}

function answerWith(q: Packet, answers: Answer[], flags = 0): Packet {
  return { id: q.id, type: 'response', flags: 0x8180 | flags, questions: q.questions, answers };
}

describe('DnsServer forwarding', () => {
  const made: Array<{ stop(): void } | { close(): void }> = [];
  afterEach(() => {
    for (const m of made.splice(0)) ('stop' in m ? m.stop() : m.close());
  });

  function serverWith(nameservers: string[]): DnsServer {
    const nm = netmap({ nameservers });
    const r = resolverFor(nm);
    const s = new DnsServer(r, ['127.0.0.1']);
    made.push(s);
    return s;
  }

  it('forwards other names upstream and passes the answer (and its TTL) back with the client\'s id', async () => {
    const up = new Upstream((q) => answerWith(q, [{ type: 'A', name: q.questions![0]!.name, ttl: 1234, data: '192.0.2.77' }]));
    await up.start();
    made.push(up);
    const s = serverWith([`127.0.0.1:${up.port}`]);
    const query = buildQuery('example.org', 'A');
    const out = await s.answer(query, false);
    const p = dnsPacket.decode(out!.answer);
    expect(p.id).toBe(query.readUInt16BE(0));
    expect(p.answers![0]).toMatchObject({ data: '192.0.2.77', ttl: 1234 });
    expect(out!.source).toBe('upstream');
    expect(s.counters.forwarded).toBe(1);
  });

  it('retries over TCP when the UDP answer is truncated', async () => {
    const up = new Upstream((q, tcp) => (tcp ? answerWith(q, [{ type: 'A', name: q.questions![0]!.name, ttl: 60, data: '192.0.2.8' }]) : answerWith(q, [], 0x0200)));
    await up.start();
    made.push(up);
    const s = serverWith([`127.0.0.1:${up.port}`]);
    const out = await s.answer(buildQuery('big.example.org', 'A'), false);
    expect(data(dnsPacket.decode(out!.answer))).toEqual(['192.0.2.8']);
    expect(up.udpQueries).toBe(1);
    expect(up.tcpQueries).toBe(1);
  });

  it('answers SERVFAIL quickly when the upstream is down', async () => {
    // A port with nothing behind it: the connected socket hears the ICMP error at once.
    const probe = createSocket('udp4');
    await new Promise<void>((res) => probe.bind(0, '127.0.0.1', res));
    const deadPort = probe.address().port;
    probe.close();
    const s = serverWith([`127.0.0.1:${deadPort}`]);
    const t0 = Date.now();
    const out = await s.answer(buildQuery('example.org', 'A'), false);
    expect(rcode(dnsPacket.decode(out!.answer))).toBe(2);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(s.counters.servfail).toBe(1);
  });

  it('drops garbage without throwing, and answers a readable header with FORMERR', async () => {
    const s = serverWith([]);
    expect(await s.answer(Buffer.from([1, 2, 3]), false)).toBeNull();
    const header = Buffer.alloc(14, 0xff);
    header.writeUInt16BE(0x0100, 2);
    const out = await s.answer(header, false);
    expect(out!.answer.readUInt16BE(2) & 0xf).toBe(1);
    expect(s.counters.dropped).toBe(2);
  });
});
