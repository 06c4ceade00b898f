import { describe, expect, it } from 'vitest';
import { FakeClock, Timer } from './clock.js';

describe('Timer', () => {
  it('fires once at its deadline, however often it is moved later', () => {
    const clock = new FakeClock();
    const fired: number[] = [];
    const t = new Timer(clock, () => fired.push(clock.now()));
    const start = clock.now();
    t.mod(1000);
    for (let i = 0; i < 5; i++) {
      clock.advance(500);
      t.mod(1000); // pushed back before it fires
    }
    expect(fired).toEqual([]);
    clock.advance(999);
    expect(fired).toEqual([]);
    clock.advance(1);
    expect(fired).toEqual([start + 3500]);
    expect(t.pending()).toBe(false);
  });

  it('fires earlier when moved earlier, and not at all when deleted', () => {
    const clock = new FakeClock();
    let n = 0;
    const t = new Timer(clock, () => n++);
    t.mod(10_000);
    t.mod(100);
    clock.advance(100);
    expect(n).toBe(1);
    t.mod(100);
    t.del();
    clock.advance(1000);
    expect(n).toBe(1);
    t.mod(50);
    t.stop();
    clock.advance(1000);
    expect(n).toBe(1);
  });
});
