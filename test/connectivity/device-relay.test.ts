// The WireGuard device with a relay: two devices on an in-memory UDP network and the real relay
// (RelayServer and RelayClient over WebSocket on loopback). With UDP blocked, packets go through the
// relay both ways and never move a peer's UDP endpoint; with UDP working, they stay on the relay until
// path discovery (setPeerPath) says a direct path works.
import { afterEach, describe, expect, it } from 'vitest';
import { RelayClient } from '../../agent/connectivity/relay-client.js';
import { FakeClock } from '../../agent/wireguard/clock.js';
import { Device } from '../../agent/wireguard/device.js';
import { MemNetwork, MemTun, ipv4Packet } from '../../agent/wireguard/memnet.js';
import { MSG_TRANSPORT } from '../../agent/wireguard/messages.js';
import { MAX_EARLY_INITIATIONS, MAX_UNDELIVERED_RETRIES, REKEY_TIMEOUT } from '../../agent/wireguard/peer.js';
import { relayFor, twoKeys, untilTicking } from './relay-helpers.js';

describe('device through the relay', () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });

  async function setup(udpWorks: boolean, opts: { clockA?: FakeClock; startA?: boolean; startB?: boolean } = {}) {
    const net = new MemNetwork();
    if (!udpWorks) net.dropIf = () => true;
    const { raws, keys, ids } = twoKeys();
    const { url } = await relayFor(ids, cleanup);
    const sides = keys.map((key, i) => {
      const tun = new MemTun();
      const dev = new Device({ bindUdp: (port, cb) => net.bind(port, cb), tun, ...(i === 0 && opts.clockA ? { clock: opts.clockA } : {}) });
      dev.setPrivateKey(raws[i]!);
      dev.up();
      const client = new RelayClient({
        url,
        key,
        onPackets: (_src, buf, offsets, lengths, count) => dev.relayReceiveBatch(buf, offsets, lengths, count),
        onState: (s) => s === 'connected' && dev.relayReady(),
        onUndeliverable: (dst, reason) => dev.relayUndeliverable(dst, reason),
      });
      if (i === 0 ? opts.startA !== false : opts.startB !== false) client.start();
      dev.relay = client;
      cleanup.push(() => {
        client.close();
        dev.close();
      });
      return { dev, tun, client };
    });
    const [a, b] = sides as [(typeof sides)[0], (typeof sides)[0]];
    a.dev.setPeer(keys[1]!.publicKey, { endpoint: `10.200.0.1:${b.dev.port}`, allowedIPs: ['10.9.0.2/32'] });
    b.dev.setPeer(keys[0]!.publicKey, { endpoint: `10.200.0.1:${a.dev.port}`, allowedIPs: ['10.9.0.1/32'] });
    await Promise.all([opts.startA === false ? null : a.client.waitConnected(), opts.startB === false ? null : b.client.waitConnected()]);
    const send = (from: Device, pkts: Buffer[]) => {
      const buf = Buffer.concat(pkts);
      const offsets = new Uint32Array(pkts.length);
      const lengths = new Uint32Array(pkts.length);
      let off = 0;
      pkts.forEach((p, i) => {
        offsets[i] = off;
        lengths[i] = p.length;
        off += p.length;
      });
      from.onTunBatch(buf, offsets, lengths, pkts.length);
    };
    return { net, a, b, send, tick: () => net.flush(), url, raws, keys };
  }

  it('with UDP blocked, carries packets both ways through the relay without touching the endpoints', async () => {
    const { a, b, send, tick } = await setup(false);
    const ab = ipv4Packet('10.9.0.1', '10.9.0.2', 'hello from a');
    send(a.dev, [ab]);
    await untilTicking(() => b.tun.packets.length === 1, 'b to receive through the relay', tick);
    expect(b.tun.packets[0]).toEqual(ab);
    const ba = ipv4Packet('10.9.0.2', '10.9.0.1', 'hello from b');
    send(b.dev, [ba]);
    await untilTicking(() => a.tun.packets.length === 1, 'a to receive through the relay', tick);
    expect(a.tun.packets[0]).toEqual(ba);
    const pa = a.dev.listPeers()[0]!;
    const pb = b.dev.listPeers()[0]!;
    expect(pa.direct).toBe(false);
    expect(a.dev.relayed(pa)).toBe(true);
    expect(a.dev.endpointText(pa)).toBe(`10.200.0.1:${b.dev.port}`);
    expect(b.dev.endpointText(pb)).toBe(`10.200.0.1:${a.dev.port}`);
  });

  it('sends a handshake that went into the void again through the relay as soon as it connects', async () => {
    const { a, b, send, tick } = await setup(false);
    a.client.close(); // no relay yet: the initiation goes to the UDP endpoint, which drops it
    send(a.dev, [ipv4Packet('10.9.0.1', '10.9.0.2', 'first')]);
    expect(a.dev.handshakeCounts.initiated).toBe(1);
    await new Promise((r) => setTimeout(r, 100));
    const t0 = Date.now();
    a.client.start();
    await untilTicking(() => b.tun.packets.length === 1, 'the packet through the relay', tick);
    expect(a.dev.handshakeCounts.initiated).toBe(2);
    expect(Date.now() - t0).toBeLessThan(REKEY_TIMEOUT); // not the retransmit timer
  });

  it('answers an initiation that came over UDP there too while the peer is relayed (its relay may not be up yet)', async () => {
    const { a, b, send, tick } = await setup(true);
    a.dev.setPeerPath(a.dev.listPeers()[0]!, null); // path discovery owns both peers: relayed, no roaming
    b.dev.setPeerPath(b.dev.listPeers()[0]!, null);
    b.client.close(); // b has just started: no relay yet, so its initiation goes over UDP
    send(b.dev, [ipv4Packet('10.9.0.2', '10.9.0.1', 'from b')]);
    // a's answer through the relay cannot reach b; the copy over UDP does, long before b would retry.
    await untilTicking(() => a.tun.packets.length === 1, 'b’s packet at a', tick, REKEY_TIMEOUT - 1000);
    expect(a.dev.endpointText(a.dev.listPeers()[0]!)).toBe(`10.200.0.1:${b.dev.port}`);
    expect(a.dev.listPeers()[0]!.direct).toBe(false);
  });

  it('a restarted device answers a packet for a lost session, arriving through the relay, with a handshake', async () => {
    const { net, a, b, send, tick, url, raws, keys } = await setup(false);
    send(a.dev, [ipv4Packet('10.9.0.1', '10.9.0.2', 'first')]);
    await untilTicking(() => b.tun.packets.length === 1, 'the session', tick);
    // b restarts: same key, no sessions.
    b.client.close();
    b.dev.close();
    const tun = new MemTun();
    const dev = new Device({ bindUdp: (port, cb) => net.bind(port, cb), tun });
    dev.setPrivateKey(raws[1]!);
    dev.up();
    dev.setPeer(keys[0]!.publicKey, { endpoint: `10.200.0.1:${a.dev.port}`, allowedIPs: ['10.9.0.1/32'] });
    const client = new RelayClient({ url, key: keys[1]!, onPacket: (src, p) => dev.relayReceive(p, src), onState: (st) => st === 'connected' && dev.relayReady() }).start();
    dev.relay = client;
    await client.waitConnected();
    try {
      const old = a.dev.listPeers()[0]!.current;
      send(a.dev, [ipv4Packet('10.9.0.1', '10.9.0.2', 'for the old session')]); // b has no such session
      // b handshakes with a; a takes the new session once b's first message on it arrives.
      await untilTicking(() => dev.handshakeCounts.completed > 0 && a.dev.listPeers()[0]!.current !== old, 'b to handshake with a', tick, REKEY_TIMEOUT);
      send(a.dev, [ipv4Packet('10.9.0.1', '10.9.0.2', 'after')]);
      await untilTicking(() => tun.packets.length > 0, 'the packet on the new session', tick, REKEY_TIMEOUT);
    } finally {
      client.close();
      dev.close();
    }
  });

  it('re-sends an initiation the relay could not deliver (peer not connected yet) soon after the peer connects, not at the retransmit', async () => {
    // b has not connected to the relay yet: the relay answers a's initiation with "undeliverable".
    const { a, b, send, tick } = await setup(false, { startB: false });
    const t0 = Date.now();
    send(a.dev, [ipv4Packet('10.9.0.1', '10.9.0.2', 'first')]);
    // b comes up after the early re-sends (1 s apart) are spent, and long before a's retransmit.
    await new Promise((r) => setTimeout(r, REKEY_TIMEOUT / 2));
    b.client.start();
    await untilTicking(() => b.tun.packets.length === 1, 'the packet through the relay', tick, 2 * REKEY_TIMEOUT);
    expect(Date.now() - t0).toBeLessThan(REKEY_TIMEOUT); // not the retransmit timer
    // Bounded: a handful of re-sends, not a flood.
    expect(a.dev.handshakeCounts.initiated).toBeLessThanOrEqual(10);
  });

  it('a relay that reports every message undeliverable, over and over, gets only a bounded number of initiations', async () => {
    const clockA = new FakeClock();
    const { a, send, keys } = await setup(false, { clockA });
    a.dev.relay = { connected: true, send: () => true, sendSlots: () => true }; // a black hole
    send(a.dev, [ipv4Packet('10.9.0.1', '10.9.0.2', 'first')]);
    const ms = 20_000;
    for (let t = 0; t < ms; t += 20) {
      a.dev.relayUndeliverable(keys[1]!.publicKey, 1);
      clockA.advance(20);
    }
    // The first, the early re-sends, the retransmits, and at most MAX_UNDELIVERED_RETRIES for the notices.
    const retransmits = Math.ceil(ms / REKEY_TIMEOUT);
    expect(a.dev.handshakeCounts.initiated).toBeGreaterThan(1 + MAX_EARLY_INITIATIONS + retransmits);
    expect(a.dev.handshakeCounts.initiated).toBeLessThanOrEqual(1 + MAX_EARLY_INITIATIONS + retransmits + MAX_UNDELIVERED_RETRIES);
  });

  it('re-sends an initiation the relay could not deliver at once when the netmap says the peer may be reachable now', async () => {
    // a's clock stands still: no timer of a's can send the initiation again, only the netmap's news.
    const clockA = new FakeClock();
    const { a, b, send, tick, keys } = await setup(false, { clockA, startB: false });
    send(a.dev, [ipv4Packet('10.9.0.1', '10.9.0.2', 'first')]);
    await untilTicking(() => a.dev.listPeers()[0]!.undeliveredAt !== -Infinity, 'the relay’s notice', tick);
    b.client.start();
    await b.client.waitConnected();
    clockA.advance(100); // past the 50 ms flood guard
    expect(a.dev.handshakeCounts.initiated).toBe(1);
    a.dev.peerMayBeReachable(keys[1]!.publicKey); // b came online, or moved home
    expect(a.dev.handshakeCounts.initiated).toBe(2);
    await untilTicking(() => b.tun.packets.length === 1, 'the packet through the relay', tick);
  });

  it('sends a first initiation lost on the way through the relay again after a second, not after REKEY_TIMEOUT', async () => {
    const { a, b, send, tick } = await setup(false);
    const real = a.dev.relay!;
    let dropped = 0;
    a.dev.relay = {
      get connected() {
        return real.connected;
      },
      send: (dst, packet) => (dropped++ === 0 ? true : real.send(dst, packet)), // the relay loses the first
      sendSlots: (dst, buf, offsets, lengths, pick, count) => real.sendSlots(dst, buf, offsets, lengths, pick, count),
    };
    const t0 = Date.now();
    send(a.dev, [ipv4Packet('10.9.0.1', '10.9.0.2', 'first')]);
    await untilTicking(() => b.tun.packets.length === 1, 'the packet', tick, REKEY_TIMEOUT);
    expect(Date.now() - t0).toBeLessThan(REKEY_TIMEOUT - 1000);
    expect(a.dev.handshakeCounts.initiated).toBe(2);
  });

  it('splits a large batch into frames the relay accepts, and loses none', async () => {
    const { a, b, send, tick } = await setup(false);
    send(a.dev, [ipv4Packet('10.9.0.1', '10.9.0.2', 'first')]);
    await untilTicking(() => b.tun.packets.length === 1, 'the session', tick);
    const big = Array.from({ length: 100 }, (_, i) => ipv4Packet('10.9.0.1', '10.9.0.2', Buffer.alloc(1300, i)));
    send(a.dev, big);
    await untilTicking(() => b.tun.packets.length === 101, 'all 100 packets', tick);
    expect(b.tun.packets.slice(1)).toEqual(big);
    expect(a.dev.drops.sendBlocked).toBe(0);
  });

  it('with UDP working, stays on the relay until path discovery confirms a direct path (no guessing from handshakes)', async () => {
    const { net, a, b, send, tick } = await setup(true);
    send(a.dev, [ipv4Packet('10.9.0.1', '10.9.0.2', 'first')]);
    await untilTicking(() => b.tun.packets.length === 1, 'b to receive', tick);
    send(b.dev, [ipv4Packet('10.9.0.2', '10.9.0.1', 'answer')]);
    await untilTicking(() => a.tun.packets.length === 1, 'a to receive', tick);
    const pa = a.dev.listPeers()[0]!;
    expect(pa.direct).toBe(false);
    expect(a.dev.relayed(pa)).toBe(true);
    expect(net.log.filter((d) => d.data[0] === MSG_TRANSPORT)).toHaveLength(0);
  });

  it('follows setPeerPath: over UDP once direct, back through the relay when not, on the same session', async () => {
    const { net, a, b, send, tick } = await setup(true);
    send(a.dev, [ipv4Packet('10.9.0.1', '10.9.0.2', 'first')]);
    await untilTicking(() => b.tun.packets.length === 1, 'the session through the relay', tick);
    const pa = a.dev.listPeers()[0]!;
    const handshakes = a.dev.handshakeCounts.completed;
    a.dev.setPeerPath(pa, { address: '10.200.0.1', port: b.dev.port });
    send(a.dev, [ipv4Packet('10.9.0.1', '10.9.0.2', 'direct')]);
    await untilTicking(() => b.tun.packets.length === 2, 'the packet over UDP', tick);
    expect(net.log.filter((d) => d.data[0] === MSG_TRANSPORT)).toHaveLength(1);
    net.dropIf = () => true;
    a.dev.setPeerPath(pa, null);
    send(a.dev, [ipv4Packet('10.9.0.1', '10.9.0.2', 'relayed again')]);
    await untilTicking(() => b.tun.packets.length === 3, 'the packet through the relay', tick);
    expect(a.dev.handshakeCounts.completed).toBe(handshakes);
  });

  it('greets a peer through the relay as soon as the relay connects, not at the 5 s retransmit', async () => {
    // a's clock stands still: its retransmit timer can never fire, so only the relay coming up can send
    // the initiation that gets the waiting packet through.
    const clockA = new FakeClock();
    const { a, b, send, tick } = await setup(false, { clockA, startA: false });
    const ab = ipv4Packet('10.9.0.1', '10.9.0.2', 'waited for the relay');
    send(a.dev, [ab]); // staged; its initiation goes to b's UDP endpoint, and is lost
    const pa = a.dev.listPeers()[0]!;
    expect(pa.staged.length).toBe(1);
    expect(a.dev.handshakeCounts.initiated).toBe(1);
    // Past the flood guard between two initiations (50 ms), far from the 5 s retransmit.
    clockA.advance(100);
    a.client.start();
    await untilTicking(() => b.tun.packets.length === 1, 'b to receive the staged packet through the relay', tick);
    expect(b.tun.packets[0]).toEqual(ab);
    expect(a.dev.handshakeCounts.initiated).toBe(2);
  });

  it('greets a peer through the relay that connects right after an initiation went over UDP, once the flood guard allows', async () => {
    // A starting device: its first initiation goes over UDP (lost), and its relay connects a few ms later.
    const clockA = new FakeClock();
    const { a, b, send, tick } = await setup(false, { clockA, startA: false });
    send(a.dev, [ipv4Packet('10.9.0.1', '10.9.0.2', 'first')]);
    expect(a.dev.handshakeCounts.initiated).toBe(1);
    clockA.advance(10); // within the 50 ms flood guard
    a.client.start();
    await a.client.waitConnected(); // (relayReady has run: it is called as the client says connected)
    expect(a.dev.handshakeCounts.initiated).toBe(1);
    clockA.advance(40); // the guard has passed, the 5 s retransmit is far
    expect(a.dev.handshakeCounts.initiated).toBe(2);
    await untilTicking(() => b.tun.packets.length === 1, 'the packet through the relay', tick);
  });

  it('hands a batch frame from the relay to the device as one batch: one TUN write for all', async () => {
    const { a, b, send, tick } = await setup(false);
    send(a.dev, [ipv4Packet('10.9.0.1', '10.9.0.2', 'first')]);
    await untilTicking(() => b.tun.packets.length === 1, 'the session', tick);
    const writes: number[] = [];
    const write = b.tun.write.bind(b.tun);
    b.tun.write = (buf, offsets, lengths, count) => {
      writes.push(count);
      return write(buf, offsets, lengths, count);
    };
    const burst = Array.from({ length: 40 }, (_, i) => ipv4Packet('10.9.0.1', '10.9.0.2', Buffer.alloc(1200, i)));
    send(a.dev, burst);
    await untilTicking(() => b.tun.packets.length === 41, 'all 40 packets', tick);
    expect(b.tun.packets.slice(1)).toEqual(burst);
    expect(writes).toEqual([40]);
  });

  it('back-to-back batches while the relay connection is backed up arrive intact and in order', async () => {
    // The send path builds each frame in a buffer it reuses once the socket has written it: one reused
    // too early would carry a later batch's packets twice and lose the earlier ones.
    const { a, b, send, tick } = await setup(false);
    send(a.dev, [ipv4Packet('10.9.0.1', '10.9.0.2', 'first')]);
    await untilTicking(() => b.tun.packets.length === 1, 'the session', tick);
    const sent: Buffer[] = [];
    // Until the kernel's socket buffers are full and frames wait in the WebSocket's own queue.
    for (let round = 0; round < 1000 && a.client.queuedBytes < 1024 * 1024; round++) {
      const burst = Array.from({ length: 40 }, (_, i) => ipv4Packet('10.9.0.1', '10.9.0.2', Buffer.alloc(1200, (round * 40 + i) % 251)));
      send(a.dev, burst); // all in one turn of the event loop: nothing is read meanwhile
      sent.push(...burst);
    }
    expect(a.client.queuedBytes).toBeGreaterThan(1024 * 1024);
    expect(a.dev.drops.sendBlocked).toBe(0);
    await untilTicking(() => b.tun.packets.length === 1 + sent.length, `all ${sent.length} packets`, tick, 30_000);
    const wrong = sent.findIndex((p, i) => !p.equals(b.tun.packets[1 + i]!));
    expect(wrong).toBe(-1);
  }, 60_000);
});
