// What coord POSTs to addresses network admins chose (webhooks, log streams): one way to send and one
// way to wait between attempts. Every request goes through the target rule of ./webhook-target.ts (public
// addresses only unless the operator allows others), follows no redirect and is bounded in time.
import type { IncomingHttpHeaders } from 'node:http';
import { Agent, request } from 'undici';
import { checkLiteralTarget, publicOnlyLookupFor, type TargetKind } from './webhook-target.js';

export interface OutboundAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  /** The first `keepBody` bytes of the answer (as text), for errors and receivers that answer per item. */
  body: string;
}

const TIMEOUT_MS = 10_000;

export class OutboundHttp {
  /** Connections whose DNS answers must be public addresses (none when the operator allows private ones). */
  private readonly dispatcher: Agent | undefined;

  constructor(private readonly allowPrivate: boolean, private readonly kind: TargetKind) {
    this.dispatcher = allowPrivate ? undefined : new Agent({ connect: { lookup: publicOnlyLookupFor(kind) } });
  }

  /** POSTs `body`; any answer (2xx or not) resolves, a refused target or a network failure rejects. */
  async post(url: string, body: string | Buffer, headers: Record<string, string>, keepBody = 0): Promise<OutboundAnswer> {
    checkLiteralTarget(url, this.allowPrivate, this.kind);
    const res = await request(url, {
      dispatcher: this.dispatcher,
      maxRedirections: 0,
      method: 'POST',
      body,
      headers: { 'user-agent': 'meshward-coord', ...headers },
      headersTimeout: TIMEOUT_MS,
      bodyTimeout: TIMEOUT_MS,
    });
    let text = '';
    if (keepBody > 0) {
      for await (const chunk of res.body) {
        text += (chunk as Buffer).toString('utf8');
        if (text.length >= keepBody) break;
      }
      if (text.length >= keepBody) res.body.destroy();
      text = text.slice(0, keepBody);
    } else await res.body.dump();
    return { status: res.statusCode, headers: res.headers as IncomingHttpHeaders, body: text };
  }

  async close(): Promise<void> {
    await this.dispatcher?.close();
  }
}

/**
 * How long to wait before attempt `failures + 1` after `failures` failed ones (≥ 1): `baseMs` doubled
 * per failure, at most `maxMs`, spread by ±20% (`random` in [0, 1)) so that many senders do not retry in step.
 */
export function backoffMs(failures: number, baseMs: number, maxMs: number, random: number): number {
  const plain = Math.min(maxMs, baseMs * 2 ** Math.min(30, Math.max(0, failures - 1)));
  return Math.round(plain * (0.8 + random * 0.4));
}
