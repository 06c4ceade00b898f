// A flood of handshake initiations with a valid mac1 in the same batch as transport packets: the
// transport packets are delivered at once, the handshake work waits in a bounded queue, and what
// does not fit is dropped and counted.
import { describe, expect, it } from 'vitest';
import { FakeClock } from './clock.js';
import { CookieGenerator } from './cookie.js';
import { PrivateKey, randomBytes } from './crypto.js';
import { Device } from './device.js';
import { MemNetwork, MemTun, ipv4Packet } from './memnet.js';
import { INITIATION_SIZE, MSG_INITIATION, MSG_TRANSPORT } from './messages.js';

const keyA = new PrivateKey(Buffer.alloc(32, 0xa1));
const keyB = new PrivateKey(Buffer.alloc(32, 0xb2));

describe('Device under a handshake flood', () => {
  it('delivers the transport packets of a batch at once, whatever number of initiations comes with them', async () => {
    const clock = new FakeClock();
    const net = new MemNetwork();
    const mk = (key: PrivateKey) => {
      const tun = new MemTun();
      const dev = new Device({ bindUdp: (p, cb) => net.bind(p, cb), tun, clock });
      dev.setPrivateKey(key.raw);
      dev.up();
      return { dev, tun };
    };
    const a = mk(keyA);
    const b = mk(keyB);
    a.dev.setPeer(keyB.publicKey.raw, { endpoint: `10.200.0.1:${b.dev.port}`, allowedIPs: ['10.9.0.2/32'] });
    b.dev.setPeer(keyA.publicKey.raw, { endpoint: `10.200.0.1:${a.dev.port}`, allowedIPs: ['10.9.0.1/32'] });
    const send = (pkt: Buffer) => a.dev.onTunBatch(pkt, Uint32Array.of(0), Uint32Array.of(pkt.length), 1);
    send(ipv4Packet('10.9.0.1', '10.9.0.2', 'handshake'));
    net.flush();
    expect(b.tun.packets).toHaveLength(1);

    // 100 transport packets from a, held back, then interleaved with 5,000 initiations from elsewhere.
    net.dropIf = (d) => d[0] === MSG_TRANSPORT;
    const from = net.log.length;
    for (let i = 0; i < 100; i++) send(ipv4Packet('10.9.0.1', '10.9.0.2', `data ${i}`));
    const transport = net.log.slice(from).map((d) => d.data);
    const macs = new CookieGenerator(keyB.publicKey, () => clock.now());
    const parts: Buffer[] = [];
    const fromA: boolean[] = [];
    for (let i = 0; i < 5000; i++) {
      const init = randomBytes(INITIATION_SIZE);
      init.writeUInt32LE(MSG_INITIATION, 0);
      macs.addMacs(init);
      parts.push(init);
      fromA.push(false);
      if (i % 50 === 0) {
        parts.push(transport[i / 50]!);
        fromA.push(true);
      }
    }
    const count = parts.length;
    const buf = Buffer.concat(parts);
    const offsets = new Uint32Array(count);
    const lengths = new Uint32Array(count);
    for (let i = 0, off = 0; i < count; off += parts[i]!.length, i++) {
      offsets[i] = off;
      lengths[i] = parts[i]!.length;
    }
    const addrs = new Uint8Array(16 * count);
    const ports = new Uint16Array(count);
    for (let i = 0; i < count; i++) {
      addrs.set(fromA[i] ? [10, 200, 0, 1] : [192, 0, 2, 7], 16 * i);
      ports[i] = fromA[i] ? a.dev.port : 40_999;
    }
    const families = new Uint8Array(count).fill(4);

    const before = b.dev.drops.handshake;
    const sentBefore = net.log.length;
    b.dev.onUdpBatch(buf, offsets, lengths, addrs, ports, families, count);
    // Handshake work done in line is bounded (here: cookie replies, as the device is under load).
    expect(net.log.length - sentBefore).toBeLessThan(2500);
    // Every transport packet is through before the call returns.
    expect(b.tun.packets).toHaveLength(101);
    expect(b.tun.packets[100]!.subarray(28).toString()).toBe('data 99');
    // The queue is bounded: most of the flood was dropped (counted), not held.
    expect(b.dev.drops.handshake - before).toBeGreaterThan(2000);
    expect(b.dev.drops.internal).toBe(0);
    a.dev.close();
    b.dev.close();
  });
});
