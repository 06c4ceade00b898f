import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { dnsLabel, firstLabel, isDnsLabel, isTag } from './names.js';

describe('tags', () => {
  it('follow Tailscale\'s rule: "tag:", a letter, then letters, digits and dashes', () => {
    for (const ok of ['tag:web', 'tag:Web-1', 'tag:a']) expect(isTag(ok), ok).toBe(true);
    for (const bad of ['web', 'tag:', 'tag:1web', 'tag:-web', 'tag:we b', 'tag:web_1', 'TAG:web', 7, null]) expect(isTag(bad), String(bad)).toBe(false);
  });
});

describe('DNS labels', () => {
  it('checks a label', () => {
    for (const ok of ['web', 'Web-1', 'a'.repeat(63), '1']) expect(isDnsLabel(ok), ok).toBe(true);
    for (const bad of ['', '-web', 'web-', 'a'.repeat(64), 'we.b', 'we_b']) expect(isDnsLabel(bad), bad).toBe(false);
  });
  it('makes a label from any name', () => {
    expect(dnsLabel('My_Laptop.local')).toBe('my-laptop-local');
    expect(dnsLabel('---')).toBe('device');
    expect(dnsLabel('a'.repeat(80))).toHaveLength(63);
    expect(dnsLabel('a'.repeat(62) + '_b')).toBe('a'.repeat(62)); // no dash left at the cut
    fc.assert(fc.property(fc.string(), (s) => {
      expect(isDnsLabel(dnsLabel(s))).toBe(true);
    }));
  });
  it('takes the first label of a name', () => {
    expect(firstLabel('web.example-com.meshward.internal.')).toBe('web');
    expect(firstLabel('web')).toBe('web');
  });
});
