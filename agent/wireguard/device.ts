// A WireGuard device: peers, cryptokey routing, and the data path TUN ⇄ WireGuard ⇄ UDP.
// I/O comes in batches (the native addon's shape) and leaves in batches; per-packet work reuses
// preallocated buffers. Handshakes, cookies and timers allocate (they are rare).
import type { AeadKey, Tun, UdpBatchHandler, UdpSocket } from '../../native/index.js';
import { AllowedIPs, formatIP, formatPrefix, ipDestination, ipSource, parseIP, parsePrefix, type Prefix } from './allowedips.js';
import { systemClock, type Clock } from './clock.js';
import { CookieChecker } from './cookie.js';
import { PrivateKey, PublicKey, ctEqual, isZero, randomBytes } from './crypto.js';
import {
  MSG_COOKIE_REPLY,
  MSG_INITIATION,
  MSG_TRANSPORT,
  COOKIE_RECEIVER,
  RESP_RECEIVER,
  TRANSPORT_HEADER_SIZE,
  messageType,
} from './messages.js';
import {
  consumeInitiation,
  consumeResponse,
  createInitiation,
  createResponse,
  deriveKeypair,
  type Handshake,
  type Keypair,
  type NoiseHost,
} from './noise.js';
import {
  MAX_STAGED_PACKETS,
  Peer,
  REJECT_AFTER_MESSAGES,
  REJECT_AFTER_TIME,
  REKEY_AFTER_MESSAGES,
  REKEY_AFTER_TIME,
  REKEY_TIMEOUT,
  KEEPALIVE_TIMEOUT,
  MAX_EARLY_INITIATIONS,
  type PeerHost,
} from './peer.js';
import { HandshakeRateLimiter } from './ratelimit.js';

export type { UdpBatchHandler };

/** The UDP socket the device sends through (native UdpSocket's shape). */
export type UdpLike = Pick<UdpSocket, 'localPort' | 'sendBatch' | 'close'>;

/** Where decrypted packets go (native Tun's shape). */
export type TunLike = Pick<Tun, 'write'>;

/** Called per packet; false drops it. `peer` is the peer it goes to or came from. */
export type PacketHook = (buf: Buffer, offset: number, length: number, peer: Peer) => boolean;

export interface DeviceOptions {
  /** Opens the UDP socket on `port` (0 = any) delivering received batches to `onBatch`. */
  bindUdp(port: number, onBatch: UdpBatchHandler): UdpLike;
  tun: TunLike;
  clock?: Clock;
  /** Interface MTU (padding never exceeds it). Default 1420; change it later with setMtu. */
  mtu?: number;
  /** Largest IP packet carried either way (bigger ones are dropped and counted). Default 9000. */
  maxPacket?: number;
  /** Most packets per batch in either direction. Default 128. */
  batch?: number;
  /** Handshake messages per second above which the device demands cookies (mac2). Default 64. */
  underLoadThreshold?: number;
  /** Runs before encrypting an outbound packet (after the peer lookup). */
  beforeEncrypt?: PacketHook;
  /** Runs after decrypting an inbound packet (after the allowed-IPs source check). */
  afterDecrypt?: PacketHook;
  log?: (msg: string) => void;
}

/** Per-peer settings for setPeer (a field left out keeps its current value). */
export interface PeerConfig {
  endpoint?: string | null;
  presharedKey?: Buffer | null;
  /** Seconds, 0 = off. */
  persistentKeepalive?: number;
  /** Replaces the allowed IPs when replaceAllowedIPs, otherwise adds to them. */
  allowedIPs?: string[];
  replaceAllowedIPs?: boolean;
  /** Prefixes to take away (UAPI "allowed_ip=-..."). */
  removeAllowedIPs?: string[];
}

export interface PeerStatus {
  publicKey: string;
  presharedKey: Buffer | null;
  endpoint: string | null;
  persistentKeepalive: number;
  allowedIPs: string[];
  txBytes: number;
  rxBytes: number;
  /** Wall-clock ms of the last handshake, 0 if none. */
  lastHandshake: number;
}

/** Why packets were dropped (counted, never thrown). */
export class DropCounters {
  malformed = 0;
  noRoute = 0;
  noKeypair = 0;
  replay = 0;
  decrypt = 0;
  sourceNotAllowed = 0;
  tooBig = 0;
  filtered = 0;
  handshake = 0;
  stagedOverflow = 0;
  sendBlocked = 0;
  tunBlocked = 0;
  /** Batches cut short by an exception (a bug, or a throwing hook). */
  internal = 0;
}

interface IndexEntry {
  peer: Peer;
  keypair: Keypair | null;
}

const NO_PEER_KEY = Buffer.alloc(32);
const MAX_COUNTER_HI = 2 ** 21; // counters above 2^53 are refused
const UNDER_LOAD_HOLD_MS = 1000;
// Delays of an early initiation after a collision (see answeredWhileWaiting). The first exceeds the
// peer's 20 ms initiation flood limit and the 16.7 ms granularity of the TAI64N timestamp.
const EARLY_FIRST_MS = 30;
const EARLY_SECOND_MS = 200;
const EARLY_JITTER_MS = 50;

export class Device implements NoiseHost, PeerHost {
  staticKey: PrivateKey | null = null;
  readonly drops = new DropCounters();
  beforeEncrypt: PacketHook | null;
  afterDecrypt: PacketHook | null;
  fwmark = 0;

  private readonly clock: Clock;
  private readonly peers = new Map<string, Peer>();
  private readonly allowed = new AllowedIPs<Peer>();
  private readonly indices = new Map<number, IndexEntry>();
  private readonly cookieChecker: CookieChecker;
  private readonly rateLimiter: HandshakeRateLimiter;
  private mtu: number;
  /** Largest plaintext IP packet a buffer slot holds. */
  readonly maxPacket: number;
  private readonly batch: number;
  /** Bytes per buffer slot: the largest datagram sent or accepted. */
  readonly slot: number;
  private readonly underLoadThreshold: number;
  private readonly log: (msg: string) => void;
  private udp: UdpLike | null = null;
  private listenPort = 0;
  private closed = false;

  // Outbound batch: messages (header + padded plaintext, sealed in place before sending) and their
  // destinations. Slot n's body (the AEAD's input) is at sealOffsets[n], sealed with sealKeys[n].
  private readonly outBuf: Buffer;
  private readonly outOffsets: Uint32Array;
  private readonly outLengths: Uint32Array;
  private readonly outAddrs: Uint8Array;
  private readonly outPorts: Uint16Array;
  private readonly outFamilies: Uint8Array;
  private readonly sealOffsets: Uint32Array;
  private readonly sealLengths: Uint32Array;
  private readonly sealCounters: Float64Array;
  private readonly sealKeys: Array<AeadKey | null>;
  // Inbound batch: transport messages opened in place in the receive buffer (openOffsets/openLengths:
  // ciphertext + tag), then handed to the TUN from there (inOffsets/inLengths: the IP packets).
  private readonly openOffsets: Uint32Array;
  private readonly openLengths: Uint32Array;
  private readonly openCounters: Float64Array;
  private readonly openOk: Uint8Array;
  private readonly openEntries: Array<IndexEntry | null>;
  /** Index of each opened message in the received batch (for its source address). */
  private readonly openFrom: Uint32Array;
  private readonly inOffsets: Uint32Array;
  private readonly inLengths: Uint32Array;
  // A run of one key that does not start at index 0 is copied here for the AEAD call.
  private readonly runOffsets: Uint32Array;
  private readonly runLengths: Uint32Array;
  private readonly runCounters: Float64Array;
  private readonly runOk: Uint8Array;
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

  private hsWindowStart = -Infinity;
  private hsCount = 0;
  private underLoadUntil = -Infinity;

  constructor(private readonly opts: DeviceOptions) {
    this.clock = opts.clock ?? systemClock;
    this.mtu = opts.mtu ?? 1420;
    this.batch = opts.batch ?? 128;
    this.underLoadThreshold = opts.underLoadThreshold ?? 64;
    this.beforeEncrypt = opts.beforeEncrypt ?? null;
    this.afterDecrypt = opts.afterDecrypt ?? null;
    this.log = opts.log ?? (() => {});
    this.cookieChecker = new CookieChecker(() => this.clock.now());
    this.rateLimiter = new HandshakeRateLimiter(this.clock);
    // A slot holds the largest datagram: header + padded packet + tag (TUN may hand us up to 64 KiB).
    this.maxPacket = Math.max(opts.maxPacket ?? 9000, this.mtu);
    this.slot = ((this.maxPacket + 15) & ~15) + TRANSPORT_HEADER_SIZE + 16;
    this.outBuf = Buffer.alloc(this.slot * this.batch);
    this.outOffsets = new Uint32Array(this.batch);
    this.outLengths = new Uint32Array(this.batch);
    for (let i = 0; i < this.batch; i++) this.outOffsets[i] = i * this.slot;
    this.outAddrs = new Uint8Array(16 * this.batch);
    this.outPorts = new Uint16Array(this.batch);
    this.outFamilies = new Uint8Array(this.batch);
    this.sealOffsets = new Uint32Array(this.batch);
    this.sealLengths = new Uint32Array(this.batch);
    this.sealCounters = new Float64Array(this.batch);
    this.sealKeys = new Array<AeadKey | null>(this.batch).fill(null);
    this.openOffsets = new Uint32Array(this.batch);
    this.openLengths = new Uint32Array(this.batch);
    this.openCounters = new Float64Array(this.batch);
    this.openOk = new Uint8Array(this.batch);
    this.openEntries = new Array<IndexEntry | null>(this.batch).fill(null);
    this.openFrom = new Uint32Array(this.batch);
    this.inOffsets = new Uint32Array(this.batch);
    this.inLengths = new Uint32Array(this.batch);
    this.runOffsets = new Uint32Array(this.batch);
    this.runLengths = new Uint32Array(this.batch);
    this.runCounters = new Float64Array(this.batch);
    this.runOk = new Uint8Array(this.batch);
    this.oneBuf = Buffer.alloc(this.slot);
  }

  // ---- configuration (UAPI and the agent use these) ----

  /** Opens the UDP socket on the configured listen port. */
  up(): void {
    if (this.udp || this.closed) return;
    this.udp = this.opts.bindUdp(this.listenPort, this.onUdpBatch);
    this.listenPort = this.udp.localPort;
  }

  close(): void {
    this.closed = true;
    for (const peer of [...this.peers.values()]) this.removePeerObject(peer);
    this.udp?.close();
    this.udp = null;
  }

  /** The interface MTU changed: padding follows it. */
  setMtu(mtu: number): void {
    if (Number.isInteger(mtu) && mtu > 0) this.mtu = mtu;
  }

  get port(): number {
    return this.listenPort;
  }

  setListenPort(port: number): void {
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid listen port ${port}`);
    if (this.udp && port === this.listenPort) return;
    const wasUp = this.udp !== null;
    if (wasUp) {
      // Bind the new socket first so a busy port leaves the old one working.
      const next = this.opts.bindUdp(port, this.onUdpBatch);
      this.udp!.close();
      this.udp = next;
      this.listenPort = next.localPort;
    } else {
      this.listenPort = port;
    }
  }

  /** Sets (or with null/all-zero, removes) the private key. */
  setPrivateKey(raw: Uint8Array | null): void {
    const key = raw && !isZero(raw) ? new PrivateKey(raw) : null;
    if (key && this.staticKey && ctEqual(key.raw, this.staticKey.raw)) return;
    this.staticKey = key;
    this.cookieChecker.init(key ? key.publicKey : null);
    for (const peer of [...this.peers.values()]) {
      // A peer with our own public key cannot exist.
      if (key && peer.publicKey.equals(key.publicKey)) {
        this.removePeerObject(peer);
        continue;
      }
      peer.handshake.precompute(key);
      this.expireKeypairs(peer);
    }
  }

  get publicKey(): PublicKey | null {
    return this.staticKey ? this.staticKey.publicKey : null;
  }

  hasPeer(pub: Uint8Array): boolean {
    return this.peers.has(Buffer.from(pub).toString('hex'));
  }

  getPeer(pub: Uint8Array): Peer | undefined {
    return this.peers.get(Buffer.from(pub).toString('hex'));
  }

  /** Creates or updates a peer. Throws (changing nothing) on invalid values. */
  setPeer(pub: Uint8Array, cfg: PeerConfig = {}): Peer {
    const add = (cfg.allowedIPs ?? []).map((t) => this.prefixOrThrow(t));
    const remove = (cfg.removeAllowedIPs ?? []).map((t) => this.prefixOrThrow(t));
    if (cfg.presharedKey && cfg.presharedKey.length !== 32) throw new Error('preshared key must be 32 bytes');
    const pk = cfg.persistentKeepalive;
    if (pk !== undefined && !(Number.isInteger(pk) && pk >= 0 && pk <= 65535)) {
      throw new Error(`invalid persistent keepalive interval ${pk}`);
    }
    const pubKey = new PublicKey(pub);
    let peer = this.peers.get(pubKey.hex);
    const created = !peer;
    if (!peer) {
      if (this.staticKey && pubKey.equals(this.staticKey.publicKey)) throw new Error('peer key equals the interface key');
      peer = new Peer(pubKey, this.clock, this);
      peer.handshake.precompute(this.staticKey);
    }
    if (cfg.endpoint !== undefined) {
      if (cfg.endpoint === null) peer.endpointFamily = 0;
      else peer.setEndpoint(cfg.endpoint, parseIP);
    }
    if (created) this.peers.set(pubKey.hex, peer);
    if (cfg.presharedKey !== undefined) (cfg.presharedKey ?? NO_PEER_KEY).copy(peer.handshake.presharedKey);
    if (cfg.replaceAllowedIPs) this.allowed.removePeer(peer);
    for (const p of remove) this.allowed.remove(p, peer);
    for (const p of add) this.allowed.insert(p, peer);
    if (pk !== undefined) {
      const was = peer.persistentKeepalive;
      peer.persistentKeepalive = pk;
      // Turning it on sends one right away, so a peer behind NAT becomes reachable at once.
      if (pk > 0 && was === 0 && this.udp && peer.endpointFamily) this.sendKeepalive(peer);
    }
    // Packets that waited for an endpoint can go now.
    if (peer.staged.length > 0 && this.udp && peer.endpointFamily) this.sendStaged(peer);
    return peer;
  }

  removePeer(pub: Uint8Array): boolean {
    const peer = this.getPeer(pub);
    if (!peer) return false;
    this.removePeerObject(peer);
    return true;
  }

  removeAllPeers(): void {
    for (const peer of [...this.peers.values()]) this.removePeerObject(peer);
  }

  listPeers(): Peer[] {
    return [...this.peers.values()];
  }

  peerStatus(peer: Peer): PeerStatus {
    const psk = peer.handshake.presharedKey;
    return {
      publicKey: peer.publicKey.hex,
      presharedKey: isZero(psk) ? null : Buffer.from(psk),
      endpoint: this.endpointText(peer),
      persistentKeepalive: peer.persistentKeepalive,
      allowedIPs: this.allowed.prefixesOf(peer).map(formatPrefix),
      txBytes: peer.txBytes,
      rxBytes: peer.rxBytes,
      lastHandshake: peer.lastHandshake,
    };
  }

  endpointText(peer: Peer): string | null {
    if (!peer.endpointFamily) return null;
    if (peer.endpointFamily === 4) return `${formatIP(peer.endpointAddr.subarray(0, 4))}:${peer.endpointPort}`;
    return `[${formatIP(peer.endpointAddr)}]:${peer.endpointPort}`;
  }

  /** Peer owning the longest prefix that matches `ip` (text), for tests and tools. */
  lookupPeer(ip: string): Peer | null {
    const b = parseIP(ip);
    return b ? this.allowed.lookup(b, 0, b.length) : null;
  }

  private prefixOrThrow(text: string): Prefix {
    const p = parsePrefix(text);
    if (!p) throw new Error(`invalid allowed IP ${JSON.stringify(text)}`);
    return p;
  }

  private removePeerObject(peer: Peer): void {
    peer.stopTimers();
    this.zeroKeyMaterial(peer);
    this.allowed.removePeer(peer);
    peer.staged = [];
    this.peers.delete(peer.publicKey.hex);
  }

  private expireKeypairs(peer: Peer): void {
    this.clearHandshakeIndex(peer.handshake);
    peer.handshake.clear();
    // Expired keypairs stay for receiving in-flight packets but can no longer send.
    if (peer.current) peer.current.sendCounter = REJECT_AFTER_MESSAGES;
    if (peer.next) peer.next.sendCounter = REJECT_AFTER_MESSAGES;
  }

  // ---- NoiseHost ----

  lookupByStatic(pub: Buffer): Handshake | undefined {
    return this.peers.get(pub.toString('hex'))?.handshake;
  }

  allocateIndex(hs: Handshake): number {
    this.clearHandshakeIndex(hs);
    let idx: number;
    do idx = randomBytes(4).readUInt32LE(0);
    while (this.indices.has(idx));
    this.indices.set(idx, { peer: hs.owner as Peer, keypair: null });
    return idx;
  }

  private clearHandshakeIndex(hs: Handshake): void {
    const e = this.indices.get(hs.localIndex);
    if (e && e.keypair === null && e.peer === hs.owner) this.indices.delete(hs.localIndex);
  }

  now(): number {
    return this.clock.now();
  }

  wallNow(): number {
    return this.clock.wallNow();
  }

  // ---- PeerHost (timers) ----

  sendHandshakeInitiation(peer: Peer, isRetry: boolean): void {
    if (!isRetry) peer.handshakeAttempts = 0;
    const now = this.clock.now();
    if (now - peer.handshake.lastSentInitiation < REKEY_TIMEOUT) return;
    this.initiate(peer);
  }

  /**
   * The early initiation answeredWhileWaiting scheduled: sent only if the staged packets still cannot
   * go, and at most MAX_EARLY_INITIATIONS per REKEY_TIMEOUT, so two devices can never loop on it.
   */
  sendEarlyInitiation(peer: Peer): void {
    const now = this.clock.now();
    if (peer.staged.length === 0 || peer.canSend(peer.current, now)) return;
    if (now - peer.earlyWindowStart >= REKEY_TIMEOUT) {
      peer.earlyWindowStart = now;
      peer.earlyInitiations = 0;
    }
    if (peer.earlyInitiations >= MAX_EARLY_INITIATIONS) return;
    peer.earlyInitiations++;
    this.initiate(peer);
  }

  private initiate(peer: Peer): void {
    if (!this.udp || !peer.endpointFamily) {
      // Nowhere to send yet; keep retrying so a later endpoint gets one.
      peer.timersHandshakeInitiated();
      return;
    }
    const msg = createInitiation(this, peer.handshake);
    if (!msg) return;
    peer.cookies.addMacs(msg);
    peer.timersAnyAuthenticatedPacketTraversal();
    peer.timersAnyAuthenticatedPacketSent();
    this.sendOne(peer, msg, 0, msg.length);
    peer.timersHandshakeInitiated();
  }

  sendKeepalive(peer: Peer): void {
    if (peer.staged.length === 0) peer.staged.push(Buffer.alloc(0));
    this.sendStaged(peer);
  }

  zeroKeyMaterial(peer: Peer): void {
    for (const kp of [peer.previous, peer.current, peer.next]) this.deleteKeypair(kp);
    peer.previous = peer.current = peer.next = null;
    this.clearHandshakeIndex(peer.handshake);
    peer.handshake.clear();
  }

  private deleteKeypair(kp: Keypair | null): void {
    if (!kp) return;
    const e = this.indices.get(kp.localIndex);
    if (e && e.keypair === kp) this.indices.delete(kp.localIndex);
    kp.wipe();
  }

  // ---- sending ----

  /** Encrypts queued packets with the current keypair, or starts a handshake if there is none. */
  private sendStaged(peer: Peer): void {
    if (!this.udp || !peer.endpointFamily) return;
    const now = this.clock.now();
    const kp = peer.current;
    if (!peer.canSend(kp, now)) {
      this.sendHandshakeInitiation(peer, false);
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
    this.keepKeyFreshSending(peer, kp, now);
  }

  private keepKeyFreshSending(peer: Peer, kp: Keypair, now: number): void {
    if (kp.isInitiator && (kp.sendCounter > REKEY_AFTER_MESSAGES || now - kp.created > REKEY_AFTER_TIME)) {
      this.sendHandshakeInitiation(peer, false);
    }
  }

  private sendOne(peer: Peer, buf: Buffer, off: number, len: number): void {
    if (!this.udp || !peer.endpointFamily) return;
    if (buf !== this.oneBuf || off !== 0) buf.copy(this.oneBuf, 0, off, off + len);
    this.oneOffsets[0] = 0;
    this.oneLengths[0] = len;
    this.oneAddrs.set(peer.endpointAddr);
    this.onePorts[0] = peer.endpointPort;
    this.oneFamilies[0] = peer.endpointFamily;
    const sent = this.udp.sendBatch(this.oneBuf, this.oneOffsets, this.oneLengths, this.oneAddrs, this.onePorts, this.oneFamilies, 1);
    if (sent < 1) this.drops.sendBlocked++;
    else peer.txBytes += len;
  }

  private sendRaw(msg: Buffer, family: number, addrs: Uint8Array, addrOff: number, port: number): void {
    if (!this.udp) return;
    msg.copy(this.oneBuf, 0);
    this.oneOffsets[0] = 0;
    this.oneLengths[0] = msg.length;
    this.oneAddrs.fill(0);
    this.oneAddrs.set(addrs.subarray(addrOff, addrOff + 16));
    this.onePorts[0] = port;
    this.oneFamilies[0] = family;
    this.udp.sendBatch(this.oneBuf, this.oneOffsets, this.oneLengths, this.oneAddrs, this.onePorts, this.oneFamilies, 1);
  }

  /** The counter prepare() used last. */
  private counter = 0;

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
    let padded = (len + 15) & ~15;
    if (padded > this.mtu) padded = len > this.mtu ? len : this.mtu;
    const body = dOff + TRANSPORT_HEADER_SIZE;
    if (len > 0) src.copy(dst, body, off, off + len);
    for (let k = body + len, end = body + padded; k < end; k++) dst[k] = 0;
    return padded;
  }

  /** Outbound: a batch of IP packets read from the TUN. */
  readonly onTunBatch = (buf: Buffer, offsets: Uint32Array, lengths: Uint32Array, count: number): void => {
    try {
      this.processTunBatch(buf, offsets, lengths, count);
    } catch (err) {
      this.internalError(err);
    }
  };

  readonly onUdpBatch: UdpBatchHandler = (buf, offsets, lengths, addrs, ports, families, count) => {
    try {
      this.processUdpBatch(buf, offsets, lengths, addrs, ports, families, count);
    } catch (err) {
      this.internalError(err);
    }
  };

  /** A bug (ours or a hook's) must not take the interface down: count it, say it, go on. */
  private internalError(err: unknown): void {
    if (this.drops.internal++ < 10) this.log(`internal error in the data path: ${err instanceof Error ? err.stack : String(err)}`);
  }

  private processTunBatch(buf: Buffer, offsets: Uint32Array, lengths: Uint32Array, count: number): void {
    const udp = this.udp;
    const now = this.clock.now();
    let n = 0;
    for (let i = 0; i < count; i++) {
      const off = offsets[i];
      const len = lengths[i];
      const dst = ipDestination(buf, off, len);
      if (dst < 0) {
        this.drops.malformed++;
        continue;
      }
      if (len > this.maxPacket) {
        this.drops.tooBig++;
        continue;
      }
      const peer = this.allowed.lookup(buf, dst, buf[off] >> 4 === 4 ? 4 : 16);
      if (peer === null) {
        this.drops.noRoute++;
        continue;
      }
      if (this.beforeEncrypt !== null && !this.beforeEncrypt(buf, off, len, peer)) {
        this.drops.filtered++;
        continue;
      }
      const kp = peer.current;
      if (udp === null || peer.endpointFamily === 0 || !peer.canSend(kp, now) || peer.staged.length > 0) {
        this.stage(peer, buf, off, len);
        continue;
      }
      if (n === this.batch) {
        this.flushOut(udp, n);
        n = 0;
      }
      const so = n * this.slot;
      const padded = this.prepare(kp, buf, off, len, this.outBuf, so);
      this.sealOffsets[n] = so + TRANSPORT_HEADER_SIZE;
      this.sealLengths[n] = padded;
      this.sealCounters[n] = this.counter;
      this.sealKeys[n] = kp.sendAead;
      const w = TRANSPORT_HEADER_SIZE + padded + 16;
      this.outLengths[n] = w;
      this.outAddrs.set(peer.endpointAddr, n * 16);
      this.outPorts[n] = peer.endpointPort;
      this.outFamilies[n] = peer.endpointFamily;
      peer.txBytes += w;
      peer.timersAnyAuthenticatedPacketTraversal();
      peer.timersAnyAuthenticatedPacketSent();
      peer.timersDataSent();
      this.keepKeyFreshSending(peer, kp, now);
      n++;
    }
    if (n > 0 && udp !== null) this.flushOut(udp, n);
  }

  private flushOut(udp: UdpLike, n: number): void {
    this.sealBatch(n);
    const sent = udp.sendBatch(this.outBuf, this.outOffsets, this.outLengths, this.outAddrs, this.outPorts, this.outFamilies, n);
    if (sent < n) this.drops.sendBlocked += n - sent;
  }

  /** Seals outbound slots 0..n-1 in place: one AEAD call per run of slots sharing a key. */
  private sealBatch(n: number): void {
    const keys = this.sealKeys;
    let s = 0;
    while (s < n) {
      const key = keys[s]!;
      let e = s + 1;
      while (e < n && keys[e] === key) e++;
      if (s === 0) {
        key.seal(this.outBuf, this.sealOffsets, this.sealLengths, this.sealCounters, e);
      } else {
        for (let i = s; i < e; i++) {
          this.runOffsets[i - s] = this.sealOffsets[i];
          this.runLengths[i - s] = this.sealLengths[i];
          this.runCounters[i - s] = this.sealCounters[i];
        }
        key.seal(this.outBuf, this.runOffsets, this.runLengths, this.runCounters, e - s);
      }
      s = e;
    }
    for (let i = 0; i < n; i++) keys[i] = null;
  }

  private flushIn(buf: Buffer, m: number): void {
    const written = this.opts.tun.write(buf, this.inOffsets, this.inLengths, m);
    if (written < m) this.drops.tunBlocked += m - written;
  }

  private stage(peer: Peer, buf: Buffer, off: number, len: number): void {
    if (peer.staged.length >= MAX_STAGED_PACKETS) {
      peer.staged.shift();
      this.drops.stagedOverflow++;
    }
    peer.staged.push(Buffer.from(buf.subarray(off, off + len)));
    this.sendStaged(peer);
  }

  // ---- receiving ----

  /**
   * Inbound: a batch of datagrams from the UDP socket. Transport messages are checked (receiver index,
   * key age, replay window), then opened in place in `buf` in batches, one AEAD call per run of one
   * keypair, and the packets go to the TUN straight from `buf`. A handshake message first finishes the
   * transport messages before it, so the batch is handled in order.
   */
  private processUdpBatch(
    buf: Buffer,
    offsets: Uint32Array,
    lengths: Uint32Array,
    addrs: Uint8Array,
    ports: Uint16Array,
    families: Uint8Array,
    count: number,
  ): void {
    const now = this.clock.now();
    let t = 0;
    for (let i = 0; i < count; i++) {
      const off = offsets[i];
      const len = lengths[i];
      const type = messageType(buf, off, len);
      if (type === MSG_TRANSPORT) {
        if (t === this.batch) {
          this.openBatch(buf, addrs, ports, families, t, now);
          t = 0;
        }
        if (this.checkTransport(buf, off, len, t, now)) this.openFrom[t++] = i;
      } else if (type !== 0) {
        if (t > 0) {
          this.openBatch(buf, addrs, ports, families, t, now);
          t = 0;
        }
        this.handleHandshake(Buffer.from(buf.subarray(off, off + len)), type, families[i], addrs, i * 16, ports[i]);
      } else {
        this.drops.malformed++;
      }
    }
    if (t > 0) this.openBatch(buf, addrs, ports, families, t, now);
  }

  /** Checks a transport message before decryption; if it may be accepted, queues it as open slot t. */
  private checkTransport(buf: Buffer, off: number, len: number, t: number, now: number): boolean {
    const entry = this.indices.get(buf.readUInt32LE(off + 4));
    const kp = entry === undefined ? null : entry.keypair;
    if (kp === null || entry === undefined) {
      this.drops.noKeypair++;
      return false;
    }
    const lo = buf.readUInt32LE(off + 8);
    const hi = buf.readUInt32LE(off + 12);
    if (hi >= MAX_COUNTER_HI || now - kp.created >= REJECT_AFTER_TIME) {
      this.drops.noKeypair++;
      return false;
    }
    const counter = hi * 0x100000000 + lo;
    if (!kp.replay.mayAccept(counter, REJECT_AFTER_MESSAGES)) {
      this.drops.replay++;
      return false;
    }
    if (len - TRANSPORT_HEADER_SIZE - 16 > this.slot) {
      this.drops.tooBig++;
      return false;
    }
    this.openEntries[t] = entry;
    this.openOffsets[t] = off + TRANSPORT_HEADER_SIZE;
    this.openLengths[t] = len - TRANSPORT_HEADER_SIZE;
    this.openCounters[t] = counter;
    return true;
  }

  /** Opens queued slots 0..t-1 in place, handles each authentic one, and writes the packets to the TUN. */
  private openBatch(buf: Buffer, addrs: Uint8Array, ports: Uint16Array, families: Uint8Array, t: number, now: number): void {
    const entries = this.openEntries;
    let s = 0;
    while (s < t) {
      const kp = entries[s]!.keypair!;
      let e = s + 1;
      while (e < t && entries[e]!.keypair === kp) e++;
      if (s === 0) {
        kp.recvAead.open(buf, this.openOffsets, this.openLengths, this.openCounters, e, this.openOk);
      } else {
        for (let i = s; i < e; i++) {
          this.runOffsets[i - s] = this.openOffsets[i];
          this.runLengths[i - s] = this.openLengths[i];
          this.runCounters[i - s] = this.openCounters[i];
        }
        kp.recvAead.open(buf, this.runOffsets, this.runLengths, this.runCounters, e - s, this.runOk);
        for (let i = s; i < e; i++) this.openOk[i] = this.runOk[i - s];
      }
      s = e;
    }
    let m = 0;
    for (let j = 0; j < t; j++) {
      const entry = entries[j]!;
      entries[j] = null;
      if (this.openOk[j] === 0) {
        this.drops.decrypt++;
        continue;
      }
      const i = this.openFrom[j];
      const dOff = this.openOffsets[j];
      const ipLen = this.received(buf, dOff, this.openLengths[j] - 16, this.openCounters[j], entry, families[i], addrs, i * 16, ports[i], now);
      if (ipLen > 0) {
        this.inOffsets[m] = dOff;
        this.inLengths[m] = ipLen;
        m++;
      }
    }
    if (m > 0) this.flushIn(buf, m);
  }

  /**
   * An authentic transport message, decrypted at buf[dOff..+ptLen): updates the session and returns the
   * IP packet's length if it goes to the TUN, else 0 (keepalive, or dropped and counted).
   */
  private received(
    out: Buffer,
    dOff: number,
    ptLen: number,
    counter: number,
    entry: IndexEntry,
    family: number,
    addrs: Uint8Array,
    addrOff: number,
    port: number,
    now: number,
  ): number {
    const kp = entry.keypair!;
    if (!kp.replay.accept(counter, REJECT_AFTER_MESSAGES)) {
      this.drops.replay++;
      return 0;
    }
    const peer = entry.peer;
    if (kp === peer.next) this.confirmNext(peer, kp);
    peer.updateEndpoint(family, addrs, addrOff, port);
    peer.rxBytes += ptLen + TRANSPORT_HEADER_SIZE + 16;
    // The initiator rekeys before its receiving keys get too old.
    if (
      kp.isInitiator &&
      !peer.sentLastMinuteHandshake &&
      now - kp.created > REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT
    ) {
      peer.sentLastMinuteHandshake = true;
      this.sendHandshakeInitiation(peer, false);
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
      this.drops.malformed++;
      return 0;
    }
    if (ipLen > ptLen || ipLen < 20) {
      this.drops.malformed++;
      return 0;
    }
    const src = ipSource(out, dOff, ipLen);
    if (src < 0 || this.allowed.lookup(out, src, v === 4 ? 4 : 16) !== peer) {
      this.drops.sourceNotAllowed++;
      return 0;
    }
    if (this.afterDecrypt !== null && !this.afterDecrypt(out, dOff, ipLen, peer)) {
      this.drops.filtered++;
      return 0;
    }
    return ipLen;
  }

  /** The responder's new keypair becomes current once the initiator has used it. */
  private confirmNext(peer: Peer, kp: Keypair): void {
    this.deleteKeypair(peer.previous);
    peer.previous = peer.current;
    peer.current = kp;
    peer.next = null;
    peer.timersHandshakeComplete();
    if (peer.staged.length > 0) this.sendStaged(peer);
  }

  private underLoad(now: number): boolean {
    if (now - this.hsWindowStart >= 1000) {
      this.hsWindowStart = now;
      this.hsCount = 0;
    }
    if (++this.hsCount > this.underLoadThreshold) this.underLoadUntil = now + UNDER_LOAD_HOLD_MS;
    return now < this.underLoadUntil;
  }

  private handleHandshake(msg: Buffer, type: number, family: number, addrs: Uint8Array, addrOff: number, port: number): void {
    const now = this.clock.now();
    if (type === MSG_COOKIE_REPLY) {
      const e = this.indices.get(msg.readUInt32LE(COOKIE_RECEIVER));
      if (!e || !e.peer.cookies.consumeReply(msg)) this.drops.handshake++;
      return;
    }
    if (!this.cookieChecker.checkMac1(msg)) {
      this.drops.handshake++;
      return;
    }
    if (this.underLoad(now)) {
      const alen = family === 4 ? 4 : 16;
      const src = Buffer.alloc(alen + 2);
      src.set(addrs.subarray(addrOff, addrOff + alen));
      src.writeUInt16LE(port, alen);
      if (!this.cookieChecker.checkMac2(msg, src)) {
        const reply = this.cookieChecker.createReply(msg, src);
        if (reply) this.sendRaw(reply, family, addrs, addrOff, port);
        return;
      }
      if (!this.rateLimiter.allow(formatIP(src.subarray(0, alen)))) {
        this.drops.handshake++;
        return;
      }
    }

    if (type === MSG_INITIATION) {
      const res = consumeInitiation(this, msg);
      if ('error' in res) {
        this.drops.handshake++;
        if (res.error !== 'decrypt') this.log(`handshake initiation refused: ${res.error}`);
        return;
      }
      const peer = res.hs.owner as Peer;
      peer.updateEndpoint(family, addrs, addrOff, port);
      peer.rxBytes += msg.length;
      const resp = createResponse(this, res.hs);
      if (!resp) {
        this.drops.handshake++;
        return;
      }
      peer.cookies.addMacs(resp);
      const kp = deriveKeypair(res.hs, now)!;
      this.beginSession(peer, kp);
      peer.timersSessionDerived();
      peer.timersAnyAuthenticatedPacketTraversal();
      peer.timersAnyAuthenticatedPacketSent();
      this.sendOne(peer, resp, 0, resp.length);
      if (peer.staged.length > 0) this.answeredWhileWaiting(peer);
      return;
    }

    // MSG_RESPONSE
    const e = this.indices.get(msg.readUInt32LE(RESP_RECEIVER));
    if (!e || e.keypair !== null || !consumeResponse(this, e.peer.handshake, msg)) {
      this.drops.handshake++;
      return;
    }
    const peer = e.peer;
    peer.updateEndpoint(family, addrs, addrOff, port);
    peer.rxBytes += msg.length;
    peer.timersAnyAuthenticatedPacketTraversal();
    peer.timersAnyAuthenticatedPacketReceived();
    const kp = deriveKeypair(peer.handshake, now)!;
    this.beginSession(peer, kp);
    peer.timersSessionDerived();
    peer.timersHandshakeComplete();
    this.sendKeepalive(peer);
  }

  /**
   * We answered the peer's initiation while packets wait for it, so we hold a responder keypair that we
   * may not send with until the peer has used it. Normally the peer's first packet on it arrives within
   * a round trip. But when both sides initiated at the same moment, each consumed the other's initiation
   * (which replaces its own handshake state) and each then drops the other's response as stale: nothing
   * arrives, and plain WireGuard (wireguard-go, the kernel) waits REKEY_TIMEOUT (5 s) for the retransmit.
   * So if nothing has confirmed a session shortly, we initiate again, which is what the retransmit would
   * send, only sooner (wire-compatible). The side with the larger public key goes first; the other waits
   * longer, so two meshward devices do not collide again (the first side's initiation restarts the
   * other's timer, and its handshake completes before that fires). The other still goes early if the
   * first never does, as when the peer is wireguard-go.
   */
  private answeredWhileWaiting(peer: Peer): void {
    const first = Buffer.compare(this.staticKey!.publicKey.raw, peer.publicKey.raw) > 0;
    const delay = (first ? EARLY_FIRST_MS : EARLY_SECOND_MS) + Math.floor(this.clock.random() * EARLY_JITTER_MS);
    peer.earlyInitiationTimer.mod(delay);
  }

  private beginSession(peer: Peer, kp: Keypair): void {
    this.indices.set(kp.localIndex, { peer, keypair: kp });
    if (kp.isInitiator) {
      if (peer.next) {
        this.deleteKeypair(peer.previous);
        peer.previous = peer.next;
        peer.next = null;
        this.deleteKeypair(peer.current);
      } else {
        this.deleteKeypair(peer.previous);
        peer.previous = peer.current;
      }
      peer.current = kp;
    } else {
      this.deleteKeypair(peer.next);
      peer.next = kp;
      this.deleteKeypair(peer.previous);
      peer.previous = null;
    }
  }
}

export { Peer };
