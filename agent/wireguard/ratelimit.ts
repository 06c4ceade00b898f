// Per-source token buckets for handshake messages under load (20 per second, bursts of 5).
import type { Clock } from './clock.js';

const PACKETS_PER_SECOND = 20;
const BURST = 5;
const COST_MS = 1000 / PACKETS_PER_SECOND;
const MAX_TOKENS_MS = COST_MS * BURST;
const GC_INTERVAL_MS = 1000;

export class HandshakeRateLimiter {
  private readonly buckets = new Map<string, { tokens: number; last: number }>();
  private lastGc: number;

  constructor(private readonly clock: Clock) {
    this.lastGc = clock.now();
  }

  /** `source` is the sender's IP address (the port is ignored: one budget per host). */
  allow(source: string): boolean {
    const now = this.clock.now();
    if (now - this.lastGc > GC_INTERVAL_MS) this.gc(now);
    let b = this.buckets.get(source);
    if (!b) {
      b = { tokens: MAX_TOKENS_MS - COST_MS, last: now };
      this.buckets.set(source, b);
      return true;
    }
    b.tokens = Math.min(MAX_TOKENS_MS, b.tokens + (now - b.last));
    b.last = now;
    if (b.tokens < COST_MS) return false;
    b.tokens -= COST_MS;
    return true;
  }

  private gc(now: number): void {
    this.lastGc = now;
    for (const [k, b] of this.buckets) if (now - b.last > GC_INTERVAL_MS) this.buckets.delete(k);
  }
}
