import { describe, expect, it } from 'vitest';
import { InvalidInput } from '../errors.js';
import { buildRelayMap, checkRelay, checkRelayName, checkRelayUrl, checkStunPort } from './relay-map.js';

describe('relay map validation', () => {
  it('accepts DNS-label names and refuses others', () => {
    for (const ok of ['coord', 'fra1', 'relay-eu-2', 'A']) expect(checkRelayName(ok)).toBe(ok);
    for (const bad of ['', '-x', 'x-', 'a b', 'a.b', 'ü', 'x'.repeat(64), 'a/b']) expect(() => checkRelayName(bad)).toThrow(InvalidInput);
  });

  it('accepts ws:// and wss:// URLs with a host and nothing secret or odd in them', () => {
    expect(checkRelayUrl('wss://relay1.example.com/relay')).toBe('wss://relay1.example.com/relay');
    expect(checkRelayUrl('ws://198.18.0.5:8443/relay')).toBe('ws://198.18.0.5:8443/relay');
    expect(checkRelayUrl('wss://[2001:db8::1]/relay')).toBe('wss://[2001:db8::1]/relay');
    expect(() => checkRelayUrl('https://relay1.example.com/relay')).toThrow(/wss:\/\//);
    expect(() => checkRelayUrl('relay1.example.com')).toThrow(/not a URL/);
    expect(() => checkRelayUrl('wss://u:p@relay1.example.com/relay')).toThrow(/no user or password/);
    expect(() => checkRelayUrl('wss://relay1.example.com/relay?x=1')).toThrow(/no query/);
    expect(() => checkRelayUrl('wss://relay1.example.com/relay#a')).toThrow(/no query/);
  });

  it('accepts 0 or a port below 65535 for STUN', () => {
    expect(checkStunPort(0)).toBe(0);
    expect(checkStunPort(3478)).toBe(3478);
    expect(checkStunPort(65534)).toBe(65534);
    for (const bad of [-1, 65535, 70000, 1.5, NaN]) expect(() => checkStunPort(bad)).toThrow(InvalidInput);
  });

  it('checkRelay checks all three', () => {
    expect(checkRelay({ name: 'fra', url: 'wss://fra.example.com/relay', stunPort: 3478 })).toEqual({ name: 'fra', url: 'wss://fra.example.com/relay', stunPort: 3478 });
    expect(() => checkRelay({ name: 'fra', url: 'wss://fra.example.com/relay', stunPort: -2 })).toThrow(InvalidInput);
  });
});

describe('buildRelayMap', () => {
  const own = { name: 'coord', url: 'wss://coord.example.com/relay', stunPort: 3478 };

  it("puts coord's own relay first, then the extras in order; no stunPort key when there is no STUN", () => {
    const { relays, skipped } = buildRelayMap(own, [
      { name: 'fra', url: 'wss://fra.example.com/relay', stunPort: 3478 },
      { name: 'nyc', url: 'wss://nyc.example.com/relay', stunPort: 0 },
    ]);
    expect(relays).toEqual([own, { name: 'fra', url: 'wss://fra.example.com/relay', stunPort: 3478 }, { name: 'nyc', url: 'wss://nyc.example.com/relay' }]);
    expect(skipped).toEqual([]);
  });

  it("leaves out (and reports) an extra that takes coord's name, a repeated name, or a bad row", () => {
    const { relays, skipped } = buildRelayMap(own, [
      { name: 'coord', url: 'wss://other.example.com/relay', stunPort: 0 },
      { name: 'fra', url: 'wss://fra.example.com/relay', stunPort: 0 },
      { name: 'fra', url: 'wss://fra2.example.com/relay', stunPort: 0 },
      { name: 'bad', url: 'http://x/relay', stunPort: 0 },
    ]);
    expect(relays.map((r) => r.name)).toEqual(['coord', 'fra']);
    expect(skipped.map((s) => s.name)).toEqual(['coord', 'fra', 'bad']);
    expect(skipped[0]!.why).toMatch(/coord's own/);
  });

  it('without a relay of its own (coord serve --no-relay) the map is the extras alone', () => {
    expect(buildRelayMap(null, [{ name: 'fra', url: 'wss://fra.example.com/relay', stunPort: 0 }]).relays).toEqual([{ name: 'fra', url: 'wss://fra.example.com/relay' }]);
    expect(buildRelayMap(null, []).relays).toEqual([]);
  });
});
