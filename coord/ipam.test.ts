import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatIPv4, parseIPv4 } from '../wire/addr.js';
import { ip6For, randomIp4, usableIp4 } from './ipam.js';

const ip4ToInt = (s: string) => parseIPv4(s)!;
const intToIp4 = formatIPv4;

describe('address allocation', () => {
  it('never proposes the reserved addresses', () => {
    expect(usableIp4(ip4ToInt('100.100.100.100'))).toBe(false);
    expect(usableIp4(ip4ToInt('100.115.92.1'))).toBe(false);
    expect(usableIp4(ip4ToInt('100.115.93.254'))).toBe(false);
    expect(usableIp4(ip4ToInt('100.115.94.1'))).toBe(true);
    expect(usableIp4(ip4ToInt('100.63.255.254'))).toBe(false);
    expect(usableIp4(ip4ToInt('100.128.0.1'))).toBe(false);
    expect(usableIp4(ip4ToInt('100.64.0.1'))).toBe(true);
    expect(usableIp4(ip4ToInt('100.127.255.254'))).toBe(true);
  });

  it('proposes addresses in 100.64.0.0/10 only', () => {
    for (let i = 0; i < 5000; i++) {
      const n = ip4ToInt(randomIp4());
      expect(n >= ip4ToInt('100.64.0.0') && n <= ip4ToInt('100.127.255.255')).toBe(true);
      expect(usableIp4(n)).toBe(true);
    }
  });

  it('maps IPv4 to a distinct IPv6 address in fd7a:115c:a1e0::/48', () => {
    fc.assert(
      fc.property(fc.integer({ min: ip4ToInt('100.64.0.0'), max: ip4ToInt('100.127.255.255') }), fc.integer({ min: 1, max: 1 << 20 }), (a, d) => {
        const b = ip4ToInt('100.64.0.0') + ((a - ip4ToInt('100.64.0.0') + d) % (1 << 22));
        const v6a = ip6For(intToIp4(a));
        expect(v6a.startsWith('fd7a:115c:a1e0::')).toBe(true);
        expect(v6a).not.toBe(ip6For(intToIp4(b)));
      }),
    );
    expect(ip6For('100.100.2.3')).toBe('fd7a:115c:a1e0::6464:203');
  });
});
