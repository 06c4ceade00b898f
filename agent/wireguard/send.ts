// The send path: IP packets from the TUN become transport messages to peers. An outbound batch owns
// its arrays; each packet is prepared (header, plaintext, padding) into a slot, the batch is sealed in
// place one AEAD call per run of one key, and flushed to the UDP socket in one call. Packets for a peer
// without a usable session are staged on the peer until a handshake gives it one. Packets for a peer
// without a working direct path go through the relay instead (device.relay), one frame per peer and batch.
import type { AeadKey } from '../../native/index.js';
import { ipDestination } from './allowedips.js';
import { KEY_LEN, MAX_FRAME } from '../../wire/relay.js';
import type { Device, RelayLink, UdpLike } from './device.js';
import { KeyRuns } from './keyruns.js';
import { MSG_TRANSPORT, TRANSPORT_HEADER_SIZE } from './messages.js';
import type { Keypair } from './noise.js';
import { MAX_STAGED_PACKETS, REKEY_AFTER_MESSAGES, REKEY_AFTER_TIME, type Peer } from './peer.js';

export class SendPath {
  // Slot n holds a message (header + padded plaintext, sealed in place) at offsets[n], bound for
  // addrs/ports/families[n]; its body (the AEAD's input) is at sealOffsets[n], sealed with sealKeys[n].
  private readonly buf: Buffer;
  private readonly offsets: Uint32Array;
  private readonly lengths: Uint32Array;
  private readonly addrs: Uint8Array;
  private readonly ports: Uint16Array;
  private readonly families: Uint8Array;
  private readonly sealOffsets: Uint32Array;
  private readonly sealLengths: Uint32Array;
  private readonly sealCounters: Float64Array;
  private readonly sealKeys: Array<AeadKey | null>;
  private readonly runs: KeyRuns;
  /** Slot n goes through the relay to this peer (null: UDP); relayCount of the batch do. */
  private readonly relayPeers: Array<Peer | null>;
  private relayCount = 0;
  private readonly pick: Uint32Array;
  // One-off sends (handshakes, keepalives, staged packets).
  private readonly oneBuf: Buffer;
  private readonly oneOffsets = new Uint32Array(1);
  private readonly oneLengths = new Uint32Array(1);
  private readonly oneAddrs = new Uint8Array(16);
  private readonly onePorts = new Uint16Array(1);
  private readonly oneFamilies = new Uint8Array(1);
  private readonly oneSealOffsets = new Uint32Array(1);
  private readonly oneSealLengths = new Uint32Array(1);
  private readonly oneCounters = new Float64Array(1);
  /** The counter prepare() used last. */
  private counter = 0;

  constructor(private readonly dev: Device) {
    const { batch, slot } = dev;
    this.buf = Buffer.alloc(slot * batch);
    this.offsets = new Uint32Array(batch);
    for (let i = 0; i < batch; i++) this.offsets[i] = i * slot;
    this.lengths = new Uint32Array(batch);
    this.addrs = new Uint8Array(16 * batch);
    this.ports = new Uint16Array(batch);
    this.families = new Uint8Array(batch);
    this.sealOffsets = new Uint32Array(batch);
    this.sealLengths = new Uint32Array(batch);
    this.sealCounters = new Float64Array(batch);
    this.sealKeys = new Array<AeadKey | null>(batch).fill(null);
    this.runs = new KeyRuns(batch);
    this.relayPeers = new Array<Peer | null>(batch).fill(null);
    this.pick = new Uint32Array(batch);
    this.oneBuf = Buffer.alloc(slot);
  }

  /** Outbound: a batch of IP packets read from the TUN. */
  tunBatch(buf: Buffer, offsets: Uint32Array, lengths: Uint32Array, count: number): void {
    const dev = this.dev;
    const udp = dev.udp;
    const now = dev.clock.now();
    let n = 0;
    for (let i = 0; i < count; i++) {
      const off = offsets[i];
      const len = lengths[i];
      const dst = ipDestination(buf, off, len);
      if (dst < 0) {
        dev.drops.malformed++;
        continue;
      }
      if (len > dev.maxPacket) {
        dev.drops.tooBig++;
        continue;
      }
      const peer = dev.allowed.lookup(buf, dst, buf[off] >> 4 === 4 ? 4 : 16);
      if (peer === null) {
        dev.drops.noRoute++;
        continue;
      }
      if (dev.beforeEncrypt !== null && !dev.beforeEncrypt(buf, off, len, peer)) {
        dev.drops.filtered++;
        continue;
      }
      const kp = peer.current;
      const relayed = this.relayed(peer);
      if ((!relayed && (udp === null || peer.endpointFamily === 0)) || !peer.canSend(kp, now) || peer.staged.length > 0) {
        this.stage(peer, buf, off, len);
        continue;
      }
      if (n === dev.batch) {
        this.flush(udp, n);
        n = 0;
      }
      this.add(n, peer, kp, buf, off, len, now);
      if (relayed) {
        this.relayPeers[n] = peer;
        this.relayCount++;
      }
      n++;
    }
    if (n > 0) this.flush(udp, n);
  }

  /** Whether packets to the peer go through the relay now: it has one, connected, and no working direct path. */
  relayed(peer: Peer): boolean {
    const relay = peer.relay ?? this.dev.relay;
    return relay !== null && !peer.direct && relay.connected;
  }

  /** Whether a message to the peer has somewhere to go (the relay, or a UDP endpoint). */
  canReach(peer: Peer): boolean {
    return this.relayed(peer) || (this.dev.udp !== null && peer.endpointFamily !== 0);
  }

  /** Prepares buf[off..+len) for `peer` into slot n of the outbound batch. */
  private add(n: number, peer: Peer, kp: Keypair, buf: Buffer, off: number, len: number, now: number): void {
    const so = this.offsets[n];
    const padded = this.prepare(kp, buf, off, len, this.buf, so);
    this.sealOffsets[n] = so + TRANSPORT_HEADER_SIZE;
    this.sealLengths[n] = padded;
    this.sealCounters[n] = this.counter;
    this.sealKeys[n] = kp.sendAead;
    const w = TRANSPORT_HEADER_SIZE + padded + 16;
    this.lengths[n] = w;
    this.addrs.set(peer.endpointAddr, n * 16);
    this.ports[n] = peer.endpointPort;
    this.families[n] = peer.endpointFamily;
    peer.txBytes += w;
    peer.timersAnyAuthenticatedPacketTraversal();
    peer.timersAnyAuthenticatedPacketSent();
    peer.timersDataSent();
    this.keepKeyFresh(peer, kp, now);
  }

  /** Seals slots 0..n-1 and sends them: through the relay those marked for it, the rest over UDP. */
  private flush(udp: UdpLike | null, n: number): void {
    this.runs.apply(this.buf, this.sealKeys, this.sealOffsets, this.sealLengths, this.sealCounters, n, null);
    let m = n;
    if (this.relayCount > 0) {
      m = this.flushRelayed(n);
      this.relayCount = 0;
    }
    if (m > 0 && udp !== null) {
      const sent = udp.sendBatch(this.buf, this.offsets, this.lengths, this.addrs, this.ports, this.families, m);
      if (sent < m) this.dev.drops.sendBlocked += m - sent;
    }
    if (m < n) for (let i = 0; i < n; i++) this.offsets[i] = i * this.dev.slot; // undo the compaction
  }

  /**
   * Sends the relayed slots of 0..n-1 (one frame per peer) and moves the UDP ones to the front, in
   * order; returns how many UDP slots there are.
   */
  private flushRelayed(n: number): number {
    const peers = this.relayPeers;
    for (let i = 0; i < n; i++) {
      const peer = peers[i];
      if (peer === null) continue;
      const relay = (peer.relay ?? this.dev.relay)!;
      // This peer's slots, in frames of at most MAX_FRAME bytes.
      let k = 0;
      let bytes = 1 + KEY_LEN;
      for (let j = i; j < n; j++) {
        if (peers[j] !== peer) continue;
        peers[j] = null;
        const w = 2 + this.lengths[j];
        if (bytes + w > MAX_FRAME) {
          this.sendFrame(relay, peer, k);
          k = 0;
          bytes = 1 + KEY_LEN;
        }
        this.pick[k++] = j;
        bytes += w;
      }
      this.sendFrame(relay, peer, k);
    }
    let m = 0;
    for (let i = 0; i < n; i++) {
      if (this.lengths[i] === 0) continue; // went through the relay
      if (m !== i) {
        this.offsets[m] = this.offsets[i];
        this.lengths[m] = this.lengths[i];
        this.addrs.copyWithin(m * 16, i * 16, i * 16 + 16);
        this.ports[m] = this.ports[i];
        this.families[m] = this.families[i];
      }
      m++;
    }
    return m;
  }

  /** Sends the picked slots 0..k-1 to the peer through the relay as one frame, and marks them gone. */
  private sendFrame(relay: RelayLink, peer: Peer, k: number): void {
    if (k === 0) return;
    if (!relay.sendSlots(peer.publicKey.raw, this.buf, this.offsets, this.lengths, this.pick, k)) {
      this.dev.drops.sendBlocked += k;
    }
    for (let q = 0; q < k; q++) this.lengths[this.pick[q]] = 0;
  }

  /** Holds a packet for a peer that cannot take it yet, and tries to get it a session. */
  stage(peer: Peer, buf: Buffer, off: number, len: number): void {
    if (peer.staged.length >= MAX_STAGED_PACKETS) {
      peer.staged.shift();
      this.dev.drops.stagedOverflow++;
    }
    peer.staged.push(Buffer.from(buf.subarray(off, off + len)));
    this.sendStaged(peer);
  }

  sendKeepalive(peer: Peer): void {
    if (peer.staged.length === 0) peer.staged.push(Buffer.alloc(0));
    this.sendStaged(peer);
  }

  /** Encrypts staged packets with the current keypair, or starts a handshake if there is none. */
  sendStaged(peer: Peer): void {
    const dev = this.dev;
    if (!this.canReach(peer)) return;
    const now = dev.clock.now();
    const kp = peer.current;
    if (!peer.canSend(kp, now)) {
      dev.sendHandshakeInitiation(peer, false);
      return;
    }
    const staged = peer.staged;
    peer.staged = [];
    let sentData = false;
    for (const pkt of staged) {
      const padded = this.prepare(kp, pkt, 0, pkt.length, this.oneBuf, 0);
      this.oneSealOffsets[0] = TRANSPORT_HEADER_SIZE;
      this.oneSealLengths[0] = padded;
      this.oneCounters[0] = this.counter;
      kp.sendAead.seal(this.oneBuf, this.oneSealOffsets, this.oneSealLengths, this.oneCounters, 1);
      this.sendOne(peer, this.oneBuf, 0, TRANSPORT_HEADER_SIZE + padded + 16);
      if (pkt.length > 0) sentData = true;
    }
    peer.timersAnyAuthenticatedPacketTraversal();
    peer.timersAnyAuthenticatedPacketSent();
    if (sentData) peer.timersDataSent();
    this.keepKeyFresh(peer, kp, now);
  }

  /** The initiator of a session rekeys before its keys get old or worn. */
  private keepKeyFresh(peer: Peer, kp: Keypair, now: number): void {
    if (kp.isInitiator && (kp.sendCounter > REKEY_AFTER_MESSAGES || now - kp.created > REKEY_AFTER_TIME)) {
      this.dev.sendHandshakeInitiation(peer, false);
    }
  }

  /** Sends one message to the peer: through the relay while it has no working direct path, else over UDP. */
  sendOne(peer: Peer, buf: Buffer, off: number, len: number): void {
    if (this.relayed(peer)) {
      if ((peer.relay ?? this.dev.relay)!.send(peer.publicKey.raw, buf.subarray(off, off + len))) peer.txBytes += len;
      else this.dev.drops.sendBlocked++;
      return;
    }
    this.sendOneUdp(peer, buf, off, len);
  }

  /** Sends one message to the peer's UDP endpoint (if it has one). */
  sendOneUdp(peer: Peer, buf: Buffer, off: number, len: number): void {
    const udp = this.dev.udp;
    if (!udp || !peer.endpointFamily) return;
    if (buf !== this.oneBuf || off !== 0) buf.copy(this.oneBuf, 0, off, off + len);
    this.oneOffsets[0] = 0;
    this.oneLengths[0] = len;
    this.oneAddrs.set(peer.endpointAddr);
    this.onePorts[0] = peer.endpointPort;
    this.oneFamilies[0] = peer.endpointFamily;
    const sent = udp.sendBatch(this.oneBuf, this.oneOffsets, this.oneLengths, this.oneAddrs, this.onePorts, this.oneFamilies, 1);
    if (sent < 1) this.dev.drops.sendBlocked++;
    else peer.txBytes += len;
  }

  /** Sends one message to an address that need not be a peer's (cookie replies). */
  sendTo(msg: Buffer, family: number, addrs: Uint8Array, addrOff: number, port: number): void {
    const udp = this.dev.udp;
    if (!udp || (family !== 4 && family !== 6)) return; // not to the relay: it authenticated the sender
    msg.copy(this.oneBuf, 0);
    this.oneOffsets[0] = 0;
    this.oneLengths[0] = msg.length;
    this.oneAddrs.fill(0);
    this.oneAddrs.set(addrs.subarray(addrOff, addrOff + (family === 4 ? 4 : 16)));
    this.onePorts[0] = port;
    this.oneFamilies[0] = family;
    udp.sendBatch(this.oneBuf, this.oneOffsets, this.oneLengths, this.oneAddrs, this.onePorts, this.oneFamilies, 1);
  }

  /**
   * Lays out a transport message for src[off..off+len) in dst at dOff: header, plaintext, zero padding.
   * Takes the next send counter (left in this.counter) and returns the padded length, which the AEAD
   * then seals in place at dOff + 16, appending the 16-byte tag.
   */
  private prepare(kp: Keypair, src: Buffer, off: number, len: number, dst: Buffer, dOff: number): number {
    const counter = kp.sendCounter++;
    this.counter = counter;
    const lo = counter >>> 0;
    const hi = (counter - lo) / 0x100000000;
    dst[dOff] = MSG_TRANSPORT;
    dst[dOff + 1] = 0;
    dst[dOff + 2] = 0;
    dst[dOff + 3] = 0;
    dst.writeUInt32LE(kp.remoteIndex, dOff + 4);
    dst.writeUInt32LE(lo, dOff + 8);
    dst.writeUInt32LE(hi, dOff + 12);
    // Pad to a multiple of 16, but never beyond the MTU.
    const mtu = this.dev.mtu;
    let padded = (len + 15) & ~15;
    if (padded > mtu) padded = len > mtu ? len : mtu;
    const body = dOff + TRANSPORT_HEADER_SIZE;
    if (len > 0) src.copy(dst, body, off, off + len);
    for (let k = body + len, end = body + padded; k < end; k++) dst[k] = 0;
    return padded;
  }
}
