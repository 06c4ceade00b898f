// When to try coord again after the netmap stream fails. Two goals pull apart: a device whose coord has
// just come back should be connected again within a few seconds, and a fleet should neither hammer a
// coord that stays down nor come back all in the same instant. So the wait grows exponentially with
// the failures, but during the first minutes of an outage it never exceeds a short ceiling (a coord
// restart or a brief network loss costs every device at most that ceiling); only an outage longer than
// that backs off further, up to the long ceiling. Each wait is jittered over its upper half, which
// spreads a fleet's returns over the ceiling while still growing with the failures.

export interface ReconnectOptions {
  /** The first wait (before jitter). Default 500 ms. */
  baseMs?: number;
  /** Longest wait while the outage is younger than shortOutageMs. Default 4 s. */
  shortMaxMs?: number;
  /** An outage this old stops being short. Default 5 minutes. */
  shortOutageMs?: number;
  /** Longest wait once the outage is no longer short. Default 30 s. */
  maxMs?: number;
}

export class ReconnectSchedule {
  private readonly baseMs: number;
  private readonly shortMaxMs: number;
  private readonly shortOutageMs: number;
  private readonly maxMs: number;
  private failures = 0;
  private outageStart = -1;

  constructor(
    o: ReconnectOptions = {},
    private readonly now: () => number = Date.now,
    private readonly random: () => number = Math.random,
  ) {
    this.baseMs = o.baseMs ?? 500;
    this.maxMs = o.maxMs ?? 30_000;
    this.shortMaxMs = Math.min(o.shortMaxMs ?? 4_000, this.maxMs);
    this.shortOutageMs = o.shortOutageMs ?? 300_000;
  }

  /** The stream worked (it delivered a netmap): the next failure starts a new outage. */
  succeeded(): void {
    this.failures = 0;
    this.outageStart = -1;
  }

  /** An attempt failed: how long to wait before the next one. */
  failed(): number {
    const now = this.now();
    if (this.outageStart < 0) this.outageStart = now;
    this.failures++;
    const ceiling = now - this.outageStart < this.shortOutageMs ? this.shortMaxMs : this.maxMs;
    const wait = Math.min(ceiling, this.baseMs * 2 ** (this.failures - 1));
    return wait / 2 + this.random() * (wait / 2);
  }
}
