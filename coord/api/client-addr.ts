// The client address a request counts under for throttling: the socket's peer, or, when that peer is a
// trusted reverse proxy (`coord serve --trusted-proxy`), the address the proxies forwarded in
// X-Forwarded-For. The header is read from the right: each trusted proxy appends the address it saw,
// so the first untrusted entry from the right is the client; entries further left are the client's word.
import type { IncomingMessage } from 'node:http';
import { canonicalAddr, entriesContain, isAddr, parseRange } from '../../wire/addr.js';

export type ClientAddrOf = (req: IncomingMessage) => string;

/** "::ffff:10.0.0.1" → "10.0.0.1"; addresses in canonical text. */
function normal(a: string): string {
  const s = a.trim();
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(s);
  return canonicalAddr(v4 ? v4[1]! : s);
}

/** Checks `--trusted-proxy` values (addresses or prefixes); returns the malformed ones. */
export function badProxyEntries(entries: readonly string[]): string[] {
  return entries.filter((e) => !isAddr(e) && parseRange(e) === null);
}

export function clientAddrOf(trustedProxies: readonly string[] = []): ClientAddrOf {
  const trusted = (a: string) => trustedProxies.length > 0 && entriesContain(trustedProxies, a);
  return (req) => {
    let addr = normal(req.socket.remoteAddress ?? '');
    if (!trusted(addr)) return addr;
    const header = req.headers['x-forwarded-for'];
    const hops = (Array.isArray(header) ? header.join(',') : header ?? '').split(',').map(normal).filter((h) => h !== '');
    for (let i = hops.length - 1; i >= 0; i--) {
      if (!isAddr(hops[i]!)) break;
      addr = hops[i]!;
      if (!trusted(addr)) break;
    }
    return addr;
  };
}
