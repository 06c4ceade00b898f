// Failed attempts per key (an account, a client address): a few free tries, then a pause that doubles
// with every further failure up to a ceiling. An attempt is reserved before its (slow) check runs, so
// parallel attempts count against the same allowance. Entries are forgotten some time after their last
// failure, and the table never holds more than `maxEntries` (the oldest go first), so memory is bounded.
// Each server keeps its own limiters (they live in its domain objects).
import { TooManyRequests } from '../errors.js';

export interface LimiterOptions {
  /** Failures allowed before the first pause. */
  freeFailures: number;
  /** The first pause; each further failure doubles it. */
  pauseMs: number;
  maxPauseMs: number;
  /** A key with no failure and no pause for this long starts afresh. */
  forgetMs: number;
  maxEntries: number;
  /** What the refusal says is being limited ("sign-ins for this account"). */
  what: string;
}

interface Entry {
  failures: number;
  /** Attempts reserved and not yet decided. */
  inFlight: number;
  /** No attempt before this time. */
  until: number;
  lastFailure: number;
}

export class Limiter {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly o: LimiterOptions, private readonly now: () => number = Date.now) {}

  get size(): number {
    return this.entries.size;
  }

  /** Throws TooManyRequests if this key may not try now. */
  check(key: string): void {
    const e = this.live(key);
    if (!e) return;
    const now = this.now();
    if (e.until > now) throw new TooManyRequests(`too many failed ${this.o.what}; try again in ${Math.ceil((e.until - now) / 1000)} s`);
    // Below the threshold, the free tries left; past it (a pause ended), one try at a time.
    const allowed = e.failures < this.o.freeFailures ? this.o.freeFailures - e.failures : 1;
    if (e.inFlight >= allowed) throw new TooManyRequests(`too many ${this.o.what} at once; try again in a few seconds`);
  }

  /** Counts an attempt as under way (call right after `check`, before any await). */
  reserve(key: string): void {
    const e = this.live(key) ?? { failures: 0, inFlight: 0, until: 0, lastFailure: 0 };
    e.inFlight++;
    this.put(key, e);
  }

  /** The reserved attempt failed: the pause starts or doubles. */
  fail(key: string): void {
    const now = this.now();
    const e = this.live(key) ?? { failures: 0, inFlight: 1, until: 0, lastFailure: 0 };
    e.inFlight = Math.max(0, e.inFlight - 1);
    e.failures++;
    e.lastFailure = now;
    const over = e.failures - this.o.freeFailures;
    if (over >= 0) e.until = now + Math.min(this.o.pauseMs * 2 ** Math.min(over, 30), this.o.maxPauseMs);
    this.put(key, e);
  }

  /** The reserved attempt succeeded: `reset` forgets the key's failures (an account that signed in). */
  succeed(key: string, reset: boolean): void {
    const e = this.entries.get(key);
    if (!e) return;
    if (reset) this.entries.delete(key);
    else e.inFlight = Math.max(0, e.inFlight - 1);
  }

  /** The entry of a key, unless it is old enough to forget. */
  private live(key: string): Entry | undefined {
    const e = this.entries.get(key);
    if (e && this.stale(e, this.now())) {
      this.entries.delete(key);
      return undefined;
    }
    return e;
  }

  private stale(e: Entry, now: number): boolean {
    return e.inFlight === 0 && now - Math.max(e.until, e.lastFailure) >= this.o.forgetMs;
  }

  /** Stores an entry as the newest; past the bound, forgets stale entries and then the oldest (to 90%, so the sweep is rare). */
  private put(key: string, e: Entry): void {
    this.entries.delete(key);
    this.entries.set(key, e);
    if (this.entries.size <= this.o.maxEntries) return;
    const now = this.now();
    for (const [k, old] of this.entries) if (this.stale(old, now)) this.entries.delete(k);
    for (const k of this.entries.keys()) {
      if (this.entries.size <= this.o.maxEntries * 0.9) break;
      this.entries.delete(k);
    }
  }
}

/** Account sign-ins: five failures, then a minute's pause, doubling up to an hour. */
export const ACCOUNT_LIMITS: LimiterOptions = {
  freeFailures: 5, pauseMs: 60_000, maxPauseMs: 3_600_000, forgetMs: 3_600_000, maxEntries: 100_000, what: 'sign-ins for this account',
};

/** Per client address: generous (many people may share one address), the same doubling. */
export const ADDRESS_LIMITS: LimiterOptions = {
  freeFailures: 50, pauseMs: 60_000, maxPauseMs: 3_600_000, forgetMs: 3_600_000, maxEntries: 100_000, what: 'attempts from this address',
};

/** Checks and reserves an attempt under every key at once, or under none. */
export function reserveAll(pairs: [Limiter, string][]): void {
  for (const [l, k] of pairs) l.check(k);
  for (const [l, k] of pairs) l.reserve(k);
}
