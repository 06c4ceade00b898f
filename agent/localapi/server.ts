// The daemon's side of the local API: JSON over HTTP on a unix socket that only root may open.
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect } from 'node:net';
import { dirname } from 'node:path';

const MAX_BODY = 64 * 1024;

/** Thrown by a handler to answer with this status and message. */
export class LocalApiHttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** A handler's answer that is text, not JSON (the metrics' exposition format). */
export class TextAnswer {
  constructor(
    readonly contentType: string,
    readonly text: string,
  ) {}
}

export type Handler = (body: unknown, query: URLSearchParams) => Promise<unknown> | unknown;

/** Routes are "METHOD /path", e.g. "GET /status". */
export type Routes = Record<string, Handler>;

function readBody(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new LocalApiHttpError(413, 'request body too large'));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      if (text === '') return resolve(undefined);
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(new LocalApiHttpError(400, 'request body is not JSON'));
      }
    });
    req.on('error', reject);
  });
}

/** True when something accepts connections on the socket path. */
function socketInUse(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export async function serveLocalApi(socketPath: string, routes: Routes, onError: (err: unknown) => void): Promise<Server> {
  mkdirSync(dirname(socketPath), { recursive: true, mode: 0o755 });
  if (await socketInUse(socketPath)) {
    throw new Error(`another agent is already running on ${socketPath}`);
  }
  rmSync(socketPath, { force: true });
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://local');
    const handler = routes[`${req.method} ${url.pathname}`];
    const answer = (status: number, value: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(value));
    };
    if (!handler) {
      answer(404, { message: `no such local API endpoint: ${req.method} ${url.pathname}` });
      return;
    }
    readBody(req)
      .then((body) => handler(body, url.searchParams))
      .then((result) => {
        if (!(result instanceof TextAnswer)) return answer(200, result ?? {});
        res.writeHead(200, { 'content-type': result.contentType });
        res.end(result.text);
      })
      .catch((err: unknown) => {
        if (err instanceof LocalApiHttpError) answer(err.status, { message: err.message });
        else {
          onError(err);
          answer(500, { message: err instanceof Error ? err.message : String(err) });
        }
      });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  chmodSync(socketPath, 0o600);
  return server;
}
