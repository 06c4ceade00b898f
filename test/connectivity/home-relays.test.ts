// Two relays, two devices with different home relays (agent/connectivity/relay-links.ts): each device
// keeps its home relay open and reaches the other through the other's home, connected on demand and
// closed again when idle. Real RelayServers and RelayClients over WebSocket on loopback; the devices on
// an in-memory UDP network that drops everything (no direct path).
import { afterEach, describe, expect, it } from 'vitest';
import { RelayLinks } from '../../agent/connectivity/relay-links.js';
import { Device } from '../../agent/wireguard/device.js';
import { MemNetwork, MemTun, ipv4Packet } from '../../agent/wireguard/memnet.js';
import { relayFor, twoKeys, untilTicking } from './relay-helpers.js';

describe('devices with different home relays', () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });

  async function setup() {
    const net = new MemNetwork();
    net.dropIf = () => true;
    const { raws, keys, ids } = twoKeys();
    const r1 = await relayFor(ids, cleanup);
    const r2 = await relayFor(ids, cleanup);
    const map = [{ name: 'one', url: r1.url }, { name: 'two', url: r2.url }];
    let now = 0;
    const sides = keys.map((key, i) => {
      const tun = new MemTun();
      const dev = new Device({ bindUdp: (port, cb) => net.bind(port, cb), tun });
      dev.setPrivateKey(raws[i]!);
      dev.up();
      const links = new RelayLinks({
        key,
        onPackets: (_src, buf, offsets, lengths, count) => dev.relayReceiveBatch(buf, offsets, lengths, count),
        onReady: () => dev.relayReady(),
        log: () => {},
        idleMs: 1000,
        now: () => now,
      });
      links.setMap(map);
      links.setHome(i === 0 ? 'one' : 'two');
      dev.relay = links.home;
      cleanup.push(() => {
        links.close();
        dev.close();
      });
      return { dev, tun, links };
    });
    const [a, b] = sides as [(typeof sides)[0], (typeof sides)[0]];
    a.dev.setPeer(keys[1]!.publicKey, { allowedIPs: ['10.9.0.2/32'] });
    b.dev.setPeer(keys[0]!.publicKey, { allowedIPs: ['10.9.0.1/32'] });
    const send = (from: Device, pkt: Buffer) => from.onTunBatch(pkt, new Uint32Array([0]), new Uint32Array([pkt.length]), 1);
    return { a, b, r1, r2, send, tick: () => net.flush(), advance: (ms: number) => (now += ms) };
  }

  it("each reaches the other through the other's home relay, opened on demand", async () => {
    const { a, b, r1, r2, send, tick } = await setup();
    await untilTicking(() => a.links.home!.client.connected && b.links.home!.client.connected, 'the homes', tick);
    expect(a.links.openNames()).toEqual(['one']);
    expect(b.links.openNames()).toEqual(['two']);
    // b reported home "two", a reported "one".
    a.dev.listPeers()[0]!.relay = a.links.linkFor('two');
    b.dev.listPeers()[0]!.relay = b.links.linkFor('one');

    const ab = ipv4Packet('10.9.0.1', '10.9.0.2', 'hello from a');
    send(a.dev, ab);
    // b's answer to the first handshake is lost while b opens "one"; b then starts a handshake itself
    // rather than waiting for a's retry (REKEY_TIMEOUT, 5 s): hence the ceiling below that.
    await untilTicking(() => b.tun.packets.length === 1, 'b to receive before a handshake retry', tick, 4000);
    expect(b.tun.packets[0]).toEqual(ab);
    send(b.dev, ipv4Packet('10.9.0.2', '10.9.0.1', 'hello from b'));
    await untilTicking(() => a.tun.packets.length === 1, 'a to receive', tick);
    expect(a.links.openNames()).toEqual(['one', 'two']);
    expect(b.links.openNames()).toEqual(['one', 'two']);
    // Everything a sent went through "two" (b's home), everything b sent through "one" (a's home).
    const before = { one: r1.server.counters.forwardedPackets, two: r2.server.counters.forwardedPackets };
    for (let i = 0; i < 5; i++) send(a.dev, ipv4Packet('10.9.0.1', '10.9.0.2', `a ${i}`));
    await untilTicking(() => b.tun.packets.length === 6, 'five more at b', tick);
    expect(r2.server.counters.forwardedPackets - before.two).toBe(5);
    expect(r1.server.counters.forwardedPackets - before.one).toBe(0);
    expect(r1.server.counters.dropped.notHere + r2.server.counters.dropped.notHere).toBe(0);
  });

  it('closes an idle on-demand relay (never the home) and opens it again when needed', async () => {
    const { a, b, send, tick, advance } = await setup();
    await untilTicking(() => a.links.home!.client.connected && b.links.home!.client.connected, 'the homes', tick);
    a.dev.listPeers()[0]!.relay = a.links.linkFor('two');
    b.dev.listPeers()[0]!.relay = b.links.linkFor('one');
    send(a.dev, ipv4Packet('10.9.0.1', '10.9.0.2', 'first'));
    await untilTicking(() => b.tun.packets.length === 1, 'b to receive', tick);
    // Two sweeps with no traffic in between, idleMs apart: "two" closes on a's side, "one" stays.
    a.links.sweep();
    advance(1000);
    a.links.sweep();
    expect(a.links.openNames()).toEqual(['one']);
    // Wait out the session's keepalives, then the next packet reopens "two" and goes through it.
    send(a.dev, ipv4Packet('10.9.0.1', '10.9.0.2', 'second'));
    await untilTicking(() => b.tun.packets.length === 2, 'b to receive after the reopen', tick);
    expect(a.links.openNames()).toEqual(['one', 'two']);
  });

  it('only a packet opens another relay, not a relay connecting (the device then looks at every peer)', async () => {
    const { a, b, tick } = await setup();
    a.dev.listPeers()[0]!.relay = a.links.linkFor('two'); // before "one" is ready
    await untilTicking(() => a.links.home!.client.connected && b.links.home!.client.connected, 'the homes', tick);
    await new Promise((r) => setTimeout(r, 100));
    expect(a.links.openNames()).toEqual(['one']);
  });

  it("a peer that reported no home relay is reached through the device's own home", async () => {
    const { a, b, r1, send, tick } = await setup();
    await untilTicking(() => a.links.home!.client.connected && b.links.home!.client.connected, 'the homes', tick);
    // b sends to a with no relay set for a: through b's home ("two"), where a is not connected.
    b.dev.listPeers()[0]!.relay = null;
    a.dev.listPeers()[0]!.relay = a.links.linkFor('two');
    const before = r1.server.counters.forwardedPackets;
    send(a.dev, ipv4Packet('10.9.0.1', '10.9.0.2', 'hello'));
    await untilTicking(() => b.tun.packets.length === 1, 'b to receive (a is now on "two" as well)', tick);
    send(b.dev, ipv4Packet('10.9.0.2', '10.9.0.1', 'back through two'));
    await untilTicking(() => a.tun.packets.length === 1, 'a to receive through "two"', tick);
    expect(r1.server.counters.forwardedPackets).toBe(before);
    expect(b.links.openNames()).toEqual(['two']);
  });
});
