// Bearer secrets (API keys, auth keys, sessions, invite codes) and passwords.
// A secret is shown once: `mwkey-<kind>-<id>-<secret>`. Only a SHA-256 of it is stored (the secret
// is 192 random bits, so a fast hash is enough); the id finds the row, the hash is compared in
// constant time. Passwords are low-entropy and get scrypt.
import { createHash, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

const ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789';

/** A random string over an unambiguous alphabet (rejection sampling: no modulo bias). */
export function randomToken(length: number): string {
  let out = '';
  while (out.length < length) {
    for (const b of randomBytes(length * 2)) {
      if (b < ALPHABET.length * 4 && out.length < length) out += ALPHABET[b % ALPHABET.length];
    }
  }
  return out;
}

export type SecretKind = 'api' | 'auth' | 'session' | 'invite' | 'relay';

export interface NewSecret {
  id: string;
  /** The full bearer string, shown once. */
  secret: string;
  hash: Buffer;
}

export function newSecret(kind: SecretKind, idPrefix = 'k'): NewSecret {
  return secretFor(kind, idPrefix + randomToken(12));
}

/** A fresh secret for an existing id (an invite whose code is issued anew: only the hash was kept). */
export function secretFor(kind: SecretKind, id: string): NewSecret {
  const secret = `mwkey-${kind}-${id}-${randomToken(32)}`;
  return { id, secret, hash: hashSecret(secret) };
}

export function hashSecret(secret: string): Buffer {
  return createHash('sha256').update(secret).digest();
}

/** Splits `mwkey-<kind>-<id>-<secret>`; undefined when the shape is wrong. */
export function parseSecret(secret: string): { kind: SecretKind; id: string } | undefined {
  const m = /^mwkey-(api|auth|session|invite|relay)-([A-Za-z0-9]{4,40})-[A-Za-z0-9]{16,}$/.exec(secret);
  return m ? { kind: m[1] as SecretKind, id: m[2]! } : undefined;
}

export function secretMatches(secret: string, storedHash: Buffer): boolean {
  const h = hashSecret(secret);
  return h.length === storedHash.length && timingSafeEqual(h, storedHash);
}

const SCRYPT = { N: 16384, r: 8, p: 1, keylen: 32 };

function scryptAsync(password: string, salt: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(password, salt, SCRYPT.keylen, { N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p }, (err, key) =>
      err ? reject(err) : resolve(key),
    ),
  );
}

/** `scrypt$N$r$p$salt$hash` (base64). */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scryptAsync(password, salt);
  return ['scrypt', SCRYPT.N, SCRYPT.r, SCRYPT.p, salt.toString('base64'), key.toString('base64')].join('$');
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [, n, r, p, salt, hash] = parts;
  const expected = Buffer.from(hash!, 'base64');
  const key = await new Promise<Buffer>((resolve, reject) =>
    scrypt(password, Buffer.from(salt!, 'base64'), expected.length, { N: Number(n), r: Number(r), p: Number(p) }, (err, k) =>
      err ? reject(err) : resolve(k),
    ),
  );
  return timingSafeEqual(key, expected);
}
