import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { HttpError } from '../api/http.js';
import { consoleAuthorization, csrfToken, sessionCookie, sessionToken } from './session.js';

const TOKEN = 'mwkey-session-abc-secretsecret';
const req = (method: string, headers: Record<string, string>) => ({ method, headers: { host: 'coord.example:8080', ...headers } }) as unknown as IncomingMessage;
const refused = (r: IncomingMessage) => {
  try {
    consoleAuthorization(r);
  } catch (err) {
    return err instanceof HttpError && err.status === 403;
  }
  return false;
};

describe('console session', () => {
  it('keeps the token in an HttpOnly, SameSite=Strict cookie, Secure only under TLS', () => {
    const c = sessionCookie(TOKEN, '2030-01-01T00:00:00Z', false);
    expect(c).toMatch(/^mw_session=mwkey-session-abc-secretsecret; Path=\/; HttpOnly; SameSite=Strict; Expires=/);
    expect(c).not.toContain('Secure');
    expect(sessionCookie(TOKEN, '2030-01-01T00:00:00Z', true)).toMatch(/; Secure$/);
  });

  it('finds the session among other cookies', () => {
    expect(sessionToken(req('GET', { cookie: `a=1; mw_session=${TOKEN}; b=2` }))).toBe(TOKEN);
    expect(sessionToken(req('GET', { cookie: 'a=1' }))).toBeUndefined();
    expect(consoleAuthorization(req('GET', {}))).toBeUndefined();
  });

  it('reads need no CSRF token; every state change needs the right one from the same origin', () => {
    const cookie = `mw_session=${TOKEN}`;
    const csrf = csrfToken(TOKEN);
    expect(consoleAuthorization(req('GET', { cookie }))).toBe(`Bearer ${TOKEN}`);
    expect(consoleAuthorization(req('POST', { cookie, 'x-csrf-token': csrf }))).toBe(`Bearer ${TOKEN}`);
    expect(consoleAuthorization(req('DELETE', { cookie, 'x-csrf-token': csrf, origin: 'http://coord.example:8080' }))).toBe(`Bearer ${TOKEN}`);
    expect(refused(req('POST', { cookie }))).toBe(true);
    expect(refused(req('POST', { cookie, 'x-csrf-token': csrfToken('mwkey-session-other-x') }))).toBe(true);
    expect(refused(req('PATCH', { cookie, 'x-csrf-token': csrf, origin: 'https://evil.example' }))).toBe(true);
    expect(refused(req('POST', { cookie, 'x-csrf-token': csrf, origin: 'null' }))).toBe(true);
  });
});
