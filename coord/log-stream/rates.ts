// Per-second rates of a stream over the last minute (the status's rate* fields): counts kept in
// one-second buckets, the old ones forgotten.
const WINDOW_S = 60;

export interface Counts {
  requests: number;
  failed: number;
  entries: number;
  bytes: number;
}

export class RateWindow {
  /** second (unix) → what happened in it; at most WINDOW_S + 1 of them. */
  private readonly buckets = new Map<number, Counts>();

  add(nowMs: number, c: Partial<Counts>): void {
    const sec = Math.floor(nowMs / 1000);
    this.forget(sec);
    const b = this.buckets.get(sec) ?? { requests: 0, failed: 0, entries: 0, bytes: 0 };
    b.requests += c.requests ?? 0;
    b.failed += c.failed ?? 0;
    b.entries += c.entries ?? 0;
    b.bytes += c.bytes ?? 0;
    this.buckets.set(sec, b);
  }

  /** The average per second over the last minute. */
  perSecond(nowMs: number): Counts {
    const sec = Math.floor(nowMs / 1000);
    this.forget(sec);
    const sum = { requests: 0, failed: 0, entries: 0, bytes: 0 };
    for (const b of this.buckets.values()) {
      sum.requests += b.requests;
      sum.failed += b.failed;
      sum.entries += b.entries;
      sum.bytes += b.bytes;
    }
    return { requests: sum.requests / WINDOW_S, failed: sum.failed / WINDOW_S, entries: sum.entries / WINDOW_S, bytes: sum.bytes / WINDOW_S };
  }

  private forget(sec: number): void {
    for (const k of this.buckets.keys()) if (k <= sec - WINDOW_S) this.buckets.delete(k);
  }
}
