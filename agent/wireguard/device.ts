// A WireGuard device: configuration, peers, sessions and lifecycle. Its data path is split like
// wireguard-go's: send.ts (TUN → peers), receive.ts (peers → TUN), handshakes.ts (Noise handshakes and
// cookies); keyruns.ts holds the batched AEAD loop both paths share. I/O comes and leaves in batches
// (the native addon's shape); per-packet work reuses preallocated buffers. Handshakes, cookies and
// timers allocate (they are rare).
import type { Tun, UdpBatchHandler, UdpSocket } from '../../native/index.js';
import { UNDELIVERABLE } from '../../wire/relay.js';
import { classifyDatagram, DatagramKind } from '../connectivity/demux.js';
import { AllowedIPs, formatIP, formatPrefix, parseIP, parsePrefix, type Prefix } from './allowedips.js';
import { systemClock, type Clock } from './clock.js';
import { PrivateKey, PublicKey, ctEqual, isZero, randomBytes } from './crypto.js';
import { Handshakes } from './handshakes.js';
import { RELAY_FAMILY, TRANSPORT_HEADER_SIZE } from './messages.js';
import type { Handshake, Keypair, NoiseHost } from './noise.js';
import { Peer, REJECT_AFTER_MESSAGES, type PeerHost } from './peer.js';
import { ReceivePath } from './receive.js';
import { SendPath } from './send.js';

export type { UdpBatchHandler };

/** The UDP socket the device sends through (native UdpSocket's shape). */
export type UdpLike = Pick<UdpSocket, 'localPort' | 'sendBatch' | 'close'>;

/** Where decrypted packets go (native Tun's shape). */
export type TunLike = Pick<Tun, 'write'>;

/**
 * The relay as the device uses it (RelayClient's shape): packets to a peer by its public key. Sends
 * return false when the relay cannot take them now (not connected, or its queue is full).
 */
export interface RelayLink {
  readonly connected: boolean;
  send(dst: Uint8Array, packet: Uint8Array): boolean;
  /** Packets buf[offsets[pick[i]] .. +lengths[pick[i]]) for i < count to `dst`, as one batch. */
  sendSlots(dst: Uint8Array, buf: Buffer, offsets: Uint32Array, lengths: Uint32Array, pick: Uint32Array, count: number): boolean;
}

export { RELAY_FAMILY };

/**
 * A datagram on the UDP socket that is not WireGuard (STUN, disco): a copy the handler may keep, and
 * the source it came from.
 */
export type DatagramHandler = (packet: Buffer, from: { address: string; port: number }) => void;

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

/** Handshakes, for metrics: plain numbers bumped where handshakes happen (handshakes.ts, peer.ts). */
export class HandshakeCounters {
  /** Initiation messages sent (first tries and retries). */
  initiated = 0;
  /** Handshakes that produced a session, as initiator (response consumed) or responder (response sent). */
  completed = 0;
  /** Peers given up on: no answer within REKEY_ATTEMPT_TIME (90 s of retries). */
  failed = 0;
}

/** What a receiver index names: a peer's handshake in progress (keypair null) or one of its sessions. */
export interface SessionEntry {
  peer: Peer;
  keypair: Keypair | null;
}

const NO_PEER_KEY = Buffer.alloc(32);
/** How long, and for how many keys, an initiation from a not-yet peer is remembered (greetedBy). */
const GREETED_BY_MS = 10_000;
const GREETED_BY_MAX = 64;

export class Device implements NoiseHost, PeerHost {
  staticKey: PrivateKey | null = null;
  readonly drops = new DropCounters();
  readonly handshakeCounts = new HandshakeCounters();
  beforeEncrypt: PacketHook | null;
  afterDecrypt: PacketHook | null;
  fwmark = 0;
  /** Largest plaintext IP packet a buffer slot holds. */
  readonly maxPacket: number;
  /** Bytes per buffer slot: the largest datagram sent or accepted. */
  readonly slot: number;

  // Shared with the data path (send.ts, receive.ts, handshakes.ts); not for callers.
  /** @internal */ readonly clock: Clock;
  /** @internal */ readonly allowed = new AllowedIPs<Peer>();
  /** @internal Receiver index → handshake or session. */ readonly sessions = new Map<number, SessionEntry>();
  /** @internal */ readonly batch: number;
  /** @internal */ readonly tun: TunLike;
  /** @internal */ readonly log: (msg: string) => void;
  /** @internal */ mtu: number;
  /** @internal */ udp: UdpLike | null = null;
  /** Where packets to peers without a working direct path go (null: always UDP, as plain WireGuard). */
  relay: RelayLink | null = null;
  /** STUN answers arriving on the UDP socket (netcheck through WireGuard's own mapping); null: dropped. */
  onStun: DatagramHandler | null = null;
  /** Disco (path discovery) messages arriving on the UDP socket; null: dropped. */
  onDisco: DatagramHandler | null = null;
  /** A handshake gave the peer a new session (path discovery probes then). */
  onSession: ((peer: Peer) => void) | null = null;
  /** @internal */ readonly send: SendPath;
  /** @internal */ readonly receive: ReceivePath;
  /** @internal */ readonly handshakes: Handshakes;

  private readonly peers = new Map<string, Peer>();
  private listenPort = 0;
  private closed = false;

  constructor(private readonly opts: DeviceOptions) {
    this.clock = opts.clock ?? systemClock;
    this.mtu = opts.mtu ?? 1420;
    this.batch = opts.batch ?? 128;
    this.tun = opts.tun;
    this.beforeEncrypt = opts.beforeEncrypt ?? null;
    this.afterDecrypt = opts.afterDecrypt ?? null;
    this.log = opts.log ?? (() => {});
    // A slot holds the largest datagram: header + padded packet + tag (TUN may hand us up to 64 KiB).
    this.maxPacket = Math.max(opts.maxPacket ?? 9000, this.mtu);
    this.slot = ((this.maxPacket + 15) & ~15) + TRANSPORT_HEADER_SIZE + 16;
    this.handshakes = new Handshakes(this, opts.underLoadThreshold ?? 64);
    this.send = new SendPath(this);
    this.receive = new ReceivePath(this);
    const n = this.batch;
    this.relayIn = {
      offsets: new Uint32Array(n),
      lengths: new Uint32Array(n),
      addrs: new Uint8Array(16 * n),
      ports: new Uint16Array(n),
      families: new Uint8Array(n).fill(RELAY_FAMILY),
    };
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
    this.handshakes.stop();
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
    this.handshakes.setPublicKey(key ? key.publicKey : null);
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
      if (pk > 0 && was === 0 && this.send.canReach(peer)) this.send.sendKeepalive(peer);
    }
    // Packets that waited for an endpoint can go now.
    if (peer.staged.length > 0 && this.send.canReach(peer)) this.send.sendStaged(peer);
    const greeted = created ? this.greetedBy.get(pubKey.hex) : undefined;
    if (greeted !== undefined) {
      this.greetedBy.delete(pubKey.hex);
      if (this.clock.now() - greeted < GREETED_BY_MS) this.handshakes.sendInitiation(peer, false);
    }
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

  /**
   * Path discovery's verdict for a peer: a confirmed direct endpoint (packets go there over UDP), or
   * null (through the relay while it is connected; the endpoint stays as a fallback for when it is not).
   * The peer's endpoint no longer roams: only this moves it. Sessions are untouched, so a connection
   * over the tunnel never notices the switch.
   */
  setPeerPath(peer: Peer, endpoint: { address: string; port: number } | null): void {
    peer.roams = false;
    if (endpoint) {
      const ip = parseIP(endpoint.address);
      if (!ip || !(endpoint.port > 0 && endpoint.port < 65536)) throw new Error(`invalid endpoint ${endpoint.address} port ${endpoint.port}`);
      peer.endpointAddr.fill(0);
      ip.copy(peer.endpointAddr);
      peer.endpointFamily = ip.length === 4 ? 4 : 6;
      peer.endpointPort = endpoint.port;
    }
    peer.direct = endpoint !== null;
    if (peer.staged.length > 0 && this.send.canReach(peer)) this.send.sendStaged(peer);
  }

  /**
   * Sends one datagram that is not WireGuard (STUN, disco) from the WireGuard socket, so that it takes
   * the same NAT mapping as WireGuard traffic. False if it could not be sent.
   */
  sendDatagram(packet: Buffer, address: string, port: number): boolean {
    const ip = parseIP(address);
    if (!ip || !this.udp || !(port > 0 && port < 65536) || packet.length > this.slot) return false;
    const o = this.rawOut;
    o.addrs.fill(0);
    o.addrs.set(ip);
    o.ports[0] = port;
    o.families[0] = ip.length === 4 ? 4 : 6;
    o.lengths[0] = packet.length;
    return this.udp.sendBatch(packet, o.offsets, o.lengths, o.addrs, o.ports, o.families, 1) === 1;
  }

  private readonly rawOut = {
    offsets: new Uint32Array(1),
    lengths: new Uint32Array(1),
    addrs: new Uint8Array(16),
    ports: new Uint16Array(1),
    families: new Uint8Array(1),
  };

  /** @internal A datagram that is not WireGuard, from the receive path: STUN and disco to their handlers. */
  otherDatagram(buf: Buffer, off: number, len: number, family: number, addrs: Uint8Array, addrOff: number, port: number): void {
    const kind = family === 4 || family === 6 ? classifyDatagram(buf.subarray(off, off + len)) : DatagramKind.Other;
    const handler = kind === DatagramKind.Stun ? this.onStun : kind === DatagramKind.Disco ? this.onDisco : null;
    if (handler === null) {
      this.drops.malformed++;
      return;
    }
    const address = formatIP(addrs.subarray(addrOff, addrOff + (family === 4 ? 4 : 16)));
    handler(Buffer.from(buf.subarray(off, off + len)), { address, port });
  }

  /** Whether packets to the peer go through the relay now (no working direct path, relay connected). */
  relayed(peer: Peer): boolean {
    return this.send.relayed(peer);
  }

  /**
   * The relay is connected (again): packets that waited for a way to the peers go now. A peer without a
   * direct path and still without a session is greeted again at once: an initiation sent before the relay
   * was there went over UDP into the void (or was an answer lost while a peer's home relay, opened on
   * demand, was connecting), and its retransmit would come REKEY_TIMEOUT (5 s) later.
   */
  relayReady(): void {
    const now = this.clock.now();
    for (const peer of this.peers.values()) {
      if (!this.send.canReach(peer)) continue;
      if (peer.canSend(peer.current, now)) {
        if (peer.staged.length > 0) this.send.sendStaged(peer);
      } else if (!peer.direct && (peer.staged.length > 0 || peer.retransmitHandshake.pending() || peer.next !== null)) {
        this.handshakes.retryNow(peer);
      }
    }
  }

  /**
   * The relay could not deliver a message to `dst` (reason 1: not connected there, 2: not a peer as the
   * relay sees it). Neither is final: the peer may be starting, or the relay's view of the netmap may
   * lag coord's. An unanswered initiation to it is sent again soon (Handshakes.undelivered: bounded).
   */
  relayUndeliverable(dst: Uint8Array, reason: number): void {
    if (this.closed || (reason !== UNDELIVERABLE.notHere && reason !== UNDELIVERABLE.notAllowed)) return;
    const peer = this.getPeer(dst);
    if (peer) this.handshakes.undelivered(peer);
  }

  /**
   * The coordination server says the peer's way may have changed (it came online, or its home relay
   * moved): an initiation the relay reported undeliverable is sent again now, not at the retransmit.
   */
  peerMayBeReachable(pub: Uint8Array): void {
    const peer = this.getPeer(pub);
    if (peer) this.handshakes.peerMayBeReachable(peer);
  }

  /**
   * A message from a peer through the relay (valid only during the call; opened in place): the same
   * receive path as a UDP datagram, but it never moves the peer's UDP endpoint. `src`, the sender's
   * public key as the relay authenticated it, lets a transport message for a session we no longer
   * have (after our restart) start a handshake with its sender, as one over UDP does by its address.
   */
  relayReceive(packet: Buffer, src: Uint8Array | null = null): void {
    const r = this.relayIn;
    r.offsets[0] = 0;
    r.lengths[0] = packet.length;
    this.relayReceiveBatch(packet, r.offsets, r.lengths, 1, src);
  }

  /**
   * Messages buf[offsets[i] .. +lengths[i]) for i < count from one peer through the relay (valid only
   * during the call; opened in place), handled as one batch like a UDP batch: one AEAD run per key and
   * one TUN write for the lot, so that TCP segments are coalesced as on the direct path. `src` as in
   * relayReceive.
   */
  relayReceiveBatch(buf: Buffer, offsets: Uint32Array, lengths: Uint32Array, count: number, src: Uint8Array | null = null): void {
    if (this.closed) return;
    const r = this.relayIn;
    this.relaySrc = src;
    try {
      if (count <= this.batch) {
        this.receive.udpBatch(buf, offsets, lengths, r.addrs, r.ports, r.families, count);
        return;
      }
      for (let i = 0; i < count; ) {
        const n = Math.min(this.batch, count - i);
        for (let k = 0; k < n; k++) {
          r.offsets[k] = offsets[i + k];
          r.lengths[k] = lengths[i + k];
        }
        this.receive.udpBatch(buf, r.offsets, r.lengths, r.addrs, r.ports, r.families, n);
        i += n;
      }
    } catch (err) {
      this.internalError(err);
    } finally {
      this.relaySrc = null;
    }
  }

  /** @internal The relay's sender of the messages being received (see relayReceive). */
  relaySrc: Uint8Array | null = null;

  /** Slots for relayed messages; their source "address" is RELAY_FAMILY, which never moves an endpoint. */
  private readonly relayIn: {
    offsets: Uint32Array;
    lengths: Uint32Array;
    addrs: Uint8Array;
    ports: Uint16Array;
    families: Uint8Array;
  };

  endpointText(peer: Peer): string | null {
    if (!peer.endpointFamily) return null;
    if (peer.endpointFamily === 4) return `${formatIP(peer.endpointAddr.subarray(0, 4))}:${peer.endpointPort}`;
    return `[${formatIP(peer.endpointAddr)}]:${peer.endpointPort}`;
  }

  /** The peer whose endpoint is this address and port (a linear search: not for every packet). */
  peerAtEndpoint(family: number, addrs: Uint8Array, addrOff: number, port: number): Peer | null {
    const n = family === 4 ? 4 : 16;
    for (const peer of this.peers.values()) {
      if (peer.endpointFamily !== family || peer.endpointPort !== port) continue;
      let k = 0;
      while (k < n && peer.endpointAddr[k] === addrs[addrOff + k]) k++;
      if (k === n) return peer;
    }
    return null;
  }

  /**
   * Starts a handshake with the peer now instead of when a packet first needs one (at most one per
   * REKEY_TIMEOUT). A freshly started device does this for the peers it expects traffic from, whose
   * sessions with its previous run are gone. False if there is no such peer.
   */
  initiateHandshake(pub: Uint8Array): boolean {
    const peer = this.getPeer(pub);
    if (!peer) return false;
    this.handshakes.sendInitiation(peer, false);
    return true;
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
    const hs = this.peers.get(pub.toString('hex'))?.handshake;
    if (!hs) this.noteUnknownInitiator(pub);
    return hs;
  }

  /**
   * Devices that greeted us before they were our peers, by key → when. A new peer and its netmap
   * reach two devices at about the same time: when its initiation wins the race, we greet it back as
   * soon as it becomes a peer (setPeer), instead of leaving it to retransmit after REKEY_TIMEOUT.
   */
  private readonly greetedBy = new Map<string, number>();

  private noteUnknownInitiator(pub: Buffer): void {
    if (this.greetedBy.size >= GREETED_BY_MAX) this.greetedBy.delete(this.greetedBy.keys().next().value!);
    this.greetedBy.set(pub.toString('hex'), this.clock.now());
  }

  allocateIndex(hs: Handshake): number {
    this.clearHandshakeIndex(hs);
    let idx: number;
    do idx = randomBytes(4).readUInt32LE(0);
    while (this.sessions.has(idx));
    this.sessions.set(idx, { peer: hs.owner as Peer, keypair: null });
    return idx;
  }

  private clearHandshakeIndex(hs: Handshake): void {
    const e = this.sessions.get(hs.localIndex);
    if (e && e.keypair === null && e.peer === hs.owner) this.sessions.delete(hs.localIndex);
  }

  now(): number {
    return this.clock.now();
  }

  wallNow(): number {
    return this.clock.wallNow();
  }

  // ---- PeerHost (timers) ----

  sendHandshakeInitiation(peer: Peer, isRetry: boolean): void {
    this.handshakes.sendInitiation(peer, isRetry);
  }

  sendEarlyInitiation(peer: Peer): void {
    this.handshakes.sendEarly(peer);
  }

  retryUndelivered(peer: Peer): void {
    this.handshakes.retryUndelivered(peer);
  }

  retryHandshakeNow(peer: Peer): void {
    if (!peer.canSend(peer.current, this.clock.now())) this.handshakes.retryNow(peer);
  }

  sendKeepalive(peer: Peer): void {
    this.send.sendKeepalive(peer);
  }

  zeroKeyMaterial(peer: Peer): void {
    for (const kp of [peer.previous, peer.current, peer.next]) this.deleteKeypair(kp);
    peer.previous = peer.current = peer.next = null;
    this.clearHandshakeIndex(peer.handshake);
    peer.handshake.clear();
  }

  /** @internal */
  deleteKeypair(kp: Keypair | null): void {
    if (!kp) return;
    const e = this.sessions.get(kp.localIndex);
    if (e && e.keypair === kp) this.sessions.delete(kp.localIndex);
    kp.wipe();
  }

  // ---- the data path's entry points ----

  /** Outbound: a batch of IP packets read from the TUN. */
  readonly onTunBatch = (buf: Buffer, offsets: Uint32Array, lengths: Uint32Array, count: number): void => {
    try {
      this.send.tunBatch(buf, offsets, lengths, count);
    } catch (err) {
      this.internalError(err);
    }
  };

  readonly onUdpBatch: UdpBatchHandler = (buf, offsets, lengths, addrs, ports, families, count) => {
    try {
      this.receive.udpBatch(buf, offsets, lengths, addrs, ports, families, count);
    } catch (err) {
      this.internalError(err);
    }
  };

  /** A bug (ours or a hook's) must not take the interface down: count it, say it, go on. */
  /** @internal */
  internalError(err: unknown): void {
    if (this.drops.internal++ < 10) this.log(`internal error in the data path: ${err instanceof Error ? err.stack : String(err)}`);
  }
}

export { Peer };
