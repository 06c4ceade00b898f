// How long the agent lets its netmap stream stay silent: three of the keepalive intervals coord
// announces, bounded so that neither a tiny nor a missing announcement cuts a healthy stream.
import { describe, expect, it } from 'vitest';
import { DEFAULT_IDLE_TIMEOUT_MS, streamIdleTimeoutMs } from './client.js';

describe('streamIdleTimeoutMs', () => {
  it('is three announced keepalive intervals', () => {
    expect(streamIdleTimeoutMs('15000')).toBe(45_000);
    expect(streamIdleTimeoutMs('20000')).toBe(60_000);
  });

  it('is 90 s when coord announces nothing (a coord that writes every 30 s) or something unreadable', () => {
    expect(DEFAULT_IDLE_TIMEOUT_MS).toBe(90_000);
    for (const h of [undefined, '', '0', '-5', '15s', '1e4', '15000.5', ' 15000', '99999999999', ['15000', '15000']]) {
      expect(streamIdleTimeoutMs(h)).toBe(90_000);
    }
  });

  it('stays between 10 s and 90 s whatever coord announces', () => {
    expect(streamIdleTimeoutMs('1')).toBe(10_000);
    expect(streamIdleTimeoutMs('3000')).toBe(10_000);
    expect(streamIdleTimeoutMs('30000')).toBe(90_000);
    expect(streamIdleTimeoutMs('600000')).toBe(90_000);
  });
});
