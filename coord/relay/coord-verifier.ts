// The authorizer of a standalone relay (`coord relay`): it asks coord (POST /relay-auth/v1/verify with
// the relay's secret) whether a node key belongs to a registered, authorized, unexpired device and who
// its peers are, and keeps the answers briefly. Every `refreshMs` it asks again, in one request, about
// every device still connected (the relay server's revalidate() asks mayConnect for each of them, which
// marks them as wanted) and disconnects those coord now refuses: a removed device, or one whose user
// was suspended, is gone within a few seconds, and a peer relation that ended stops forwarding then too.
//
// When coord cannot be reached, the last answers stay in force for up to `maxStaleMs` (devices keep
// working through a short coord outage, as they keep their last netmap); after that everyone is refused.
import { Agent, request, type Dispatcher } from 'undici';
import type { Logger } from 'pino';
import { VERIFY_MAX_KEYS, VERIFY_PATH, type VerifyResponse } from '../../wire/relay.js';
import type { RelayAuthorizer } from './server.js';

export interface CoordVerifierOptions {
  /** coord's URL (https://…), as devices use it. */
  coordUrl: string;
  /** The secret `coord relays add NAME` printed. */
  secret: string;
  /** How often connected devices are checked again (default 2 s). */
  refreshMs?: number;
  /** How long answers stay in force while coord cannot be reached (default 10 minutes). */
  maxStaleMs?: number;
  /** A request to coord that takes longer fails (default 5 s). */
  timeoutMs?: number;
  /** PEM of a private CA that signed coord's certificate. */
  ca?: string | Buffer;
  log?: Logger;
  now?: () => number;
}

interface Entry {
  authorized: boolean;
  peers: Set<string>;
  /** When coord last answered for this key. */
  fetched: number;
  /** When the relay last asked about it (a connect or a revalidation). */
  asked: number;
}

export class CoordVerifier implements RelayAuthorizer {
  /** The relay's name as coord knows it (from coord's first answer). */
  relayName = '';
  /** When coord last answered (0: never). */
  lastAnswer = 0;
  lastError = '';
  private readonly cache = new Map<string, Entry>();
  private readonly inflight = new Map<string, Promise<void>>();
  private readonly dispatcher: Dispatcher | undefined;
  private readonly now: () => number;
  private readonly refreshMs: number;
  private readonly maxStaleMs: number;
  private timer: NodeJS.Timeout | null = null;
  private refreshing = false;
  /** When a request to coord last failed (0: the last one worked): no new request per key until refreshMs later. */
  private lastFailure = 0;

  constructor(private readonly o: CoordVerifierOptions) {
    this.dispatcher = o.ca ? new Agent({ connect: { ca: o.ca } }) : undefined;
    this.now = o.now ?? Date.now;
    this.refreshMs = o.refreshMs ?? 2000;
    this.maxStaleMs = o.maxStaleMs ?? 10 * 60_000;
  }

  /** Asks coord once (rejects with coord's reason when the secret or URL is wrong): for startup checks. */
  async check(): Promise<void> {
    await this.ask([]);
  }

  /** Checks connected devices every refreshMs, calling `revalidate` (the relay server's) after each answer. */
  start(revalidate: () => Promise<void>): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      if (this.refreshing) return;
      this.refreshing = true;
      this.refresh()
        .then(() => revalidate())
        .catch((err) => this.o.log?.error({ err }, 'relay: revalidation failed'))
        .finally(() => (this.refreshing = false));
    }, this.refreshMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    void this.dispatcher?.close();
  }

  async mayConnect(key: string): Promise<boolean> {
    let e = this.cache.get(key);
    if (!e || (this.now() - e.fetched > this.refreshMs && this.now() - this.lastFailure > this.refreshMs)) {
      try {
        await this.fetchOne(key);
      } catch (err) {
        this.o.log?.warn({ err: (err as Error).message }, 'relay: coord did not answer; using the last answer if it is recent');
      }
      e = this.cache.get(key);
    }
    if (!e) return false;
    e.asked = this.now();
    return e.authorized && this.now() - e.fetched <= this.maxStaleMs;
  }

  maySend(from: string, to: string): boolean {
    const a = this.cache.get(from);
    if (a !== undefined && a.authorized && a.peers.has(to)) return true;
    const b = this.cache.get(to);
    return b !== undefined && b.authorized && b.peers.has(from);
  }

  /** Asks coord about every key the relay asked about lately; forgets the others (disconnected devices). */
  async refresh(): Promise<void> {
    const now = this.now();
    if (this.cache.size === 0) return;
    const keys: string[] = [];
    for (const [k, e] of this.cache) {
      if (now - e.asked > 3 * this.refreshMs + 5000) this.cache.delete(k);
      else keys.push(k);
    }
    for (let i = 0; i < keys.length; i += VERIFY_MAX_KEYS) {
      try {
        await this.ask(keys.slice(i, i + VERIFY_MAX_KEYS));
      } catch (err) {
        this.o.log?.warn({ err: (err as Error).message }, 'relay: coord did not answer the revalidation; keeping the last answers for now');
      }
    }
  }

  private fetchOne(key: string): Promise<void> {
    let p = this.inflight.get(key);
    if (!p) {
      p = this.ask([key]).finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    return p;
  }

  private async ask(keys: string[]): Promise<void> {
    const url = new URL(VERIFY_PATH, this.o.coordUrl.replace(/\/*$/, '/'));
    let res;
    try {
      res = await request(url, {
        method: 'POST',
        headers: { authorization: `Bearer ${this.o.secret}`, 'content-type': 'application/json' },
        body: JSON.stringify({ keys }),
        headersTimeout: this.o.timeoutMs ?? 5000,
        bodyTimeout: this.o.timeoutMs ?? 5000,
        ...(this.dispatcher ? { dispatcher: this.dispatcher } : {}),
      });
    } catch (err) {
      this.lastError = `coord at ${this.o.coordUrl}: ${(err as Error).message}`;
      this.lastFailure = this.now();
      throw new Error(this.lastError);
    }
    const text = await res.body.text();
    if (res.statusCode !== 200) {
      let message = text;
      try {
        message = (JSON.parse(text) as { message?: string }).message ?? text;
      } catch {
        // not JSON: the text itself
      }
      this.lastError = `coord answered ${res.statusCode}: ${message}`;
      this.lastFailure = this.now();
      // The secret no longer works (the relay was removed, or its secret rotated): nobody may stay.
      if (res.statusCode === 401) this.cache.clear();
      throw new Error(this.lastError);
    }
    const answer = JSON.parse(text) as VerifyResponse;
    const now = this.now();
    this.relayName = answer.relay;
    this.lastAnswer = now;
    this.lastError = '';
    this.lastFailure = 0;
    for (const k of keys) {
      const d = answer.devices?.[k];
      const old = this.cache.get(k);
      this.cache.set(k, { authorized: d?.authorized === true, peers: new Set(d?.authorized ? d.peers : []), fetched: now, asked: old?.asked ?? now });
    }
  }
}
