import { describe, expect, it } from 'vitest';
import { hashPassword, newSecret, parseSecret, secretMatches, verifyPassword } from './secrets.js';

describe('secrets', () => {
  it('makes bearer secrets whose hash matches only themselves', () => {
    const s = newSecret('api');
    expect(s.secret).toMatch(/^mwkey-api-k[A-Za-z0-9]{12}-[A-Za-z0-9]{32}$/);
    expect(parseSecret(s.secret)).toEqual({ kind: 'api', id: s.id });
    expect(secretMatches(s.secret, s.hash)).toBe(true);
    expect(secretMatches(s.secret.slice(0, -1) + (s.secret.endsWith('a') ? 'b' : 'a'), s.hash)).toBe(false);
    expect(parseSecret('tskey-api-x-y')).toBeUndefined();
    expect(parseSecret(`mwkey-root-${s.id}-${'a'.repeat(32)}`)).toBeUndefined();
  });

  it('hashes passwords with scrypt and verifies them', async () => {
    const h = await hashPassword('correct horse battery staple');
    expect(h.startsWith('scrypt$')).toBe(true);
    expect(h).not.toContain('horse');
    expect(await verifyPassword('correct horse battery staple', h)).toBe(true);
    expect(await verifyPassword('correct horse battery stapler', h)).toBe(false);
    expect(await verifyPassword('x', 'garbage')).toBe(false);
  });
});
