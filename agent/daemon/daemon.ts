// The node agent daemon: keeps this device's registration and preferences on disk, holds the netmap
// stream, applies each netmap to the data path, and answers the CLI over the local API.
//
// State directory (mode 0700, files 0600):
//   machine.json  the Ed25519 machine key (identity at coord)
//   node.json     the WireGuard private key (node key)
//   prefs.json    coord URL, hostname, advertised tags, wantRunning, and the registration coord returned
//   netmap.json   the last netmap, so that a restart works on its own while coord is unreachable
//   routing.json  the routes, rules, nftables table and sysctls installed (agent/routing), so that the
//                 next start undoes what a crash left behind; absent while nothing is installed
//   disco.json    the disco private key (path discovery: peers seal their probes to its public half)
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import { hostname as osHostname, networkInterfaces, platform } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { bareAddr } from '../../wire/addr.js';
import { dnsLabel, firstLabel, isTag } from '../../wire/names.js';
import type { Netmap } from '../../wire/protocol.js';
import { X25519Key } from '../../wire/x25519.js';
import type { NetcheckReport, UdpAddress } from '../connectivity/netcheck.js';
import { ControlClient, ControlError, loadOrCreateMachineKey, type MachineKey, type NetmapStream } from '../control/index.js';
import type { AgentStatus, BackendState, PeerStatus, PingResponse, RoutingStatus, UpRequest, WhoisResponse } from '../localapi/types.js';
import { LocalApiHttpError, serveLocalApi, TextAnswer, type Routes } from '../localapi/server.js';
import {
  addressesVia, advertisedRoutesOf, BYPASS_MARK, chosenExitNode, DEFAULT_ROUTE_PREFS, exitNodeProblem, localNetsOf, parseExitNode, parseRoute, RouteError, Routing, withExitRoutes, type RoutePrefs,
} from '../routing/index.js';
import { StateDir } from '../state.js';
import { PrivateKey } from '../wireguard/index.js';
import { Engine, type EngineOptions } from './engine.js';
import { agentRegistry, type AgentSnapshot, type PeerSample } from './metrics.js';
import { MagicDns, QUERY_TYPES, type DnsQueryResult, type DnsStatus } from './magicdns.js';
import { findPeer, localEndpoints, onLocalSubnet, peerStatusOf, selfStatusOf, whoisOf } from './netmap.js';

export const FILES = { machine: 'machine.json', node: 'node.json', prefs: 'prefs.json', netmap: 'netmap.json', disco: 'disco.json' } as const;

/** How often netcheck runs (STUN through the WireGuard socket) to learn this device's public endpoints. */
export const NETCHECK_INTERVAL_MS = 30_000;
/** How long one `agent ping` round waits for a pong. */
const PING_TIMEOUT_MS = 3000;

export interface Registration {
  coordUrl: string;
  deviceId: string;
  name: string;
  hostname: string;
  addresses: string[];
  user: string;
  tags: string[];
  network: string;
  authorized: boolean;
}

export interface Prefs {
  coordUrl: string | null;
  hostname: string | null;
  /** The tags this device last asked for (null: never asked; the auth key's tags apply). */
  advertiseTags: string[] | null;
  wantRunning: boolean;
  /** Point the system's resolver at the agent's (MagicDNS); `agent up --accept-dns`. */
  acceptDns: boolean;
  /** Subnet routes and exit nodes (`agent up --advertise-routes`, `--exit-node`, ...). */
  routes: RoutePrefs;
  registration: Registration | null;
}

/** What POST /logout answers: the status afterwards, and whether coord deleted the device. */
export interface LogoutResponse extends AgentStatus {
  /** true: coord deleted the device; false: coord could not be told (see coordLogoutError); null: nothing was registered. */
  coordRemoved: boolean | null;
  coordLogoutError?: string;
}

const NO_PREFS: Prefs = { coordUrl: null, hostname: null, advertiseTags: null, wantRunning: false, acceptDns: true, routes: DEFAULT_ROUTE_PREFS, registration: null };

export interface DaemonOptions {
  stateDir: string;
  socket: string;
  tunName: string;
  port: number;
  /** TUN MTU (default: the engine's). */
  mtu?: number;
  log: Logger;
  /** For tests: engine factories without the native addon. */
  engine?: Pick<EngineOptions, 'openTun' | 'bindUdp'>;
  /** How long `agent up` waits for the first netmap before answering. */
  upWaitMs?: number;
  /** The resolver configuration file MagicDNS manages (default /etc/resolv.conf). */
  resolvConf?: string;
}

export function agentVersion(): string {
  for (const rel of ['../../package.json', '../../../package.json']) {
    const url = new URL(rel, import.meta.url);
    try {
      const pkg = JSON.parse(readFileSync(url, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'meshward' && pkg.version) return pkg.version;
    } catch {
      // try the next location
    }
  }
  return '0.0.0';
}

/** A DNS label from the machine's hostname ("Web_1.example.com" → "web-1"). */
export function defaultHostname(raw = osHostname()): string {
  return dnsLabel(firstLabel(raw));
}

const sameSet = (a: string[], b: string[]) => a.length === b.length && a.every((x) => b.includes(x));

function errorText(err: unknown): string {
  const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
  const code = e.code ?? e.cause?.code;
  const msg = e.cause?.message ?? e.message ?? String(err);
  return code && !msg.includes(code) ? `${code}: ${msg}` : msg;
}

/** Checks the body of POST /up (the CLI validates too; the socket may have other clients). */
function parseUpRequest(body: unknown): UpRequest {
  const b = (body ?? {}) as Record<string, unknown>;
  if (typeof b !== 'object' || Array.isArray(b)) throw new LocalApiHttpError(400, 'up: the request must be a JSON object');
  const str = (k: string) => {
    if (b[k] !== undefined && typeof b[k] !== 'string') throw new LocalApiHttpError(400, `up: "${k}" must be a string`);
    return b[k] as string | undefined;
  };
  const tags = b.advertiseTags;
  if (tags !== undefined && !(Array.isArray(tags) && tags.every(isTag))) {
    throw new LocalApiHttpError(400, 'up: "advertiseTags" must be a list of tags like "tag:web"');
  }
  if (b.acceptDns !== undefined && typeof b.acceptDns !== 'boolean') throw new LocalApiHttpError(400, 'up: "acceptDns" must be true or false');
  const up: UpRequest = { coord: str('coord'), authkey: str('authkey'), hostname: str('hostname'), advertiseTags: tags as string[] | undefined };
  if (b.acceptDns !== undefined) up.acceptDns = b.acceptDns as boolean;
  for (const k of ['advertiseExitNode', 'acceptRoutes', 'acceptRoutesOverLan', 'exitNodeAllowLanAccess', 'snatSubnetRoutes'] as const) {
    if (b[k] === undefined) continue;
    if (typeof b[k] !== 'boolean') throw new LocalApiHttpError(400, `up: "${k}" must be true or false`);
    up[k] = b[k];
  }
  try {
    if (b.advertiseRoutes !== undefined) {
      if (!Array.isArray(b.advertiseRoutes) || b.advertiseRoutes.length > 256 || !b.advertiseRoutes.every((r) => typeof r === 'string')) {
        throw new RouteError('"advertiseRoutes" must be a list of at most 256 CIDR prefixes');
      }
      up.advertiseRoutes = [...new Set((b.advertiseRoutes as string[]).map(parseRoute))];
    }
    const exit = str('exitNode');
    if (exit !== undefined) up.exitNode = parseExitNode(exit);
  } catch (err) {
    if (err instanceof RouteError) throw new LocalApiHttpError(400, `up: ${err.message}`);
    throw err;
  }
  return up;
}

/** The route settings after `agent up`: each one given replaces the remembered one. */
export function routePrefsAfter(prefs: RoutePrefs, req: UpRequest): RoutePrefs {
  const next: RoutePrefs = { ...prefs };
  if (req.advertiseRoutes !== undefined) next.advertiseRoutes = req.advertiseRoutes;
  if (req.advertiseExitNode !== undefined) next.advertiseExitNode = req.advertiseExitNode;
  if (req.acceptRoutes !== undefined) next.acceptRoutes = req.acceptRoutes;
  if (req.acceptRoutesOverLan !== undefined) next.acceptRoutesOverLan = req.acceptRoutesOverLan;
  // Turning --accept-routes off turns this off too, so that a later --accept-routes does not bring it back unasked.
  else if (req.acceptRoutes === false) next.acceptRoutesOverLan = false;
  if (req.exitNode !== undefined) next.exitNode = req.exitNode;
  if (req.exitNodeAllowLanAccess !== undefined) next.exitNodeAllowLanAccess = req.exitNodeAllowLanAccess;
  if (req.snatSubnetRoutes !== undefined) next.snatSubnetRoutes = req.snatSubnetRoutes;
  if (next.acceptRoutesOverLan && !next.acceptRoutes) {
    throw new LocalApiHttpError(400, '--accept-routes-over-lan needs --accept-routes (this device does not accept routes): add --accept-routes');
  }
  if (req.exitNodeAllowLanAccess === true && next.exitNode === '') {
    throw new LocalApiHttpError(400, '--exit-node-allow-lan-access needs an exit node (this device uses none): add --exit-node NAME');
  }
  if (next.advertiseExitNode && next.exitNode !== '') {
    throw new LocalApiHttpError(400, 'a device cannot offer an exit node and use one at once (--advertise-exit-node=false, or --exit-node=)');
  }
  return next;
}

export class Daemon {
  readonly state: StateDir;
  readonly version = agentVersion();
  private machineKey: MachineKey;
  private nodeKey: PrivateKey;
  /** The disco private key (raw); its public half goes to coord. */
  private discoKey: Buffer;
  private prefs: Prefs;
  private netmap: Netmap | null = null;
  private netmapFromDisk = false;
  private engine: Engine | null = null;
  private stream: NetmapStream | null = null;
  private server: Server | null = null;
  private coordConnected = false;
  private lastContact: string | null = null;
  private coordError: string | null = null;
  /** For the metrics: netmap streams opened, and open ones lost. */
  private coordConnects = 0;
  private coordLosses = 0;
  readonly metrics = agentRegistry(() => this.metricsSnapshot());
  private reportedEndpoints = '';
  /** The control client of the open netmap stream (for updates between posture reports). */
  private control: ControlClient | null = null;
  /** The home relay coord was last told about (null: not yet this stream). */
  private reportedHome: string | null = null;
  private postureTimer: NodeJS.Timeout | null = null;
  private netcheckTimer: NodeJS.Timeout | null = null;
  private netcheckRunning = false;
  private lastNetcheck: NetcheckReport | null = null;
  /** The STUN destinations of the last netcheck (a change runs one at once). */
  private stunKey = '';
  private retryTimer: NodeJS.Timeout | null = null;
  private streamToken: symbol | null = null;
  private netmapWaiters: Array<() => void> = [];
  /** Local API calls that change state run one at a time. */
  private queue: Promise<unknown> = Promise.resolve();
  private readonly log: Logger;
  private readonly dns: MagicDns;
  private readonly routing: Routing;

  constructor(private readonly opts: DaemonOptions) {
    this.log = opts.log;
    this.state = new StateDir(opts.stateDir);
    this.dns = new MagicDns(this.state.dir, opts.tunName, opts.log, opts.resolvConf);
    const routingLog = opts.log.child({ component: 'routing' });
    // A data path in memory (tests) has no TUN device to route through: the host is left alone.
    this.routing = new Routing(this.state, (level, msg, fields) => routingLog[level](fields ?? {}, msg), undefined, opts.engine !== undefined);
    this.machineKey = loadOrCreateMachineKey(join(this.state.dir, FILES.machine));
    this.nodeKey = this.loadOrCreateNodeKey();
    this.discoKey = this.loadOrCreateDiscoKey();
    this.prefs = { ...NO_PREFS, ...(this.state.read<Prefs>(FILES.prefs) ?? {}) };
    this.prefs.routes = { ...DEFAULT_ROUTE_PREFS, ...this.prefs.routes };
  }

  private loadOrCreateDiscoKey(): Buffer {
    const stored = this.state.read<{ privateKey: string }>(FILES.disco);
    if (stored) {
      const raw = Buffer.from(stored.privateKey ?? '', 'base64');
      if (raw.length !== 32) throw new Error(`${join(this.state.dir, FILES.disco)} does not hold a 32-byte key; move it away to start afresh`);
      return raw;
    }
    const raw = randomBytes(32);
    this.state.write(FILES.disco, { privateKey: raw.toString('base64') });
    return raw;
  }

  /** The disco public key, base64 (what coord hands peers). */
  private discoPublic(): string {
    return new X25519Key(this.discoKey).publicKey.toString('base64');
  }

  private loadOrCreateNodeKey(): PrivateKey {
    const stored = this.state.read<{ privateKey: string }>(FILES.node);
    if (stored) {
      const raw = Buffer.from(stored.privateKey ?? '', 'base64');
      if (raw.length !== 32) throw new Error(`${join(this.state.dir, FILES.node)} does not hold a 32-byte key; move it away to start afresh`);
      return new PrivateKey(raw);
    }
    const key = PrivateKey.generate();
    this.state.write(FILES.node, { privateKey: key.raw.toString('base64') });
    return key;
  }

  private savePrefs(): void {
    this.state.write(FILES.prefs, this.prefs);
  }

  private serial<T>(fn: () => Promise<T> | T): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  /** Opens the local API and, if the device was up before, brings it up again from disk at once. */
  async start(): Promise<void> {
    const routes: Routes = {
      'GET /status': () => this.status(),
      'POST /up': (body) => this.serial(() => this.up(parseUpRequest(body))),
      'POST /down': () => this.serial(() => this.down()),
      'POST /logout': () => this.serial(() => this.logout()),
      'GET /whois': (_body, query) => this.whois(query.get('ip') ?? ''),
      'GET /netcheck': () => this.netcheck(),
      'GET /dns/status': () => this.dnsStatus(),
      'POST /dns/query': (body) => this.dnsQuery(body),
      'POST /ping': (body) => this.ping(body),
      'GET /metrics': async () => new TextAnswer(this.metrics.contentType, await this.metrics.metrics()),
    };
    // The socket first: a second daemon on the same socket stops here, before touching the TUN device.
    this.server = await serveLocalApi(this.opts.socket, routes, (err) => this.log.error({ err }, 'local API handler failed'));
    // A crash may have left the system pointing at our resolver: give it its own configuration back.
    this.dns.recover();
    // ... and routes, rules, an nftables table or sysctls of ours behind.
    await this.routing.recover();
    await this.serial(() => this.resume());
    this.log.info({ socket: this.opts.socket, stateDir: this.state.dir, version: this.version }, 'agent daemon ready');
  }

  /** Brings the device up from the state directory if it was up when the agent stopped. */
  private async resume(): Promise<void> {
    const reg = this.prefs.registration;
    if (this.prefs.wantRunning && reg) {
      const saved = this.state.read<Netmap>(FILES.netmap);
      if (saved && saved.self?.id === reg.deviceId) {
        this.netmap = saved;
        this.netmapFromDisk = true;
      }
      await this.startEngine();
      this.startStream();
      this.log.info(
        { device: reg.name, netmapVersion: this.netmap?.version ?? null, sinceProcessStartMs: Math.round(process.uptime() * 1000) },
        'resumed from the state directory',
      );
    } else {
      this.log.info({ registered: reg !== null }, 'waiting for `agent up`');
    }
  }

  /** Stops everything this process made: the stream, the TUN device, the socket. */
  async stop(): Promise<void> {
    this.stopStream();
    await this.stopEngine();
    const server = this.server;
    this.server = null;
    if (!server) return; // never listened: the socket (if any) belongs to another daemon
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(this.opts.socket, { force: true });
  }

  // ---- the data path ----

  /** A client for coord that finds its address as the routing keeps it out of the tunnel (no DNS through the tunnel). */
  private coordClient(coordUrl: string): ControlClient {
    return new ControlClient(coordUrl, this.machineKey, { lookup: this.routing.lookup });
  }

  private async startEngine(): Promise<void> {
    if (this.engine) return;
    const log = this.log.child({ component: 'engine' });
    this.engine = await Engine.start({
      tunName: this.opts.tunName,
      port: this.opts.port,
      ...(this.opts.mtu ? { mtu: this.opts.mtu } : {}),
      privateKey: this.nodeKey.raw,
      discoKey: this.discoKey,
      localSubnets: onLocalSubnet(networkInterfaces(), this.opts.tunName),
      fwmark: BYPASS_MARK,
      log: (level, msg, fields) => log[level](fields ?? {}, msg),
      onHomeRelay: (name) => this.reportHomeRelay(name ?? ''),
      ...this.opts.engine,
      // Relays are found like coord: by the addresses kept out of the tunnel.
      relayWsOptions: { lookup: this.routing.lookup },
    });
    this.log.info({ tun: this.engine.tun.name, port: this.engine.listenPort }, 'data path up');
    this.engine.setOwnEndpoints(this.endpoints());
    clearInterval(this.netcheckTimer ?? undefined);
    this.netcheckTimer = setInterval(() => void this.runNetcheck(), NETCHECK_INTERVAL_MS);
    this.netcheckTimer.unref();
    await this.dns.start(this.engine.tun.name);
    if (this.netmap) {
      // A netmap from before this engine (on disk, or kept across `agent down`): its peers may still
      // hold sessions with our previous data path.
      this.applyNetmap(this.netmap);
      this.engine.greetPeers();
    }
  }

  /** The netmap to the data path, the resolver and the host's routing. */
  private applyNetmap(netmap: Netmap): void {
    // The exit node in use (if any) gets its default routes in WireGuard; coord sends them apart.
    this.engine?.apply(withExitRoutes(netmap, this.prefs.routes));
    if (this.engine) {
      this.dns.apply(netmap, this.prefs.acceptDns !== false, this.exitNodeResolvers(netmap));
      void this.applyRouting(netmap);
    }
  }

  /** The tailnet addresses of the exit node in use (it resolves the names MagicDNS does not answer). */
  private exitNodeResolvers(netmap: Netmap): string[] {
    return chosenExitNode(netmap, this.prefs.routes)?.peer.addresses.map(bareAddr) ?? [];
  }

  /** Subnet routes, exit node, forwarding and source NAT from this netmap and the route settings. */
  private applyRouting(netmap: Netmap | null): Promise<void> {
    const engine = this.engine;
    if (!engine) return Promise.resolve();
    const hostOf = (url: string) => {
      try {
        return [new URL(url).hostname];
      } catch {
        return [];
      }
    };
    const coordUrl = this.prefs.registration?.coordUrl ?? this.prefs.coordUrl;
    const dns = this.dns.status(this.prefs.acceptDns !== false);
    return this.routing.update({
      netmap,
      prefs: this.prefs.routes,
      tun: engine.tun.name,
      localNets: localNetsOf(networkInterfaces(), engine.tun.name),
      bypassHosts: [...(coordUrl ? hostOf(coordUrl) : []), ...(netmap?.relays ?? []).flatMap((r) => hostOf(r.url))],
      resolvers: [...dns.nameservers, ...dns.systemResolvers],
    });
  }

  private async stopEngine(): Promise<void> {
    const engine = this.engine;
    if (!engine) return;
    this.engine = null;
    clearInterval(this.netcheckTimer ?? undefined);
    this.netcheckTimer = null;
    this.lastNetcheck = null;
    this.stunKey = '';
    this.dns.stop();
    await this.routing.clear();
    await engine.close();
    this.log.info('data path down');
  }

  // ---- coord ----

  /**
   * This device's endpoints: its LAN addresses with the WireGuard port, then the public ones STUN found.
   * Not those behind a NAT that maps per destination: a peer would reach none of them (each
   * destination gets its own mapping), and they change with every netcheck, which would send every
   * peer a new netmap each time.
   */
  private endpoints(): string[] {
    const port = this.engine?.listenPort ?? this.opts.port;
    const out = localEndpoints(networkInterfaces(), port, this.opts.tunName);
    const nc = this.lastNetcheck;
    if (nc && nc.mappingVariesByDest !== true) for (const e of nc.publicEndpoints) if (!out.includes(e)) out.push(e);
    return out;
  }

  /** The last netcheck (null before the first, or without STUN). */
  netcheckReport(): NetcheckReport | null {
    return this.lastNetcheck;
  }

  /** coord's STUN servers: the host of the coord URL (each of its addresses) on the netmap's STUN ports. */
  private async stunTargets(): Promise<UdpAddress[]> {
    const ports = this.netmap?.stunPorts ?? [];
    const url = this.prefs.registration?.coordUrl;
    if (!ports.length || !url) return [];
    let host: string;
    try {
      host = new URL(url).hostname.replace(/^\[(.*)\]$/, '$1');
    } catch {
      return [];
    }
    let addresses: string[];
    try {
      addresses = await addressesVia(this.routing.lookup, host);
    } catch (err) {
      this.log.debug({ host, err: errorText(err) }, 'netcheck: coord host does not resolve');
      return [];
    }
    return addresses.flatMap((address) => ports.map((port) => ({ address, port })));
  }

  /**
   * STUN through the WireGuard socket against coord's STUN ports: the public endpoints found join the
   * endpoints reported to coord and offered to peers (call-me-maybe). Runs at start, every
   * NETCHECK_INTERVAL_MS and when the STUN servers change; one at a time.
   */
  private async runNetcheck(): Promise<void> {
    const engine = this.engine;
    if (!engine || this.netcheckRunning) return;
    this.netcheckRunning = true;
    try {
      const stun = await this.stunTargets();
      this.stunKey = JSON.stringify(this.netmap?.stunPorts ?? []) + (this.prefs.registration?.coordUrl ?? '');
      if ((!stun.length && !engine.relayMap.some((r) => r.stunPort)) || this.engine !== engine) return;
      // (Relay latencies are the home relay check's business; this run is for the endpoints.)
      const report = await engine.netcheck({ extraStun: stun, relays: false, resolve: (host) => addressesVia(this.routing.lookup, host) });
      if (this.engine !== engine) return;
      const before = this.lastNetcheck?.publicEndpoints.join(',');
      this.lastNetcheck = report;
      if (before !== report.publicEndpoints.join(',')) {
        this.log.info({ udp: report.udp, publicEndpoints: report.publicEndpoints, mappingVariesByDest: report.mappingVariesByDest }, 'netcheck');
      }
      engine.setOwnEndpoints(this.endpoints());
      if (this.control && this.coordConnected) this.reportPosture(this.control, false);
    } catch (err) {
      this.log.warn({ err: errorText(err) }, 'netcheck failed');
    } finally {
      this.netcheckRunning = false;
    }
  }

  private startStream(): void {
    const reg = this.prefs.registration;
    if (this.stream || !reg) return;
    const client = this.coordClient(reg.coordUrl);
    this.control = client;
    this.reportedHome = null;
    // Callbacks of a stream already closed (a line still being parsed) must not touch the new state.
    const token = Symbol('stream');
    this.streamToken = token;
    const live = () => this.streamToken === token;
    this.stream = client.stream({
      onConnected: () => {
        if (!live()) return;
        this.coordConnected = true;
        this.coordConnects++;
        this.coordError = null;
        this.lastContact = new Date().toISOString();
        this.log.info({ coord: reg.coordUrl }, 'netmap stream connected');
        this.reportPosture(client, true);
        this.reportedHome = null;
        this.reportHomeRelay(this.engine?.homeRelay ?? '');
      },
      onNetmap: (netmap) => live() && this.onNetmap(netmap),
      onError: (err, info) => {
        if (!live()) return;
        const wasConnected = this.coordConnected;
        if (wasConnected) this.coordLosses++;
        this.coordConnected = false;
        this.coordError = errorText(err);
        // `agent up` waiting for a first netmap answers now: it can say coord is unreachable.
        if (!this.netmap || this.netmapFromDisk) for (const wake of this.netmapWaiters.splice(0)) wake();
        if (info.fatal) {
          this.log.error({ err: this.coordError }, 'coord ended this device’s session');
          this.serial(() => this.sessionEnded(err)).catch((e: unknown) => this.log.error({ err: errorText(e) }, 'could not end the session cleanly'));
        } else if (wasConnected) {
          this.log.warn({ err: this.coordError }, 'lost coord; running on the last netmap and reconnecting');
        } else {
          this.log.debug({ err: this.coordError }, 'coord still unreachable');
        }
      },
    });
    clearInterval(this.postureTimer ?? undefined);
    this.postureTimer = setInterval(() => this.coordConnected && this.reportPosture(client, false), 30_000);
    this.postureTimer.unref();
  }

  private stopStream(): void {
    this.streamToken = null;
    this.control = null;
    this.stream?.close();
    this.stream = null;
    clearTimeout(this.retryTimer ?? undefined);
    this.retryTimer = null;
    this.coordConnected = false;
    clearInterval(this.postureTimer ?? undefined);
    this.postureTimer = null;
  }

  /** Tells coord our endpoints, disco key, OS and version (on connect, and when the endpoints change). */
  private reportPosture(client: ControlClient, always: boolean): void {
    const endpoints = this.endpoints();
    const key = endpoints.join(',');
    this.engine?.setOwnEndpoints(endpoints);
    if (!always && key === this.reportedEndpoints) return;
    client.update({ endpoints, discoKey: this.discoPublic(), os: platform(), version: this.version, advertisedRoutes: this.advertisedRoutes() }).then(
      () => {
        this.reportedEndpoints = key;
        this.log.debug({ endpoints }, 'reported endpoints to coord');
      },
      (err: unknown) => this.log.warn({ err: errorText(err) }, 'could not report endpoints to coord'),
    );
  }

  /** The routes this device offers coord: its subnet routes, and 0.0.0.0/0 and ::/0 for an exit node. */
  private advertisedRoutes(): string[] {
    return advertisedRoutesOf(this.prefs.routes.advertiseRoutes, this.prefs.routes.advertiseExitNode);
  }

  /** One netcheck through the data path's UDP socket (so it needs the data path: `agent up`). */
  private async netcheck(): Promise<NetcheckReport> {
    const engine = this.engine;
    if (!engine) throw new LocalApiHttpError(409, 'the agent is down: run `agent up` first (netcheck uses the WireGuard UDP socket)');
    const stun = await this.stunTargets();
    if (engine.relayMap.length === 0 && stun.length === 0) this.log.info('netcheck with an empty relay map and no STUN on coord: nothing to ask');
    return engine.netcheck({ extraStun: stun, resolve: (host) => addressesVia(this.routing.lookup, host) });
  }

  /** Tells coord which relay peers reach this device at (when it changes, and on each connect). */
  private reportHomeRelay(name: string): void {
    const client = this.control;
    if (!client || !this.coordConnected || name === '' || name === this.reportedHome) return;
    this.reportedHome = name;
    client.update({ homeRelay: name }).then(
      () => this.log.debug({ homeRelay: name }, 'reported home relay to coord'),
      (err: unknown) => {
        if (this.reportedHome === name) this.reportedHome = null;
        this.log.warn({ err: errorText(err) }, 'could not report the home relay to coord');
      },
    );
  }

  private onNetmap(netmap: Netmap): void {
    this.lastContact = new Date().toISOString();
    const reg = this.prefs.registration;
    if (!reg) return;
    if (netmap.self.id !== reg.deviceId) {
      this.log.warn({ got: netmap.self.id, want: reg.deviceId }, 'netmap for another device ignored');
      return;
    }
    const first = this.netmap === null || this.netmapFromDisk;
    this.netmap = netmap;
    this.netmapFromDisk = false;
    // Apply first (a policy change takes effect now), then persist for the next start.
    const t0 = performance.now();
    this.applyNetmap(netmap);
    const applyMs = Math.round((performance.now() - t0) * 100) / 100;
    try {
      this.state.write(FILES.netmap, netmap);
    } catch (err) {
      this.log.error({ err: errorText(err) }, 'could not save the netmap');
    }
    const self = netmap.self;
    const addresses = self.addresses.map(bareAddr);
    if (!sameSet(self.tags, reg.tags) || self.authorized !== reg.authorized || self.name !== reg.name || !sameSet(addresses, reg.addresses)) {
      this.prefs.registration = { ...reg, tags: self.tags, authorized: self.authorized, name: self.name, addresses };
      this.savePrefs();
    }
    this.log[first ? 'info' : 'debug']({ version: netmap.version, peers: netmap.peers.length, rules: netmap.packetFilter.length, applyMs }, 'netmap applied');
    if (JSON.stringify(netmap.stunPorts ?? []) + reg.coordUrl !== this.stunKey) void this.runNetcheck();
    for (const wake of this.netmapWaiters.splice(0)) wake();
  }

  /**
   * The stream ended for good. 401 means coord no longer knows this device (deleted, expired, logged
   * out): stop and wait for `agent up --authkey`. Other refusals (a proxy answering 403/404 during
   * maintenance, say) keep the data path on the last netmap and try again in a minute.
   */
  private async sessionEnded(err: Error): Promise<void> {
    this.stopStream();
    this.coordError = err.message;
    if (err instanceof ControlError && err.status === 401) {
      await this.stopEngine();
      this.prefs.registration = null;
      this.prefs.wantRunning = false;
      this.savePrefs();
      this.netmap = null;
      this.state.remove(FILES.netmap);
      return;
    }
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (this.prefs.wantRunning && this.prefs.registration) this.startStream();
    }, 60_000);
    this.retryTimer.unref();
  }

  // ---- local API ----

  backendState(): BackendState {
    if (!this.prefs.registration) return 'NeedsLogin';
    if (!this.prefs.wantRunning) return 'Stopped';
    return this.netmap && this.engine ? 'Running' : 'Starting';
  }

  private health(): string[] {
    const h: string[] = [];
    const reg = this.prefs.registration;
    if (reg && !reg.authorized) h.push('this device awaits approval by an admin of its network');
    if (this.netmapFromDisk) h.push('running on the netmap saved on disk; coord has not been reached since the agent started');
    if (this.engine) h.push(...this.routing.notes);
    return h;
  }

  status(): AgentStatus {
    const counters = this.engine?.counters();
    const dropped: Record<string, number> = {};
    if (counters) {
      Object.assign(dropped, counters.filter.dropped);
      for (const [k, v] of Object.entries(counters.wireguard)) dropped[`wireguard-${k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())}`] = v;
    }
    const nm = this.netmap;
    return {
      schema: 1,
      version: this.version,
      backendState: this.backendState(),
      coord: {
        url: this.prefs.registration?.coordUrl ?? this.prefs.coordUrl,
        connected: this.coordConnected,
        lastContact: this.lastContact,
        error: this.coordConnected ? null : this.coordError,
      },
      self: nm ? selfStatusOf(nm, platform()) : null,
      peers: nm ? nm.peers.map((p) => this.withRoutes(peerStatusOf(p, this.engine?.peerLive(p.nodeKey)))) : [],
      filter: {
        accepted: counters?.filter.accepted ?? 0,
        dropped,
        in: counters ? counters.filter.in : null,
        out: counters ? counters.filter.out : null,
      },
      interface: this.engine ? { name: this.engine.tun.name, listenPort: this.engine.listenPort } : null,
      homeRelay: this.engine?.relayState ? { name: this.engine.relayState.name, connected: this.engine.relayState.connected } : null,
      netmap: nm ? { version: nm.version, fromDisk: this.netmapFromDisk } : null,
      health: this.health(),
      routing: nm ? this.routingStatus(nm) : null,
    };
  }

  private withRoutes(p: PeerStatus): PeerStatus {
    const r = this.engine ? this.routing.peerRoutes(p.id) : undefined;
    return { ...p, routes: r?.offered ?? [], routesInUse: r?.inUse ?? [], exitNodeOption: r?.exitNodeOption ?? false, exitNode: r?.exitNode ?? false };
  }

  private routingStatus(nm: Netmap): RoutingStatus {
    const prefs = this.prefs.routes;
    const approved = nm.self.approvedRoutes ?? [];
    return {
      advertisedRoutes: prefs.advertiseRoutes,
      advertiseExitNode: prefs.advertiseExitNode,
      approvedRoutes: approved,
      pendingRoutes: this.advertisedRoutes().filter((r) => !approved.includes(r)),
      acceptRoutes: prefs.acceptRoutes,
      acceptRoutesOverLan: prefs.acceptRoutesOverLan,
      snatSubnetRoutes: prefs.snatSubnetRoutes,
      exitNodeWanted: prefs.exitNode,
      exitNode: this.engine ? this.routing.exitNode : null,
      exitNodeAllowLanAccess: prefs.exitNodeAllowLanAccess,
      forwarding: this.engine ? this.routing.forwarding : { v4: false, v6: false },
      notes: this.engine ? this.routing.notes : [],
    };
  }

  private metricsSnapshot(): AgentSnapshot {
    const engine = this.engine;
    const counters = engine?.counters();
    const peers: PeerSample[] = [];
    if (engine && this.netmap) for (const p of this.netmap.peers) {
      const live = engine.peerLive(p.nodeKey);
      if (live) peers.push(live);
    }
    return {
      filter: counters?.filter ?? null,
      wireguardDrops: counters?.wireguard ?? null,
      handshakes: engine ? engine.device.handshakeCounts : null,
      peers,
      netmapVersion: this.netmap?.version ?? null,
      coord: { connected: this.coordConnected, connects: this.coordConnects, losses: this.coordLosses },
      dns: this.dns.counters(),
    };
  }

  whois(ip: string): WhoisResponse {
    if (!ip) throw new LocalApiHttpError(400, 'whois: which address? e.g. /whois?ip=100.64.0.1');
    if (!this.netmap) throw new LocalApiHttpError(409, 'this device has no netmap yet (run: agent up)');
    const engine = this.engine;
    const found = whoisOf(this.netmap, ip, (s, d) => (engine ? engine.capGrantsFor(s, d) : []));
    if (!found) throw new LocalApiHttpError(404, `no device with address ${ip} is known to this device`);
    return found;
  }

  private async up(req: UpRequest): Promise<AgentStatus> {
    const reg = this.prefs.registration;
    const coordUrl = req.coord ?? this.prefs.coordUrl;
    if (!coordUrl) throw new LocalApiHttpError(400, 'no coord URL yet; run: agent up --coord URL --authkey KEY');
    const hostname = req.hostname ?? this.prefs.hostname ?? defaultHostname();
    const routes = routePrefsAfter(this.prefs.routes, req);
    const sameServer = reg !== null && reg.coordUrl === coordUrl;
    if (!req.authkey) {
      if (!reg) throw new LocalApiHttpError(400, 'this device is not registered yet; run: agent up --coord URL --authkey KEY (an auth key from an admin of your network)');
      if (!sameServer) throw new LocalApiHttpError(400, `this device is registered with ${reg.coordUrl}; moving it to ${coordUrl} needs an auth key: agent up --coord ${coordUrl} --authkey KEY`);
      if (req.advertiseTags !== undefined && !sameSet(req.advertiseTags, reg.tags)) {
        throw new LocalApiHttpError(
          403,
          `changing the tags of a registered device needs a fresh authorization: run agent up --authkey KEY --advertise-tags ${req.advertiseTags.join(',') || '""'} ` +
            `with an auth key that allows them, or ask an admin to set them (POST /api/v2/device/${reg.deviceId}/tags)`,
        );
      }
    }
    // An exit node the netmap in hand shows is not a peer offering one: refuse before anything changes.
    if (req.exitNode && this.netmap && !req.authkey && sameServer) {
      const problem = exitNodeProblem(this.netmap, routes);
      if (problem) throw new LocalApiHttpError(400, problem);
    }
    const mustRegister = req.authkey !== undefined || !sameServer || reg?.hostname !== hostname;
    if (mustRegister) {
      const tags = req.authkey ? (req.advertiseTags ?? this.prefs.advertiseTags ?? undefined) : undefined;
      this.log.info({ coord: coordUrl, hostname, tags, withAuthKey: req.authkey !== undefined }, 'registering with coord');
      const client = this.coordClient(coordUrl);
      let resp;
      try {
        resp = await client.register({
          nodeKey: this.nodeKey.publicKey.raw.toString('base64'),
          hostname,
          ...(req.authkey ? { authKey: req.authkey } : {}),
          ...(tags ? { tags } : {}),
          os: platform(),
          version: this.version,
          endpoints: this.endpoints(),
          advertisedRoutes: advertisedRoutesOf(routes.advertiseRoutes, routes.advertiseExitNode),
          discoKey: this.discoPublic(),
        });
      } catch (err) {
        if (err instanceof ControlError) {
          this.log.warn({ status: err.status, message: err.message }, 'coord refused the registration');
          throw new LocalApiHttpError(err.status >= 500 ? 502 : err.status, err.message);
        }
        throw new LocalApiHttpError(503, `coord at ${coordUrl} is unreachable (${errorText(err)})`);
      }
      const next: Registration = {
        coordUrl, deviceId: resp.deviceId, name: resp.name, hostname, addresses: resp.addresses.map(bareAddr),
        user: resp.user, tags: resp.tags, network: resp.network, authorized: resp.authorized,
      };
      const moved = !reg || reg.deviceId !== next.deviceId || reg.coordUrl !== coordUrl || !sameSet(reg.addresses, next.addresses);
      // Re-registration ends the old session: a new stream picks up the new identity, tags and addresses.
      this.stopStream();
      if (moved) {
        await this.stopEngine();
        this.netmap = null;
        this.state.remove(FILES.netmap);
      }
      this.prefs.registration = next;
      this.log.info({ device: next.name, addresses: next.addresses, tags: next.tags, authorized: next.authorized }, 'registered');
    }
    this.prefs.coordUrl = coordUrl;
    this.prefs.hostname = hostname;
    if (req.acceptDns !== undefined) this.prefs.acceptDns = req.acceptDns;
    if (req.advertiseTags !== undefined) this.prefs.advertiseTags = req.advertiseTags;
    const advertisedBefore = this.advertisedRoutes().join(',');
    this.prefs.routes = routes;
    const routesChanged = this.advertisedRoutes().join(',') !== advertisedBefore;
    this.prefs.wantRunning = true;
    this.savePrefs();
    await this.startEngine();
    if (this.netmap && this.engine) {
      this.engine.apply(withExitRoutes(this.netmap, this.prefs.routes));
      this.dns.apply(this.netmap, this.prefs.acceptDns !== false, this.exitNodeResolvers(this.netmap));
      await this.applyRouting(this.netmap);
    }
    if (routesChanged && !mustRegister && this.prefs.registration) {
      // A running stream reported the old routes: tell coord now (approval follows in a netmap).
      try {
        await this.coordClient(this.prefs.registration.coordUrl).update({ advertisedRoutes: this.advertisedRoutes() });
        this.log.info({ advertisedRoutes: this.advertisedRoutes() }, 'advertised routes sent to coord');
      } catch (err) {
        this.log.warn({ err: errorText(err) }, 'could not send the advertised routes to coord; they go with the next report');
      }
    }
    this.startStream();
    // After a (re-)registration the netmap in hand is stale (tags, name, addresses): wait for coord's next one.
    if (mustRegister || !this.netmap || this.netmapFromDisk) await this.waitForNetmap(this.opts.upWaitMs ?? 10_000);
    return this.status();
  }

  /**
   * One round of `agent ping`: `{"peer": NAME | DNS NAME | IP}`. Answers which peer, and the first pong
   * (its path and latency) or null when none came within PING_TIMEOUT_MS.
   */
  private async ping(body: unknown): Promise<PingResponse> {
    const q = (body ?? {}) as { peer?: unknown };
    if (typeof q.peer !== 'string' || q.peer === '' || q.peer.length > 253) throw new LocalApiHttpError(400, 'ping: "peer" must be a peer\'s name, DNS name or tailnet address');
    if (!this.netmap) throw new LocalApiHttpError(409, 'this device has no netmap yet (run: agent up)');
    const engine = this.engine;
    if (!engine) throw new LocalApiHttpError(409, 'the data path is down (run: agent up)');
    const peer = findPeer(this.netmap, q.peer);
    if (!peer) throw new LocalApiHttpError(404, `no peer ${JSON.stringify(q.peer)} in this device's netmap`);
    const status = peerStatusOf(peer, undefined);
    let pong;
    try {
      pong = await engine.ping(peer.nodeKey, PING_TIMEOUT_MS);
    } catch (err) {
      throw new LocalApiHttpError(409, `ping ${status.name}: ${(err as Error).message}`);
    }
    return { peer: { name: status.name, dnsName: peer.name, address: status.addresses[0] ?? null }, pong };
  }

  private dnsStatus(): DnsStatus {
    return this.dns.status(this.prefs.acceptDns !== false);
  }

  private async dnsQuery(body: unknown): Promise<DnsQueryResult> {
    const b = (body ?? {}) as { name?: unknown; type?: unknown };
    if (typeof b.name !== 'string' || b.name === '' || b.name.length > 253) throw new LocalApiHttpError(400, 'dns query: "name" must be a domain name');
    const type = typeof b.type === 'string' ? b.type.toUpperCase() : 'A';
    if (!(QUERY_TYPES as readonly string[]).includes(type)) throw new LocalApiHttpError(400, `dns query: type must be one of ${QUERY_TYPES.join(', ')}`);
    try {
      return await this.dns.queryAsStub(b.name, type);
    } catch (err) {
      throw new LocalApiHttpError(409, `dns query: ${(err as Error).message}`);
    }
  }

  private waitForNetmap(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.netmapWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private async down(): Promise<AgentStatus> {
    this.prefs.wantRunning = false;
    this.savePrefs();
    this.stopStream();
    await this.stopEngine();
    this.log.info('down: interface removed, state kept');
    return this.status();
  }

  /**
   * Logs out: asks coord to delete this device (as `tailscale logout` does), then forgets it here —
   * registration, keys and netmap — whatever coord answered. The next `agent up` needs an auth key.
   */
  private async logout(): Promise<LogoutResponse> {
    const reg = this.prefs.registration;
    let coordRemoved: boolean | null = null;
    let coordLogoutError: string | undefined;
    if (reg) {
      // The stream's own `logout` line that follows is ours: mute its callbacks before asking.
      this.streamToken = null;
      try {
        await this.coordClient(reg.coordUrl).logout();
        coordRemoved = true;
      } catch (err) {
        coordRemoved = false;
        coordLogoutError = err instanceof ControlError ? `coord refused: ${err.message}` : `coord at ${reg.coordUrl} is unreachable (${errorText(err)})`;
        this.log.warn({ err: coordLogoutError }, 'logout: coord could not be told; an admin can remove the device');
      }
    }
    this.stopStream();
    await this.stopEngine();
    this.netmap = null;
    this.netmapFromDisk = false;
    for (const f of [FILES.netmap, FILES.node, FILES.machine, FILES.disco]) this.state.remove(f);
    this.machineKey = loadOrCreateMachineKey(join(this.state.dir, FILES.machine));
    this.nodeKey = this.loadOrCreateNodeKey();
    this.discoKey = this.loadOrCreateDiscoKey();
    this.prefs = { ...this.prefs, registration: null, wantRunning: false, advertiseTags: null };
    this.savePrefs();
    this.coordError = null;
    this.log.info({ coordRemoved }, 'logged out: registration and keys forgotten');
    return { ...this.status(), coordRemoved, ...(coordLogoutError ? { coordLogoutError } : {}) };
  }
}
