// Failed attempts per key (an email, a client address, a user): a few tries, then a pause that grows.
// Each server keeps its own limiters (they live in its domain objects).
import { TooManyRequests } from '../errors.js';

export class LoginLimiter {
  private readonly failures = new Map<string, { count: number; until: number }>();

  check(keys: string[]): void {
    const now = Date.now();
    for (const k of keys) {
      const f = this.failures.get(k);
      if (f && f.count >= 5 && f.until > now) throw new TooManyRequests(`too many failed sign-ins; try again in ${Math.ceil((f.until - now) / 1000)} s`);
    }
  }

  fail(keys: string[]): void {
    const now = Date.now();
    for (const k of keys) {
      const f = this.failures.get(k);
      const count = f && f.until > now ? f.count + 1 : 1;
      this.failures.set(k, { count, until: now + 60_000 * Math.min(2 ** Math.max(0, count - 5), 60) });
    }
  }

  ok(keys: string[]): void {
    for (const k of keys) this.failures.delete(k);
  }
}
