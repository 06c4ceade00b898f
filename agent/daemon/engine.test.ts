// Two engines on an in-memory network: netmaps configure peers, addresses and the filter, and the
// data path runs TUN → filter → WireGuard → UDP → WireGuard → source check → filter → TUN.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { RelayServer } from '../../coord/relay/server.js';
import type { FilterRule } from '../../wire/types.js';
import type { Netmap, PeerNode } from '../../wire/protocol.js';
import { MemNetwork, MemTun, PrivateKey, ipv4Packet } from '../wireguard/index.js';
import { REKEY_TIMEOUT } from '../wireguard/peer.js';
import { isDiscoPacket } from '../connectivity/disco.js';
import { Engine, type TunDevice } from './engine.js';

class FakeTun extends MemTun implements TunDevice {
  readonly addresses: string[] = [];
  readonly routes: string[] = [];
  up = false;
  closed = false;
  constructor(readonly name: string) {
    super();
  }
  addAddress(cidr: string): void {
    if (this.addresses.includes(cidr)) throw Object.assign(new Error('exists'), { code: 'EEXIST' });
    this.addresses.push(cidr);
  }
  removeAddress(cidr: string): boolean {
    const i = this.addresses.indexOf(cidr);
    if (i >= 0) this.addresses.splice(i, 1);
    return i >= 0;
  }
  addRoute(cidr: string): void {
    this.routes.push(cidr);
  }
  setUp(up: boolean): void {
    this.up = up;
  }
  start(): void {}
  close(): void {
    this.closed = true;
  }
}

const user = { id: 'u', loginName: 'alice@example.com', displayName: 'Alice' };
const A = { key: new PrivateKey(Buffer.alloc(32, 0xa1)), ip: '100.64.0.1' };
const B = { key: new PrivateKey(Buffer.alloc(32, 0xb2)), ip: '100.64.0.2' };
type Node = typeof A;

describe('Engine', () => {
  const net = new MemNetwork();
  const engines: Engine[] = [];
  afterEach(async () => {
    for (const e of engines.splice(0)) await e.close();
  });

  async function start(name: string, node: Node, now?: () => number): Promise<{ engine: Engine; tun: FakeTun }> {
    const tun = new FakeTun(name);
    const engine = await Engine.start({
      now,
      tunName: name,
      port: 0,
      privateKey: node.key.raw,
      log: () => {},
      openTun: () => tun,
      bindUdp: (port, onBatch) => net.bind(port, onBatch),
    });
    engines.push(engine);
    return { engine, tun };
  }

  function netmap(self: Node, peers: Array<{ node: Node; port: number; quarantined?: boolean; endpoints?: string[] }>, rules: FilterRule[]): Netmap {
    const peerNode = (p: (typeof peers)[number]): PeerNode => ({
      id: p.node.ip, name: `${p.node.ip}.x`, addresses: [`${p.node.ip}/32`], nodeKey: p.node.key.publicKey.raw.toString('base64'),
      endpoints: p.endpoints ?? [`10.200.0.1:${p.port}`], allowedIPs: [`${p.node.ip}/32`], user, tags: [], os: 'linux', online: true, lastSeen: null,
      shared: !!p.quarantined, quarantined: !!p.quarantined,
    });
    return {
      version: Date.now(),
      self: {
        id: self.ip, name: `${self.ip}.x`, hostname: 'h', addresses: [`${self.ip}/32`], user, tags: [], network: { name: 'n', domain: 'x' },
        nodeKey: self.key.publicKey.raw.toString('base64'), authorized: true, expires: null,
      },
      peers: peers.map(peerNode),
      packetFilter: rules,
      dns: { domain: 'x', magicDNS: false, nameservers: [], searchPaths: [] },
    };
  }

  const allowUdp = (src: string, port: number): FilterRule[] => [
    { SrcIPs: [src], DstPorts: [{ IP: '*', Ports: { First: port, Last: port } }], IPProto: [17] },
  ];
  const send = (e: Engine, pkt: Buffer) => {
    e.device.onTunBatch(pkt, Uint32Array.of(0), Uint32Array.of(pkt.length), 1);
    net.flush();
  };
  /** ipv4Packet is UDP 1234 → 5678; this one goes the other way (a reply). */
  const reply = (src: string, dst: string, body: string) => {
    const p = ipv4Packet(src, dst, body);
    p.writeUInt16BE(5678, 20);
    p.writeUInt16BE(1234, 22);
    return p;
  };

  it('configures addresses, routes and peers from the netmap, and carries what the filter allows', async () => {
    const a = await start('mwa', A);
    const b = await start('mwb', B);
    a.engine.apply(netmap(A, [{ node: B, port: b.engine.listenPort }], []));
    b.engine.apply(netmap(B, [{ node: A, port: a.engine.listenPort }], allowUdp(A.ip, 5678)));
    expect(a.tun.up).toBe(true);
    expect(a.tun.addresses).toEqual(['100.64.0.1/32']);
    expect(a.tun.routes).toEqual(['100.64.0.0/10', 'fd7a:115c:a1e0::/48']);

    send(a.engine, ipv4Packet(A.ip, B.ip, 'allowed'));
    expect(b.tun.packets.map((p) => p.subarray(28).toString())).toEqual(['allowed']);
    // b's reply gets into a although a's own filter has no rules: a recorded the flow on the way out.
    send(b.engine, reply(B.ip, A.ip, 'reply'));
    expect(a.tun.packets.map((p) => p.subarray(28).toString())).toEqual(['reply']);
    // A new flow from b to a is not allowed by a's (empty) policy.
    send(b.engine, ipv4Packet(B.ip, A.ip, 'unsolicited'));
    expect(a.tun.packets).toHaveLength(1);
    expect(a.engine.counters().filter.in.dropped['no-rule']).toBe(1);
    expect(a.engine.peerLive(B.key.publicKey.raw.toString('base64'))).toMatchObject({ endpoint: `10.200.0.1:${b.engine.listenPort}` });
    expect(a.engine.peerLive(B.key.publicKey.raw.toString('base64'))!.lastHandshake).toBeGreaterThan(0);
  });

  it('swaps in a new filter on the next netmap, and quarantines peers the netmap marks', async () => {
    const a = await start('mwa', A);
    const b = await start('mwb', B);
    a.engine.apply(netmap(A, [{ node: B, port: b.engine.listenPort }], []));
    b.engine.apply(netmap(B, [{ node: A, port: a.engine.listenPort }], allowUdp(A.ip, 5678)));
    send(a.engine, ipv4Packet(A.ip, B.ip, 'one'));
    expect(b.tun.packets).toHaveLength(1);

    b.engine.apply(netmap(B, [{ node: A, port: a.engine.listenPort }], allowUdp(A.ip, 9999)));
    send(a.engine, ipv4Packet(A.ip, B.ip, 'two'));
    expect(b.tun.packets).toHaveLength(1);
    expect(b.engine.counters().filter.dropped['no-rule']).toBe(1);
    expect(b.engine.counters().filter.in.accepted).toBe(1); // counters carry over the swap

    const shared = netmap(B, [{ node: A, port: a.engine.listenPort, quarantined: true }], allowUdp(A.ip, 5678));
    // What b's own network lets it start towards the shared-in peer a (sharing, issue 7).
    shared.sharedPeerRules = [{ SrcIPs: [B.ip], DstPorts: [{ IP: A.ip, Ports: { First: 1234, Last: 1234 } }], IPProto: [17] }];
    b.engine.apply(shared);
    send(a.engine, ipv4Packet(A.ip, B.ip, 'three'));
    expect(b.tun.packets).toHaveLength(1);
    expect(b.engine.counters().filter.dropped.quarantined).toBe(1);
    // ... but a quarantined peer still gets answers in to flows b started.
    send(b.engine, reply(B.ip, A.ip, 'b asks'));
    send(a.engine, ipv4Packet(A.ip, B.ip, 'a answers'));
    expect(b.tun.packets.map((p) => p.subarray(28).toString())).toEqual(['one', 'a answers']);
  });

  it('drops packets whose source is not the sender’s, and forgets peers the netmap drops', async () => {
    const a = await start('mwa', A);
    const b = await start('mwb', B);
    a.engine.apply(netmap(A, [{ node: B, port: b.engine.listenPort }], []));
    b.engine.apply(netmap(B, [{ node: A, port: a.engine.listenPort }], [{ SrcIPs: ['*'], DstPorts: [{ IP: '*', Ports: { First: 0, Last: 65535 } }] }]));
    send(a.engine, ipv4Packet('100.64.0.77', B.ip, 'spoofed'));
    expect(b.tun.packets).toHaveLength(0);
    expect(b.engine.counters().wireguard.sourceNotAllowed).toBe(1);

    a.engine.apply(netmap(A, [], []));
    expect(a.engine.device.listPeers()).toHaveLength(0);
    send(a.engine, ipv4Packet(A.ip, B.ip, 'nowhere'));
    expect(a.engine.counters().wireguard.noRoute).toBe(1);
  });

  it('keeps the previous filter when the netmap’s rules are refused', async () => {
    const a = await start('mwa', A);
    const b = await start('mwb', B);
    const logs: string[] = [];
    a.engine.apply(netmap(A, [{ node: B, port: b.engine.listenPort }], []));
    b.engine.apply(netmap(B, [{ node: A, port: a.engine.listenPort }], allowUdp(A.ip, 5678)));
    (b.engine as unknown as { opts: { log: (l: string, m: string) => void } }).opts.log = (_l, m) => logs.push(m);
    b.engine.apply(netmap(B, [{ node: A, port: a.engine.listenPort }], [{ SrcIPs: ['not an address'], DstPorts: [{ IP: '*', Ports: { First: 1, Last: 1 } }] }]));
    send(a.engine, ipv4Packet(A.ip, B.ip, 'still allowed'));
    expect(b.tun.packets).toHaveLength(1);
    expect(logs.join('\n')).toMatch(/packet filter from coord refused/);
  });

  it('keeps a peer’s endpoint while the netmap still lists it, and takes the first listed otherwise', async () => {
    const a = await start('mwa', A);
    const b = await start('mwb', B);
    const bKey = B.key.publicKey.raw.toString('base64');
    const good = `10.200.0.1:${b.engine.listenPort}`;
    a.engine.apply(netmap(A, [{ node: B, port: 0, endpoints: ['10.200.0.1:9', good] }], []));
    const peer = a.engine.device.getPeer(B.key.publicKey.raw)!;
    expect(a.engine.device.endpointText(peer)).toBe('10.200.0.1:9');
    a.engine.device.setPeer(B.key.publicKey.raw, { endpoint: good });
    a.engine.apply(netmap(A, [{ node: B, port: 0, endpoints: ['10.200.0.1:9', good] }], []));
    expect(a.engine.device.endpointText(peer)).toBe(good);
    a.engine.apply(netmap(A, [{ node: B, port: 0, endpoints: ['10.200.0.1:7'] }], []));
    expect(a.engine.device.endpointText(peer)).toBe('10.200.0.1:7');
    expect(a.engine.peerLive(bKey)!.relay).toBeNull();
  });

  it('takes a peer with a disco key direct only after a pong, and reports the path', async () => {
    const a = await start('mwa', A);
    const b = await start('mwb', B);
    const nm = (self: Node, other: Node, port: number, disco: Buffer) => {
      const m = netmap(self, [{ node: other, port }], allowUdp(other.ip, 5678));
      m.peers[0]!.discoKey = disco.toString('base64');
      return m;
    };
    a.engine.apply(nm(A, B, b.engine.listenPort, b.engine.discoPublicKey));
    b.engine.apply(nm(B, A, a.engine.listenPort, a.engine.discoPublicKey));
    const bKey = B.key.publicKey.raw.toString('base64');
    const peer = a.engine.device.getPeer(B.key.publicKey.raw)!;
    expect(peer.roams).toBe(false);
    net.dropIf = (d) => isDiscoPacket(d); // no pongs yet
    send(a.engine, ipv4Packet(A.ip, B.ip, 'hello'));
    expect(b.tun.packets).toHaveLength(1); // no relay here: plain UDP to the listed endpoint
    expect(peer.direct).toBe(false); // the session's probes went unanswered
    expect(a.engine.peerLive(bKey)!.endpoint).toBeNull(); // not confirmed
    net.dropIf = null;
    const pong = a.engine.ping(bKey, 5000);
    net.flush();
    expect(await pong).toMatchObject({ path: 'direct', endpoint: `10.200.0.1:${b.engine.listenPort}`, relay: null });
    expect(peer.direct).toBe(true);
    expect(a.engine.peerLive(bKey)!.endpoint).toBe(`10.200.0.1:${b.engine.listenPort}`);
    await expect(a.engine.ping('bm9ib2R5', 100)).rejects.toThrow(/no disco key/);
  });

  it('sends a handshake the relay could not deliver again soon after the peer connects there, not at the retransmit', async () => {
    const relay = new RelayServer({ authorizer: { mayConnect: () => true, maySend: () => true } });
    const http = createServer((_q, res) => res.writeHead(404).end());
    relay.attach(http);
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    const until = async (cond: () => boolean, what: string, ms: number) => {
      for (const end = Date.now() + ms; !cond(); await new Promise((r) => setTimeout(r, 10))) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      }
    };
    try {
      const relays = [{ name: 'r', url: `ws://127.0.0.1:${(http.address() as AddressInfo).port}/relay` }];
      const a = await start('mwa', A);
      const b = await start('mwb', B);
      net.dropIf = () => true; // no UDP: only the relay
      a.engine.apply({ ...netmap(A, [{ node: B, port: b.engine.listenPort }], []), relays });
      await until(() => a.engine.relayState?.connected === true, 'a’s relay', 10_000);
      const t0 = Date.now();
      send(a.engine, ipv4Packet(A.ip, B.ip, 'first')); // b is not on the relay: undeliverable
      await new Promise((r) => setTimeout(r, REKEY_TIMEOUT / 2)); // past a's early re-sends (1 s apart)
      b.engine.apply({ ...netmap(B, [{ node: A, port: a.engine.listenPort }], allowUdp(A.ip, 5678)), relays });
      await until(() => b.tun.packets.length === 1, 'the packet through the relay', 2 * REKEY_TIMEOUT);
      expect(Date.now() - t0).toBeLessThan(REKEY_TIMEOUT); // not a's retransmit
    } finally {
      net.dropIf = null;
      relay.close();
      http.closeAllConnections();
      await new Promise((r) => http.close(r));
    }
  });

  it('changes the device’s addresses in place when the netmap changes them', async () => {
    const a = await start('mwa', A);
    const b = await start('mwb', B);
    const logs: string[] = [];
    (a.engine as unknown as { opts: { log: (l: string, m: string) => void } }).opts.log = (_l, m) => logs.push(m);
    a.engine.apply(netmap(A, [{ node: B, port: b.engine.listenPort }], []));
    b.engine.apply(netmap(B, [{ node: A, port: a.engine.listenPort }], allowUdp(A.ip, 5678)));
    send(a.engine, ipv4Packet(A.ip, B.ip, 'before'));
    const nm = netmap(A, [{ node: B, port: b.engine.listenPort }], []);
    nm.self.addresses = ['100.64.0.11/32', 'fd7a:115c:a1e0::11/128'];
    a.engine.apply(nm);
    expect(a.tun.addresses).toEqual(['100.64.0.11/32', 'fd7a:115c:a1e0::11/128']);
    expect(a.engine.tun).toBe(a.tun);
    expect(a.tun.closed).toBe(false);
    expect(a.tun.routes).toEqual(['100.64.0.0/10', 'fd7a:115c:a1e0::/48']); // not added again
    expect(logs.join('\n')).toMatch(/address 100\.64\.0\.1\/32 removed/);
    // The session and the peers are untouched.
    send(a.engine, ipv4Packet(A.ip, B.ip, 'after'));
    expect(b.tun.packets.map((p) => p.subarray(28).toString())).toEqual(['before', 'after']);
    // A TUN without removeAddress (older fakes) keeps the old address rather than failing.
    const c = await start('mwc', { ...A, key: new PrivateKey(Buffer.alloc(32, 0xc3)) });
    (c.tun as { removeAddress?: unknown }).removeAddress = undefined;
    c.engine.apply(netmap(A, [], []));
    c.engine.apply(nm);
    expect(c.tun.addresses).toEqual(['100.64.0.1/32', '100.64.0.11/32', 'fd7a:115c:a1e0::11/128']);
  });

  it('binds UDP once, on the port asked for, or on the kernel’s pick if it is taken', async () => {
    const taken = net.bind(0, () => {});
    const ports: number[] = [];
    const logs: string[] = [];
    const open = async (port: number) => {
      const tun = new FakeTun('mwp');
      const engine = await Engine.start({
        tunName: 'mwp', port, privateKey: A.key.raw, log: (_l, m) => logs.push(m), openTun: () => tun,
        bindUdp: (p, onBatch) => (ports.push(p), net.bind(p, onBatch)),
      });
      engines.push(engine);
      return engine;
    };
    const e1 = await open(41641);
    expect(e1.listenPort).toBe(41641);
    expect(ports).toEqual([41641]);
    const e2 = await open(taken.localPort);
    expect(e2.listenPort).not.toBe(taken.localPort);
    expect(e2.listenPort).toBeGreaterThan(0);
    expect(ports).toEqual([41641, taken.localPort, 0]);
    expect(logs.join('\n')).toContain(`UDP port ${taken.localPort} is taken; using port ${e2.listenPort}`);
    taken.close();
  });

  it('removes its TUN device on close', async () => {
    const a = await start('mwa', A);
    await a.engine.close();
    await a.engine.close();
    expect(a.tun.closed).toBe(true);
  });
});
