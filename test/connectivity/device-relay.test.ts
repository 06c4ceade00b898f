// The WireGuard device with a relay: two devices on an in-memory UDP network and the real relay
// (RelayServer and RelayClient over WebSocket on loopback). With UDP blocked, packets go through the
// relay both ways and never move a peer's UDP endpoint; with UDP working, the first handshake goes both
// ways at once and an answer over UDP takes the peers direct.
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { RelayClient } from '../../agent/connectivity/relay-client.js';
import { FakeClock } from '../../agent/wireguard/clock.js';
import { Device } from '../../agent/wireguard/device.js';
import { MemNetwork, MemTun, ipv4Packet } from '../../agent/wireguard/memnet.js';
import { MSG_TRANSPORT } from '../../agent/wireguard/messages.js';
import { RelayServer } from '../../coord/relay/server.js';
import { X25519Key } from '../../wire/x25519.js';

async function until(cond: () => boolean, what: string, tick: () => void, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    tick();
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('device through the relay', () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });

  async function setup(udpWorks: boolean, opts: { clockA?: FakeClock; startA?: boolean } = {}) {
    const net = new MemNetwork();
    if (!udpWorks) net.dropIf = () => true;
    const raws = [randomBytes(32), randomBytes(32)];
    const keys = raws.map((r) => new X25519Key(r));
    const ids = keys.map((k) => k.publicKey.toString('base64'));
    const relay = new RelayServer({ authorizer: { mayConnect: (k) => ids.includes(k), maySend: (f, t) => ids.includes(f) && ids.includes(t) } });
    const http: Server = createServer((_q, res) => res.writeHead(404).end());
    relay.attach(http);
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    const url = `ws://127.0.0.1:${(http.address() as AddressInfo).port}/relay`;
    cleanup.push(async () => {
      relay.close();
      http.closeAllConnections();
      await new Promise((r) => http.close(r));
    });
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
      });
      if (i !== 0 || opts.startA !== false) client.start();
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
    await Promise.all([opts.startA === false ? null : a.client.waitConnected(), b.client.waitConnected()]);
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
    return { net, a, b, send, tick: () => net.flush() };
  }

  it('with UDP blocked, carries packets both ways through the relay without touching the endpoints', async () => {
    const { a, b, send, tick } = await setup(false);
    const ab = ipv4Packet('10.9.0.1', '10.9.0.2', 'hello from a');
    send(a.dev, [ab]);
    await until(() => b.tun.packets.length === 1, 'b to receive through the relay', tick);
    expect(b.tun.packets[0]).toEqual(ab);
    const ba = ipv4Packet('10.9.0.2', '10.9.0.1', 'hello from b');
    send(b.dev, [ba]);
    await until(() => a.tun.packets.length === 1, 'a to receive through the relay', tick);
    expect(a.tun.packets[0]).toEqual(ba);
    const pa = a.dev.listPeers()[0]!;
    const pb = b.dev.listPeers()[0]!;
    expect(pa.direct).toBe(false);
    expect(a.dev.relayed(pa)).toBe(true);
    expect(a.dev.endpointText(pa)).toBe(`10.200.0.1:${b.dev.port}`);
    expect(b.dev.endpointText(pb)).toBe(`10.200.0.1:${a.dev.port}`);
  });

  it('splits a large batch into frames the relay accepts, and loses none', async () => {
    const { a, b, send, tick } = await setup(false);
    send(a.dev, [ipv4Packet('10.9.0.1', '10.9.0.2', 'first')]);
    await until(() => b.tun.packets.length === 1, 'the session', tick);
    const big = Array.from({ length: 100 }, (_, i) => ipv4Packet('10.9.0.1', '10.9.0.2', Buffer.alloc(1300, i)));
    send(a.dev, big);
    await until(() => b.tun.packets.length === 101, 'all 100 packets', tick);
    expect(b.tun.packets.slice(1)).toEqual(big);
    expect(a.dev.drops.sendBlocked).toBe(0);
  });

  it('with UDP working, goes direct after the first handshake and sends data over UDP', async () => {
    const { net, a, b, send, tick } = await setup(true);
    send(a.dev, [ipv4Packet('10.9.0.1', '10.9.0.2', 'first')]);
    await until(() => b.tun.packets.length === 1, 'b to receive', tick);
    const pa = a.dev.listPeers()[0]!;
    await until(() => pa.direct, 'a to go direct', tick);
    const before = net.log.filter((d) => d.data[0] === MSG_TRANSPORT).length;
    send(a.dev, [ipv4Packet('10.9.0.1', '10.9.0.2', 'second')]);
    await until(() => b.tun.packets.length === 2, 'b to receive the second', tick);
    expect(net.log.filter((d) => d.data[0] === MSG_TRANSPORT).length).toBe(before + 1);
    expect(a.dev.relayed(pa)).toBe(false);
  });

  it('when the direct path dies, a handshake through the relay takes both sides back to the relay', async () => {
    const { net, a, b, send, tick } = await setup(true);
    send(a.dev, [ipv4Packet('10.9.0.1', '10.9.0.2', 'first')]);
    const pa = a.dev.listPeers()[0]!;
    const pb = b.dev.listPeers()[0]!;
    await until(() => b.tun.packets.length === 1 && pa.direct && pb.direct, 'the direct path', tick);
    // UDP dies; a notices (as its retransmit or new-handshake timer would) and greets b again.
    net.dropIf = () => true;
    pa.direct = false;
    const before = pa.lastHandshake;
    await new Promise((r) => setTimeout(r, 50)); // responders refuse initiations less than 20 ms apart
    pa.handshake.lastSentInitiation = -Infinity; // as if REKEY_TIMEOUT had passed
    a.dev.initiateHandshake(b.dev.publicKey!.raw);
    await until(() => pa.lastHandshake > before, 'the handshake through the relay', tick);
    expect(pb.direct).toBe(false); // b answered through the relay, not into the dead UDP path
    send(b.dev, [ipv4Packet('10.9.0.2', '10.9.0.1', 'back')]);
    await until(() => a.tun.packets.length === 1, 'a to receive through the relay', tick);
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
    a.client.start();
    await until(() => b.tun.packets.length === 1, 'b to receive the staged packet through the relay', tick);
    expect(b.tun.packets[0]).toEqual(ab);
    expect(a.dev.handshakeCounts.initiated).toBe(2);
  });

  it('hands a batch frame from the relay to the device as one batch: one TUN write for all', async () => {
    const { a, b, send, tick } = await setup(false);
    send(a.dev, [ipv4Packet('10.9.0.1', '10.9.0.2', 'first')]);
    await until(() => b.tun.packets.length === 1, 'the session', tick);
    const writes: number[] = [];
    const write = b.tun.write.bind(b.tun);
    b.tun.write = (buf, offsets, lengths, count) => {
      writes.push(count);
      return write(buf, offsets, lengths, count);
    };
    const burst = Array.from({ length: 40 }, (_, i) => ipv4Packet('10.9.0.1', '10.9.0.2', Buffer.alloc(1200, i)));
    send(a.dev, burst);
    await until(() => b.tun.packets.length === 41, 'all 40 packets', tick);
    expect(b.tun.packets.slice(1)).toEqual(burst);
    expect(writes).toEqual([40]);
  });

  it('back-to-back batches while the relay connection is backed up arrive intact and in order', async () => {
    // The send path builds each frame in a buffer it reuses once the socket has written it: one reused
    // too early would carry a later batch's packets twice and lose the earlier ones.
    const { a, b, send, tick } = await setup(false);
    send(a.dev, [ipv4Packet('10.9.0.1', '10.9.0.2', 'first')]);
    await until(() => b.tun.packets.length === 1, 'the session', tick);
    const sent: Buffer[] = [];
    // Until the kernel's socket buffers are full and frames wait in the WebSocket's own queue.
    for (let round = 0; round < 1000 && a.client.queuedBytes < 1024 * 1024; round++) {
      const burst = Array.from({ length: 40 }, (_, i) => ipv4Packet('10.9.0.1', '10.9.0.2', Buffer.alloc(1200, (round * 40 + i) % 251)));
      send(a.dev, burst); // all in one turn of the event loop: nothing is read meanwhile
      sent.push(...burst);
    }
    expect(a.client.queuedBytes).toBeGreaterThan(1024 * 1024);
    expect(a.dev.drops.sendBlocked).toBe(0);
    await until(() => b.tun.packets.length === 1 + sent.length, `all ${sent.length} packets`, tick, 30_000);
    const wrong = sent.findIndex((p, i) => !p.equals(b.tun.packets[1 + i]!));
    expect(wrong).toBe(-1);
  }, 60_000);
});
