import { describe, expect, it } from 'vitest';
import { formatNetcheck } from './netcheck-format.js';

describe('formatNetcheck', () => {
  it('lays the report out like tailscale netcheck', () => {
    const text = formatNetcheck({
      udp: true,
      publicEndpoints: ['198.18.7.2:41641', '[2001:db8::2]:41641'],
      mappingVariesByDest: false,
      relays: [{ name: 'coord', latencyMs: 1.234 }, { name: 'fra', latencyMs: 23.6 }, { name: 'nyc', latencyMs: null }],
      preferredRelay: 'coord',
    });
    expect(text).toBe([
      'Report:',
      '\t* UDP: true',
      '\t* IPv4: yes, 198.18.7.2:41641',
      '\t* IPv6: yes, [2001:db8::2]:41641',
      '\t* Mapping varies by destination: false',
      '\t* Nearest relay: coord',
      '\t* Relay latency:',
      '\t\t- coord: 1.2ms',
      '\t\t- fra: 24ms',
      '\t\t- nyc: no answer',
    ].join('\n'));
  });

  it('says what no UDP and a symmetric NAT mean', () => {
    const none = formatNetcheck({ udp: false, publicEndpoints: [], mappingVariesByDest: null, relays: [], preferredRelay: null });
    expect(none).toContain('UDP: false (no STUN answer');
    expect(none).toContain('IPv4: no public address seen');
    expect(none).toContain('Mapping varies by destination: unknown');
    expect(none).toContain('Nearest relay: none answered');
    expect(none).toContain('(the relay map is empty)');
    const sym = formatNetcheck({ udp: true, publicEndpoints: ['198.18.7.2:1000', '198.18.7.2:2000'], mappingVariesByDest: true, relays: [], preferredRelay: null });
    expect(sym).toContain('IPv4: yes, 198.18.7.2:1000, 198.18.7.2:2000');
    expect(sym).toContain('Mapping varies by destination: true (symmetric NAT');
  });
});
