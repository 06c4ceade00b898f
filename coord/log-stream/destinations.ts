// The destinations a log stream can POST to, and the request each one documents for ingesting events
// over HTTP with a token. Every destination gets the same event: an audit entry as the API answers it
// (GET /logging/configuration), wrapped the way that destination takes events.
//   splunk   HTTP Event Collector (URL ending /services/collector/event): `{"time", "event"}` objects, one
//            per line; `Authorization: Splunk <token>`.
//   panther  an HTTP log source: `{"time", "event"}` per line (Panther's Tailscale.Audit shape), bearer token.
//   cribl    an HTTP/S source of Cribl Stream: `{"time", "event"}` per line; the token is the Authorization value.
//   elastic  the _bulk API of a data stream (URL ending <stream>/_bulk): a `create` action and a document with
//            `@timestamp` per entry; `Authorization: ApiKey <token>`, or Basic with `user`.
//   datadog  the logs intake (…/api/v2/logs): a JSON array of logs with ddsource, service and the entry;
//            `DD-API-KEY: <token>`.
//   axiom    a dataset's ingest endpoint (…/v1/datasets/<name>/ingest): a JSON array of events with `_time`;
//            bearer token.
// With `user`, splunk, panther, cribl and elastic authenticate with HTTP Basic (user, token) instead.
import type { LogStream } from '../store/index.js';

export const DESTINATION_TYPES = ['splunk', 'elastic', 'panther', 'cribl', 'datadog', 'axiom'] as const;
export type DestinationType = (typeof DESTINATION_TYPES)[number];

/** Destinations that accept HTTP Basic authentication (a `user` with the token as its password). */
export const TAKES_USER: readonly DestinationType[] = ['splunk', 'elastic', 'panther', 'cribl'];

/** One streamed event: the audit entry as the API answers it, and its time. */
export interface StreamEvent {
  eventTime: string;
  entry: Record<string, unknown>;
}

interface Format {
  contentType: string;
  /** One event as its piece of the body. */
  item(e: StreamEvent): string;
  /** The bytes the frame adds around `n` items (separators, brackets). */
  overhead(n: number): number;
  frame(items: string[]): string;
  auth(token: string): Record<string, string>;
}

const unix = (iso: string) => Date.parse(iso) / 1000;
const lines = { overhead: (n: number) => n, frame: (items: string[]) => items.map((i) => i + '\n').join('') };
const array = { overhead: (n: number) => 2 + Math.max(0, n - 1), frame: (items: string[]) => `[${items.join(',')}]` };
const hec = (e: StreamEvent) => JSON.stringify({ time: unix(e.eventTime), event: e.entry });

const FORMATS: Record<DestinationType, Format> = {
  splunk: { contentType: 'application/json', item: hec, ...lines, auth: (t) => ({ authorization: `Splunk ${t}` }) },
  panther: { contentType: 'application/x-ndjson', item: hec, ...lines, auth: (t) => ({ authorization: `Bearer ${t}` }) },
  cribl: { contentType: 'application/x-ndjson', item: hec, ...lines, auth: (t) => ({ authorization: t }) },
  elastic: {
    contentType: 'application/x-ndjson',
    item: (e) => `{"create":{}}\n${JSON.stringify({ '@timestamp': e.eventTime, ...e.entry })}`,
    ...lines,
    auth: (t) => ({ authorization: `ApiKey ${t}` }),
  },
  datadog: {
    contentType: 'application/json',
    item: (e) => JSON.stringify({ ddsource: 'meshward', service: 'meshward-coord', ddtags: 'logtype:configuration', timestamp: Date.parse(e.eventTime), ...e.entry }),
    ...array,
    auth: (t) => ({ 'dd-api-key': t }),
  },
  axiom: { contentType: 'application/json', item: (e) => JSON.stringify({ _time: e.eventTime, ...e.entry }), ...array, auth: (t) => ({ authorization: `Bearer ${t}` }) },
};

export interface Batch {
  /** How many of the events offered it holds (the first ones). */
  count: number;
  body: string;
  headers: Record<string, string>;
}

/**
 * The request for the first events of `events` that fit in `maxBytes` (at least one, even if that one is
 * larger: a single entry is never split, and the destination may still take it).
 */
export function buildBatch(s: Pick<LogStream, 'destinationType' | 'user' | 'token'>, events: StreamEvent[], maxBytes: number): Batch {
  const f = FORMATS[s.destinationType as DestinationType];
  if (!f) throw new Error(`unknown destination type ${s.destinationType}`);
  const items: string[] = [];
  let bytes = 0;
  for (const e of events) {
    const item = f.item(e);
    const size = Buffer.byteLength(item);
    if (items.length > 0 && bytes + size + f.overhead(items.length + 1) > maxBytes) break;
    items.push(item);
    bytes += size;
  }
  const auth = s.user !== '' ? { authorization: `Basic ${Buffer.from(`${s.user}:${s.token}`).toString('base64')}` } : f.auth(s.token);
  return { count: items.length, body: f.frame(items), headers: { 'content-type': f.contentType, ...auth } };
}

/**
 * Why an answer of the destination is a failure, or null when it took the batch: any status but 2xx, and
 * Elasticsearch's 200 with `"errors": true` (some documents were refused: the batch is sent again).
 * The answer's text is shown without the stream's credentials, which a destination may repeat.
 */
export function refusal(s: Pick<LogStream, 'destinationType' | 'user' | 'token'>, status: number, body: string): string | null {
  if (status < 200 || status > 299) return `destination answered ${status}${body ? `: ${withoutCredentials(s, body).replace(/\s+/g, ' ').slice(0, 200)}` : ''}`;
  if (s.destinationType === 'elastic' && /"errors"\s*:\s*true/.test(body)) return 'Elasticsearch refused some documents of the batch ("errors": true)';
  return null;
}

/** `text` with every credential header value this stream sends (and the token itself) replaced by "[redacted]". */
export function withoutCredentials(s: Pick<LogStream, 'destinationType' | 'user' | 'token'>, text: string): string {
  if (s.token === '') return text;
  const { 'content-type': _, ...auth } = buildBatch(s, [], 0).headers;
  const secrets = new Set([s.token, ...Object.values(auth)]);
  if (s.user !== '') secrets.add(Buffer.from(`${s.user}:${s.token}`).toString('base64'));
  // Longest first, so that a header value goes whole before the token inside it.
  let out = text;
  for (const secret of [...secrets].sort((a, b) => b.length - a.length)) out = out.split(secret).join('[redacted]');
  return out;
}
