// Shared pieces of coord's subcommands.
import { UsageError } from '../../wire/cli.js';

export const DEFAULT_DB = '/var/lib/meshward/coord.db';

/** "HOST:PORT", "[v6]:PORT" or ":PORT" → host and port. */
export function parseListen(s: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new UsageError(`--listen ${JSON.stringify(s)}: expected HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

const EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;

export function checkEmail(flag: string, v: string): string {
  if (!EMAIL.test(v)) throw new UsageError(`${flag} ${JSON.stringify(v)} is not an email address`);
  return v;
}

/** "90d", "24h", "30m", "3600s" or plain seconds → seconds. */
export function parseDuration(s: string): number {
  const m = /^(\d+)([smhd]?)$/.exec(s.trim());
  if (!m) throw new UsageError(`duration ${JSON.stringify(s)}: expected a number with s, m, h or d (e.g. 24h, 90d)`);
  return Number(m[1]) * { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as '' | 's' | 'm' | 'h' | 'd'];
}
