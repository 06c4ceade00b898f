import { describe, expect, it } from 'vitest';
import { checkWebhookTarget, nonPublicReason, publicOnlyLookup } from './webhook-target.js';

describe('webhook targets', () => {
  it('only public unicast addresses are public', () => {
    const table: [string, string | null][] = [
      ['8.8.8.8', null], ['2606:4700::1111', null],
      ['127.0.0.1', 'loopback'], ['::1', 'loopback'], ['::ffff:127.0.0.1', 'loopback'], ['::ffff:10.0.0.1', 'private'],
      ['10.0.0.1', 'private'], ['172.16.5.4', 'private'], ['192.168.1.1', 'private'], ['fc00::1', 'uniqueLocal'],
      ['169.254.169.254', 'linkLocal'], ['fe80::1', 'linkLocal'], ['100.64.0.1', 'carrierGradeNat'],
      ['0.0.0.0', 'unspecified'], ['::', 'unspecified'], ['224.0.0.1', 'multicast'], ['255.255.255.255', 'broadcast'],
      ['2001:db8::1', 'reserved'], ['64:ff9b::7f00:1', 'rfc6052'], ['2002:7f00:1::', '6to4'],
    ];
    for (const [ip, reason] of table) expect(nonPublicReason(ip), ip).toBe(reason);
  });

  it('checks names after resolving them, and lets the operator allow private targets', async () => {
    await expect(checkWebhookTarget('http://localhost:9/x', false)).rejects.toThrow(/^webhook endpoint localhost \((127\.0\.0\.1|::1)\) is a loopback address/);
    await expect(checkWebhookTarget('https://[fe80::1]/', false)).rejects.toThrow(/fe80::1 is a linkLocal address/);
    await expect(checkWebhookTarget('ftp://example.com/', false)).rejects.toThrow(/must be an http\(s\) URL/);
    await expect(checkWebhookTarget('http://8.8.8.8/hook', false)).resolves.toBeUndefined();
    await expect(checkWebhookTarget('http://localhost:9/x', true)).resolves.toBeUndefined();
  });

  it('refuses, at connection time, a name that resolves to a private address', async () => {
    const err = await new Promise<Error | null>((resolve) => publicOnlyLookup('localhost', {}, (e) => resolve(e)));
    expect(err?.message).toMatch(/localhost \(.*\) is a loopback address/);
  });
});
