import { describe, expect, it } from 'vitest';
import { chooseHomeRelay } from './home-relay.js';

const m = (...pairs: [string, number | null][]) => pairs.map(([name, latencyMs]) => ({ name, latencyMs }));

describe('chooseHomeRelay', () => {
  it('starts at the fastest relay that answered', () => {
    expect(chooseHomeRelay(null, m(['coord', 40], ['fra', 12], ['nyc', 90]))).toBe('fra');
    expect(chooseHomeRelay(null, m(['coord', null], ['fra', 30]))).toBe('fra');
  });

  it('keeps the home when another is only a little faster (no flapping)', () => {
    expect(chooseHomeRelay('coord', m(['coord', 20], ['fra', 17]))).toBe('coord'); // 15 % better: stay
    expect(chooseHomeRelay('coord', m(['coord', 10], ['fra', 6.5]))).toBe('coord'); // 35 % but 3.5 ms: stay
    // And back and forth around the same values, it never moves.
    let home: string | null = 'fra';
    for (const [a, b] of [[20, 22], [22, 20], [21, 19], [19, 21]] as const) home = chooseHomeRelay(home, m(['coord', a], ['fra', b]));
    expect(home).toBe('fra');
  });

  it('moves when another is clearly faster', () => {
    expect(chooseHomeRelay('coord', m(['coord', 80], ['fra', 20]))).toBe('fra');
    expect(chooseHomeRelay('coord', m(['coord', 30], ['fra', 19]))).toBe('fra'); // 37 % and 11 ms
  });

  it('moves when the home did not answer or left the map', () => {
    expect(chooseHomeRelay('coord', m(['coord', null], ['fra', 200]))).toBe('fra');
    expect(chooseHomeRelay('gone', m(['coord', 50], ['fra', 40]))).toBe('fra');
  });

  it('with no answers keeps a home still in the map, else takes the first (coord\'s own)', () => {
    expect(chooseHomeRelay('fra', m(['coord', null], ['fra', null]))).toBe('fra');
    expect(chooseHomeRelay('gone', m(['coord', null], ['fra', null]))).toBe('coord');
    expect(chooseHomeRelay(null, m(['coord', null]))).toBe('coord');
    expect(chooseHomeRelay('coord', [])).toBe(null);
  });
});
