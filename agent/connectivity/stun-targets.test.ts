import { describe, expect, it } from 'vitest';
import { stunTargetsOf } from './netcheck.js';

describe('stunTargetsOf', () => {
  const resolve = async (host: string) => ({ 'coord.example.com': ['192.0.2.1', '2001:db8::1'], 'fra.example.com': ['192.0.2.7'] } as Record<string, string[]>)[host] ?? [host];

  it("gives each relay's STUN port and the next on every address of its host", async () => {
    const t = await stunTargetsOf([
      { url: 'wss://coord.example.com/relay', stunPort: 3478 },
      { url: 'wss://fra.example.com/relay', stunPort: 5000 },
      { url: 'ws://[2001:db8::9]:8443/relay', stunPort: 3478 },
    ], resolve);
    expect(t).toEqual([
      { address: '192.0.2.1', port: 3478 }, { address: '192.0.2.1', port: 3479 },
      { address: '2001:db8::1', port: 3478 }, { address: '2001:db8::1', port: 3479 },
      { address: '192.0.2.7', port: 5000 }, { address: '192.0.2.7', port: 5001 },
      { address: '2001:db8::9', port: 3478 }, { address: '2001:db8::9', port: 3479 },
    ]);
  });

  it('skips relays without STUN, hosts that do not resolve, and repeats', async () => {
    const t = await stunTargetsOf([
      { url: 'wss://nostun.example.com/relay' },
      { url: 'wss://gone.example.com/relay', stunPort: 3478 },
      { url: 'wss://fra.example.com/relay', stunPort: 5000 },
      { url: 'wss://fra.example.com:444/relay', stunPort: 5000 },
    ], async (h) => {
      if (h === 'gone.example.com') throw new Error('ENOTFOUND');
      return resolve(h);
    });
    expect(t).toEqual([{ address: '192.0.2.7', port: 5000 }, { address: '192.0.2.7', port: 5001 }]);
  });
});
