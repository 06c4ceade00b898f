// The receive path: datagrams from the UDP socket. Transport messages are checked (receiver index, key
// age, replay window), opened in place in the receive buffer one AEAD call per run of one keypair, and
// delivered to the TUN straight from that buffer. Handshake messages go to the handshake code: the
// first few of a batch in line (finishing the transport messages before them, so the batch is handled
// in order), any more through its queue, so that a flood of them cannot starve transport packets.
import type { AeadKey } from '../../native/index.js';
import { ipSource } from './allowedips.js';
import type { Device, SessionEntry } from './device.js';
import { KeyRuns } from './keyruns.js';
import { MSG_TRANSPORT, TRANSPORT_HEADER_SIZE, messageType } from './messages.js';
import { KEEPALIVE_TIMEOUT, REJECT_AFTER_MESSAGES, REJECT_AFTER_TIME, REKEY_TIMEOUT } from './peer.js';

const MAX_COUNTER_HI = 2 ** 21; // counters above 2^53 are refused

export class ReceivePath {
  // Slot t: a transport message's ciphertext + tag at openOffsets/openLengths[t], opened with
  // openKeys[t] (of openEntries[t]); it came as datagram openFrom[t] of the received batch.
  private readonly openOffsets: Uint32Array;
  private readonly openLengths: Uint32Array;
  private readonly openCounters: Float64Array;
  private readonly openOk: Uint8Array;
  private readonly openKeys: Array<AeadKey | null>;
  private readonly openEntries: Array<SessionEntry | null>;
  private readonly openFrom: Uint32Array;
  // The opened IP packets handed to the TUN.
  private readonly inOffsets: Uint32Array;
  private readonly inLengths: Uint32Array;
  private readonly runs: KeyRuns;

  constructor(private readonly dev: Device) {
    const batch = dev.batch;
    this.openOffsets = new Uint32Array(batch);
    this.openLengths = new Uint32Array(batch);
    this.openCounters = new Float64Array(batch);
    this.openOk = new Uint8Array(batch);
    this.openKeys = new Array<AeadKey | null>(batch).fill(null);
    this.openEntries = new Array<SessionEntry | null>(batch).fill(null);
    this.openFrom = new Uint32Array(batch);
    this.inOffsets = new Uint32Array(batch);
    this.inLengths = new Uint32Array(batch);
    this.runs = new KeyRuns(batch);
  }

  udpBatch(
    buf: Buffer,
    offsets: Uint32Array,
    lengths: Uint32Array,
    addrs: Uint8Array,
    ports: Uint16Array,
    families: Uint8Array,
    count: number,
  ): void {
    const dev = this.dev;
    const hs = dev.handshakes;
    const now = dev.clock.now();
    let t = 0;
    for (let i = 0; i < count; i++) {
      const off = offsets[i];
      const len = lengths[i];
      const type = messageType(buf, off, len);
      if (type === MSG_TRANSPORT) {
        if (t === dev.batch) {
          this.open(buf, addrs, ports, families, t, now);
          t = 0;
        }
        if (this.check(buf, off, len, t, now, families[i], addrs, i * 16, ports[i])) this.openFrom[t++] = i;
      } else if (type !== 0) {
        if (!hs.takeInline()) {
          hs.enqueue(buf, off, len, type, families[i], addrs, i * 16, ports[i]);
          continue;
        }
        if (t > 0) {
          this.open(buf, addrs, ports, families, t, now);
          t = 0;
        }
        hs.handle(Buffer.from(buf.subarray(off, off + len)), type, families[i], addrs, i * 16, ports[i]);
      } else {
        // Not WireGuard: STUN or disco sharing the socket, else malformed (off the transport fast path).
        dev.otherDatagram(buf, off, len, families[i], addrs, i * 16, ports[i]);
      }
    }
    if (t > 0) this.open(buf, addrs, ports, families, t, now);
  }

  /** Checks a transport message before decryption; if it may be accepted, queues it as open slot t. */
  private check(
    buf: Buffer,
    off: number,
    len: number,
    t: number,
    now: number,
    family: number,
    addrs: Uint8Array,
    addrOff: number,
    port: number,
  ): boolean {
    const dev = this.dev;
    const entry = dev.sessions.get(buf.readUInt32LE(off + 4));
    if (entry === undefined) {
      dev.drops.noKeypair++;
      dev.handshakes.unknownSession(family, addrs, addrOff, port, now);
      return false;
    }
    const kp = entry.keypair;
    if (kp === null) {
      dev.drops.noKeypair++;
      return false;
    }
    const lo = buf.readUInt32LE(off + 8);
    const hi = buf.readUInt32LE(off + 12);
    if (hi >= MAX_COUNTER_HI || now - kp.created >= REJECT_AFTER_TIME) {
      dev.drops.noKeypair++;
      return false;
    }
    const counter = hi * 0x100000000 + lo;
    if (!kp.replay.mayAccept(counter, REJECT_AFTER_MESSAGES)) {
      dev.drops.replay++;
      return false;
    }
    if (len - TRANSPORT_HEADER_SIZE - 16 > dev.slot) {
      dev.drops.tooBig++;
      return false;
    }
    this.openEntries[t] = entry;
    this.openKeys[t] = kp.recvAead;
    this.openOffsets[t] = off + TRANSPORT_HEADER_SIZE;
    this.openLengths[t] = len - TRANSPORT_HEADER_SIZE;
    this.openCounters[t] = counter;
    return true;
  }

  /** Opens queued slots 0..t-1 in place, delivers each authentic one, and writes the packets to the TUN. */
  private open(buf: Buffer, addrs: Uint8Array, ports: Uint16Array, families: Uint8Array, t: number, now: number): void {
    const dev = this.dev;
    this.runs.apply(buf, this.openKeys, this.openOffsets, this.openLengths, this.openCounters, t, this.openOk);
    const entries = this.openEntries;
    let m = 0;
    for (let j = 0; j < t; j++) {
      const entry = entries[j]!;
      entries[j] = null;
      if (this.openOk[j] === 0) {
        dev.drops.decrypt++;
        continue;
      }
      const i = this.openFrom[j];
      const dOff = this.openOffsets[j];
      const ipLen = this.deliver(buf, dOff, this.openLengths[j] - 16, this.openCounters[j], entry, families[i], addrs, i * 16, ports[i], now);
      if (ipLen > 0) {
        this.inOffsets[m] = dOff;
        this.inLengths[m] = ipLen;
        m++;
      }
    }
    if (m > 0) {
      const written = dev.tun.write(buf, this.inOffsets, this.inLengths, m);
      if (written < m) dev.drops.tunBlocked += m - written;
    }
  }

  /**
   * An authentic transport message, decrypted at buf[dOff..+ptLen): updates the session and returns the
   * IP packet's length if it goes to the TUN, else 0 (keepalive, or dropped and counted).
   */
  private deliver(
    out: Buffer,
    dOff: number,
    ptLen: number,
    counter: number,
    entry: SessionEntry,
    family: number,
    addrs: Uint8Array,
    addrOff: number,
    port: number,
    now: number,
  ): number {
    const dev = this.dev;
    const kp = entry.keypair!;
    if (!kp.replay.accept(counter, REJECT_AFTER_MESSAGES)) {
      dev.drops.replay++;
      return 0;
    }
    const peer = entry.peer;
    if (kp === peer.next) dev.handshakes.confirmNext(peer, kp);
    peer.updateEndpoint(family, addrs, addrOff, port);
    peer.rxBytes += ptLen + TRANSPORT_HEADER_SIZE + 16;
    // The initiator rekeys before its receiving keys get too old.
    if (
      kp.isInitiator &&
      !peer.sentLastMinuteHandshake &&
      now - kp.created > REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT
    ) {
      peer.sentLastMinuteHandshake = true;
      dev.sendHandshakeInitiation(peer, false);
    }
    peer.timersAnyAuthenticatedPacketReceived();
    peer.timersAnyAuthenticatedPacketTraversal();
    if (ptLen === 0) return 0; // keepalive
    peer.timersDataReceived();

    // The packet's own length (padding stripped) and its source, which must belong to this peer.
    const v = out[dOff] >> 4;
    let ipLen: number;
    if (v === 4 && ptLen >= 20) ipLen = out.readUInt16BE(dOff + 2);
    else if (v === 6 && ptLen >= 40) ipLen = out.readUInt16BE(dOff + 4) + 40;
    else {
      dev.drops.malformed++;
      return 0;
    }
    if (ipLen > ptLen || ipLen < 20) {
      dev.drops.malformed++;
      return 0;
    }
    const src = ipSource(out, dOff, ipLen);
    if (src < 0 || dev.allowed.lookup(out, src, v === 4 ? 4 : 16) !== peer) {
      dev.drops.sourceNotAllowed++;
      return 0;
    }
    if (dev.afterDecrypt !== null && !dev.afterDecrypt(out, dOff, ipLen, peer)) {
      dev.drops.filtered++;
      return 0;
    }
    return ipLen;
  }
}
