// Small HTTP helpers for node:http: JSON answers, bounded bodies, errors with a status.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Conflict, DomainError, Forbidden, InvalidInput, NotConfigured, NotFound, PreconditionFailed, TooManyRequests, Unauthenticated, Unavailable, UpstreamFailed } from '../errors.js';

export const MAX_BODY = 1 << 20;

/** An error the client should see: status and `{"message": ...}` (plus `data` when given). */
export class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly data?: unknown) {
    super(message);
  }
}

export const notFound = (what: string) => new HttpError(404, `${what} not found`);
export const badRequest = (message: string, data?: unknown) => new HttpError(400, message, data);

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export function sendError(res: ServerResponse, err: HttpError): void {
  sendJson(res, err.status, err.data === undefined ? { message: err.message } : { message: err.message, data: err.data });
}

/** How long a request body may take to arrive (the server has no overall request timeout: streams). */
export const BODY_TIMEOUT_MS = 30_000;

/**
 * Reads the body, refusing more than `limit` bytes with 413 (without buffering the rest), and a body
 * that takes longer than BODY_TIMEOUT_MS with 408.
 */
export function readBody(req: IncomingMessage, limit = MAX_BODY): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    let settled = false;
    const finish = (err: Error | undefined, body?: Buffer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) reject(err);
      else resolve(body!);
    };
    const timer = setTimeout(() => {
      finish(new HttpError(408, `request body not received within ${BODY_TIMEOUT_MS / 1000} s`));
      req.destroy();
    }, BODY_TIMEOUT_MS);
    const tooLarge = () => new HttpError(413, `request body too large (limit ${limit} bytes)`);
    if (Number(req.headers['content-length'] ?? 0) > limit) {
      finish(tooLarge());
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      if (settled) return;
      size += c.length;
      if (size > limit) finish(tooLarge());
      else chunks.push(c);
    });
    req.on('end', () => finish(undefined, Buffer.concat(chunks)));
    req.on('error', (e) => finish(e));
  });
}

/** Parses a JSON body; malformed JSON is a 400 naming the reason. An empty body is `{}`. */
export function parseJson(body: Buffer): unknown {
  const text = body.toString('utf8');
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text);
  } catch (err) {
    throw badRequest(`invalid JSON: ${(err as Error).message}`);
  }
}

export function jsonObject(body: Buffer): Record<string, unknown> {
  const v = parseJson(body);
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw badRequest('invalid JSON: expected an object');
  return v as Record<string, unknown>;
}

/** A compiled route pattern like "/api/v2/device/:id/tags". */
export interface PathPattern {
  parts: string[];
}

export function compilePath(pattern: string): PathPattern {
  return { parts: pattern.split('/').filter(Boolean) };
}

export function matchPath(p: PathPattern, path: string): Record<string, string> | undefined {
  const parts = path.split('/').filter(Boolean);
  if (parts.length !== p.parts.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < parts.length; i++) {
    const want = p.parts[i]!;
    if (want.startsWith(':')) {
      try {
        params[want.slice(1)] = decodeURIComponent(parts[i]!);
      } catch {
        return undefined;
      }
    } else if (want !== parts[i]) return undefined;
  }
  return params;
}

const STATUS_OF: [new (...args: never[]) => DomainError, number][] = [
  [InvalidInput, 400], [Unauthenticated, 401], [Forbidden, 403], [NotFound, 404], [Conflict, 409],
  [PreconditionFailed, 412], [TooManyRequests, 429], [Unavailable, 503], [NotConfigured, 501], [UpstreamFailed, 502],
];

/** The one place a domain error becomes an HTTP status and body; undefined for an unexpected error (a 500). */
export function httpErrorOf(err: unknown): HttpError | undefined {
  if (err instanceof HttpError) return err;
  if (err instanceof DomainError) {
    for (const [kind, status] of STATUS_OF) if (err instanceof kind) return new HttpError(status, err.message, err.data);
  }
  return undefined;
}
