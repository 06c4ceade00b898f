import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ReplayWindow, WINDOW_SIZE } from './replay.js';

const LIMIT = Number.MAX_SAFE_INTEGER;

describe('ReplayWindow', () => {
  it('is at least 2048 packets wide', () => {
    expect(WINDOW_SIZE).toBeGreaterThanOrEqual(2048);
  });

  it('accepts each counter once, in or out of order', () => {
    const w = new ReplayWindow();
    expect(w.accept(0, LIMIT)).toBe(true);
    expect(w.accept(0, LIMIT)).toBe(false);
    expect(w.accept(5, LIMIT)).toBe(true);
    expect(w.accept(3, LIMIT)).toBe(true);
    expect(w.accept(3, LIMIT)).toBe(false);
    expect(w.accept(4, LIMIT)).toBe(true);
    expect(w.accept(5, LIMIT)).toBe(false);
  });

  it('accepts exactly WINDOW_SIZE behind the newest and refuses one more', () => {
    const w = new ReplayWindow();
    const top = 10_000;
    expect(w.accept(top, LIMIT)).toBe(true);
    expect(w.mayAccept(top - WINDOW_SIZE, LIMIT)).toBe(true);
    expect(w.accept(top - WINDOW_SIZE, LIMIT)).toBe(true);
    expect(w.accept(top - WINDOW_SIZE, LIMIT)).toBe(false);
    expect(w.mayAccept(top - WINDOW_SIZE - 1, LIMIT)).toBe(false);
    expect(w.accept(top - WINDOW_SIZE - 1, LIMIT)).toBe(false);
    expect(w.accept(top - 1, LIMIT)).toBe(true);
  });

  it('forgets old bits when jumping far ahead', () => {
    const w = new ReplayWindow();
    for (let i = 0; i < 100; i++) expect(w.accept(i, LIMIT)).toBe(true);
    const far = 1_000_000;
    expect(w.accept(far, LIMIT)).toBe(true);
    // Counters that share ring slots with the old ones are fresh again within the window.
    for (let i = far - 50; i < far; i++) expect(w.accept(i, LIMIT)).toBe(true);
    expect(w.accept(99, LIMIT)).toBe(false);
  });

  it('refuses counters at or above the limit', () => {
    const w = new ReplayWindow();
    expect(w.accept(100, 100)).toBe(false);
    expect(w.accept(99, 100)).toBe(true);
  });

  it('matches a model (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 20_000 }), { maxLength: 400 }), (counters) => {
        const w = new ReplayWindow();
        const seen = new Set<number>();
        let max = -1;
        for (const c of counters) {
          const expected = !seen.has(c) && (max < 0 || c > max || max - c <= WINDOW_SIZE);
          expect(w.accept(c, LIMIT)).toBe(expected);
          if (expected) {
            seen.add(c);
            max = Math.max(max, c);
          }
        }
      }),
    );
  });
});
