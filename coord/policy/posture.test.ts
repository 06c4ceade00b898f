import { describe, expect, it } from 'vitest';
import { parsePostureCondition, postureMatches } from './posture.js';

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
