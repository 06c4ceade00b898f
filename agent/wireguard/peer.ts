// One peer's state: handshake, keypairs, endpoint, counters and the protocol timers.
import type { Clock } from './clock.js';
import type { RelayLink } from './device.js';
import { Timer } from './clock.js';
import { CookieGenerator } from './cookie.js';
import { PublicKey } from './crypto.js';
import { Handshake, type Keypair } from './noise.js';

// Timer constants from the WireGuard paper, section 6.
export const REKEY_AFTER_MESSAGES = 2 ** 60;
/** 2^64 - 2^13 - 1 in the paper; counters here are exact up to 2^53, which no session reaches. */
export const REJECT_AFTER_MESSAGES = Number.MAX_SAFE_INTEGER;
export const REKEY_AFTER_TIME = 120_000;
export const REJECT_AFTER_TIME = 180_000;
export const REKEY_ATTEMPT_TIME = 90_000;
export const REKEY_TIMEOUT = 5_000;
export const KEEPALIVE_TIMEOUT = 10_000;
export const ZERO_KEYS_AFTER = REJECT_AFTER_TIME * 3;
export const MAX_TIMER_HANDSHAKES = REKEY_ATTEMPT_TIME / REKEY_TIMEOUT;
const REKEY_TIMEOUT_JITTER_MAX = 334;
/** Early initiations (see Handshakes.answeredWhileWaiting in handshakes.ts) allowed per REKEY_TIMEOUT window. */
export const MAX_EARLY_INITIATIONS = 2;
/** Re-sends of initiations the relay reported undeliverable (Handshakes.undelivered), per REKEY_ATTEMPT_TIME. */
export const MAX_UNDELIVERED_RETRIES = 10;
/** Packets held per peer while a handshake is pending. */
export const MAX_STAGED_PACKETS = 128;

/** The callbacks a peer's timers need from its device. */
export interface PeerHost {
  readonly handshakeCounts: { failed: number };
  sendHandshakeInitiation(peer: Peer, isRetry: boolean): void;
  sendKeepalive(peer: Peer): void;
  sendEarlyInitiation(peer: Peer): void;
  retryUndelivered(peer: Peer): void;
  retryHandshakeNow(peer: Peer): void;
  zeroKeyMaterial(peer: Peer): void;
}

export class Peer {
  readonly handshake: Handshake;
  readonly cookies: CookieGenerator;
  current: Keypair | null = null;
  previous: Keypair | null = null;
  next: Keypair | null = null;

  /** 0 = no endpoint yet; else 4 or 6 with the address in endpointAddr (16 bytes) and the port. */
  endpointFamily = 0;
  readonly endpointAddr = Buffer.alloc(16);
  endpointPort = 0;
  /**
   * Path discovery confirmed the endpoint (a disco pong came from it): packets go there over UDP. While
   * false and the device has a connected relay, the peer is reached through the relay.
   */
  direct = false;
  /**
   * The relay connection that reaches this peer (its home relay); null: the device's own relay
   * (device.relay). Which relay, not whether: `direct` decides that.
   */
  relay: RelayLink | null = null;
  /**
   * WireGuard's roaming: the endpoint follows the source of the latest authenticated packet. Off for a
   * peer whose path discovery chooses the endpoint (only a valid pong may move it, not a packet whose
   * UDP source an on-path attacker rewrote).
   */
  roams = true;
  /** Seconds; 0 = off. */
  persistentKeepalive = 0;

  txBytes = 0;
  rxBytes = 0;
  /** Wall-clock ms of the last completed handshake, 0 if none. */
  lastHandshake = 0;

  staged: Buffer[] = [];
  handshakeAttempts = 0;
  needAnotherKeepalive = false;
  sentLastMinuteHandshake = false;
  /** Early initiations sent in the REKEY_TIMEOUT window that began at earlyWindowStart. */
  earlyInitiations = 0;
  earlyWindowStart = -Infinity;
  /** When the relay last reported a message to this peer undeliverable while our initiation was unanswered. */
  undeliveredAt = -Infinity;
  /** Re-sends for undeliverable notices in the REKEY_ATTEMPT_TIME window that began at undeliveredWindowStart. */
  undeliveredRetries = 0;
  undeliveredWindowStart = -Infinity;

  readonly retransmitHandshake: Timer;
  readonly sendKeepaliveTimer: Timer;
  readonly newHandshake: Timer;
  readonly zeroKeyMaterialTimer: Timer;
  readonly persistentKeepaliveTimer: Timer;
  readonly earlyInitiationTimer: Timer;
  readonly undeliveredRetryTimer: Timer;
  /** A retryNow that came too soon after the last initiation, sent once the flood guard allows. */
  readonly deferredRetryTimer: Timer;

  constructor(
    readonly publicKey: PublicKey,
    private readonly clock: Clock,
    host: PeerHost,
  ) {
    this.handshake = new Handshake(publicKey);
    this.handshake.owner = this;
    this.cookies = new CookieGenerator(publicKey, () => clock.now());
    this.retransmitHandshake = new Timer(clock, () => {
      if (this.handshakeAttempts > MAX_TIMER_HANDSHAKES) {
        // Gave up: drop what waited and forget the keys if nothing else does so first.
        host.handshakeCounts.failed++;
        this.staged = [];
        if (!this.zeroKeyMaterialTimer.pending()) this.zeroKeyMaterialTimer.mod(ZERO_KEYS_AFTER);
        return;
      }
      this.handshakeAttempts++;
      host.sendHandshakeInitiation(this, true);
    });
    this.sendKeepaliveTimer = new Timer(clock, () => {
      host.sendKeepalive(this);
      if (this.needAnotherKeepalive) {
        this.needAnotherKeepalive = false;
        this.sendKeepaliveTimer.mod(KEEPALIVE_TIMEOUT);
      }
    });
    this.newHandshake = new Timer(clock, () => host.sendHandshakeInitiation(this, false));
    this.zeroKeyMaterialTimer = new Timer(clock, () => host.zeroKeyMaterial(this));
    this.persistentKeepaliveTimer = new Timer(clock, () => {
      if (this.persistentKeepalive > 0) host.sendKeepalive(this);
    });
    this.earlyInitiationTimer = new Timer(clock, () => host.sendEarlyInitiation(this));
    this.undeliveredRetryTimer = new Timer(clock, () => host.retryUndelivered(this));
    this.deferredRetryTimer = new Timer(clock, () => host.retryHandshakeNow(this));
  }

  private jitter(): number {
    return Math.floor(this.clock.random() * REKEY_TIMEOUT_JITTER_MAX);
  }

  timersDataSent(): void {
    if (!this.newHandshake.pending()) this.newHandshake.mod(KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + this.jitter());
  }
  timersDataReceived(): void {
    if (!this.sendKeepaliveTimer.pending()) this.sendKeepaliveTimer.mod(KEEPALIVE_TIMEOUT);
    else this.needAnotherKeepalive = true;
  }
  timersAnyAuthenticatedPacketSent(): void {
    this.sendKeepaliveTimer.del();
  }
  timersAnyAuthenticatedPacketReceived(): void {
    this.newHandshake.del();
  }
  timersAnyAuthenticatedPacketTraversal(): void {
    if (this.persistentKeepalive > 0) this.persistentKeepaliveTimer.mod(this.persistentKeepalive * 1000);
  }
  timersHandshakeInitiated(): void {
    this.retransmitHandshake.mod(REKEY_TIMEOUT + this.jitter());
  }
  timersHandshakeComplete(): void {
    this.retransmitHandshake.del();
    this.earlyInitiationTimer.del();
    this.undeliveredRetryTimer.del();
    this.deferredRetryTimer.del();
    this.undeliveredAt = -Infinity;
    this.undeliveredRetries = 0;
    this.undeliveredWindowStart = -Infinity;
    this.handshakeAttempts = 0;
    this.sentLastMinuteHandshake = false;
    this.lastHandshake = this.clock.wallNow();
  }
  timersSessionDerived(): void {
    this.zeroKeyMaterialTimer.mod(ZERO_KEYS_AFTER);
  }

  stopTimers(): void {
    this.retransmitHandshake.stop();
    this.sendKeepaliveTimer.stop();
    this.newHandshake.stop();
    this.zeroKeyMaterialTimer.stop();
    this.persistentKeepaliveTimer.stop();
    this.earlyInitiationTimer.stop();
    this.undeliveredRetryTimer.stop();
    this.deferredRetryTimer.stop();
  }

  /** True when `kp` may still encrypt (not too old, counter not exhausted). */
  canSend(kp: Keypair | null, now: number): kp is Keypair {
    return kp !== null && kp.sendCounter < REJECT_AFTER_MESSAGES && now - kp.created < REJECT_AFTER_TIME;
  }

  /** Sets the endpoint from text "1.2.3.4:51820" or "[fd00::1]:51820"; throws on bad input. */
  setEndpoint(text: string, parseIP: (s: string) => Buffer | null): void {
    const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:]+):(\d+)$/.exec(text);
    const ip = m ? parseIP(m[1]) : null;
    const port = m ? Number(m[2]) : NaN;
    if (!ip || !(port > 0 && port < 65536)) throw new Error(`invalid endpoint ${JSON.stringify(text)}`);
    this.endpointAddr.fill(0);
    ip.copy(this.endpointAddr);
    this.endpointFamily = ip.length === 4 ? 4 : 6;
    this.endpointPort = port;
  }

  /**
   * Roaming: the endpoint becomes the source of the latest authenticated packet (unless path discovery
   * owns it: `roams` false). A message through the relay (family RELAY_FAMILY) never changes it.
   */
  updateEndpoint(family: number, addrs: Uint8Array, addrOff: number, port: number): void {
    if (!this.roams || (family !== 4 && family !== 6)) return;
    const a = this.endpointAddr;
    if (family === this.endpointFamily && port === this.endpointPort) {
      const n = family === 4 ? 4 : 16;
      let same = true;
      for (let k = 0; k < n; k++) {
        if (a[k] !== addrs[addrOff + k]) {
          same = false;
          break;
        }
      }
      if (same) return;
    }
    a.fill(0);
    a.set(addrs.subarray(addrOff, addrOff + (family === 4 ? 4 : 16)));
    this.endpointFamily = family;
    this.endpointPort = port;
  }
}
