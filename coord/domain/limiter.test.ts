import { describe, expect, it } from 'vitest';
import { TooManyRequests } from '../errors.js';
import { ACCOUNT_LIMITS, Limiter } from './limiter.js';

const MIN = 60_000;

describe('Limiter', () => {
  it('pauses after the free failures, doubling each further failure up to an hour', () => {
    let now = 0;
    const l = new Limiter(ACCOUNT_LIMITS, () => now);
    const attempt = () => {
      l.check('a');
      l.reserve('a');
      l.fail('a');
    };
    for (let i = 0; i < 5; i++) attempt();
    expect(() => l.check('a')).toThrow(TooManyRequests);
    const pauses: number[] = [];
    for (let i = 0; i < 9; i++) {
      let waited = 0;
      while ((() => { try { l.check('a'); return false; } catch { return true; } })()) {
        now += 1000;
        waited += 1000;
      }
      pauses.push(waited / MIN);
      attempt();
    }
    expect(pauses).toEqual([1, 2, 4, 8, 16, 32, 60, 60, 60]);
  });

  it('reserves attempts: parallel ones share the allowance', () => {
    const l = new Limiter(ACCOUNT_LIMITS, () => 0);
    for (let i = 0; i < 5; i++) {
      l.check('a');
      l.reserve('a');
    }
    expect(() => l.check('a')).toThrow(TooManyRequests);
    l.succeed('a', true);
    expect(() => l.check('a')).not.toThrow();
  });

  it('forgets old entries and never holds more than its bound', () => {
    let now = 0;
    const l = new Limiter({ ...ACCOUNT_LIMITS, maxEntries: 100 }, () => now);
    l.reserve('old');
    l.fail('old');
    now += 2 * 3_600_000;
    expect(() => l.check('old')).not.toThrow();
    expect(l.size).toBe(0);
    for (let i = 0; i < 10_000; i++) {
      l.reserve(`k${i}`);
      l.fail(`k${i}`);
    }
    expect(l.size).toBeLessThanOrEqual(100);
  });
});
