import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { badProxyEntries, clientAddrOf } from './client-addr.js';

const req = (remote: string, xff?: string) => ({ socket: { remoteAddress: remote }, headers: xff === undefined ? {} : { 'x-forwarded-for': xff } }) as unknown as IncomingMessage;

describe('clientAddrOf', () => {
  it('ignores X-Forwarded-For unless the peer is a trusted proxy', () => {
    expect(clientAddrOf()(req('192.0.2.7', '1.2.3.4'))).toBe('192.0.2.7');
    expect(clientAddrOf(['10.0.0.1'])(req('::ffff:192.0.2.7', '1.2.3.4'))).toBe('192.0.2.7');
  });

  it('takes the first untrusted address from the right behind trusted proxies', () => {
    const of = clientAddrOf(['10.0.0.0/24', '::1']);
    expect(of(req('::ffff:10.0.0.1', '1.2.3.4'))).toBe('1.2.3.4');
    expect(of(req('::1', 'forged, 198.51.100.9, 10.0.0.5'))).toBe('198.51.100.9');
    expect(of(req('10.0.0.1', '6.6.6.6, 203.0.113.1'))).toBe('203.0.113.1');
    expect(of(req('10.0.0.1', 'garbage'))).toBe('10.0.0.1');
    expect(of(req('10.0.0.1'))).toBe('10.0.0.1');
  });

  it('names malformed --trusted-proxy values', () => {
    expect(badProxyEntries(['10.0.0.1', 'fd00::/8', 'proxy.example', '999.1.1.1'])).toEqual(['proxy.example', '999.1.1.1']);
  });
});
