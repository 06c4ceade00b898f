// The data path of one device: TUN ⇄ filter ⇄ WireGuard ⇄ UDP, configured from netmaps.
//
//   TUN → Device (peer by destination) → filter.runOut → encrypt → UDP
//   UDP → decrypt → source in the sender's allowed IPs → filter.runIn (quarantine applied) → TUN
//
// Peers without a working direct path are reached through a relay: the peer's home relay when it reported
// one of the map's (connected on demand), else this device's home relay (the map's relay with the lowest
// measured latency, kept connected and reported to coord). Relay packets join the UDP receive path.
//
// A new netmap builds a new filter from the old one (same flow table and counters) and swaps it in
// with one assignment: the hooks read the current filter per packet, so none sees half a filter.
import { Filter, type FilterCounters } from '../../filter/index.js';
import type { NativeError, TunBatchHandler } from '../../native/index.js';
import { hostPrefix, TAILNET_ROUTES } from '../../wire/addr.js';
import type { Netmap, RelayInfo } from '../../wire/protocol.js';
import { X25519Key } from '../../wire/x25519.js';
import { lookup } from 'node:dns/promises';
import { chooseHomeRelay, type RelayLatency } from '../connectivity/home-relay.js';
import { netcheck, stunTargetsOf, type NetcheckReport, type StunTransport } from '../connectivity/netcheck.js';
import { RelayLinks, type RelayConnection } from '../connectivity/relay-links.js';
import type { StunHandler } from '../wireguard/device.js';
import { Device, DropCounters, WireGuardInterface, type TunLike, type UdpBatchHandler, type UdpLike } from '../wireguard/index.js';
import { DEFAULT_MTU } from './mtu.js';
import { filterConfigOf, planPeers, type PeerLive, type PeerPlan } from './netmap.js';

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
  relayWsOptions?: import('ws').ClientOptions;
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

/** After this long without a handshake, a peer with several endpoints tries the next one. */
const ENDPOINT_TRY_MS = 6_000;

interface PeerState {
  plan: PeerPlan;
  /** Index in plan.endpoints of the endpoint we last set, and when. */
  tried: number;
  setAt: number;
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
  private readonly timer: NodeJS.Timeout;
  private closed = false;
  private readonly now: () => number;
  private readonly links: RelayLinks;
  private readonly stunHandlers = new Set<StunHandler>();
  /** The home relay chosen last (kept across a map that briefly lacks it). */
  private homeWanted: string | null = null;
  private homeTimer: NodeJS.Timeout | null = null;
  private readonly sweepTimer: NodeJS.Timeout;

  private constructor(
    private readonly opts: EngineOptions,
    /** The filter the packet hooks use; replaced whole by apply(). */
    private readonly current: { filter: Filter },
    private readonly wiring: Wiring,
  ) {
    this.tun = wiring.tun;
    this.device = wiring.device;
    this.now = opts.now ?? Date.now;
    this.timer = setInterval(() => this.tryEndpoints(), 2_000);
    this.timer.unref();
    const device = this.device;
    this.links = new RelayLinks({
      key: new X25519Key(opts.privateKey),
      onPackets: (_src, buf, offsets, lengths, count) => device.relayReceiveBatch(buf, offsets, lengths, count),
      onReady: () => device.relayReady(),
      log: (level, msg, fields) => opts.log(level, msg, fields),
      wsOptions: opts.relayWsOptions,
      ...(opts.relayIdleMs ? { idleMs: opts.relayIdleMs } : {}),
    });
    this.sweepTimer = setInterval(() => this.links.sweep(), Math.min(10_000, opts.relayIdleMs ?? 10_000));
    this.sweepTimer.unref();
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
  async netcheck(o: { resolve?: (host: string) => Promise<string[]>; relayTimeoutMs?: number } = {}): Promise<NetcheckReport> {
    const relays = this.links.relays;
    const stun = await stunTargetsOf(relays, o.resolve ?? resolveHost);
    return netcheck(this.stunTransport(), {
      stun,
      relays: relays.map((r) => ({ name: r.name, probe: (ms: number) => this.links.latency(r.name, ms) })),
      ...(o.relayTimeoutMs ? { relayTimeoutMs: o.relayTimeoutMs } : {}),
    });
  }

  /** STUN through the device's socket: requests sent from it, answers taken from its receive path. */
  private stunTransport(): StunTransport {
    const device = this.device;
    const handlers = this.stunHandlers;
    return {
      families: { v4: true, v6: true },
      send: (packet, to) => void device.sendRawUdp(packet, to.address, to.port),
      onStun: (handler) => {
        const h = (packet: Buffer, address: string, port: number) => handler(packet, { address: address.startsWith('::ffff:') ? address.slice(7) : address, port });
        handlers.add(h);
        device.stunHandler = (packet, address, port) => {
          for (const x of handlers) x(packet, address, port);
        };
        return () => {
          handlers.delete(h);
          if (handlers.size === 0) device.stunHandler = null;
        };
      },
    };
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

  /** Each peer is reached through its home relay when it reported one in our map, else through ours. */
  private assignPeerRelays(netmap: Netmap): void {
    for (const p of netmap.peers) {
      const st = this.peers.get(p.nodeKey);
      const peer = st ? this.device.getPeer(st.plan.publicKey) : undefined;
      if (peer) peer.relay = this.links.linkFor(p.homeRelay);
    }
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
    const now = this.now();
    for (const plan of peers) {
      const st = this.peers.get(plan.nodeKey);
      const peer = this.device.getPeer(plan.publicKey);
      const current = peer ? this.device.endpointText(peer) : null;
      // Keep an endpoint the peer roamed to or that works; otherwise take the best candidate.
      const keep = current !== null && (plan.endpoints.includes(current) || (peer !== undefined && peer.lastHandshake > 0 && now - peer.lastHandshake < 180_000));
      const endpoint = keep || plan.endpoints.length === 0 ? undefined : plan.endpoints[0];
      try {
        this.device.setPeer(plan.publicKey, { allowedIPs: plan.allowedIPs, replaceAllowedIPs: true, ...(endpoint ? { endpoint } : {}) });
      } catch (err) {
        this.opts.log('warn', 'peer refused by the WireGuard device', { peer: plan.nodeKey, err: (err as Error).message });
        continue;
      }
      const tried = endpoint ? 0 : st ? Math.max(0, plan.endpoints.indexOf(current ?? '')) : 0;
      this.peers.set(plan.nodeKey, { plan, tried, setAt: endpoint || !st ? now : st.setAt });
    }
  }

  /**
   * A peer whose handshake does not complete moves on to its next endpoint (or back to the one coord
   * reports, if it had roamed elsewhere), every ENDPOINT_TRY_MS while something wants to reach it.
   */
  tryEndpoints(): void {
    const now = this.now();
    for (const st of this.peers.values()) {
      const eps = st.plan.endpoints;
      if (eps.length === 0 || now - st.setAt < ENDPOINT_TRY_MS) continue;
      const peer = this.device.getPeer(st.plan.publicKey);
      if (!peer || (peer.lastHandshake > 0 && now - peer.lastHandshake < 180_000)) continue;
      if (peer.staged.length === 0 && !peer.retransmitHandshake.pending()) continue;
      const next = (st.tried + 1) % eps.length;
      st.setAt = now;
      if (eps[next] === this.device.endpointText(peer)) continue;
      st.tried = next;
      this.device.setPeer(st.plan.publicKey, { endpoint: eps[next]! });
    }
  }

  /** What the data path knows about a peer (by base64 node key). */
  peerLive(nodeKey: string): PeerLive | undefined {
    const st = this.peers.get(nodeKey);
    const peer = st ? this.device.getPeer(st.plan.publicKey) : undefined;
    if (!peer) return undefined;
    const link = (peer.relay as RelayConnection | null) ?? this.links.home;
    const relay = link !== null && this.links.quietly(() => this.device.relayed(peer)) ? link.name : null;
    return { endpoint: this.device.endpointText(peer), relay, lastHandshake: peer.lastHandshake, txBytes: peer.txBytes, rxBytes: peer.rxBytes };
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
