// What an admin API handler gets (the request, its path parameters, the authenticated caller, the
// domain) and gives back (an answer), and the route table's entry type.
import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import type { Caller, Domain } from '../../domain/index.js';
import { NotFound } from '../../errors.js';
import type { Permission } from '../../roles.js';
import type { Tailnet } from '../../store/index.js';
import type { ClientAddrOf } from '../client-addr.js';
import { compilePath, jsonObject, type PathPattern } from '../http.js';

export interface AdminDeps {
  domain: Domain;
  log: Logger;
  /** The URL people reach this server at (invite links); known once the server listens. */
  publicUrl: () => string;
  /** The address a request counts under for sign-in throttling (behind a trusted proxy: the forwarded one). */
  clientAddr: ClientAddrOf;
}

export interface Call {
  req: IncomingMessage;
  url: URL;
  params: Record<string, string>;
  caller: Caller;
  body: () => Promise<Buffer>;
  deps: AdminDeps;
  domain: Domain;
}

export interface Answer {
  status?: number;
  body?: unknown;
  text?: string;
  headers?: Record<string, string>;
}

export interface Route {
  method: string;
  pattern: PathPattern;
  path: string;
  /** The permission of the role matrix (../../roles.ts) the caller needs. */
  perm: Permission;
  handler: (c: Call) => Promise<Answer> | Answer;
}

/** A route under /api/v2. */
export const route = (method: string, path: string, perm: Permission, handler: Route['handler']): Route => ({
  method, path, pattern: compilePath('/api/v2' + path), perm, handler,
});

/** `{t}`: the caller's own tailnet by name, by its id (users' `tailnetId`) or `-`. Another or unknown tailnet is not found. */
export function tailnetParam(c: Call): Tailnet {
  const t = c.params.t!;
  if (t === '-' || t === c.caller.tailnet.name || t === String(c.caller.tailnet.id)) return c.caller.tailnet;
  throw new NotFound(`tailnet "${t}" not found`);
}

/** The request body as a JSON object. */
export async function bodyObject(c: Call): Promise<Record<string, unknown>> {
  return jsonObject(await c.body());
}

/** The request body as text, or undefined when there is none. */
export async function bodyText(c: Call): Promise<string | undefined> {
  const body = await c.body();
  return body.length > 0 ? body.toString('utf8') : undefined;
}
