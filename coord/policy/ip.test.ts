import { describe, expect, it } from 'vitest';
import { contains, hostPrefix, isDefaultRoute, overlaps, parseAddr, parseRange } from './ip.js';
import { parsePostureCondition, postureMatches } from './posture.js';

describe('addresses', () => {
  it('parses IPv4, IPv6 (compressed, embedded IPv4), prefixes and ranges', () => {
    expect(parseAddr('100.64.0.1')).toEqual({ v6: false, lo: 0x64400001n, hi: 0x64400001n });
    expect(parseAddr('fd7a:115c:a1e0::1')!.lo).toBe(0xfd7a115ca1e000000000000000000001n);
    expect(parseAddr('::ffff:1.2.3.4')!.lo).toBe(0xffff01020304n);
    expect(parseAddr('::')!.lo).toBe(0n);
    expect(parseRange('10.1.2.3/16')).toEqual({ v6: false, lo: 0x0a010000n, hi: 0x0a01ffffn });
    expect(parseRange('100.64.0.0-100.115.91.255')).toEqual({ v6: false, lo: 0x64400000n, hi: 0x64735bffn });
    expect(parseRange('fd7a:115c:a1e0::/48')!.hi).toBe(0xfd7a115ca1e0ffffffffffffffffffffn);
    for (const bad of ['1.2.3', '1.2.3.256', '1::2::3', 'x', '10.0.0.0/33', '2.0.0.0-1.0.0.0', '1.2.3.4-::1', '']) expect(parseRange(bad), bad).toBeNull();
  });

  it('compares ranges', () => {
    const r = (s: string) => parseRange(s)!;
    expect(overlaps(r('10.0.0.0/8'), r('10.33.0.0/16'))).toBe(true);
    expect(overlaps(r('10.0.0.0/8'), r('11.0.0.0/8'))).toBe(false);
    expect(overlaps(r('::/0'), r('10.0.0.0/8'))).toBe(false);
    expect(contains(r('10.0.0.0/8'), r('10.1.0.0/16'))).toBe(true);
    expect(contains(r('10.1.0.0/16'), r('10.0.0.0/8'))).toBe(false);
    expect(isDefaultRoute(r('0.0.0.0/0')) && isDefaultRoute(r('::/0'))).toBe(true);
    expect(hostPrefix('100.64.0.1')).toBe('100.64.0.1/32');
    expect(hostPrefix('fd7a::1')).toBe('fd7a::1/128');
  });
});

describe('posture conditions', () => {
  const c = (e: string) => {
    const r = parsePostureCondition(e);
    if (typeof r === 'string') throw new Error(r);
    return r;
  };
  it('evaluates Tailscale\'s operators', () => {
    const dev = { 'node:os': 'linux', 'node:tsVersion': '1.62.1', 'custom:tier': 'prod', 'custom:score': 7 };
    expect(postureMatches(c("node:os == 'linux'"), dev)).toBe(true);
    expect(postureMatches(c("node:os != 'linux'"), dev)).toBe(false);
    expect(postureMatches(c("node:tsVersion >= '1.60'"), dev)).toBe(true);
    expect(postureMatches(c("node:tsVersion < '1.62.2'"), dev)).toBe(true);
    expect(postureMatches(c("custom:tier IN ['prod', 'staging']"), dev)).toBe(true);
    expect(postureMatches(c("custom:tier NOT IN ['prod']"), dev)).toBe(false);
    expect(postureMatches(c('custom:score > 5'), dev)).toBe(true);
    expect(postureMatches(c('custom:tier IS SET'), dev)).toBe(true);
    expect(postureMatches(c('custom:missing NOT SET'), dev)).toBe(true);
    expect(postureMatches(c("custom:missing == 'x'"), dev)).toBe(false);
    expect(postureMatches(c("node:os == 'linux'"), undefined)).toBe(false);
  });

  it('refuses malformed conditions', () => {
    expect(parsePostureCondition('node:os')).toMatch(/cannot parse posture condition/);
    expect(parsePostureCondition("node:os IN 'linux'")).toMatch(/needs a list/);
    expect(parsePostureCondition('node:os IS SET now')).toMatch(/nothing may follow/);
  });
});
