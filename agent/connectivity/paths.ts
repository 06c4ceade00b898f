// Which path to use for one peer: a direct UDP endpoint confirmed by a disco pong, or the relay. Pure
// logic over an injected clock and sender (the WireGuard device will own one per peer), so it can be
// tested without sockets:
//
// - Candidates come from the netmap (the peer's LAN and public endpoints), from a call-me-maybe, and
//   from the source of a valid ping (a peer-reflexive address).
// - Only a pong whose transaction id matches a ping this side sent to exactly that endpoint, and that is
//   still outstanding, confirms the endpoint; a transaction id is good for one pong. An off-path attacker
//   cannot make one (disco messages are sealed), and a replayed pong confirms nothing.
// - The best confirmed endpoint (lowest round trip; a new one must be clearly better to take over) is
//   used until no pong has come from it for TRUST_MS; then the relay, until a probe confirms a path again.
// - Only while the peer is active (the caller says so on each tick: traffic lately): while relayed, every
//   candidate is pinged every REPROBE_RELAYED_MS (and the peer is asked, through the relay, to ping us
//   back at once: both sides punch at the same time); while direct, the path in use is pinged every
//   HEARTBEAT_MS and the others every REPROBE_DIRECT_MS to find a better one. An idle peer costs no
//   probes; its trust lapses, and its next traffic starts on the relay and probes at once.
// - A ping from an endpoint we have no confirmed path to is answered and pinged back at once (with
//   call-me-maybe, that is what opens both NATs within one round trip).
import { randomBytes } from 'node:crypto';
import type { DiscoMessage, Endpoint } from './disco.js';

export type Via = { kind: 'udp'; endpoint: Endpoint } | { kind: 'relay' };

export type Path = { kind: 'direct'; endpoint: Endpoint; latencyMs: number } | { kind: 'relay' };

// TRUST_MS bounds the failover: a dead direct path is left at most TRUST_MS (plus one tick) after its
// last pong, and the path in use is pinged HEARTBEAT_MS apart, so three pongs in a row must be lost first.
export const TRUST_MS = 2000;
export const HEARTBEAT_MS = 500;
export const REPROBE_RELAYED_MS = 5000;
export const REPROBE_DIRECT_MS = 30_000;
export const PING_TIMEOUT_MS = 5000;
/** A candidate that pings us is pinged back at once, but not more often than this. */
const PING_BACK_MS = 1000;
/** A new endpoint takes over only when its round trip is this much shorter (fraction and absolute). */
const SWITCH_BETTER_FRACTION = 0.1;
const SWITCH_BETTER_MS = 1;
const MAX_CANDIDATES = 32;
const MAX_OUTSTANDING = 256;

export interface PeerPathsOptions {
  /** This device's WireGuard public key (it goes in pings). */
  nodeKey: Buffer;
  now(): number;
  /** Sends a disco message to the peer over `via` (the device seals it). */
  send(via: Via, m: DiscoMessage): void;
  /** This device's own endpoints, for call-me-maybe. */
  ownEndpoints(): Endpoint[];
  /** Told whenever the path in use changes. */
  onPathChange?(path: Path): void;
}

/** One answer to probe(): the path it came over and its round trip. */
export interface ProbeResult {
  via: Via;
  latencyMs: number;
}

interface Candidate {
  endpoint: Endpoint;
  key: string;
  lastPingAt: number;
  lastPongAt: number;
  latencyMs: number;
}

const keyOf = (e: Endpoint) => `${e.address}|${e.port}`;
const RELAY_KEY = 'relay';

interface Outstanding {
  /** The candidate's key, or RELAY_KEY for a ping through the relay. */
  key: string;
  sentAt: number;
  onPong?: (r: ProbeResult) => void;
}

export class PeerPaths {
  private readonly candidates = new Map<string, Candidate>();
  /** Pings in flight: transaction id → endpoint key and send time. */
  private readonly outstanding = new Map<string, Outstanding>();
  private best: Candidate | null = null;
  private lastCallMeMaybeAt = -Infinity;
  private reported: Path = { kind: 'relay' };

  constructor(private readonly o: PeerPathsOptions) {}

  /** The path to send the peer's packets over now. */
  get path(): Path {
    const b = this.trustedBest();
    return b ? { kind: 'direct', endpoint: b.endpoint, latencyMs: b.latencyMs } : { kind: 'relay' };
  }

  /** The peer's endpoints as the netmap lists them (replaces earlier netmap candidates, keeps the best). */
  setCandidates(endpoints: Endpoint[]): void {
    const keep = new Set(endpoints.map(keyOf));
    for (const [k, c] of this.candidates) if (!keep.has(k) && c !== this.best) this.candidates.delete(k);
    for (const e of endpoints) this.addCandidate(e);
  }

  /** Call on every timer tick (a few times a second); `active`: the peer has had traffic lately. */
  tick(active = true): void {
    const now = this.o.now();
    for (const [tx, p] of this.outstanding) if (now - p.sentAt > PING_TIMEOUT_MS) this.outstanding.delete(tx);
    const best = this.trustedBest();
    if (active) {
      for (const c of this.candidates.values()) {
        const interval = c === best ? HEARTBEAT_MS : best ? REPROBE_DIRECT_MS : REPROBE_RELAYED_MS;
        if (now - c.lastPingAt >= interval) this.ping(c);
      }
      if (!best && this.candidates.size && now - this.lastCallMeMaybeAt >= REPROBE_RELAYED_MS) this.callMeMaybe();
    }
    this.changed();
  }

  /**
   * Traffic to or from the peer starts (a new session, or the first packets after idling): without a
   * trusted direct path, ping every candidate not pinged in the last second, and ask the peer through
   * the relay to ping back, now rather than at the next reprobe.
   */
  wake(): void {
    if (this.trustedBest()) return;
    const now = this.o.now();
    for (const c of this.candidates.values()) if (now - c.lastPingAt >= PING_BACK_MS) this.ping(c);
    if (this.candidates.size && now - this.lastCallMeMaybeAt >= PING_BACK_MS) this.callMeMaybe();
  }

  /**
   * Pings the peer now (`agent ping`): over the direct path in use if there is one, else over every
   * candidate and through the relay. `onPong` gets each answer; a pong over UDP also confirms its path
   * as any other does.
   */
  probe(onPong: (r: ProbeResult) => void): void {
    const best = this.trustedBest();
    if (best) return this.ping(best, onPong);
    for (const c of this.candidates.values()) this.ping(c, onPong);
    const txId = this.newTx({ key: RELAY_KEY, sentAt: this.o.now(), onPong });
    if (txId) this.o.send({ kind: 'relay' }, { type: 'ping', txId, nodeKey: this.o.nodeKey });
  }

  /** The candidates known now (netmap, call-me-maybe, peer-reflexive), for status and tests. */
  get candidateEndpoints(): Endpoint[] {
    return [...this.candidates.values()].map((c) => c.endpoint);
  }

  /** A disco message from the peer (already opened and checked to be from this peer). */
  receive(via: Via, m: DiscoMessage): void {
    switch (m.type) {
      case 'ping':
        // Answer over the same path, telling the peer where its ping came from.
        if (via.kind === 'udp') {
          const c = this.addCandidate(via.endpoint);
          this.o.send(via, { type: 'pong', txId: m.txId, src: via.endpoint });
          // The peer reaches us from there: ping back now, so that our NAT opens towards it too.
          if (c && c !== this.trustedBest() && this.o.now() - c.lastPingAt >= PING_BACK_MS) this.ping(c);
        } else {
          this.o.send(via, { type: 'pong', txId: m.txId, src: { address: '::', port: 1 } });
        }
        return;
      case 'pong':
        return this.onPong(via, m.txId);
      case 'callMeMaybe': {
        // The peer is pinging us now: ping back at once on every endpoint it listed.
        for (const e of m.endpoints.slice(0, MAX_CANDIDATES)) {
          const c = this.addCandidate(e);
          if (c) this.ping(c);
        }
        return;
      }
    }
  }

  private addCandidate(e: Endpoint): Candidate | null {
    const k = keyOf(e);
    const existing = this.candidates.get(k);
    if (existing) return existing;
    if (this.candidates.size >= MAX_CANDIDATES) return null;
    const c: Candidate = { endpoint: { address: e.address, port: e.port }, key: k, lastPingAt: -Infinity, lastPongAt: -Infinity, latencyMs: Infinity };
    this.candidates.set(k, c);
    return c;
  }

  private newTx(o: Outstanding): Buffer | null {
    if (this.outstanding.size >= MAX_OUTSTANDING) return null;
    const txId = randomBytes(12);
    this.outstanding.set(txId.toString('hex'), o);
    return txId;
  }

  private ping(c: Candidate, onPong?: (r: ProbeResult) => void): void {
    const now = this.o.now();
    const txId = this.newTx({ key: c.key, sentAt: now, onPong });
    if (!txId) return;
    c.lastPingAt = now;
    this.o.send({ kind: 'udp', endpoint: c.endpoint }, { type: 'ping', txId, nodeKey: this.o.nodeKey });
  }

  private callMeMaybe(): void {
    const endpoints = this.o.ownEndpoints();
    if (!endpoints.length) return;
    this.lastCallMeMaybeAt = this.o.now();
    this.o.send({ kind: 'relay' }, { type: 'callMeMaybe', endpoints: endpoints.slice(0, MAX_CANDIDATES) });
  }

  private onPong(via: Via, txId: Buffer): void {
    const tx = txId.toString('hex');
    const p = this.outstanding.get(tx);
    if (!p) return; // not ours (or answered already)
    const now = this.o.now();
    const rtt = now - p.sentAt;
    if (p.key === RELAY_KEY) {
      if (via.kind !== 'relay') return;
      this.outstanding.delete(tx);
      p.onPong?.({ via, latencyMs: rtt });
      return;
    }
    if (via.kind !== 'udp' || keyOf(via.endpoint) !== p.key) return; // not from where we pinged
    this.outstanding.delete(tx);
    const c = this.candidates.get(p.key);
    p.onPong?.({ via, latencyMs: rtt });
    if (!c) return;
    c.latencyMs = Number.isFinite(c.lastPongAt) ? c.latencyMs * 0.7 + rtt * 0.3 : rtt;
    c.lastPongAt = now;
    const current = this.trustedBest();
    if (!current) this.best = c;
    else if (c !== current && c.latencyMs < current.latencyMs * (1 - SWITCH_BETTER_FRACTION) - SWITCH_BETTER_MS) this.best = c;
    this.changed();
  }

  private trustedBest(): Candidate | null {
    const b = this.best;
    if (b && Number.isFinite(b.lastPongAt) && this.o.now() - b.lastPongAt <= TRUST_MS) return b;
    // The best went stale: take another confirmed, still trusted endpoint, the fastest.
    let next: Candidate | null = null;
    for (const c of this.candidates.values()) {
      if (Number.isFinite(c.lastPongAt) && this.o.now() - c.lastPongAt <= TRUST_MS && (!next || c.latencyMs < next.latencyMs)) next = c;
    }
    this.best = next;
    return next;
  }

  /** Tells onPathChange when the path differs from the one last told (the path goes stale by time alone). */
  private changed(): void {
    const after = this.path;
    const before = this.reported;
    const same = before.kind === after.kind && (before.kind === 'relay' || (after.kind === 'direct' && keyOf(before.endpoint) === keyOf(after.endpoint)));
    this.reported = after;
    if (!same) this.o.onPathChange?.(after);
  }
}
