// A device that restarts (same key, same port, no sessions) while its peers still hold sessions with
// its previous run: the peers' packets must get through again within a round trip, not after their
// keepalive and rekey timers (~15 s).
import { describe, expect, it } from 'vitest';
import { FakeClock } from './clock.js';
import { PrivateKey } from './crypto.js';
import { Device } from './device.js';
import { MemNetwork, MemTun, ipv4Packet } from './memnet.js';
import { MSG_INITIATION, MSG_TRANSPORT } from './messages.js';

const keyA = new PrivateKey(Buffer.alloc(32, 0xa1));
const keyB = new PrivateKey(Buffer.alloc(32, 0xb2));
const AB = ipv4Packet('10.9.0.1', '10.9.0.2', 'hello from a');

/** Devices a and b on one in-memory network and fake clock, each the other's peer. */
function twoDevices() {
  const clock = new FakeClock();
  const net = new MemNetwork();
  const device = (key: PrivateKey, port: number) => {
    const tun = new MemTun();
    const dev = new Device({ bindUdp: (p, cb) => net.bind(p, cb), tun, clock });
    dev.setPrivateKey(key.raw);
    dev.setListenPort(port);
    dev.up();
    return { dev, tun };
  };
  const a = device(keyA, 51001);
  const b = device(keyB, 51002);
  a.dev.setPeer(keyB.publicKey.raw, { endpoint: '10.200.0.1:51002', allowedIPs: ['10.9.0.2/32'] });
  b.dev.setPeer(keyA.publicKey.raw, { endpoint: '10.200.0.1:51001', allowedIPs: ['10.9.0.1/32'] });
  return { clock, net, device, a, b };
}

function setUp() {
  const two = twoDevices();
  const { clock, net, device, a } = two;
  let b = two.b;
  const send = (from: Device, pkt: Buffer) => from.onTunBatch(pkt, Uint32Array.of(0), Uint32Array.of(pkt.length), 1);
  const restartB = () => {
    b.dev.close();
    b = device(keyB, 51002);
    b.dev.setPeer(keyA.publicKey.raw, { endpoint: '10.200.0.1:51001', allowedIPs: ['10.9.0.1/32'] });
    return b;
  };
  // a and b talk, then b restarts.
  send(a.dev, AB);
  net.flush();
  expect(b.tun.packets).toHaveLength(1);
  return { clock, net, a, restartB, send, sent: () => net.log.length };
}

describe('Device: a peer restarts', () => {
  it('answers a transport packet for an unknown session from a known peer with a handshake', () => {
    const { net, a, restartB, send, clock } = setUp();
    const b = restartB();
    clock.advance(1000);
    const from = net.log.length;
    send(a.dev, AB); // a still uses its old session: b cannot open it
    net.flush();
    expect(b.dev.drops.noKeypair).toBe(1);
    expect(b.tun.packets).toHaveLength(0);
    // b initiated, a answered, b confirmed with a keepalive: a's next packet goes through.
    expect(net.log.slice(from).map((d) => d.data[0])).toEqual([MSG_TRANSPORT, MSG_INITIATION, 2, MSG_TRANSPORT]);
    send(a.dev, AB);
    net.flush();
    expect(b.tun.packets).toEqual([AB]);
  });

  it('initiates at most once per REKEY_TIMEOUT however many such packets arrive', () => {
    const { net, a, restartB, send } = setUp();
    const b = restartB();
    net.dropIf = (d) => d[0] === MSG_INITIATION; // a never hears b
    const from = net.log.length;
    for (let i = 0; i < 50; i++) send(a.dev, AB);
    net.flush();
    expect(b.dev.drops.noKeypair).toBe(50);
    expect(net.log.slice(from).filter((d) => d.data[0] === MSG_INITIATION)).toHaveLength(1);
  });

  it('ignores such packets from an address that is no peer’s endpoint', () => {
    const { net, a, restartB, send } = setUp();
    const b = restartB();
    b.dev.setPeer(keyA.publicKey.raw, { endpoint: '10.200.0.1:51009' });
    const from = net.log.length;
    send(a.dev, AB);
    net.flush();
    expect(b.dev.drops.noKeypair).toBe(1);
    expect(net.log.slice(from).map((d) => d.data[0])).toEqual([MSG_TRANSPORT]);
  });

  it('a restarted device that greets its peers gets their very next packet', () => {
    const { net, a, restartB, send } = setUp();
    const b = restartB();
    expect(b.dev.initiateHandshake(keyA.publicKey.raw)).toBe(true);
    net.flush();
    send(a.dev, AB);
    net.flush();
    expect(b.tun.packets).toEqual([AB]);
    expect(b.dev.drops.noKeypair).toBe(0);
    expect(b.dev.initiateHandshake(Buffer.alloc(32, 7))).toBe(false);
  });
});

describe('Device: both sides restart and greet each other at the same instant', () => {
  it('recovers from the collision in well under a second, with no packet waiting', () => {
    const { clock, net, a, b } = twoDevices();
    a.dev.initiateHandshake(keyB.publicKey.raw);
    b.dev.initiateHandshake(keyA.publicKey.raw);
    for (let t = 0; t < 500; t += 10) {
      clock.advance(10);
      net.flush();
    }
    // A session is up both ways: packets go at once, no handshake in front of them.
    const from = net.log.length;
    a.dev.onTunBatch(AB, Uint32Array.of(0), Uint32Array.of(AB.length), 1);
    net.flush();
    expect(b.tun.packets).toEqual([AB]);
    expect(net.log.slice(from).map((d) => d.data[0])).toEqual([MSG_TRANSPORT]);
  });
});
