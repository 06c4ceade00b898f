// The data path of one device: TUN ⇄ filter ⇄ WireGuard ⇄ UDP, configured from netmaps.
//
//   TUN → Device (peer by destination) → filter.runOut → encrypt → UDP
//   UDP → decrypt → source in the sender's allowed IPs → filter.runIn (quarantine applied) → TUN
//
// Peers without a confirmed direct path are reached through a relay: the peer's home relay when it
// reported one of the map's (connected on demand), else this device's home relay (the map's relay with
// the lowest measured latency, kept connected and reported to coord). Relay packets join the UDP receive
// path. Path discovery (PathDiscovery: disco pings over every candidate endpoint and through the relay)
// decides, per peer, when a direct path is confirmed and when it died. STUN answers on the WireGuard
// socket go to netcheck (stunTransport()).
//
// A new netmap builds a new filter from the old one (same flow table and counters) and swaps it in
// with one assignment: the hooks read the current filter per packet, so none sees half a filter.
import { Filter, type FilterCounters } from '../../filter/index.js';
import type { NativeError, TunBatchHandler } from '../../native/index.js';
import { hostPrefix, TAILNET_ROUTES } from '../../wire/addr.js';
import type { Netmap, RelayInfo } from '../../wire/protocol.js';
import { X25519Key } from '../../wire/x25519.js';
import { lookup } from 'node:dns/promises';
import { isDiscoPacket, type Endpoint } from '../connectivity/disco.js';
import { formatEndpoint, PathDiscovery, type DiscoCounters } from '../connectivity/discovery.js';
import { chooseHomeRelay, type RelayLatency } from '../connectivity/home-relay.js';
import { netcheck, stunTargetsOf, type NetcheckReport, type StunTransport, type UdpAddress } from '../connectivity/netcheck.js';
import type { ProbeResult } from '../connectivity/paths.js';
import { RelayLinks, type RelayConnection } from '../connectivity/relay-links.js';
import { Device, DropCounters, WireGuardInterface, type Peer, type TunLike, type UdpBatchHandler, type UdpLike } from '../wireguard/index.js';
import { DEFAULT_MTU } from './mtu.js';
import { decodeKey, filterConfigOf, parseEndpoint, planPeers, type PeerLive, type PeerPlan } from './netmap.js';

/** The TUN device as the engine uses it (native Tun's shape; tests pass an in-memory one). */
export interface TunDevice extends TunLike {
  readonly name: string;
  addAddress(cidr: string): void;
  /** Removes an address (false if it was not there). Without it, addresses a netmap drops stay on the device. */
  removeAddress?(cidr: string): boolean;
  addRoute(cidr: string): void;
  setUp(up: boolean): void;
  start(onBatch: TunBatchHandler, onError?: (err: NativeError) => void): void;
  close(): void;
}

export interface EngineOptions {
  tunName: string;
  /** UDP listen port; if it is taken, the kernel picks one (and we report that one). */
  port: number;
  /** WireGuard private key (32 bytes). */
  privateKey: Uint8Array;
  /** Disco private key (32 bytes; path discovery). Absent: a fresh one for this run. */
  discoKey?: Uint8Array;
  mtu?: number;
  log: (level: 'info' | 'warn' | 'error' | 'debug', msg: string, fields?: Record<string, unknown>) => void;
  /** Is this IPv4 address on one of our LAN subnets (endpoint preference). */
  localSubnets?: (ip: string) => boolean;
  /** For tests: open the TUN device and bind UDP without the native addon. */
  openTun?: (name: string, mtu: number) => TunDevice;
  bindUdp?: (port: number, onBatch: UdpBatchHandler) => UdpLike;
  /** Wall clock in ms (tests inject one). */
  now?: () => number;
  /** SO_MARK of the UDP socket (agent/routing's bypass mark: the tunnel's own packets skip its routes). */
  fwmark?: number;
  /** Passed to the relay's WebSocket (TLS trust for a private CA, for example). */
  relayWsOptions?: import('../connectivity/relay-links.js').RelayWsOptions;
  /** The home relay changed (report it to coord). */
  onHomeRelay?: (name: string | null) => void;
  /** How often the relays are measured for the choice of home (default 30 s). */
  homeRelayIntervalMs?: number;
  /** A relay other than the home one is closed after this long without traffic (default 60 s). */
  relayIdleMs?: number;
}

export { DEFAULT_MTU };

/** Every address of a host name (both families); an address is itself. */
async function resolveHost(host: string): Promise<string[]> {
  return (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);
}

/** The first latency measurement of the relays after a relay map arrives, then one every HOME_CHECK_MS. */
const HOME_FIRST_CHECK_MS = 1_000;
const HOME_CHECK_MS = 30_000;

/** How often path discovery looks at its peers (heartbeats, probes, trust running out). */
const DISCO_TICK_MS = 250;

interface PeerState {
  plan: PeerPlan;
  /** The peer's name (for logs). */
  name: string;
}

/** One answer to `agent ping`. */
export interface PingResult {
  path: 'direct' | 'relay';
  /** The peer's endpoint the pong came from (direct), else null. */
  endpoint: string | null;
  /** The relay's name (relay), else null. */
  relay: string | null;
  latencyMs: number;
}

export interface EngineCounters {
  filter: FilterCounters;
  wireguard: Record<string, number>;
}

/** The TUN device and WireGuard device the engine drives, and how to take them down. */
interface Wiring {
  tun: TunDevice;
  device: Device;
  close(): Promise<void> | void;
}

export class Engine {
  readonly tun: TunDevice;
  readonly device: Device;
  private readonly addresses = new Set<string>();
  private routesAdded = false;
  private readonly peers = new Map<string, PeerState>();
  /** Each peer's online state and home relay in the last netmap ("online|home"), to notice changes. */
  private readonly peerReach = new Map<string, string>();
  private readonly timer: NodeJS.Timeout;
  private closed = false;
  private readonly now: () => number;
  private readonly links: RelayLinks;
  /** The home relay chosen last (kept across a map that briefly lacks it). */
  private homeWanted: string | null = null;
  private homeTimer: NodeJS.Timeout | null = null;
  private readonly sweepTimer: NodeJS.Timeout;
  readonly discovery: PathDiscovery;
  private ownEndpoints: Endpoint[] = [];
  private readonly stunHandlers = new Set<(packet: Buffer, from: { address: string; port: number }) => void>();

  private constructor(
    private readonly opts: EngineOptions,
    /** The filter the packet hooks use; replaced whole by apply(). */
    private readonly current: { filter: Filter },
    private readonly wiring: Wiring,
  ) {
    this.tun = wiring.tun;
    this.device = wiring.device;
    this.now = opts.now ?? Date.now;
    const device = this.device;
    this.discovery = new PathDiscovery({
      device,
      discoKey: opts.discoKey ? new X25519Key(opts.discoKey) : X25519Key.generate(),
      now: () => device.clock.now(),
      relaySend: (nodeKey, packet) => {
        const peer = device.getPeer(nodeKey);
        const link = peer ? this.linkOf(peer) : this.links.home;
        return link?.send(nodeKey, packet) ?? false;
      },
      ownEndpoints: () => this.ownEndpoints,
      log: (level, msg, fields) => opts.log(level, msg, fields),
    });
    device.onDisco = (packet, from) => this.discovery.receiveUdp(packet, from);
    device.onSession = (peer) => this.discovery.sessionStarted(peer);
    device.onStun = (packet, from) => {
      for (const h of this.stunHandlers) h(packet, from);
    };
    this.timer = setInterval(() => this.discovery.tick(), DISCO_TICK_MS);
    this.timer.unref();
    this.links = new RelayLinks({
      key: new X25519Key(opts.privateKey),
      onPackets: (src, buf, offsets, lengths, count) => {
        // Disco messages come one to a frame (path discovery sends them singly).
        if (count === 1 && isDiscoPacket(buf.subarray(offsets[0]!, offsets[0]! + lengths[0]!))) {
          this.discovery.receiveRelay(Buffer.from(src), Buffer.from(buf.subarray(offsets[0]!, offsets[0]! + lengths[0]!)));
        } else device.relayReceiveBatch(buf, offsets, lengths, count, src);
      },
      onReady: () => device.relayReady(),
      onUndeliverable: (name, dst, reason) => {
        // Only the relay the peer is reached through speaks for it (not one it has left).
        const peer = device.getPeer(dst);
        if (peer && this.linkOf(peer)?.name === name) device.relayUndeliverable(dst, reason);
      },
      log: (level, msg, fields) => opts.log(level, msg, fields),
      wsOptions: opts.relayWsOptions,
      ...(opts.relayIdleMs ? { idleMs: opts.relayIdleMs } : {}),
    });
    this.sweepTimer = setInterval(() => this.links.sweep(), Math.min(10_000, opts.relayIdleMs ?? 10_000));
    this.sweepTimer.unref();
  }

  /** The disco public key (reported to coord; peers seal their probes to it). */
  get discoPublicKey(): Buffer {
    return this.discovery.publicKey;
  }

  /** This device's endpoints (LAN and public, "ip:port"), which call-me-maybe offers peers. */
  setOwnEndpoints(endpoints: string[]): void {
    this.ownEndpoints = endpoints.map(parseEndpoint).filter((e): e is Endpoint => e !== null);
  }

  /** STUN through the WireGuard socket, for netcheck: the mapping found is the one WireGuard traffic gets. */
  stunTransport(): StunTransport {
    const device = this.device;
    return {
      families: { v4: true, v6: true },
      send: (packet, to) => void device.sendDatagram(packet, to.address, to.port),
      onStun: (handler) => {
        this.stunHandlers.add(handler);
        return () => this.stunHandlers.delete(handler);
      },
    };
  }

  private get filter(): Filter {
    return this.current.filter;
  }

  /**
   * Creates the TUN device (needs CAP_NET_ADMIN) and a WireGuard device on it (agent/wireguard's
   * WireGuardInterface, without a UAPI socket: the netmap is the configuration), binds UDP and
   * starts moving packets.
   */
  static async start(opts: EngineOptions): Promise<Engine> {
    const mtu = opts.mtu ?? DEFAULT_MTU;
    // Deny everything until the first netmap says otherwise. Per packet: no allocation, one verdict.
    const current = { filter: Filter.build({ rules: [], localAddrs: [] }) };
    const beforeEncrypt = (buf: Buffer, off: number, len: number): boolean => current.filter.runOut(buf, off, len) === 0;
    const afterDecrypt = (buf: Buffer, off: number, len: number): boolean => current.filter.runIn(buf, off, len) === 0;
    const debug = (msg: string) => opts.log('debug', msg);
    let wiring: Wiring;
    if (opts.openTun && opts.bindUdp) {
      const tun = opts.openTun(opts.tunName, mtu);
      const device = new Device({ tun, mtu, batch: 128, bindUdp: opts.bindUdp, beforeEncrypt, afterDecrypt, log: debug });
      device.setListenPort(opts.port);
      try {
        device.up();
      } catch (err) {
        if ((err as NativeError).code !== 'EADDRINUSE') {
          tun.close();
          throw err;
        }
        device.setListenPort(0);
        device.up();
      }
      tun.start(device.onTunBatch);
      wiring = { tun, device, close: () => (device.close(), tun.close()) };
    } else {
      const iface = await WireGuardInterface.create(opts.tunName, {
        mtu,
        // Bound once, on the wanted port (or the kernel's pick if that one is taken).
        listenPort: opts.port,
        anyPortIfTaken: true,
        uapiPath: null,
        ...(opts.fwmark ? { fwmark: opts.fwmark } : {}),
        log: debug,
        beforeEncrypt,
        afterDecrypt,
        onTunError: (err) => opts.log('error', 'TUN device failed; the data path is down until the agent restarts', { code: err.code, err: err.message }),
      });
      wiring = { tun: iface.tun, device: iface.device, close: () => iface.close() };
    }
    try {
      wiring.device.setPrivateKey(opts.privateKey);
      if (opts.port !== 0 && wiring.device.port !== opts.port) {
        opts.log('warn', `UDP port ${opts.port} is taken; using port ${wiring.device.port} (the kernel's pick)`);
      }
      wiring.tun.setUp(true);
    } catch (err) {
      await wiring.close();
      throw err;
    }
    return new Engine(opts, current, wiring);
  }

  get listenPort(): number {
    return this.device.port;
  }

  /** Applies a netmap: addresses and routes, WireGuard peers, and the packet filter. */
  apply(netmap: Netmap): void {
    if (this.closed) return;
    this.applyAddresses(netmap.self.addresses);
    this.applyRelay(netmap.relays ?? []);
    this.applyPeers(netmap);
    this.assignPeerRelays(netmap);
    try {
      // One assignment: the next packet sees the new rules, none sees half of them.
      this.current.filter = Filter.build(filterConfigOf(netmap), this.current.filter);
    } catch (err) {
      // Keep the previous filter: a bad entry must not open (or close) anything by accident.
      this.opts.log('error', 'packet filter from coord refused; keeping the previous one', { err: (err as Error).message });
    }
  }

  /**
   * Handshakes with every peer right away. For a data path that restarted: peers that talked to this
   * device before still hold sessions it no longer has, and would otherwise wait out their own timers
   * (~15 s) before their packets get through again. (Not on a device's first start: with no sessions
   * anywhere, both sides would initiate at once.)
   */
  greetPeers(): void {
    for (const st of this.peers.values()) this.device.initiateHandshake(st.plan.publicKey);
  }

  /** The home relay, by name, and whether it is connected (null: none). */
  get relayState(): { name: string; url: string; connected: boolean; lastError: string } | null {
    const h = this.links.home;
    return h ? { name: h.name, url: h.info.url, connected: h.client.connected, lastError: h.client.lastError } : null;
  }

  /** The relays of the current map (in map order), for netcheck. */
  get relayMap(): RelayInfo[] {
    return this.links.relays;
  }

  /** Connections to the relays of the netmap's map; the home relay is kept connected, the others on demand. */
  private applyRelay(relays: RelayInfo[]): void {
    this.links.setMap(relays);
    // A home whose URL changed is a new connection: the device must use it.
    this.device.relay = this.links.home;
    if (!this.links.home && relays.length > 0) {
      // Until a measurement says otherwise: the home reported before, else the map's first (coord's own).
      const keep = this.homeWanted !== null && relays.some((r) => r.name === this.homeWanted) ? this.homeWanted : relays[0]!.name;
      this.setHome(keep);
      this.scheduleHomeCheck(HOME_FIRST_CHECK_MS);
    }
    if (relays.length === 0) this.setHome(null);
  }

  private setHome(name: string | null): void {
    const before = this.links.home?.name ?? null;
    this.links.setHome(name);
    this.device.relay = this.links.home;
    this.homeWanted = name;
    if (name !== before) {
      if (name !== null) this.opts.log('info', `home relay "${name}"`, before ? { was: before } : {});
      this.opts.onHomeRelay?.(name);
    }
  }

  /**
   * One netcheck (agent/connectivity/netcheck.ts) through the WireGuard device's UDP socket: STUN to
   * every relay's STUN ports (the map's), latency to every relay.
   */
  async netcheck(o: { resolve?: (host: string) => Promise<string[]>; relayTimeoutMs?: number; extraStun?: UdpAddress[]; relays?: boolean } = {}): Promise<NetcheckReport> {
    const relays = this.links.relays;
    const stun = await stunTargetsOf(relays, o.resolve ?? resolveHost);
    // coord's own STUN ports (the netmap's stunPorts), when no relay of the map already names them.
    for (const t of o.extraStun ?? []) if (!stun.some((x) => x.address === t.address && x.port === t.port)) stun.push(t);
    return netcheck(this.stunTransport(), {
      stun,
      relays: o.relays === false ? [] : relays.map((r) => ({ name: r.name, probe: (ms: number) => this.links.latency(r.name, ms) })),
      ...(o.relayTimeoutMs ? { relayTimeoutMs: o.relayTimeoutMs } : {}),
    });
  }


  /** The relay link that reaches a peer: its home relay's, else ours (null: no relay map). */
  private linkOf(peer: Peer): RelayConnection | null {
    return (peer.relay as RelayConnection | null) ?? this.links.home;
  }

  private relayNameOf(nodeKey: string): string {
    const st = this.peers.get(nodeKey);
    const peer = st ? this.device.getPeer(st.plan.publicKey) : undefined;
    return (peer ? this.linkOf(peer) : this.links.home)?.name ?? '';
  }

  /** The home relay now (null: no relay map). */
  get homeRelay(): string | null {
    return this.links.home?.name ?? null;
  }

  /**
   * Measures every relay of the map and moves home when another is clearly faster (home-relay.ts).
   * Returns the measurements.
   */
  async checkHomeRelay(timeoutMs = 3000): Promise<RelayLatency[]> {
    const relays = this.links.relays;
    const measured = await Promise.all(relays.map(async (r) => ({ name: r.name, latencyMs: await this.links.latency(r.name, timeoutMs) })));
    if (this.closed) return measured;
    const next = chooseHomeRelay(this.links.home?.name ?? null, measured);
    // (A new map may have arrived meanwhile: move only to a relay that is still in it.)
    if (next !== null && next !== (this.links.home?.name ?? null) && this.links.get(next)) this.setHome(next);
    return measured;
  }

  private scheduleHomeCheck(ms: number): void {
    if (this.closed) return;
    if (this.homeTimer) clearTimeout(this.homeTimer);
    this.homeTimer = setTimeout(() => {
      this.homeTimer = null;
      this.checkHomeRelay()
        .catch((err) => this.opts.log('warn', 'home relay measurement failed', { err: (err as Error).message }))
        .finally(() => this.scheduleHomeCheck(this.opts.homeRelayIntervalMs ?? HOME_CHECK_MS));
    }, ms);
    this.homeTimer.unref();
  }

  /**
   * Each peer is reached through its home relay when it reported one in our map, else through ours. A
   * peer that appeared, came online or moved home may just have become reachable: a handshake the relay
   * could not deliver to it goes again at once (Device.peerMayBeReachable).
   */
  private assignPeerRelays(netmap: Netmap): void {
    const seen = new Set<string>();
    for (const p of netmap.peers) {
      const st = this.peers.get(p.nodeKey);
      const peer = st ? this.device.getPeer(st.plan.publicKey) : undefined;
      if (!peer) continue;
      seen.add(p.nodeKey);
      peer.relay = this.links.linkFor(p.homeRelay);
      const reach = `${p.online}|${p.homeRelay ?? ''}`;
      if (this.peerReach.get(p.nodeKey) !== reach) {
        this.peerReach.set(p.nodeKey, reach);
        if (p.online) this.device.peerMayBeReachable(peer.publicKey.raw);
      }
    }
    for (const key of this.peerReach.keys()) if (!seen.has(key)) this.peerReach.delete(key);
  }

  /** Makes the device's addresses the netmap's: new ones added first, then the ones it no longer lists removed. */
  private applyAddresses(addresses: string[]): void {
    const wanted = new Set(addresses.map(hostPrefix));
    for (const a of wanted) {
      if (this.addresses.has(a)) continue;
      try {
        this.tun.addAddress(a);
        this.addresses.add(a);
      } catch (err) {
        const code = (err as NativeError).code;
        if (code === 'EEXIST') this.addresses.add(a);
        else this.opts.log('warn', `could not add address ${a} to ${this.tun.name}`, { code, err: (err as Error).message });
      }
    }
    for (const a of [...this.addresses]) {
      if (wanted.has(a) || !this.tun.removeAddress) continue;
      try {
        this.tun.removeAddress(a);
        this.addresses.delete(a);
        this.opts.log('info', `address ${a} removed from ${this.tun.name}`);
      } catch (err) {
        this.opts.log('warn', `could not remove address ${a} from ${this.tun.name}`, { code: (err as NativeError).code, err: (err as Error).message });
      }
    }
    if (!this.routesAdded && addresses.length > 0) {
      for (const r of TAILNET_ROUTES) {
        try {
          this.tun.addRoute(r);
        } catch (err) {
          const code = (err as NativeError).code;
          if (code !== 'EEXIST') this.opts.log('warn', `could not route ${r} through ${this.tun.name}`, { code, err: (err as Error).message });
        }
      }
      this.routesAdded = true;
    }
  }

  private applyPeers(netmap: Netmap): void {
    const { peers, skipped } = planPeers(netmap, this.opts.localSubnets ?? null);
    if (skipped.length) this.opts.log('warn', 'peers with an unusable node key skipped', { peers: skipped });
    const wanted = new Map(peers.map((p) => [p.nodeKey, p]));
    for (const [key, st] of this.peers) {
      if (!wanted.has(key)) {
        this.device.removePeer(st.plan.publicKey);
        this.peers.delete(key);
      }
    }
    const nodes = new Map(netmap.peers.map((p) => [p.nodeKey, p]));
    for (const plan of peers) {
      const peer = this.device.getPeer(plan.publicKey);
      const current = peer ? this.device.endpointText(peer) : null;
      // The endpoint is where packets go when path discovery has confirmed nothing and no relay is
      // connected: the best candidate, unless the peer is direct or its endpoint is still a candidate
      // (or, without path discovery, WireGuard roamed it there and it works).
      const works = peer !== undefined && (peer.direct || (peer.roams && peer.lastHandshake > 0 && this.now() - peer.lastHandshake < 180_000));
      const keep = current !== null && (works || plan.endpoints.includes(current));
      const endpoint = keep || plan.endpoints.length === 0 ? undefined : plan.endpoints[0];
      try {
        this.device.setPeer(plan.publicKey, { allowedIPs: plan.allowedIPs, replaceAllowedIPs: true, ...(endpoint ? { endpoint } : {}) });
      } catch (err) {
        this.opts.log('warn', 'peer refused by the WireGuard device', { peer: plan.nodeKey, err: (err as Error).message });
        continue;
      }
      this.peers.set(plan.nodeKey, { plan, name: nodes.get(plan.nodeKey)?.name ?? plan.nodeKey });
    }
    this.discovery.setPeers(
      [...this.peers.values()].map((st) => ({
        nodeKey: st.plan.nodeKey,
        publicKey: st.plan.publicKey,
        discoKey: decodeKey(nodes.get(st.plan.nodeKey)?.discoKey ?? ''),
        endpoints: st.plan.endpoints.map(parseEndpoint).filter((e): e is Endpoint => e !== null),
        name: st.name,
      })),
    );
  }

  /**
   * One round of `agent ping`: disco pings to the peer (by base64 node key) over its direct path, or
   * over every candidate and the relay; resolves with the first pong, or null after `timeoutMs`.
   * Throws when the peer has no path discovery (it reported no disco key).
   */
  ping(nodeKey: string, timeoutMs: number): Promise<PingResult | null> {
    return new Promise((resolve, reject) => {
      let done = false;
      const timer = setTimeout(() => finish(null), timeoutMs);
      const finish = (r: PingResult | null) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve(r);
      };
      const onPong = (r: ProbeResult) =>
        finish(
          r.via.kind === 'udp'
            ? { path: 'direct', endpoint: formatEndpoint(r.via.endpoint), relay: null, latencyMs: r.latencyMs }
            : { path: 'relay', endpoint: null, relay: this.relayNameOf(nodeKey), latencyMs: r.latencyMs },
        );
      if (!this.discovery.probe(nodeKey, onPong)) {
        clearTimeout(timer);
        reject(new Error('the peer has no disco key yet (an older agent, or it has not reported one): it cannot be pinged'));
      }
    });
  }

  /** Path discovery's counters (disco messages sent, received, refused). */
  get discoCounters(): DiscoCounters {
    return this.discovery.counters;
  }

  /** What the data path knows about a peer (by base64 node key). */
  peerLive(nodeKey: string): PeerLive | undefined {
    const st = this.peers.get(nodeKey);
    const peer = st ? this.device.getPeer(st.plan.publicKey) : undefined;
    if (!peer) return undefined;
    const link = this.linkOf(peer);
    const relay = link !== null && this.links.quietly(() => this.device.relayed(peer)) ? link.name : null;
    // Direct: confirmed by path discovery, or (a peer without it, and no relay) plain WireGuard's endpoint.
    const direct = relay === null && (peer.direct || peer.roams);
    return { endpoint: direct ? this.device.endpointText(peer) : null, relay, lastHandshake: peer.lastHandshake, txBytes: peer.txBytes, rxBytes: peer.rxBytes };
  }

  capGrantsFor(srcIP: string, dstIP: string) {
    return this.filter.capGrantsFor(srcIP, dstIP);
  }

  counters(): EngineCounters {
    const wg: Record<string, number> = {};
    const drops = this.device.drops;
    for (const name of Object.keys(new DropCounters()) as Array<keyof DropCounters>) {
      // "filtered" is the filter's own drops, already counted by reason.
      if (name !== 'filtered') wg[name] = drops[name];
    }
    return { filter: this.filter.counters(), wireguard: wg };
  }

  /** Removes the TUN device (with its addresses and routes) and closes the UDP socket. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    clearInterval(this.sweepTimer);
    if (this.homeTimer) clearTimeout(this.homeTimer);
    this.device.relay = null;
    this.links.close();
    await this.wiring.close();
  }
}
