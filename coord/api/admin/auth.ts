// Who is calling: `Authorization: Bearer <key>` (or Basic with the key as the user name).
import type { Caller, Domain } from '../../domain/index.js';

/** The key in an Authorization header, if it carries one. */
export function keyOf(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const [scheme, value] = header.split(' ', 2);
  if (scheme?.toLowerCase() === 'bearer') return value || undefined;
  if (scheme?.toLowerCase() === 'basic' && value) return Buffer.from(value, 'base64').toString('utf8').split(':')[0] || undefined;
  return undefined;
}

/** The caller behind the Authorization header, or undefined (no, unknown, expired or revoked key). */
export function authenticate(domain: Domain, header: string | undefined): Caller | undefined {
  const token = keyOf(header);
  return token === undefined ? undefined : domain.keys.callerOf(token);
}
