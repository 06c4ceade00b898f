// The admin API (Tailscale API v2 paths and shapes). Every route names one permission of the role
// matrix (../../roles.ts); the router authenticates the caller and checks it once, before the handler.
// Handlers live with their resource family; they call the domain layer and shape JSON (json.ts).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { can, FORBIDDEN_MESSAGE } from '../../roles.js';
import { HttpError, httpErrorOf, matchPath, readBody, sendError, sendJson } from '../http.js';
import { auditRoutes } from './audit.js';
import { consoleAuthorization } from '../../console/session.js';
import { authenticate } from './auth.js';
import type { AdminDeps, Answer, Call, Route } from './call.js';
import { deviceRoutes, routeRoutes } from './devices.js';
import { keyRoutes } from './keys.js';
import { logStreamRoutes } from './log-streams.js';
import { policyRoutes } from './policy.js';
import { shareRoutes } from './shares.js';
import { billingRoutes, dnsRoutes, nameRoutes, settingsRoutes } from './tailnet.js';
import { publicRoutes, userInviteRoutes, userRoutes } from './users.js';
import { webhookRoutes } from './webhooks.js';

export const ROUTES: readonly Route[] = [
  ...policyRoutes,
  ...dnsRoutes,
  ...routeRoutes,
  ...settingsRoutes,
  ...userInviteRoutes,
  ...deviceRoutes,
  ...userRoutes,
  ...keyRoutes,
  ...shareRoutes,
  ...auditRoutes,
  ...logStreamRoutes,
  ...webhookRoutes,
  ...nameRoutes,
  ...billingRoutes,
];

export type { AdminDeps } from './call.js';

/** The admin API of one server. */
export class AdminApi {
  constructor(private readonly deps: AdminDeps) {}

  /** Handles a request under /api/v2. */
  async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const { deps } = this;
    try {
      const method = req.method ?? 'GET';
      const pub = publicRoutes[`${method} ${url.pathname.replace(/\/+$/, '')}`];
      if (pub) return answer(res, await pub(req, deps, await readBody(req)));

      let route: Route | undefined;
      let params: Record<string, string> | undefined;
      let pathKnown = false;
      for (const r of ROUTES) {
        const p = matchPath(r.pattern, url.pathname);
        if (!p) continue;
        pathKnown = true;
        if (r.method === method) {
          route = r;
          params = p;
          break;
        }
      }
      if (!route) throw new HttpError(pathKnown ? 405 : 404, pathKnown ? `method ${method} not allowed here` : `no such API endpoint: ${url.pathname}`);

      // The admin console's session cookie (with its CSRF header) stands in for a bearer key.
      const caller = authenticate(deps.domain, req.headers.authorization ?? consoleAuthorization(req));
      if (!caller) throw new HttpError(401, 'missing, unknown, expired or revoked API key (send "Authorization: Bearer <key>")');
      if (!can(caller.user.role, route.perm)) throw new HttpError(403, FORBIDDEN_MESSAGE);

      let body: Promise<Buffer> | undefined;
      const call: Call = { req, url, params: params!, caller, deps, domain: deps.domain, body: () => (body ??= readBody(req)) };
      answer(res, await route.handler(call));
    } catch (err) {
      const known = httpErrorOf(err);
      if (known) return sendError(res, known);
      deps.log.error({ err, path: url.pathname }, 'admin API request failed');
      sendError(res, new HttpError(500, 'internal error'));
    }
  }
}

function answer(res: ServerResponse, a: Answer): void {
  if (a.text !== undefined) {
    res.writeHead(a.status ?? 200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(a.text), ...a.headers });
    res.end(a.text);
    return;
  }
  sendJson(res, a.status ?? 200, a.body ?? {}, a.headers);
}
