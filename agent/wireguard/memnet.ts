// An in-memory UDP network and TUN for testing devices against each other without sockets:
// datagrams queue up and are delivered by flush(), so tests control every step.
import type { TunLike, UdpBatchHandler, UdpLike } from './device.js';

interface Datagram {
  data: Buffer;
  fromFamily: number;
  fromAddr: Uint8Array;
  fromPort: number;
  toPort: number;
}

/** One IPv4 "host" per device: 10.200.0.N, with ports bound on it. */
export class MemNetwork {
  private readonly handlers = new Map<number, UdpBatchHandler>();
  private queue: Datagram[] = [];
  private nextPort = 40000;
  /** Every datagram ever sent, for tests that replay or inspect them. */
  readonly log: Datagram[] = [];
  /** Drops datagrams for which this returns true (to simulate loss). */
  dropIf: ((d: Buffer) => boolean) | null = null;

  /** All devices share one address; they are told apart by port. */
  readonly address = new Uint8Array([10, 200, 0, 1]);

  bind(port: number, onBatch: UdpBatchHandler): UdpLike {
    const p = port === 0 ? this.nextPort++ : port;
    if (this.handlers.has(p)) throw Object.assign(new Error(`port ${p} in use`), { code: 'EADDRINUSE' });
    this.handlers.set(p, onBatch);
    return {
      localPort: p,
      sendBatch: (buf, offsets, lengths, _addrs, ports, _families, count) => {
        for (let i = 0; i < count; i++) {
          const d: Datagram = {
            data: Buffer.from(buf.subarray(offsets[i], offsets[i] + lengths[i])),
            fromFamily: 4,
            fromAddr: this.address,
            fromPort: p,
            toPort: ports[i],
          };
          this.log.push(d);
          if (this.dropIf?.(d.data)) continue;
          this.queue.push(d);
        }
        return count;
      },
      close: () => {
        this.handlers.delete(p);
      },
    };
  }

  /** Delivers one datagram as if it came from `fromPort`. */
  inject(data: Buffer, toPort: number, fromPort: number): void {
    this.queue.push({ data, fromFamily: 4, fromAddr: this.address, fromPort, toPort });
  }

  /** Delivers queued datagrams (and the ones they cause) until none are left; returns how many. */
  flush(limit = 10_000): number {
    let n = 0;
    while (this.queue.length > 0 && n < limit) {
      const d = this.queue.shift()!;
      n++;
      const h = this.handlers.get(d.toPort);
      if (!h) continue;
      const addrs = new Uint8Array(16);
      addrs.set(d.fromAddr);
      // Like a socket, the receiver gets its own copy (it decrypts in place; the log keeps the original).
      const data = Buffer.from(d.data);
      h(data, Uint32Array.of(0), Uint32Array.of(data.length), addrs, Uint16Array.of(d.fromPort), Uint8Array.of(d.fromFamily), 1);
    }
    return n;
  }
}

/** A TUN that records the packets written to it. */
export class MemTun implements TunLike {
  readonly packets: Buffer[] = [];
  write(buf: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number): number {
    for (let i = 0; i < count; i++) this.packets.push(Buffer.from(buf.subarray(offsets[i], offsets[i] + lengths[i])));
    return count;
  }
}

/** A minimal IPv4/UDP packet from `src` to `dst` carrying `payload` (checksums left zero). */
export function ipv4Packet(src: string, dst: string, payload: Buffer | string): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const p = Buffer.alloc(28 + body.length);
  p[0] = 0x45;
  p.writeUInt16BE(p.length, 2);
  p[8] = 64;
  p[9] = 17;
  Buffer.from(src.split('.').map(Number)).copy(p, 12);
  Buffer.from(dst.split('.').map(Number)).copy(p, 16);
  p.writeUInt16BE(1234, 20);
  p.writeUInt16BE(5678, 22);
  p.writeUInt16BE(8 + body.length, 24);
  body.copy(p, 28);
  return p;
}
