// PeerPaths between two simulated devices on a simulated network with simulated time: LAN and public
// paths with their latencies, home-router NATs that admit a packet only from where the device behind
// them has sent (so hole punching needs both sides to send), paths that fail and heal, and a relay.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { DiscoMessage, Endpoint } from './disco.js';
import { PeerPaths, REPROBE_RELAYED_MS, TRUST_MS, type Path, type Via } from './paths.js';

interface Side {
  name: 'a' | 'b';
  lan: Endpoint;
  pub: Endpoint;
  paths: PeerPaths;
  /** Remote endpoints this side's NAT has seen it send to (from its public endpoint). */
  natOpen: Set<string>;
  changes: { at: number; path: Path }[];
  sent: { via: Via; m: DiscoMessage }[];
}

const ek = (e: Endpoint) => `${e.address}:${e.port}`;

class Sim {
  now = 0;
  lanOk = true;
  publicOk = true;
  /** NATs in front of both sides (endpoint-dependent filtering, as home routers do). */
  nat = true;
  readonly relayMs = 30;
  lanMs = 1;
  readonly publicMs = 20;
  private queue: { at: number; seq: number; fn: () => void }[] = [];
  private seq = 0;
  readonly a: Side;
  readonly b: Side;
  /** When set, sees every delivered message first and may swallow it (returns false). */
  tap: ((to: Side, via: Via, m: DiscoMessage) => boolean) | null = null;

  constructor() {
    this.a = this.side('a', { address: '192.168.1.10', port: 41641 }, { address: '203.0.113.1', port: 41641 });
    this.b = this.side('b', { address: '192.168.1.20', port: 41641 }, { address: '198.51.100.2', port: 50000 });
    this.a.paths.setCandidates([this.b.lan, this.b.pub]);
    this.b.paths.setCandidates([this.a.lan, this.a.pub]);
    const tick = () => {
      this.a.paths.tick();
      this.b.paths.tick();
      this.at(this.now + 250, tick);
    };
    this.at(0, tick);
  }

  private side(name: 'a' | 'b', lan: Endpoint, pub: Endpoint): Side {
    const s = { name, lan, pub, natOpen: new Set<string>(), changes: [], sent: [] } as unknown as Side;
    s.paths = new PeerPaths({
      nodeKey: randomBytes(32),
      now: () => this.now,
      send: (via, m) => this.send(s, via, m),
      ownEndpoints: () => [s.lan, s.pub],
      onPathChange: (path) => s.changes.push({ at: this.now, path }),
    });
    return s;
  }

  other(s: Side): Side {
    return s === this.a ? this.b : this.a;
  }

  at(t: number, fn: () => void): void {
    this.queue.push({ at: t, seq: this.seq++, fn });
    this.queue.sort((x, y) => x.at - y.at || x.seq - y.seq);
  }

  run(untilMs: number): void {
    while (this.queue.length && this.queue[0]!.at <= untilMs) {
      const e = this.queue.shift()!;
      this.now = e.at;
      e.fn();
    }
    this.now = untilMs;
  }

  deliver(to: Side, via: Via, m: DiscoMessage, delay: number): void {
    this.at(this.now + delay, () => {
      if (this.tap && !this.tap(to, via, m)) return;
      to.paths.receive(via, m);
    });
  }

  private send(from: Side, via: Via, m: DiscoMessage): void {
    from.sent.push({ via, m });
    const to = this.other(from);
    if (via.kind === 'relay') return this.deliver(to, via, m, this.relayMs);
    const dst = ek(via.endpoint);
    if (dst === ek(to.lan)) {
      if (this.lanOk) this.deliver(to, { kind: 'udp', endpoint: from.lan }, m, this.lanMs / 2);
    } else if (dst === ek(to.pub)) {
      from.natOpen.add(dst);
      if (!this.publicOk) return;
      // The receiver's NAT admits it only if the receiver has sent to the sender's public endpoint.
      if (this.nat && !to.natOpen.has(ek(from.pub))) return;
      this.deliver(to, { kind: 'udp', endpoint: from.pub }, m, this.publicMs / 2);
    }
  }
}

const direct = (p: Path) => (p.kind === 'direct' ? ek(p.endpoint) : 'relay');

describe('PeerPaths', () => {
  it('starts on the relay and goes direct over the LAN, the fastest path, on both sides', () => {
    const sim = new Sim();
    expect(sim.a.paths.path).toEqual({ kind: 'relay' });
    sim.run(1500);
    expect(direct(sim.a.paths.path)).toBe(ek(sim.b.lan));
    expect(direct(sim.b.paths.path)).toBe(ek(sim.a.lan));
    expect(sim.a.paths.path.kind === 'direct' && sim.a.paths.path.latencyMs).toBe(sim.lanMs);
  });

  it('punches through both NATs on the public path with call-me-maybe through the relay', () => {
    const sim = new Sim();
    sim.lanOk = false;
    sim.run(3000);
    expect(direct(sim.a.paths.path)).toBe(ek(sim.b.pub));
    expect(direct(sim.b.paths.path)).toBe(ek(sim.a.pub));
    expect(sim.a.sent.some((s) => s.via.kind === 'relay' && s.m.type === 'callMeMaybe')).toBe(true);
  });

  it('stays on the relay when no direct path works, and keeps asking', () => {
    const sim = new Sim();
    sim.lanOk = false;
    sim.publicOk = false;
    sim.run(20_000);
    expect(sim.a.paths.path).toEqual({ kind: 'relay' });
    expect(sim.a.changes).toEqual([]);
    const cmm = sim.a.sent.filter((s) => s.m.type === 'callMeMaybe').length;
    expect(cmm).toBeGreaterThanOrEqual(3);
    expect(cmm).toBeLessThanOrEqual(20_000 / REPROBE_RELAYED_MS + 1);
  });

  it('falls back to the relay when the direct path dies, and returns when it heals', () => {
    const sim = new Sim();
    sim.lanOk = false;
    sim.run(3000);
    expect(sim.a.paths.path.kind).toBe('direct');
    sim.publicOk = false;
    const cut = sim.now;
    sim.run(cut + TRUST_MS + 2000);
    const fallback = sim.a.changes.find((c) => c.at > cut && c.path.kind === 'relay');
    expect(fallback).toBeDefined();
    expect(fallback!.at - cut).toBeLessThanOrEqual(TRUST_MS + 1000);
    sim.publicOk = true;
    const healed = sim.now;
    sim.run(healed + REPROBE_RELAYED_MS + 2000);
    const back = sim.a.changes.find((c) => c.at > healed && c.path.kind === 'direct');
    expect(back).toBeDefined();
    expect(back!.at - healed).toBeLessThanOrEqual(REPROBE_RELAYED_MS + 1000);
  });

  it('moves to a faster path when it appears, and not for a marginal gain', () => {
    const sim = new Sim();
    sim.lanOk = false;
    sim.run(3000);
    expect(direct(sim.a.paths.path)).toBe(ek(sim.b.pub));
    sim.lanOk = true;
    sim.run(3000 + 31_000); // the others are re-probed every 30 s while direct
    expect(direct(sim.a.paths.path)).toBe(ek(sim.b.lan));

    const close = new Sim();
    close.lanOk = false;
    close.run(3000);
    close.lanMs = 19.5; // 2.5 % better than the public path: not worth a switch
    close.lanOk = true;
    close.run(3000 + 31_000);
    expect(direct(close.a.paths.path)).toBe(ek(close.b.pub));
  });

  it('ignores forged, misdirected and replayed pongs', () => {
    const sim = new Sim();
    sim.lanOk = false;
    sim.publicOk = false;
    sim.run(2000);
    const pings = sim.a.sent.filter((s) => s.m.type === 'ping');
    expect(pings.length).toBeGreaterThan(0);
    const ping = pings[pings.length - 1]!;
    const txId = (ping.m as { txId: Buffer }).txId;
    const pinged = (ping.via as { endpoint: Endpoint }).endpoint;
    // A made-up transaction id, from the right endpoint.
    sim.a.paths.receive({ kind: 'udp', endpoint: pinged }, { type: 'pong', txId: randomBytes(12), src: sim.a.pub });
    // The right transaction id, but from an endpoint that was not pinged with it (an attacker's address).
    sim.a.paths.receive({ kind: 'udp', endpoint: { address: '192.0.2.66', port: 666 } }, { type: 'pong', txId, src: sim.a.pub });
    // The right id over the relay.
    sim.a.paths.receive({ kind: 'relay' }, { type: 'pong', txId, src: sim.a.pub });
    expect(sim.a.paths.path).toEqual({ kind: 'relay' });
    // The genuine pong works once; the same pong again does not refresh anything.
    sim.a.paths.receive({ kind: 'udp', endpoint: pinged }, { type: 'pong', txId, src: sim.a.pub });
    expect(direct(sim.a.paths.path)).toBe(ek(pinged));
    const confirmed = sim.now;
    sim.run(confirmed + 3000);
    sim.a.paths.receive({ kind: 'udp', endpoint: pinged }, { type: 'pong', txId, src: sim.a.pub });
    sim.run(confirmed + TRUST_MS + 100);
    expect(sim.a.paths.path).toEqual({ kind: 'relay' });
  });

  it('answers a ping with a pong over the same path naming the source it came from', () => {
    const sim = new Sim();
    const from = { address: '198.51.100.77', port: 1234 };
    const txId = randomBytes(12);
    sim.a.paths.receive({ kind: 'udp', endpoint: from }, { type: 'ping', txId, nodeKey: randomBytes(32) });
    const pong = sim.a.sent.find((s) => s.m.type === 'pong')!;
    expect(pong.via).toEqual({ kind: 'udp', endpoint: from });
    expect(pong.m).toEqual({ type: 'pong', txId, src: from });
  });
});
