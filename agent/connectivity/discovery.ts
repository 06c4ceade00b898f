// Path discovery for the WireGuard device: one PeerPaths per peer that has a disco key, fed with the
// disco messages that arrive on the WireGuard socket and through the relay, ticked a few times a
// second, and told where to send (device.setPeerPath) whenever a peer's path changes. Disco messages are
// sealed here (DiscoBox) and leave through the WireGuard socket (the NAT mapping WireGuard traffic
// uses) or through the peer's relay.
//
// A peer without a disco key (one that never reported it) has no path discovery: it is reached through
// the relay, or, with none connected, over UDP as plain WireGuard does.
import type { Device, Peer } from '../wireguard/index.js';
import { DiscoBox, type DiscoKey, type DiscoMessage, type Endpoint } from './disco.js';
import { PeerPaths, type Path, type ProbeResult, type Via } from './paths.js';

/** A peer is active (worth probing) while it had traffic this recently. */
export const ACTIVE_MS = 45_000;

export interface DiscoveryOptions {
  device: Device;
  discoKey: DiscoKey;
  /** Monotonic milliseconds. */
  now(): number;
  /** Sends a packet to the device with this WireGuard public key through its relay; false when it cannot now. */
  relaySend(nodeKey: Buffer, packet: Buffer): boolean;
  /** This device's endpoints (LAN and public), for call-me-maybe. */
  ownEndpoints(): Endpoint[];
  log(level: 'info' | 'debug', msg: string, fields?: Record<string, unknown>): void;
}

/** A peer as the netmap gives it. */
export interface DiscoPeerConfig {
  /** WireGuard public key, base64 (the engine's name for the peer). */
  nodeKey: string;
  publicKey: Buffer;
  /** 32 bytes, or null when the peer has not reported one. */
  discoKey: Buffer | null;
  /** Candidates, in order of preference. */
  endpoints: Endpoint[];
  /** For logs. */
  name: string;
}

interface DiscoPeer {
  cfg: DiscoPeerConfig;
  discoHex: string;
  wg: Peer;
  paths: PeerPaths;
  /** Traffic counters at the last tick, and when they last moved. */
  tx: number;
  rx: number;
  activeAt: number;
}

export class DiscoCounters {
  sent = 0;
  received = 0;
  /** Disco datagrams refused: unknown sender, not opening, malformed, or a sender/key mismatch. */
  refused = 0;
}

export class PathDiscovery {
  readonly counters = new DiscoCounters();
  private readonly box: DiscoBox;
  private readonly byDisco = new Map<string, DiscoPeer>();
  private readonly byNode = new Map<string, DiscoPeer>();
  private readonly byWg = new Map<Peer, DiscoPeer>();
  private readonly isKnown = (key: Buffer) => this.byDisco.has(key.toString('hex'));

  constructor(private readonly o: DiscoveryOptions) {
    this.box = new DiscoBox(o.discoKey);
  }

  get publicKey(): Buffer {
    return this.box.publicKey;
  }

  /** The peers of the netmap. A peer whose disco key changed starts afresh (on the relay). */
  setPeers(peers: DiscoPeerConfig[]): void {
    const wanted = new Map<string, DiscoPeerConfig>();
    for (const p of peers) if (p.discoKey && p.discoKey.length === 32) wanted.set(p.nodeKey, p);
    for (const [nodeKey, dp] of this.byNode) {
      const w = wanted.get(nodeKey);
      const wg = this.o.device.getPeer(dp.cfg.publicKey);
      if (w && w.discoKey!.toString('hex') === dp.discoHex && wg === dp.wg) continue;
      this.drop(dp);
    }
    for (const cfg of wanted.values()) {
      const wg = this.o.device.getPeer(cfg.publicKey);
      if (!wg) continue;
      let dp = this.byNode.get(cfg.nodeKey);
      if (!dp) {
        const discoHex = cfg.discoKey!.toString('hex');
        if (this.byDisco.has(discoHex)) continue; // two peers claiming one disco key: the first keeps it
        const paths: PeerPaths = new PeerPaths({
          nodeKey: this.o.device.publicKey!.raw,
          now: this.o.now,
          send: (via, m) => this.send(dp!, via, m),
          ownEndpoints: this.o.ownEndpoints,
          onPathChange: (path) => this.applyPath(dp!, path),
        });
        dp = { cfg, discoHex, wg, paths, tx: wg.txBytes, rx: wg.rxBytes, activeAt: -Infinity };
        this.byNode.set(cfg.nodeKey, dp);
        this.byDisco.set(discoHex, dp);
        this.byWg.set(wg, dp);
        this.o.device.setPeerPath(wg, null);
      }
      dp.cfg = cfg;
      dp.paths.setCandidates(cfg.endpoints);
    }
  }

  private drop(dp: DiscoPeer): void {
    this.byNode.delete(dp.cfg.nodeKey);
    this.byDisco.delete(dp.discoHex);
    this.byWg.delete(dp.wg);
    this.box.forget(dp.cfg.discoKey!);
    // Back to plain WireGuard's behaviour for this peer (if it is still there).
    dp.wg.direct = false;
    dp.wg.roams = true;
  }

  /** The path to a peer (null: the peer has no path discovery). */
  path(nodeKey: string): Path | null {
    return this.byNode.get(nodeKey)?.paths.path ?? null;
  }

  /** Candidates known for a peer (for status and tests). */
  candidates(nodeKey: string): Endpoint[] {
    return this.byNode.get(nodeKey)?.paths.candidateEndpoints ?? [];
  }

  /** Pings a peer now (`agent ping`); false when it has no path discovery. */
  probe(nodeKey: string, onPong: (r: ProbeResult) => void): boolean {
    const dp = this.byNode.get(nodeKey);
    if (!dp) return false;
    dp.paths.probe(onPong);
    return true;
  }

  /** Every few hundred milliseconds: activity, heartbeats, probes, trust running out. */
  tick(): void {
    const now = this.o.now();
    for (const dp of this.byNode.values()) {
      const wg = dp.wg;
      if (wg.txBytes !== dp.tx || wg.rxBytes !== dp.rx || wg.staged.length > 0) {
        dp.tx = wg.txBytes;
        dp.rx = wg.rxBytes;
        if (now - dp.activeAt > ACTIVE_MS) dp.paths.wake(); // traffic again after idling: probe at once
        dp.activeAt = now;
      }
      dp.paths.tick(now - dp.activeAt <= ACTIVE_MS);
    }
  }

  /** A WireGuard session with the peer began: traffic follows, so probe for a direct path now. */
  sessionStarted(wg: Peer): void {
    const dp = this.byWg.get(wg);
    if (!dp) return;
    dp.activeAt = this.o.now();
    dp.paths.wake();
  }

  /** A disco datagram from the WireGuard socket. */
  receiveUdp(packet: Buffer, from: Endpoint): void {
    const r = this.open(packet);
    if (!r) return;
    this.deliver(r.dp, { kind: 'udp', endpoint: from }, r.message);
  }

  /** A disco message through the relay, from the device with WireGuard key `src` (the relay vouches for it). */
  receiveRelay(src: Buffer, packet: Buffer): void {
    const r = this.open(packet);
    if (!r) return;
    if (!r.dp.cfg.publicKey.equals(src)) {
      this.counters.refused++;
      return;
    }
    this.deliver(r.dp, { kind: 'relay' }, r.message);
  }

  private open(packet: Buffer): { dp: DiscoPeer; message: DiscoMessage } | null {
    const r = this.box.open(packet, this.isKnown);
    const dp = r.ok ? this.byDisco.get(r.from.toString('hex')) : undefined;
    if (!r.ok || !dp) {
      this.counters.refused++;
      return null;
    }
    return { dp, message: r.message };
  }

  private deliver(dp: DiscoPeer, via: Via, m: DiscoMessage): void {
    // A ping names the sender's WireGuard key: it must be the one this disco key belongs to.
    if (m.type === 'ping' && !m.nodeKey.equals(dp.cfg.publicKey)) {
      this.counters.refused++;
      return;
    }
    this.counters.received++;
    dp.paths.receive(via, m);
  }

  private send(dp: DiscoPeer, via: Via, m: DiscoMessage): void {
    const sealed = this.box.seal(dp.cfg.discoKey!, m);
    const ok = via.kind === 'udp' ? this.o.device.sendDatagram(sealed, via.endpoint.address, via.endpoint.port) : this.o.relaySend(dp.cfg.publicKey, sealed);
    if (ok) this.counters.sent++;
  }

  private applyPath(dp: DiscoPeer, path: Path): void {
    this.o.device.setPeerPath(dp.wg, path.kind === 'direct' ? path.endpoint : null);
    if (path.kind === 'direct') {
      this.o.log('info', `path to ${dp.cfg.name}: direct ${formatEndpoint(path.endpoint)}`, { latencyMs: Math.round(path.latencyMs * 100) / 100 });
    } else {
      this.o.log('info', `path to ${dp.cfg.name}: relay`);
    }
  }
}

export function formatEndpoint(e: Endpoint): string {
  return e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}
