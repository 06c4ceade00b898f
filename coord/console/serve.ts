// The admin console at /admin: the page and its bundled assets (built by scripts/build-console.ts into
// dist/console with content-hashed names), and the few endpoints that glue a browser to the admin API:
// sign in (the API's login, its throttling included, with the token kept in an HttpOnly cookie), who am
// I, sign out, and what an invite link is about. Everything else the pages do goes through /api/v2.
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { authenticate } from '../api/admin/auth.js';
import type { ClientAddrOf } from '../api/client-addr.js';
import { badRequest, HttpError, httpErrorOf, jsonObject, readBody, sendError, sendJson } from '../api/http.js';
import type { Domain } from '../domain/index.js';
import { reserveAll, type Limiter } from '../domain/limiter.js';
import { hashSecret, parseSecret, secretMatches } from '../secrets.js';
import type { Store } from '../store/index.js';
import { ownerForCode, setOwnerPassword } from './owner-link.js';
import { checkCsrf, clearedSessionCookie, csrfToken, sessionCookie, sessionToken } from './session.js';

export interface ConsoleDeps {
  domain: Domain;
  /** The store, for what the pages read beyond the admin API (invite links, sign-in networks). */
  store: Store;
  log: Logger;
  /** Served over TLS: the session cookie is Secure. */
  tls: boolean;
  /** Failed uses of password links per client address (one limiter per server). */
  passwordFailures: Limiter;
  /** The address a request counts under for throttling (behind a trusted proxy: the forwarded one). */
  clientAddr: ClientAddrOf;
}

const storeOf = (deps: ConsoleDeps): Store => deps.store;

const ASSETS_DIR = fileURLToPath(new URL('../../console/', import.meta.url));

/** Every console answer: no inline script, nothing from elsewhere, never in a frame. */
const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  // Invite links carry a secret in the path: never hand it on.
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

const TYPES: Record<string, string> = { js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8', svg: 'image/svg+xml' };

interface Bundle {
  html: string;
  files: Map<string, Buffer>;
}

let bundle: Bundle | undefined;

/** The built assets (read once); undefined when the console was not built. */
function loadBundle(): Bundle | undefined {
  if (bundle) return bundle;
  let manifest: { js: string; css: string };
  try {
    manifest = JSON.parse(readFileSync(join(ASSETS_DIR, 'manifest.json'), 'utf8'));
  } catch {
    return undefined;
  }
  const files = new Map<string, Buffer>();
  for (const name of [manifest.js, manifest.css]) files.set(name, readFileSync(join(ASSETS_DIR, name)));
  const html =
    '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">' +
    '<meta name="viewport" content="width=device-width, initial-scale=1">' +
    '<title>meshward admin console</title>' +
    `<link rel="stylesheet" href="/admin/assets/${manifest.css}">` +
    `<script type="module" src="/admin/assets/${manifest.js}"></script>` +
    '</head><body><div id="app"></div><noscript>The admin console needs JavaScript.</noscript></body></html>\n';
  bundle = { html, files };
  return bundle;
}

function send(res: ServerResponse, status: number, type: string, body: string | Buffer, headers: Record<string, string> = {}): void {
  res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': type, 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  sendJson(res, status, body, { ...SECURITY_HEADERS, 'cache-control': 'no-store', ...headers });
}

function whoAmI(deps: ConsoleDeps, token: string) {
  const caller = authenticate(deps.domain, `Bearer ${token}`);
  if (!caller) return undefined;
  const { user, tailnet } = caller;
  return {
    user: { id: user.id, loginName: user.email, displayName: user.displayName, role: user.role },
    tailnet: { name: tailnet.name, domain: tailnet.domain },
    csrf: csrfToken(token),
  };
}

/** The networks where this email can sign in (has a password). */
function networksOf(deps: ConsoleDeps, email: string): string[] {
  return storeOf(deps).tailnetsWithPassword(email);
}

async function signIn(req: IncomingMessage, res: ServerResponse, deps: ConsoleDeps): Promise<void> {
  const b = jsonObject(await readBody(req, 16 << 10));
  if (typeof b.email !== 'string' || typeof b.password !== 'string') throw badRequest('"email" and "password" are required');
  let network = typeof b.network === 'string' ? b.network.trim() : '';
  if (!network) {
    const names = networksOf(deps, b.email);
    if (names.length > 1) throw new HttpError(400, 'This email signs in to several networks: enter the network too.', { needNetwork: true });
    network = names[0] ?? '';
  }
  // The admin API's own login: the same password check and the same throttling.
  const { token, expires } = await deps.domain.users.login(deps.clientAddr(req), network, b.email, b.password);
  json(res, 200, whoAmI(deps, token), { 'set-cookie': sessionCookie(token, expires, deps.tls) });
}

function signOut(req: IncomingMessage, res: ServerResponse, deps: ConsoleDeps): void {
  const token = sessionToken(req);
  if (token) {
    checkCsrf(req, token);
    const parsed = parseSecret(token);
    const store = storeOf(deps);
    const k = parsed && store.getKey(parsed.id);
    if (k && k.keyType === 'session' && secretMatches(token, k.hash)) store.revokeKey(k.id);
  }
  json(res, 200, {}, { 'set-cookie': clearedSessionCookie(deps.tls) });
}

/** What an invite link is about, for the page that reviews it (anyone holding the link may see this). */
function describeInvite(deps: ConsoleDeps, code: string) {
  const store = storeOf(deps);
  const parsed = parseSecret(code);
  const missing = () => new HttpError(404, 'This invite link is not valid: it is unknown, mistyped or was revoked.');
  if (!parsed || parsed.kind !== 'invite') throw missing();
  if (parsed.id.startsWith('d')) {
    const inv = store.getDeviceInvite(parsed.id);
    if (!inv || !secretMatches(code, inv.codeHash)) throw missing();
    const d = store.getDevice(inv.deviceId);
    const t = store.getTailnet(inv.tailnetId);
    const sharer = store.getUser(inv.sharerId);
    if (!d || !t) throw missing();
    return {
      kind: 'device',
      label: inv.label,
      accepted: inv.acceptedBy !== null,
      device: { name: `${d.name}.${t.domain}`, hostname: d.hostname, os: d.os, addresses: [d.ipv4, d.ipv6] },
      sharer: { loginName: sharer?.email ?? '', displayName: sharer?.displayName ?? '' },
      network: t.name,
    };
  }
  const r = store.getUserInvite(parsed.id);
  if (!r || !secretMatches(code, r.codeHash)) throw missing();
  const t = store.getTailnet(r.tailnetId);
  if (r.role === 'owner') return { kind: 'password', email: r.email, usable: !!ownerForCode(store, r, code), network: t?.name ?? '' };
  return { kind: 'user', email: r.email, role: r.role, accepted: !!r.accepted, network: t?.name ?? '' };
}

/** `POST /admin/api/password {code, password}`: the owner's one-time link (coord tailnet create) sets a password. */
async function setPassword(req: IncomingMessage, res: ServerResponse, deps: ConsoleDeps): Promise<void> {
  const b = jsonObject(await readBody(req, 16 << 10));
  if (typeof b.code !== 'string' || typeof b.password !== 'string') throw badRequest('"code" and "password" are required');
  if (b.password.length < 10) throw badRequest('"password" must have at least 10 characters');
  // A few failed tries per client address, then a pause that doubles; reserved before the hash runs.
  const { passwordFailures } = deps;
  const ip = deps.clientAddr(req);
  reserveAll([[passwordFailures, ip]]);
  let user: Awaited<ReturnType<typeof setOwnerPassword>> | undefined;
  try {
    user = await useOwnerLink(deps, b.code, b.password);
  } finally {
    if (user) passwordFailures.succeed(ip, true);
    else passwordFailures.fail(ip);
  }
  if (!user) throw new HttpError(401, 'This link is not valid: it is unknown, was used already, has expired, or its user is no longer the owner.');
  json(res, 200, { loginName: user.email, network: storeOf(deps).getTailnet(user.tailnetId)?.name ?? '' });
}

/** Sets the owner's password with a password link's code; undefined when the code is no usable link. */
async function useOwnerLink(deps: ConsoleDeps, code: string, password: string) {
  const parsed = parseSecret(code);
  const store = storeOf(deps);
  const row = parsed && parsed.kind === 'invite' ? store.getUserInvite(parsed.id) : undefined;
  if (!row) hashSecret(code); // the same work on a miss
  return row && (await setOwnerPassword(store, row, code, password));
}

/** Handles GET/POST under /admin. */
export async function handleConsole(req: IncomingMessage, res: ServerResponse, url: URL, deps: ConsoleDeps): Promise<void> {
  const method = req.method ?? 'GET';
  const path = url.pathname;
  try {
    if (path === '/admin/api/session') {
      if (method === 'POST') return await signIn(req, res, deps);
      if (method === 'DELETE') return signOut(req, res, deps);
      if (method !== 'GET') throw new HttpError(405, `method ${method} not allowed here`);
      const token = sessionToken(req);
      const me = token && whoAmI(deps, token);
      if (!me) return json(res, 401, { message: 'not signed in' }, token ? { 'set-cookie': clearedSessionCookie(deps.tls) } : {});
      return json(res, 200, me);
    }
    if (path === '/admin/api/password') {
      if (method !== 'POST') throw new HttpError(405, `method ${method} not allowed here`);
      return await setPassword(req, res, deps);
    }
    const invite = /^\/admin\/api\/invite\/([^/]+)$/.exec(path);
    if (invite) {
      if (method !== 'GET') throw new HttpError(405, `method ${method} not allowed here`);
      const code = decodeURIComponent(invite[1]!);
      try {
        return json(res, 200, describeInvite(deps, code));
      } catch (err) {
        hashSecret(code); // the same work on a miss
        throw err;
      }
    }
    if (path.startsWith('/admin/api/')) throw new HttpError(404, `no such console endpoint: ${path}`);
    if (method !== 'GET' && method !== 'HEAD') throw new HttpError(405, `method ${method} not allowed here`);

    const b = loadBundle();
    if (!b) return send(res, 503, 'text/plain; charset=utf-8', 'The admin console was not built: run `npm run build`.\n');
    const asset = /^\/admin\/assets\/([A-Za-z0-9._-]+)$/.exec(path);
    if (asset) {
      const file = b.files.get(asset[1]!);
      if (!file) return send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
      const type = TYPES[asset[1]!.split('.').pop()!] ?? 'application/octet-stream';
      // Names carry a hash of their content: cache them for good.
      return send(res, 200, type, file, { 'cache-control': 'public, max-age=31536000, immutable' });
    }
    // Every other path under /admin is a page of the console (it routes in the browser).
    send(res, 200, 'text/html; charset=utf-8', b.html, { 'cache-control': 'no-store' });
  } catch (err) {
    const known = httpErrorOf(err);
    if (known) return sendError(res, known);
    deps.log.error({ err, path }, 'console request failed');
    sendError(res, new HttpError(500, 'internal error'));
  }
}
