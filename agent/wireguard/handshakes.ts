// Handshakes: answering initiations and responses (with cookies under load), initiating, and turning
// a finished handshake into the peer's session keys. Rare compared to transport packets, so this code
// may allocate.
import { formatIP } from './allowedips.js';
import { Timer } from './clock.js';
import { CookieChecker } from './cookie.js';
import type { PublicKey } from './crypto.js';
import type { Device } from './device.js';
import { COOKIE_RECEIVER, MSG_COOKIE_REPLY, MSG_INITIATION, RELAY_FAMILY, RESP_RECEIVER } from './messages.js';
import { consumeInitiation, consumeResponse, createInitiation, createResponse, deriveKeypair, type Keypair } from './noise.js';
import { MAX_EARLY_INITIATIONS, MAX_UNDELIVERED_RETRIES, REKEY_ATTEMPT_TIME, REKEY_TIMEOUT, type Peer } from './peer.js';
import { HandshakeQueue } from './hsqueue.js';
import { HandshakeRateLimiter } from './ratelimit.js';

const UNDER_LOAD_HOLD_MS = 1000;
// Delays of an early initiation after a collision (see answeredWhileWaiting). The first exceeds the
// peer's 20 ms initiation flood limit and the 16.7 ms granularity of the TAI64N timestamp.
const EARLY_FIRST_MS = 30;
const EARLY_SECOND_MS = 200;
const EARLY_JITTER_MS = 50;
// A flood of handshake messages (each costs a Diffie-Hellman or a cookie reply) must not starve
// transport packets: they are handled at most HANDSHAKES_PER_SECOND (bursts of HANDSHAKE_BURST);
// beyond that they wait in a bounded queue (hsqueue.ts), and beyond that they are dropped. Each costs
// some 0.3 ms (a cookie reply: mac1 check, XChaCha20-Poly1305, in JS) to 0.5 ms (a Diffie-Hellman
// handshake), so this is under a tenth of a core, and still more than the rekeys of thousands of peers.
const HANDSHAKES_PER_SECOND = 250;
const HANDSHAKE_BURST = 100;
const HANDSHAKE_QUEUE = 512;
/** At most one search for the sender of a transport message with an unknown session per this many ms. */
const UNKNOWN_SESSION_SEARCH_MS = 10;
/** A first initiation through the relay still unanswered after this long is sent again (see initiate). */
const RELAY_EARLY_RETRY_MS = 1000;
/** retryNow waits this long after the last initiation (the responder refuses ones < 20 ms apart). */
const RETRY_NOW_MIN_MS = 50;
/** An initiation the relay reported undeliverable is sent again this long after (see undelivered). */
const UNDELIVERED_RETRY_MS = 500;
/**
 * The re-sends go on while the relay's latest notice is younger than this. The relay sends at most one
 * notice per destination a second, so every other re-send brings none: 1.5 s spans that silence.
 */
const UNDELIVERED_FRESH_MS = 1500;

export class Handshakes {
  private readonly cookieChecker: CookieChecker;
  private readonly rateLimiter: HandshakeRateLimiter;
  private hsWindowStart = -Infinity;
  private hsCount = 0;
  private underLoadUntil = -Infinity;
  private nextUnknownSearch = -Infinity;
  private readonly queue = new HandshakeQueue(HANDSHAKE_QUEUE);
  /** Handshake messages that may be handled now (a token bucket). */
  private tokens = HANDSHAKE_BURST;
  private tokensAt: number;
  private readonly drainTimer: Timer;

  constructor(
    private readonly dev: Device,
    private readonly underLoadThreshold: number,
  ) {
    this.cookieChecker = new CookieChecker(() => dev.clock.now());
    this.rateLimiter = new HandshakeRateLimiter(dev.clock);
    this.tokensAt = dev.clock.now();
    this.drainTimer = new Timer(dev.clock, () => this.drain());
  }

  /** Our public key changed (null: no key): cookies and mac1 follow it. */
  setPublicKey(key: PublicKey | null): void {
    this.cookieChecker.init(key);
  }

  /**
   * Whether the next handshake message is handled in line, right now and in order with the transport
   * packets around it (true: the caller then calls handle()), or goes to the queue (false: enqueue()).
   */
  takeInline(): boolean {
    if (this.queue.length > 0 || this.refill() < 1) return false;
    this.tokens--;
    return true;
  }

  private refill(): number {
    const now = this.dev.clock.now();
    this.tokens = Math.min(HANDSHAKE_BURST, this.tokens + ((now - this.tokensAt) * HANDSHAKES_PER_SECOND) / 1000);
    this.tokensAt = now;
    return this.tokens;
  }

  /** Queues a handshake message for later, or drops it (counted) when the queue is full. */
  enqueue(buf: Buffer, off: number, len: number, type: number, family: number, addrs: Uint8Array, addrOff: number, port: number): void {
    if (!this.queue.push(buf, off, len, type, family, addrs, addrOff, port)) {
      this.dev.drops.handshake++;
      return;
    }
    if (!this.drainTimer.pending()) this.drainTimer.mod(this.msUntilToken());
  }

  /** The device closed: forget what waits. */
  stop(): void {
    this.drainTimer.stop();
    this.queue.clear();
  }

  private msUntilToken(): number {
    return Math.max(0, Math.ceil(((1 - this.refill()) * 1000) / HANDSHAKES_PER_SECOND));
  }

  private drain(): void {
    if (this.dev.udp === null) {
      this.queue.clear();
      return;
    }
    try {
      while (this.queue.length > 0 && this.refill() >= 1) {
        this.tokens--;
        this.queue.shift(this.handleQueued);
      }
    } catch (err) {
      this.dev.internalError(err);
    }
    if (this.queue.length > 0) this.drainTimer.mod(this.msUntilToken());
  }

  private readonly handleQueued = (msg: Buffer, type: number, family: number, addrs: Uint8Array, addrOff: number, port: number): void =>
    this.handle(msg, type, family, addrs, addrOff, port);

  /** A handshake message (initiation, response or cookie reply) from the given source. */
  handle(msg: Buffer, type: number, family: number, addrs: Uint8Array, addrOff: number, port: number): void {
    const dev = this.dev;
    const now = dev.clock.now();
    if (type === MSG_COOKIE_REPLY) {
      const e = dev.sessions.get(msg.readUInt32LE(COOKIE_RECEIVER));
      if (!e || !e.peer.cookies.consumeReply(msg)) dev.drops.handshake++;
      return;
    }
    if (!this.cookieChecker.checkMac1(msg)) {
      dev.drops.handshake++;
      return;
    }
    if (this.underLoad(now)) {
      const alen = family === 4 ? 4 : 16;
      const src = Buffer.alloc(alen + 2);
      src.set(addrs.subarray(addrOff, addrOff + alen));
      src.writeUInt16LE(port, alen);
      if (!this.cookieChecker.checkMac2(msg, src)) {
        const reply = this.cookieChecker.createReply(msg, src);
        if (reply) dev.send.sendTo(reply, family, addrs, addrOff, port);
        return;
      }
      if (!this.rateLimiter.allow(formatIP(src.subarray(0, alen)))) {
        dev.drops.handshake++;
        return;
      }
    }
    if (type === MSG_INITIATION) this.answerInitiation(msg, family, addrs, addrOff, port, now);
    else this.finishWithResponse(msg, family, addrs, addrOff, port, now);
  }

  private answerInitiation(msg: Buffer, family: number, addrs: Uint8Array, addrOff: number, port: number, now: number): void {
    const dev = this.dev;
    const res = consumeInitiation(dev, msg);
    if ('error' in res) {
      dev.drops.handshake++;
      if (res.error !== 'decrypt') dev.log(`handshake initiation refused: ${res.error}`);
      return;
    }
    const peer = res.hs.owner as Peer;
    peer.updateEndpoint(family, addrs, addrOff, port);
    peer.rxBytes += msg.length;
    const resp = createResponse(dev, res.hs);
    if (!resp) {
      dev.drops.handshake++;
      return;
    }
    peer.cookies.addMacs(resp);
    const kp = deriveKeypair(res.hs, now)!;
    this.beginSession(peer, kp);
    peer.timersSessionDerived();
    peer.timersAnyAuthenticatedPacketTraversal();
    peer.timersAnyAuthenticatedPacketSent();
    dev.send.sendOne(peer, resp, 0, resp.length);
    // Path discovery has not confirmed a direct path (so the answer went to the relay), but the
    // initiation came over UDP: answer there too. The peer's relay may not be connected yet (it has
    // just started); this does not move the peer's endpoint, and the copy that loses is dropped.
    if (!peer.roams && !peer.direct && family !== RELAY_FAMILY && dev.send.relayed(peer)) dev.send.sendTo(resp, family, addrs, addrOff, port);
    // Packets wait for this peer, or our own initiation to it is unanswered (say both sides greeted
    // each other on starting): either way a collision would leave us without a session for 5 s.
    if (peer.staged.length > 0 || peer.retransmitHandshake.pending()) this.answeredWhileWaiting(peer);
  }

  private finishWithResponse(msg: Buffer, family: number, addrs: Uint8Array, addrOff: number, port: number, now: number): void {
    const dev = this.dev;
    const e = dev.sessions.get(msg.readUInt32LE(RESP_RECEIVER));
    if (!e || e.keypair !== null || !consumeResponse(dev, e.peer.handshake, msg)) {
      dev.drops.handshake++;
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
    dev.send.sendKeepalive(peer);
  }

  /**
   * A transport message named a receiver index we do not know. After our restart that is how our
   * peers' packets look: they still use the session they had with our previous run, and would wait out
   * their keepalive and rekey timers (~15 s) before handshaking again. So if the sender is a peer we
   * know (by the endpoint the message came from, or by its key as the relay names it), we initiate
   * now; sendInitiation already sends at most
   * one initiation per peer per REKEY_TIMEOUT. The search itself is rate-limited, since anyone can send
   * such messages.
   */
  unknownSession(family: number, addrs: Uint8Array, addrOff: number, port: number, now: number): void {
    if (now < this.nextUnknownSearch) return;
    this.nextUnknownSearch = now + UNKNOWN_SESSION_SEARCH_MS;
    const dev = this.dev;
    const peer = family === RELAY_FAMILY ? (dev.relaySrc ? (dev.getPeer(dev.relaySrc) ?? null) : null) : dev.peerAtEndpoint(family, addrs, addrOff, port);
    if (peer !== null) this.sendInitiation(peer, false);
  }

  private underLoad(now: number): boolean {
    if (now - this.hsWindowStart >= 1000) {
      this.hsWindowStart = now;
      this.hsCount = 0;
    }
    if (++this.hsCount > this.underLoadThreshold) this.underLoadUntil = now + UNDER_LOAD_HOLD_MS;
    return now < this.underLoadUntil;
  }

  /** Starts a handshake unless one went out less than REKEY_TIMEOUT ago. */
  sendInitiation(peer: Peer, isRetry: boolean): void {
    if (!isRetry) peer.handshakeAttempts = 0;
    const now = this.dev.clock.now();
    if (now - peer.handshake.lastSentInitiation < REKEY_TIMEOUT) return;
    this.initiate(peer);
  }

  /**
   * Starts a handshake now instead of at the retransmit timer: the way to the peer has just changed (see
   * Device.relayReady). Not within RETRY_NOW_MIN_MS of the last one, which the peer would refuse as a
   * flood: then once that much time has passed (unless a session exists by then). Dropping it instead
   * would leave the peer to the retransmit, 5 s later: the relay often connects a few ms after a
   * starting device sent its first initiation over UDP, which cannot have reached a peer behind NAT.
   */
  retryNow(peer: Peer): void {
    const since = this.dev.clock.now() - peer.handshake.lastSentInitiation;
    if (since < RETRY_NOW_MIN_MS) {
      if (!peer.deferredRetryTimer.pending()) peer.deferredRetryTimer.mod(RETRY_NOW_MIN_MS - since);
      return;
    }
    peer.deferredRetryTimer.del();
    this.initiate(peer);
  }

  /**
   * The relay could not deliver a message to the peer: it is not connected there (yet: it may be
   * starting, or moving to the relay we reach it by), or the relay does not know it as our peer yet.
   * If our initiation to it is unanswered, the next one would go out only at the retransmit, up to
   * REKEY_TIMEOUT after the peer became reachable. So while the relay keeps reporting the peer
   * undeliverable, we send the initiation again every UNDELIVERED_RETRY_MS, and the first to arrive once
   * the peer is there completes the handshake.
   *
   * This departs from WireGuard, which (wireguard-go's SendHandshakeInitiation and its retransmit timer,
   * like the kernel's) sends at most one initiation per REKEY_TIMEOUT while a handshake is unanswered.
   * The departure is bounded: at most MAX_UNDELIVERED_RETRIES per REKEY_ATTEMPT_TIME per peer, none
   * within RETRY_NOW_MIN_MS of another (a responder accepts one per 20 ms), none once a session exists,
   * and the notices only ever start or continue that one timer. A relay that lies with notices (they
   * are not authenticated) therefore gets no more than those few initiations out of us, each 148 bytes
   * through the relay itself.
   */
  undelivered(peer: Peer): void {
    const now = this.dev.clock.now();
    if (peer.canSend(peer.current, now) || !peer.retransmitHandshake.pending() || !this.dev.send.relayed(peer)) return;
    peer.undeliveredAt = now;
    if (!peer.undeliveredRetryTimer.pending()) peer.undeliveredRetryTimer.mod(UNDELIVERED_RETRY_MS);
  }

  /** The timer undelivered started: one re-send, and the next while the relay's notices keep coming. */
  retryUndelivered(peer: Peer): void {
    const dev = this.dev;
    const now = dev.clock.now();
    if (peer.canSend(peer.current, now) || !dev.send.relayed(peer) || now - peer.undeliveredAt > UNDELIVERED_FRESH_MS) return;
    if (now - peer.undeliveredWindowStart >= REKEY_ATTEMPT_TIME) {
      peer.undeliveredWindowStart = now;
      peer.undeliveredRetries = 0;
    }
    if (peer.undeliveredRetries >= MAX_UNDELIVERED_RETRIES) return;
    peer.undeliveredRetries++;
    this.retryNow(peer);
    peer.undeliveredRetryTimer.mod(UNDELIVERED_RETRY_MS);
  }

  /**
   * Coord reports a change in the peer's reachability (online, home relay): an initiation the relay
   * reported undeliverable goes again now. Coord is trusted, and retryNow keeps the flood guard.
   */
  peerMayBeReachable(peer: Peer): void {
    const now = this.dev.clock.now();
    if (peer.undeliveredAt === -Infinity || peer.canSend(peer.current, now) || !peer.retransmitHandshake.pending()) return;
    if (this.dev.send.canReach(peer)) this.retryNow(peer);
  }

  /**
   * The early initiation answeredWhileWaiting scheduled: sent only if there is still no session to send
   * with, and at most MAX_EARLY_INITIATIONS per REKEY_TIMEOUT, so two devices can never loop on it.
   */
  sendEarly(peer: Peer): void {
    const now = this.dev.clock.now();
    if (peer.canSend(peer.current, now)) return;
    if (now - peer.earlyWindowStart >= REKEY_TIMEOUT) {
      peer.earlyWindowStart = now;
      peer.earlyInitiations = 0;
    }
    if (peer.earlyInitiations >= MAX_EARLY_INITIATIONS) return;
    peer.earlyInitiations++;
    this.initiate(peer);
  }

  private initiate(peer: Peer): void {
    const dev = this.dev;
    if (!dev.send.canReach(peer)) {
      // Nowhere to send yet; keep retrying so a later endpoint gets one.
      peer.timersHandshakeInitiated();
      return;
    }
    const msg = createInitiation(dev, peer.handshake);
    if (!msg) return;
    peer.cookies.addMacs(msg);
    peer.timersAnyAuthenticatedPacketTraversal();
    peer.timersAnyAuthenticatedPacketSent();
    const relayed = dev.send.relayed(peer);
    dev.send.sendOne(peer, msg, 0, msg.length);
    dev.handshakeCounts.initiated++;
    peer.timersHandshakeInitiated();
    // Through the relay an answer takes well under a second; if none came (a relay reconnecting, a
    // peer whose netmap lags), try once more early instead of waiting out REKEY_TIMEOUT. sendEarly
    // skips it once a session exists, and allows at most MAX_EARLY_INITIATIONS per REKEY_TIMEOUT.
    if (relayed && peer.handshakeAttempts === 0 && !peer.canSend(peer.current, dev.clock.now())) peer.earlyInitiationTimer.mod(RELAY_EARLY_RETRY_MS);
  }

  /**
   * We answered the peer's initiation while packets wait for it (or while our own initiation to it is
   * unanswered), so we hold a responder keypair that we may not send with until the peer has used it.
   * Normally the peer's first packet on it arrives within a round trip. But when both sides initiated at
   * the same moment, each consumed the other's initiation (which replaces its own handshake state) and
   * each then drops the other's response as stale: nothing arrives, and plain WireGuard (wireguard-go,
   * the kernel) waits REKEY_TIMEOUT (5 s) for the retransmit. So if nothing has confirmed a session
   * shortly, we initiate again, which is what the retransmit would send, only sooner (wire-compatible).
   * The side with the larger public key goes first; the other waits longer, so two meshward devices do
   * not collide again (the first side's initiation restarts the other's timer, and its handshake
   * completes before that fires). The other still goes early if the first never does, as when the peer
   * is wireguard-go.
   */
  private answeredWhileWaiting(peer: Peer): void {
    const dev = this.dev;
    const first = Buffer.compare(dev.staticKey!.publicKey.raw, peer.publicKey.raw) > 0;
    const delay = (first ? EARLY_FIRST_MS : EARLY_SECOND_MS) + Math.floor(dev.clock.random() * EARLY_JITTER_MS);
    peer.earlyInitiationTimer.mod(delay);
  }

  /** A handshake produced `kp`: the initiator sends with it at once, the responder holds it as next. */
  private beginSession(peer: Peer, kp: Keypair): void {
    const dev = this.dev;
    dev.handshakeCounts.completed++;
    dev.onSession?.(peer);
    dev.sessions.set(kp.localIndex, { peer, keypair: kp });
    if (kp.isInitiator) {
      if (peer.next) {
        dev.deleteKeypair(peer.previous);
        peer.previous = peer.next;
        peer.next = null;
        dev.deleteKeypair(peer.current);
      } else {
        dev.deleteKeypair(peer.previous);
        peer.previous = peer.current;
      }
      peer.current = kp;
    } else {
      dev.deleteKeypair(peer.next);
      peer.next = kp;
      dev.deleteKeypair(peer.previous);
      peer.previous = null;
    }
  }

  /** The responder's new keypair becomes current once the initiator has used it. */
  confirmNext(peer: Peer, kp: Keypair): void {
    const dev = this.dev;
    dev.deleteKeypair(peer.previous);
    peer.previous = peer.current;
    peer.current = kp;
    peer.next = null;
    peer.timersHandshakeComplete();
    if (peer.staged.length > 0) dev.send.sendStaged(peer);
  }
}
