// Delivery of each tailnet's configuration log to its stream's destination.
//
// The backlog is the audit log itself: a stream keeps a cursor (the id of the last entry delivered or
// dropped) in the store, and every newer entry of its tailnet is waiting. Nothing is copied, an entry is
// in the backlog from the moment its change commits, and a restart of coord loses nothing: the cursor
// moves only after the destination answered 2xx, so at worst a batch is sent twice (at least once).
//
// Batches: up to `batchEntries` entries and `maxBodyBytes` of body. A batch leaves when it is full or
// `flushMs` after the first of its entries was seen. A failed request is retried after `backoffMs`
// (1 s, 2 s, 4 s, … up to `retryMaxMs`), forever; new entries wait for that retry, which then sends the
// oldest first. While the destination stays away the backlog is bounded (`backlogEntries`, `backlogBytes`
// as stored): the oldest entries beyond it are skipped, counted as dropped, and the last error says so.
import { promisify } from 'node:util';
import { gzip as gzipCb } from 'node:zlib';
import type { Logger } from 'pino';
import { auditEntryJson } from '../api/admin/audit-vocabulary.js';
import type { OutboundAnswer } from '../outbound-http.js';
import { backoffMs } from '../outbound-http.js';
import type { LogStream, Store } from '../store/index.js';
import { buildBatch, refusal } from './destinations.js';
import { RateWindow } from './rates.js';

export interface Clock {
  now(): number;
  /** Runs `fn` after `ms`; returns a function that cancels it. */
  setTimer(fn: () => void, ms: number): () => void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return () => clearTimeout(t);
  },
};

/** Sends one request (../outbound-http.ts in coord; tests may give their own). */
export type Send = (url: string, body: string | Buffer, headers: Record<string, string>, keepBody: number) => Promise<OutboundAnswer>;

export interface StreamLimits {
  /** Entries per request. */
  batchEntries: number;
  /** Bytes of body per request (uncompressed); the status's maxBodySize. */
  maxBodyBytes: number;
  /** How long the first waiting entry may wait for others to join its batch. */
  flushMs: number;
  /** The first retry's delay; each failure in a row doubles it, up to `retryMaxMs`. */
  retryBaseMs: number;
  retryMaxMs: number;
  /** The most entries, and bytes as stored, a stream may fall behind; older ones are dropped. */
  backlogEntries: number;
  backlogBytes: number;
  /** How often the store is looked at for entries no notification announced (other processes' writes). */
  pollMs: number;
}

export const DEFAULT_LIMITS: StreamLimits = {
  batchEntries: 1000,
  maxBodyBytes: 1024 * 1024,
  flushMs: 5_000,
  retryBaseMs: 1_000,
  retryMaxMs: 5 * 60_000,
  backlogEntries: 100_000,
  backlogBytes: 64 * 1024 * 1024,
  pollMs: 10_000,
};

/** The status of a stream as the API answers it (Tailscale's LogstreamEndpointPublishingStatus, and ours). */
export interface StreamStatus {
  lastActivity: string;
  lastError: string;
  maxBodySize: number;
  numBytesSent: number;
  numEntriesSent: number;
  numSpoofedEntries: number;
  numTotalRequests: number;
  numFailedRequests: number;
  rateBytesSent: number;
  rateEntriesSent: number;
  rateTotalRequests: number;
  rateFailedRequests: number;
  /** Ours: entries skipped because the backlog was over its bound, entries waiting and their bytes as stored. */
  numDroppedEntries: number;
  numPendingEntries: number;
  numPendingBytes: number;
}

/** Go's zero time, which Tailscale answers for "never" (clients decode it as a time). */
const NEVER = '0001-01-01T00:00:00Z';

interface State {
  /** Cancels the scheduled run, if any. */
  cancel: (() => void) | null;
  /** When the scheduled run is due (ms), if any. */
  due: number | null;
  running: boolean;
  /** A run came due while one was running: run again when it ends. */
  rerun: boolean;
  /** Failed requests in a row; while > 0 only the scheduled retry sends. */
  failures: number;
  /** When the oldest waiting entry was first seen (ms), or null when none waits. */
  waitingSince: number | null;
  rates: RateWindow;
}

const keyOf = (tailnetId: number, logType: string) => `${tailnetId}/${logType}`;

/** What this process sent to one kind of destination since it started (the metrics' counters). */
export interface DestinationCounts {
  requests: number;
  failedRequests: number;
  entriesSent: number;
  bytesSent: number;
  droppedEntries: number;
}

/** Entries waiting, over the streams of one kind of destination. */
export interface DestinationBacklog {
  streams: number;
  entries: number;
  bytes: number;
}

export class LogStreamer {
  private readonly states = new Map<string, State>();
  private readonly inFlight = new Set<Promise<void>>();
  private stopPolling: (() => void) | null = null;
  private closed = false;
  private notified = new Set<number>();
  private notifyCancel: (() => void) | null = null;
  /** By destination type; only the type, never a URL or token, so that it can label a metric. */
  readonly counts = new Map<string, DestinationCounts>();

  constructor(
    private readonly store: Store,
    private readonly send: Send,
    private readonly log: Logger,
    readonly limits: StreamLimits = DEFAULT_LIMITS,
    private readonly clock: Clock = systemClock,
    private readonly random: () => number = Math.random,
  ) {}

  /** Looks at every stream now (entries left from before a restart) and then every `pollMs`. */
  start(): void {
    const poll = () => {
      if (this.closed) return;
      this.checkAll();
      this.stopPolling = this.clock.setTimer(poll, this.limits.pollMs);
    };
    poll();
  }

  /** An audit entry was written for this tailnet (called inside its transaction: look later, not now). */
  notify(tailnetId: number): void {
    if (this.closed) return;
    this.notified.add(tailnetId);
    this.notifyCancel ??= this.clock.setTimer(() => {
      this.notifyCancel = null;
      const ids = [...this.notified];
      this.notified.clear();
      for (const id of ids) this.check(id, 'configuration');
    }, 0);
  }

  /** The stream was configured or changed: forget the failures and send what waits at once. */
  reconfigured(tailnetId: number, logType: string): void {
    const st = this.state(tailnetId, logType);
    st.failures = 0;
    this.schedule(tailnetId, logType, st, 0);
  }

  /** The stream was removed. */
  removed(tailnetId: number, logType: string): void {
    const st = this.states.get(keyOf(tailnetId, logType));
    st?.cancel?.();
    this.states.delete(keyOf(tailnetId, logType));
  }

  status(s: LogStream): StreamStatus {
    const r = this.state(s.tailnetId, s.logType).rates.perSecond(this.clock.now());
    const backlog = this.store.logStreamBacklog(s);
    return {
      lastActivity: s.lastActivity ?? NEVER,
      lastError: s.lastError,
      maxBodySize: this.limits.maxBodyBytes,
      numBytesSent: s.bytesSent,
      numEntriesSent: s.entriesSent,
      numSpoofedEntries: 0,
      numTotalRequests: s.requests,
      numFailedRequests: s.failedRequests,
      rateBytesSent: r.bytes,
      rateEntriesSent: r.entries,
      rateTotalRequests: r.requests,
      rateFailedRequests: r.failed,
      numDroppedEntries: s.droppedEntries,
      numPendingEntries: backlog.entries,
      numPendingBytes: backlog.bytes,
    };
  }

  /** Streams and what they have waiting, by destination type, read from the store now. */
  backlogByDestination(): Map<string, DestinationBacklog> {
    const out = new Map<string, DestinationBacklog>();
    for (const s of this.store.listLogStreams()) {
      const b = this.store.logStreamBacklog(s);
      const sum = out.get(s.destinationType) ?? { streams: 0, entries: 0, bytes: 0 };
      sum.streams++;
      sum.entries += b.entries;
      sum.bytes += b.bytes;
      out.set(s.destinationType, sum);
    }
    return out;
  }

  private count(destinationType: string): DestinationCounts {
    let c = this.counts.get(destinationType);
    if (!c) {
      c = { requests: 0, failedRequests: 0, entriesSent: 0, bytesSent: 0, droppedEntries: 0 };
      this.counts.set(destinationType, c);
    }
    return c;
  }

  /** Resolves when no request is in flight (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.stopPolling?.();
    this.notifyCancel?.();
    for (const st of this.states.values()) st.cancel?.();
    await Promise.race([this.idle(), new Promise((r) => setTimeout(r, 2000).unref())]);
  }

  private state(tailnetId: number, logType: string): State {
    const key = keyOf(tailnetId, logType);
    let st = this.states.get(key);
    if (!st) {
      st = { cancel: null, due: null, running: false, rerun: false, failures: 0, waitingSince: null, rates: new RateWindow() };
      this.states.set(key, st);
    }
    return st;
  }

  private checkAll(): void {
    for (const s of this.store.listLogStreams()) this.check(s.tailnetId, s.logType);
  }

  /** Decides when the stream sends next: now when a batch is full, else when the oldest entry has waited `flushMs`. */
  private check(tailnetId: number, logType: string): void {
    if (this.closed) return;
    const s = this.store.getLogStream(tailnetId, logType);
    if (!s) return this.removed(tailnetId, logType);
    const st = this.state(tailnetId, logType);
    if (st.running || st.failures > 0) return; // the run in progress or the retry picks the entries up
    const backlog = this.store.logStreamBacklog(s);
    if (backlog.entries === 0) {
      st.waitingSince = null;
      return;
    }
    const now = this.clock.now();
    st.waitingSince ??= now;
    const full = backlog.entries >= this.limits.batchEntries || backlog.bytes >= this.limits.maxBodyBytes || backlog.entries > this.limits.backlogEntries || backlog.bytes > this.limits.backlogBytes;
    this.schedule(tailnetId, logType, st, full ? 0 : Math.max(0, st.waitingSince + this.limits.flushMs - now));
  }

  /** Runs the stream after `ms`, unless a run is already due sooner. */
  private schedule(tailnetId: number, logType: string, st: State, ms: number): void {
    const due = this.clock.now() + ms;
    if (st.due !== null && st.due <= due) return;
    st.cancel?.();
    st.due = due;
    st.cancel = this.clock.setTimer(() => {
      st.cancel = null;
      st.due = null;
      const p = this.run(tailnetId, logType, st);
      this.inFlight.add(p);
      void p.finally(() => this.inFlight.delete(p));
    }, ms);
  }

  /**
   * Sends one batch; then, after a failure, waits its backoff; after a batch that could not take every
   * entry that was waiting, sends the next at once (those entries waited already); else looks at what waits.
   */
  private async run(tailnetId: number, logType: string, st: State): Promise<void> {
    if (this.closed) return;
    if (st.running) {
      st.rerun = true;
      return;
    }
    st.running = true;
    st.rerun = false;
    let more = false;
    try {
      more = await this.sendBatch(tailnetId, logType, st);
    } catch (err) {
      this.log.error({ err, tailnetId, logType }, 'log stream: unexpected failure');
      st.failures++;
    } finally {
      st.running = false;
    }
    if (this.closed) return;
    if (st.rerun) {
      st.rerun = false;
      this.schedule(tailnetId, logType, st, 0);
    } else if (st.failures > 0) {
      const delay = backoffMs(st.failures, this.limits.retryBaseMs, this.limits.retryMaxMs, this.random());
      this.schedule(tailnetId, logType, st, delay);
    } else if (more) this.schedule(tailnetId, logType, st, 0);
    else this.check(tailnetId, logType);
  }

  /** True when the batch was delivered and entries that were waiting with it did not fit. */
  private async sendBatch(tailnetId: number, logType: string, st: State): Promise<boolean> {
    let s = this.store.getLogStream(tailnetId, logType);
    if (!s) return false;
    const { backlogEntries, backlogBytes } = this.limits;
    const dropNote = (n: number) => `dropped the ${n} oldest entries: the backlog was over its bound (${backlogEntries} entries, ${backlogBytes} bytes) while the destination did not take them`;
    const dropped = this.store.trimLogStreamBacklog(s, backlogEntries, backlogBytes, (n) => `${new Date(this.clock.now()).toISOString()}: ${dropNote(n)}`);
    if (dropped > 0) {
      this.count(s.destinationType).droppedEntries += dropped;
      this.log.warn({ tailnetId, logType, dropped }, 'log stream: backlog over its bound; oldest entries dropped');
      s = this.store.getLogStream(tailnetId, logType)!;
    }
    const entries = this.store.auditAfter(tailnetId, s.cursor, this.limits.batchEntries);
    if (entries.length === 0) {
      st.failures = 0;
      st.waitingSince = null;
      return false;
    }
    const batch = buildBatch(s, entries.map((e) => ({ eventTime: e.eventTime, entry: auditEntryJson(e) })), this.limits.maxBodyBytes);
    const bytes = Buffer.byteLength(batch.body);
    const at = this.clock.now();
    let error: string | null;
    try {
      const body = s.compression === 'gzip' ? await gzip(batch.body) : batch.body;
      const headers = s.compression === 'gzip' ? { ...batch.headers, 'content-encoding': 'gzip' } : batch.headers;
      const res = await this.send(s.url, body, headers, s.destinationType === 'elastic' ? 4096 : 512);
      error = refusal(s, res.status, res.body);
    } catch (err) {
      error = describe(err);
    }
    const iso = new Date(at).toISOString();
    const counts = this.count(s.destinationType);
    counts.requests++;
    if (error !== null) {
      counts.failedRequests++;
      st.failures++;
      st.rates.add(this.clock.now(), { requests: 1, failed: 1 });
      // A drop of this run stays in the last error next to the failure that followed it.
      this.store.logStreamFailed(s, `${iso}: ${error}${dropped > 0 ? `; ${dropNote(dropped)}` : ''}`, iso);
      // The URL may carry a token in its query: log the host only. Never the token.
      this.log.info({ tailnetId, logType, destination: s.destinationType, host: hostOf(s.url), failures: st.failures, err: error }, 'log stream: delivery failed; will retry');
      return false;
    }
    st.failures = 0;
    counts.entriesSent += batch.count;
    counts.bytesSent += bytes;
    st.rates.add(this.clock.now(), { requests: 1, entries: batch.count, bytes });
    this.store.logStreamDelivered(s, entries[batch.count - 1]!.id, batch.count, bytes, iso);
    st.waitingSince = null;
    return batch.count < entries.length || entries.length === this.limits.batchEntries;
  }
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return '';
  }
}

/** A network error in words (undici wraps the socket's error as its cause). */
function describe(err: unknown): string {
  const e = err as Error & { cause?: Error & { code?: string } };
  const cause = e.cause?.message ?? '';
  return cause && !e.message.includes(cause) ? `${e.message}: ${cause}` : e.message;
}

const gzip = promisify(gzipCb) as (text: string) => Promise<Buffer>;
