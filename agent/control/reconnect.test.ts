import { describe, expect, it } from 'vitest';
import { ReconnectSchedule } from './reconnect.js';

/** A small seeded generator (mulberry32), so that the fleet below is the same on every run. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * One device during an outage from 0 to `outageMs`: it fails at 0, then tries again after each wait;
 * the first attempt at or after outageMs succeeds. Returns the attempt times.
 */
function attempts(outageMs: number, random: () => number): number[] {
  let now = 0;
  const s = new ReconnectSchedule({}, () => now, random);
  const times = [0];
  while (now < outageMs) {
    now += s.failed();
    times.push(now);
  }
  return times;
}

describe('ReconnectSchedule', () => {
  it('brings a fleet back within 4 s of a short outage’s end, spread over those seconds', () => {
    for (const outageMs of [1_000, 10_000, 32_000, 120_000, 299_000]) {
      const delays: number[] = [];
      for (let d = 0; d < 1000; d++) delays.push(attempts(outageMs, seeded(outageMs + d)).at(-1)! - outageMs);
      expect(Math.max(...delays)).toBeLessThanOrEqual(4000);
      if (outageMs < 10_000) continue; // the first waits are short: after a blip, all return at once
      // No thundering herd: no 200 ms window holds more than 10% of the fleet.
      const buckets = new Map<number, number>();
      for (const ms of delays) buckets.set(Math.floor(ms / 200), (buckets.get(Math.floor(ms / 200)) ?? 0) + 1);
      expect(Math.max(...buckets.values())).toBeLessThan(100);
    }
  });

  it('backs off while failures persist: growing waits, at most 4 s for 5 minutes, then up to 30 s', () => {
    const times = attempts(30 * 60_000, seeded(7));
    const waits = times.slice(1).map((t, i) => ({ at: times[i]!, wait: t - times[i]! }));
    // The first waits double (each jittered over the upper half of its step).
    const steps = [500, 1000, 2000, 4000];
    steps.forEach((step, i) => {
      expect(waits[i]!.wait).toBeGreaterThanOrEqual(step / 2);
      expect(waits[i]!.wait).toBeLessThanOrEqual(step);
    });
    for (const w of waits.filter((w) => w.at < 300_000)) expect(w.wait).toBeLessThanOrEqual(4000);
    const late = waits.filter((w) => w.at >= 300_000 + 60_000);
    for (const w of late) {
      expect(w.wait).toBeGreaterThanOrEqual(15_000);
      expect(w.wait).toBeLessThanOrEqual(30_000);
    }
    // So a coord that stays down for half an hour sees a few dozen attempts per device, not hundreds.
    expect(times.length).toBeLessThan(200);
  });

  it('starts over after a success', () => {
    let now = 0;
    const s = new ReconnectSchedule({}, () => now, () => 1);
    for (let i = 0; i < 10; i++) now += s.failed();
    expect(s.failed()).toBe(4000);
    now = 400_000;
    expect(s.failed()).toBe(30_000);
    s.succeeded();
    expect(s.failed()).toBe(500);
  });
});
