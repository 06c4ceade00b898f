// The console's session: the session token that `POST /api/v2/login` returns lives in an HttpOnly cookie,
// and a caller that authenticates by that cookie must prove, on every state change, that the request
// comes from the console's own pages (a CSRF token in a header, which a cross-site page cannot read).
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { HttpError } from '../api/http.js';

export const SESSION_COOKIE = 'mw_session';
export const CSRF_HEADER = 'x-csrf-token';

/** The cookie that holds a session token; `Secure` when the console is served over TLS. */
export function sessionCookie(token: string, expires: string, secure: boolean): string {
  return `${SESSION_COOKIE}=${token}; Path=/; HttpOnly; SameSite=Strict; Expires=${new Date(expires).toUTCString()}${secure ? '; Secure' : ''}`;
}

export function clearedSessionCookie(secure: boolean): string {
  return `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0${secure ? '; Secure' : ''}`;
}

export function sessionToken(req: IncomingMessage): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === SESSION_COOKIE) return part.slice(eq + 1).trim() || undefined;
  }
  return undefined;
}

/**
 * The CSRF token of a session: derived from the session token, so nothing more is stored and it survives
 * restarts. Only the console's pages learn it (from `GET /admin/api/session`, which a cross-site page
 * cannot read), and they send it back in a header.
 */
export function csrfToken(sessionToken: string): string {
  return createHmac('sha256', 'meshward console csrf').update(sessionToken).digest('base64url');
}

function hostOf(origin: string): string | undefined {
  try {
    return new URL(origin).host;
  } catch {
    return undefined; // "null" (sandboxed or opaque origins) and garbage
  }
}

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);

/** Refuses a state change by cookie without the session's CSRF token or from another origin. */
export function checkCsrf(req: IncomingMessage, token: string): void {
  if (SAFE.has(req.method ?? 'GET')) return;
  const origin = req.headers.origin;
  if (origin !== undefined && hostOf(origin) !== req.headers.host) throw new HttpError(403, 'cross-site request refused');
  const given = Buffer.from(String(req.headers[CSRF_HEADER] ?? ''));
  const want = Buffer.from(csrfToken(token));
  if (given.length !== want.length || !timingSafeEqual(given, want)) {
    throw new HttpError(403, `missing or wrong CSRF token (send the "${CSRF_HEADER}" header the console received)`);
  }
}

/**
 * For the admin API: the `Authorization` value a console request stands for (its session cookie), after
 * the CSRF check; undefined when the request carries no session cookie.
 */
export function consoleAuthorization(req: IncomingMessage): string | undefined {
  const token = sessionToken(req);
  if (!token) return undefined;
  checkCsrf(req, token);
  return `Bearer ${token}`;
}
