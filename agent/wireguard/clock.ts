// Time for the protocol, injectable so tests can drive timers without waiting.

export interface Clock {
  /** Monotonic milliseconds. */
  now(): number;
  /** Wall-clock milliseconds since 1970 (handshake timestamps, last-handshake time). */
  wallNow(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  /** Uniform in [0, 1), for timer jitter. */
  random(): number;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  wallNow: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
  random: Math.random,
};

/**
 * A timer whose deadline can be moved on every packet for the price of a number store: the
 * underlying timeout is re-armed only when it would fire too late, and on firing early it re-arms
 * for the real deadline.
 */
export class Timer {
  private deadline = -1;
  private handle: unknown = null;
  private armedFor = Infinity;

  constructor(
    private readonly clock: Clock,
    private readonly fn: () => void,
  ) {}

  pending(): boolean {
    return this.deadline >= 0;
  }

  /** (Re)sets the timer to fire `ms` from now. */
  mod(ms: number): void {
    const d = this.clock.now() + ms;
    this.deadline = d;
    if (this.handle !== null && this.armedFor <= d) return;
    this.arm(d);
  }

  del(): void {
    this.deadline = -1;
  }

  /** Stops the timer and releases its timeout. */
  stop(): void {
    this.deadline = -1;
    if (this.handle !== null) this.clock.clearTimeout(this.handle);
    this.handle = null;
    this.armedFor = Infinity;
  }

  private arm(at: number): void {
    if (this.handle !== null) this.clock.clearTimeout(this.handle);
    this.armedFor = at;
    this.handle = this.clock.setTimeout(() => this.fire(), Math.max(0, at - this.clock.now()));
  }

  private fire(): void {
    this.handle = null;
    this.armedFor = Infinity;
    if (this.deadline < 0) return;
    if (this.clock.now() < this.deadline) {
      this.arm(this.deadline);
      return;
    }
    this.deadline = -1;
    this.fn();
  }
}

/** A clock for tests: time moves only when advance() is called, firing due timeouts in order. */
export class FakeClock implements Clock {
  private t = 1_000_000;
  private wall = Date.UTC(2026, 0, 1);
  private seq = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();
  randomValue = 0.5;

  now(): number {
    return this.t;
  }
  wallNow(): number {
    return this.wall + this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + ms, fn });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }
  random(): number {
    return this.randomValue;
  }

  /** Moves time forward by `ms`, running every timeout that comes due (including ones they set). */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let nextId = -1;
      let nextAt = Infinity;
      for (const [id, tm] of this.timers) {
        if (tm.at < nextAt || (tm.at === nextAt && id < nextId)) {
          nextAt = tm.at;
          nextId = id;
        }
      }
      if (nextId < 0 || nextAt > end) break;
      const tm = this.timers.get(nextId)!;
      this.timers.delete(nextId);
      this.t = Math.max(this.t, tm.at);
      tm.fn();
    }
    this.t = end;
  }

  /** Sets the wall clock offset (e.g. to simulate a restarted peer whose clock went back). */
  shiftWall(ms: number): void {
    this.wall += ms;
  }
}
