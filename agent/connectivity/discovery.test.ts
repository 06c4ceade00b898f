// Path discovery wired to two real WireGuard devices on an in-memory UDP network, with an in-memory
// relay between them and a hand-driven clock: relayed from the first packet, direct once a pong
// confirms the endpoint, back to the relay when UDP dies, direct again when it heals. Forged and
// replayed disco messages, and authentic WireGuard packets from elsewhere, move nothing.
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { X25519Key } from '../../wire/x25519.js';
import { Device, MemNetwork, MemTun, ipv4Packet } from '../wireguard/index.js';
import { MSG_TRANSPORT } from '../wireguard/messages.js';
import { DISCO_MAGIC, DiscoBox, isDiscoPacket } from './disco.js';
import { PathDiscovery } from './discovery.js';
import { REPROBE_RELAYED_MS, TRUST_MS } from './paths.js';

interface Side {
  dev: Device;
  tun: MemTun;
  disco: PathDiscovery;
  discoKey: X25519Key;
  port: number;
}

class Lab {
  now = 0;
  readonly net = new MemNetwork();
  /** Packets through the in-memory relay: [from side index, packet]. */
  private relayQueue: Array<{ to: number; src: Buffer; packet: Buffer }> = [];
  relayed = 0;
  readonly sides: Side[] = [];

  constructor() {
    const raws = [randomBytes(32), randomBytes(32)];
    for (let i = 0; i < 2; i++) {
      const tun = new MemTun();
      const dev = new Device({ bindUdp: (port, cb) => this.net.bind(port, cb), tun });
      dev.setPrivateKey(raws[i]!);
      dev.up();
      const discoKey = X25519Key.generate();
      const disco = new PathDiscovery({
        device: dev,
        discoKey,
        now: () => this.now,
        relaySend: (dst, packet) => this.relaySend(i, dst, packet),
        ownEndpoints: () => [{ address: '10.200.0.1', port: dev.port }],
        log: () => {},
      });
      dev.onDisco = (packet, from) => disco.receiveUdp(packet, from);
      const side: Side = { dev, tun, disco, discoKey, port: dev.port };
      dev.relay = {
        connected: true,
        send: (dst, packet) => this.relaySend(i, Buffer.from(dst), Buffer.from(packet)),
        sendSlots: (dst, buf, offsets, lengths, pick, count) => {
          for (let k = 0; k < count; k++) {
            const slot = pick[k]!;
            this.relaySend(i, Buffer.from(dst), Buffer.from(buf.subarray(offsets[slot]!, offsets[slot]! + lengths[slot]!)));
          }
          return true;
        },
      };
      this.sides.push(side);
    }
    const [a, b] = this.sides as [Side, Side];
    a.dev.setPeer(b.dev.publicKey!.raw, { allowedIPs: ['10.9.0.2/32'] });
    b.dev.setPeer(a.dev.publicKey!.raw, { allowedIPs: ['10.9.0.1/32'] });
    const cfg = (s: Side, i: number) => ({
      nodeKey: `n${i}`,
      publicKey: s.dev.publicKey!.raw,
      discoKey: s.discoKey.publicKey,
      endpoints: [{ address: '10.200.0.1', port: s.port }],
      name: `side${i}`,
    });
    a.disco.setPeers([cfg(b, 1)]);
    b.disco.setPeers([cfg(a, 0)]);
  }

  get a(): Side {
    return this.sides[0]!;
  }
  get b(): Side {
    return this.sides[1]!;
  }
  peerOf(s: Side) {
    return s.dev.listPeers()[0]!;
  }

  private relaySend(from: number, dst: Buffer, packet: Buffer): boolean {
    const to = this.sides.findIndex((s) => s.dev.publicKey!.raw.equals(dst));
    if (to < 0) return false;
    this.relayQueue.push({ to, src: this.sides[from]!.dev.publicKey!.raw, packet });
    return true;
  }

  /** Delivers everything in flight (UDP and relay) until quiet. */
  pump(): void {
    for (let round = 0; round < 100; round++) {
      const n = this.net.flush();
      const q = this.relayQueue.splice(0);
      for (const { to, src, packet } of q) {
        const s = this.sides[to]!;
        this.relayed++;
        if (isDiscoPacket(packet)) s.disco.receiveRelay(src, packet);
        else s.dev.relayReceive(packet);
      }
      if (n === 0 && q.length === 0) return;
    }
  }

  /** Advances the clock in ticks of 250 ms (as the engine does), delivering after each. */
  advance(ms: number): void {
    for (let t = 0; t < ms; t += 250) {
      this.now += 250;
      for (const s of this.sides) s.disco.tick();
      this.pump();
    }
  }

  send(from: Side, to: string, text: string): void {
    const src = from === this.a ? '10.9.0.1' : '10.9.0.2';
    const p = ipv4Packet(src, to, text);
    from.dev.onTunBatch(p, Uint32Array.of(0), Uint32Array.of(p.length), 1);
    this.pump();
  }

  udpTransports(): number {
    return this.net.log.filter((d) => d.data[0] === MSG_TRANSPORT).length;
  }
}

describe('PathDiscovery on WireGuard devices', () => {
  const labs: Lab[] = [];
  const lab = () => {
    const l = new Lab();
    labs.push(l);
    return l;
  };
  afterEach(() => {
    for (const l of labs.splice(0)) for (const s of l.sides) s.dev.close();
  });

  it('relays from the first packet, goes direct once a pong confirms the endpoint, and carries data over UDP', () => {
    const l = lab();
    l.send(l.a, '10.9.0.2', 'first');
    expect(l.b.tun.packets).toHaveLength(1); // through the relay: no pong yet
    expect(l.udpTransports()).toBe(0);
    expect(l.a.disco.path('n1')).toEqual({ kind: 'relay' });
    l.advance(250); // the first tick sees the traffic: pings over UDP, pongs come back
    expect(l.a.disco.path('n1')).toMatchObject({ kind: 'direct', endpoint: { address: '10.200.0.1', port: l.b.port } });
    expect(l.peerOf(l.a).direct).toBe(true);
    const relayedBefore = l.relayed;
    l.send(l.a, '10.9.0.2', 'second');
    expect(l.b.tun.packets).toHaveLength(2);
    expect(l.udpTransports()).toBe(1);
    expect(l.relayed).toBe(relayedBefore);
  });

  it('probes as soon as a WireGuard session begins, without waiting for a tick', () => {
    const l = lab();
    for (const s of l.sides) s.dev.onSession = (peer) => s.disco.sessionStarted(peer);
    l.send(l.a, '10.9.0.2', 'first');
    expect(l.b.tun.packets).toHaveLength(1);
    expect(l.peerOf(l.a).direct).toBe(true);
    expect(l.peerOf(l.b).direct).toBe(true);
  });

  it('falls back to the relay when UDP dies, keeps the session, and returns when it heals', () => {
    const l = lab();
    l.send(l.a, '10.9.0.2', 'first');
    l.advance(500);
    expect(l.peerOf(l.a).direct).toBe(true);
    l.net.dropIf = () => true;
    const handshakes = l.a.dev.handshakeCounts.completed + l.b.dev.handshakeCounts.completed;
    let fellBackAfter = -1;
    for (let t = 250; t <= TRUST_MS + 1000; t += 250) {
      l.send(l.a, '10.9.0.2', `during ${t}`); // traffic keeps the peer active
      l.advance(250);
      if (!l.peerOf(l.a).direct) {
        fellBackAfter = t;
        break;
      }
    }
    expect(fellBackAfter).toBeGreaterThan(0);
    expect(fellBackAfter).toBeLessThanOrEqual(TRUST_MS + 250);
    const before = l.b.tun.packets.length;
    l.send(l.a, '10.9.0.2', 'through the relay');
    expect(l.b.tun.packets.length).toBe(before + 1);
    // The same session: no new handshake was needed to switch.
    expect(l.a.dev.handshakeCounts.completed + l.b.dev.handshakeCounts.completed).toBe(handshakes);
    l.net.dropIf = null;
    for (let t = 0; t < REPROBE_RELAYED_MS + 1000 && !l.peerOf(l.a).direct; t += 250) {
      l.send(l.a, '10.9.0.2', 'x');
      l.advance(250);
    }
    expect(l.peerOf(l.a).direct).toBe(true);
  });

  it('does not move a peer for forged pongs, replayed pongs or authentic WireGuard packets from elsewhere', () => {
    const l = lab();
    // No disco over UDP: pings go out but nothing answers.
    l.net.dropIf = (d) => isDiscoPacket(d);
    l.send(l.a, '10.9.0.2', 'first');
    l.advance(250);
    const pings = l.net.log.filter((d) => isDiscoPacket(d.data) && d.fromPort === l.a.port);
    expect(pings.length).toBeGreaterThan(0);
    const refused = l.a.disco.counters.refused;

    // 1. A pong from an attacker's own disco key (not a peer's): refused before any key agreement.
    const mallory = new DiscoBox(X25519Key.generate());
    const forged = mallory.seal(l.a.disco.publicKey, { type: 'pong', txId: randomBytes(12), src: { address: '10.200.0.1', port: l.a.port } });
    l.net.inject(forged, l.a.port, 6666);
    // 2. The same, claiming to be b: its disco public key in the header, sealed without b's private key.
    const claimed = Buffer.from(forged);
    l.b.discoKey.publicKey.copy(claimed, DISCO_MAGIC.length);
    l.net.inject(claimed, l.a.port, 6666);
    l.pump();
    expect(l.a.disco.counters.refused).toBe(refused + 2);
    expect(l.peerOf(l.a).direct).toBe(false);

    // 3. Genuine pongs from b, answering a's pings, taken off the wire and replayed from the
    // attacker's address.
    l.net.dropIf = null;
    const taken: Buffer[] = [];
    const sendDatagram = l.b.dev.sendDatagram.bind(l.b.dev);
    l.b.dev.sendDatagram = (packet) => (taken.push(Buffer.from(packet)), true);
    l.advance(REPROBE_RELAYED_MS); // a pings again; b answers into `taken`
    l.b.dev.sendDatagram = sendDatagram;
    const asA = new DiscoBox(l.a.discoKey); // to tell the pongs from the pings
    const pongs = taken.filter((d) => {
      const r = asA.open(d, () => true);
      return r.ok && r.message.type === 'pong';
    });
    expect(pongs.length).toBeGreaterThan(0);
    for (const p of pongs) l.net.inject(p, l.a.port, 6666);
    l.pump();
    expect(l.peerOf(l.a).direct).toBe(false);
    expect(l.a.disco.path('n1')).toEqual({ kind: 'relay' });

    // 4. An authentic WireGuard packet from b, delivered from another address: accepted as data, but
    // the endpoint does not roam there (only a pong moves a peer).
    let captured: Buffer | null = null;
    l.net.dropIf = (d) => {
      if (d[0] === MSG_TRANSPORT && !captured) captured = Buffer.from(d);
      return isDiscoPacket(d) || d[0] === MSG_TRANSPORT;
    };
    l.b.dev.setPeerPath(l.peerOf(l.b), { address: '10.200.0.1', port: l.a.port }); // b sends over UDP
    l.send(l.b, '10.9.0.1', 'from b');
    expect(captured).not.toBeNull();
    const endpointBefore = l.a.dev.endpointText(l.peerOf(l.a));
    const got = l.a.tun.packets.length;
    l.net.inject(captured!, l.a.port, 6666);
    l.pump();
    expect(l.a.tun.packets.length).toBe(got + 1);
    expect(l.a.dev.endpointText(l.peerOf(l.a))).toBe(endpointBefore);
    expect(l.peerOf(l.a).direct).toBe(false);
  });

  it('refuses a disco message through the relay from a device other than the disco key’s owner', () => {
    const l = lab();
    const sealedByB = new DiscoBox(l.b.discoKey).seal(l.a.disco.publicKey, { type: 'callMeMaybe', endpoints: [{ address: '192.0.2.1', port: 1 }] });
    const refused = l.a.disco.counters.refused;
    l.a.disco.receiveRelay(randomBytes(32), sealedByB);
    expect(l.a.disco.counters.refused).toBe(refused + 1);
    expect(l.a.disco.candidates('n1')).toEqual([{ address: '10.200.0.1', port: l.b.port }]);
    l.a.disco.receiveRelay(l.b.dev.publicKey!.raw, sealedByB);
    expect(l.a.disco.candidates('n1')).toContainEqual({ address: '192.0.2.1', port: 1 });
  });

  it('answers `agent ping` through the relay while relayed, and over UDP once direct', () => {
    const l = lab();
    l.net.dropIf = (d) => isDiscoPacket(d);
    const results: string[] = [];
    l.a.disco.probe('n1', (r) => results.push(r.via.kind));
    l.pump();
    expect(results).toEqual(['relay']);
    l.net.dropIf = null;
    l.a.disco.probe('n1', (r) => results.push(r.via.kind));
    l.pump();
    expect(results.slice(1).sort()).toEqual(['relay', 'udp']); // the UDP pong confirmed the path
    expect(l.peerOf(l.a).direct).toBe(true);
    l.a.disco.probe('n1', (r) => results.push(r.via.kind));
    l.pump();
    expect(results.slice(3)).toEqual(['udp']); // direct: only the path in use is pinged
    expect(l.a.disco.probe('nobody', () => {})).toBe(false);
  });
});
