// Handshake messages waiting for their turn. A flood of initiations (each costs a Diffie-Hellman or a
// cookie reply) must not starve transport packets arriving in the same batches, so the receive path
// handles at most a few handshake messages per received batch in line, in order; the rest wait here
// and are handled a few at a time between event-loop turns, and when this is full, more are dropped
// (and counted): a peer whose initiation was dropped retransmits it.
import { INITIATION_SIZE } from './messages.js';

export class HandshakeQueue {
  private readonly data: Buffer;
  private readonly lengths: Uint16Array;
  private readonly types: Uint8Array;
  private readonly families: Uint8Array;
  private readonly addrs: Uint8Array;
  private readonly ports: Uint16Array;
  private head = 0;
  private size = 0;

  constructor(readonly capacity: number) {
    this.data = Buffer.alloc(capacity * INITIATION_SIZE);
    this.lengths = new Uint16Array(capacity);
    this.types = new Uint8Array(capacity);
    this.families = new Uint8Array(capacity);
    this.addrs = new Uint8Array(capacity * 16);
    this.ports = new Uint16Array(capacity);
  }

  get length(): number {
    return this.size;
  }

  /** Copies a handshake message (at most INITIATION_SIZE bytes) in; false when full. */
  push(buf: Buffer, off: number, len: number, type: number, family: number, addrs: Uint8Array, addrOff: number, port: number): boolean {
    if (this.size === this.capacity) return false;
    const k = (this.head + this.size) % this.capacity;
    buf.copy(this.data, k * INITIATION_SIZE, off, off + len);
    this.lengths[k] = len;
    this.types[k] = type;
    this.families[k] = family;
    for (let j = 0; j < 16; j++) this.addrs[k * 16 + j] = addrs[addrOff + j];
    this.ports[k] = port;
    this.size++;
    return true;
  }

  /** Takes the oldest message out and hands it to `fn` (the message is the caller's copy). */
  shift(fn: (msg: Buffer, type: number, family: number, addrs: Uint8Array, addrOff: number, port: number) => void): void {
    const k = this.head;
    this.head = (this.head + 1) % this.capacity;
    this.size--;
    const at = k * INITIATION_SIZE;
    fn(Buffer.from(this.data.subarray(at, at + this.lengths[k])), this.types[k], this.families[k], this.addrs, k * 16, this.ports[k]);
  }

  clear(): void {
    this.head = 0;
    this.size = 0;
  }
}
