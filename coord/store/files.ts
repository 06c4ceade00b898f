// The database file holds key hashes and webhook secrets: readable by coord's user only.
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, statSync } from 'node:fs';
import { dirname } from 'node:path';

/** The longest an API key may live (Tailscale's limit too); the owner's first key included. */
export const API_KEY_MAX_SECONDS = 90 * 86_400;

/**
 * Makes `path` (and SQLite's -wal and -shm beside it, when present) owner-only: creates it with mode
 * 0600, or narrows an existing file that others may read (e.g. 0644 from a copy or an older coord).
 */
export function secureDbFile(path: string): void {
  if (path === ':memory:') return;
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  if (!existsSync(path)) closeSync(openSync(path, 'a', 0o600));
  for (const p of [path, `${path}-wal`, `${path}-shm`]) {
    if (existsSync(p) && (statSync(p).mode & 0o077) !== 0) chmodSync(p, statSync(p).mode & 0o700);
  }
}
