// The device's connections to the relays of the relay map. The home relay's (where peers reach this
// device) is always kept open; another relay is connected on demand, when a packet must go to a peer
// whose home it is, and closed again after `idleMs` without traffic either way.
//
// A link answers the WireGuard device's RelayLink questions per packet without allocating: reading
// `connected` on a link that is closed starts its connection (the packet waits, staged on its peer, and
// goes when the link reports ready).
import { request as httpRequest } from 'node:http';
import { request as httpsRequest, type RequestOptions as HttpsRequestOptions } from 'node:https';
import { performance } from 'node:perf_hooks';
import type { ClientOptions } from 'ws';
import type { RelayInfo } from '../../wire/protocol.js';
import type { X25519Key } from '../../wire/x25519.js';
import { RelayClient, type RelayClientState } from './relay-client.js';

/** The relays' WebSocket options; `lookup` finds a relay's address (ws hands it to the TCP connect). */
export type RelayWsOptions = ClientOptions & Pick<HttpsRequestOptions, 'lookup'>;

/** Shared by a RelayLinks' connections: while `quiet`, reading `connected` opens nothing. */
interface WakeState {
  quiet: boolean;
}

export class RelayConnection {
  /** Traffic either way since the last idle check. */
  used = false;
  /** When traffic was last seen by an idle check (ms). */
  lastUsed: number;
  private started = false;

  constructor(
    readonly info: RelayInfo,
    readonly client: RelayClient,
    now: number,
    private readonly wake: WakeState = { quiet: false },
  ) {
    this.lastUsed = now;
  }

  get name(): string {
    return this.info.name;
  }

  get connected(): boolean {
    if (this.client.connected) return true;
    if (!this.started && !this.wake.quiet) this.open();
    return false;
  }

  get isOpen(): boolean {
    return this.started;
  }

  send(dst: Uint8Array, packet: Uint8Array): boolean {
    this.used = true;
    return this.client.send(dst, packet);
  }

  sendSlots(dst: Uint8Array, buf: Buffer, offsets: Uint32Array, lengths: Uint32Array, pick: Uint32Array, count: number): boolean {
    this.used = true;
    return this.client.sendSlots(dst, buf, offsets, lengths, pick, count);
  }

  open(): void {
    if (this.started) return;
    this.started = true;
    this.used = true;
    this.client.start();
  }

  shut(): void {
    if (!this.started) return;
    this.started = false;
    this.client.close();
  }
}

export interface RelayLinksOptions {
  key: X25519Key;
  /** Packets from a peer through any relay, as one batch (views valid only during the call; RelayClient's onPackets). */
  onPackets(src: Buffer, buf: Buffer, offsets: Uint32Array, lengths: Uint32Array, count: number): void;
  /** A relay connection became ready: packets that waited for it may go now. */
  onReady(name: string): void;
  /** Relay `name` could not deliver a packet to `dst` (RelayClient's onUndeliverable; `dst` valid only during the call). */
  onUndeliverable?(name: string, dst: Buffer, reason: number): void;
  log: (level: 'info' | 'warn' | 'debug', msg: string, fields?: Record<string, unknown>) => void;
  wsOptions?: RelayWsOptions;
  /** A non-home relay without traffic this long is closed (default 60 s). */
  idleMs?: number;
  now?: () => number;
}

export class RelayLinks {
  private readonly links = new Map<string, RelayConnection>();
  private homeName: string | null = null;
  private readonly now: () => number;
  private readonly wake: WakeState = { quiet: false };

  constructor(private readonly o: RelayLinksOptions) {
    this.now = o.now ?? Date.now;
  }

  /** The relays of the map, in map order. */
  get relays(): RelayInfo[] {
    return [...this.links.values()].map((l) => l.info);
  }

  get home(): RelayConnection | null {
    return this.homeName === null ? null : (this.links.get(this.homeName) ?? null);
  }

  get(name: string): RelayConnection | undefined {
    return this.links.get(name);
  }

  /** Open connections (for status and tests). */
  openNames(): string[] {
    return [...this.links.values()].filter((l) => l.isOpen).map((l) => l.name);
  }

  /**
   * Takes a new relay map: relays that left it (or whose URL or STUN port changed) are closed and
   * replaced. When the home relay left the map, there is no home until setHome.
   */
  setMap(relays: readonly RelayInfo[]): void {
    const wanted = new Map(relays.map((r) => [r.name, r]));
    for (const [name, l] of this.links) {
      const w = wanted.get(name);
      if (!w || w.url !== l.info.url || (w.stunPort ?? 0) !== (l.info.stunPort ?? 0)) {
        l.shut();
        this.links.delete(name);
      }
    }
    const ordered = new Map<string, RelayConnection>();
    for (const r of relays) ordered.set(r.name, this.links.get(r.name) ?? this.connection(r));
    this.links.clear();
    for (const [k, v] of ordered) this.links.set(k, v);
    if (this.homeName !== null && !this.links.has(this.homeName)) this.homeName = null;
    this.home?.open(); // a replaced home (new URL) reconnects at once
  }

  /** Makes `name` the home relay (connected and kept open); the old home becomes an on-demand link. */
  setHome(name: string | null): void {
    const l = name === null ? undefined : this.links.get(name);
    this.homeName = l ? name : null;
    l?.open();
  }

  /** The link for a peer whose home is `name`; null when it is not in the map (the device then uses the home). */
  linkFor(name: string | undefined): RelayConnection | null {
    return name ? (this.links.get(name) ?? null) : null;
  }

  /** Closes non-home links that carried nothing for idleMs. Call every few seconds. */
  sweep(): void {
    const now = this.now();
    const idleMs = this.o.idleMs ?? 60_000;
    for (const l of this.links.values()) {
      if (l.used) {
        l.used = false;
        l.lastUsed = now;
      } else if (l.name !== this.homeName && l.isOpen && now - l.lastUsed >= idleMs) {
        this.o.log('debug', `relay "${l.name}" idle; closed`);
        l.shut();
      }
    }
  }

  /**
   * Round trip to a relay in ms: a relay ping over an open connection, else one HTTP request on a fresh
   * connection, timed from the connection being ready (TCP, and TLS for wss) to the answer's headers.
   */
  async latency(name: string, timeoutMs: number): Promise<number | null> {
    const l = this.links.get(name);
    if (!l) return null;
    if (l.client.connected) {
      const ms = await l.client.ping(timeoutMs);
      if (ms !== null) return ms;
    }
    return httpRoundTrip(l.info.url, timeoutMs, this.o.wsOptions);
  }

  close(): void {
    for (const l of this.links.values()) l.shut();
    this.links.clear();
    this.homeName = null;
  }

  private connection(info: RelayInfo): RelayConnection {
    let conn: RelayConnection | null = null;
    const client = new RelayClient({
      url: info.url,
      key: this.o.key,
      onPackets: (src, buf, offsets, lengths, count) => {
        if (conn) conn.used = true;
        this.o.onPackets(src, buf, offsets, lengths, count);
      },
      onUndeliverable: (dst, reason) => this.o.onUndeliverable?.(info.name, dst, reason),
      onState: (state: RelayClientState, detail?: string) => {
        if (state === 'connected') {
          this.o.log('info', `relay "${info.name}" connected`, { url: info.url, home: info.name === this.homeName });
          // The device now looks at every peer; only packets should open other relays, not that look.
          this.quietly(() => this.o.onReady(info.name));
        } else if (state === 'backoff') {
          this.o.log('debug', `relay "${info.name}" disconnected`, { err: detail });
        }
      },
      wsOptions: this.o.wsOptions,
    });
    conn = new RelayConnection(info, client, this.now(), this.wake);
    return conn;
  }

  /** Runs fn with reading `connected` opening nothing (status, and the device's sweep on ready). */
  quietly<T>(fn: () => T): T {
    const was = this.wake.quiet;
    this.wake.quiet = true;
    try {
      return fn();
    } finally {
      this.wake.quiet = was;
    }
  }
}

/** One HTTP round trip to the relay's host (the relay's URL with http(s) for ws(s)); null on failure or timeout. */
export function httpRoundTrip(relayUrl: string, timeoutMs: number, tls?: RelayWsOptions): Promise<number | null> {
  let url: URL;
  try {
    url = new URL(relayUrl);
  } catch {
    return Promise.resolve(null);
  }
  const secure = url.protocol === 'wss:';
  url.protocol = secure ? 'https:' : 'http:';
  const opts: HttpsRequestOptions = { method: 'GET', agent: false, headers: { connection: 'close' }, timeout: timeoutMs };
  if (secure && tls?.ca) opts.ca = tls.ca as HttpsRequestOptions['ca'];
  if (secure && tls?.rejectUnauthorized === false) opts.rejectUnauthorized = false;
  if (tls?.lookup) opts.lookup = tls.lookup;
  return new Promise((resolve) => {
    let t0 = 0;
    const req = (secure ? httpsRequest : httpRequest)(url, opts, (res) => {
      const ms = performance.now() - t0;
      res.resume();
      resolve(t0 > 0 ? ms : null);
    });
    const timer = setTimeout(() => req.destroy(new Error('timeout')), timeoutMs);
    req.on('socket', (s) => s.once(secure ? 'secureConnect' : 'connect', () => (t0 = performance.now())));
    req.on('error', () => resolve(null));
    req.on('close', () => {
      clearTimeout(timer);
      resolve(null);
    });
    req.end();
  });
}
