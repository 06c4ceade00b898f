// The admin API (Tailscale API v2 paths and shapes). Every route names one permission of the role
// matrix (../roles.ts); `handleAdmin` authenticates the caller and checks it once, before the handler.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIPv4, isIPv6 } from 'node:net';
import { parse as parseJsonc, printParseErrorCode, type ParseError } from 'jsonc-parser';
import type { Logger } from 'pino';
import { preview } from '../policy/index.js';
import { can, FORBIDDEN_MESSAGE, type Permission } from '../roles.js';
import { hashPassword, hashSecret, newSecret, parseSecret, randomToken, secretMatches, verifyPassword } from '../secrets.js';
import { Conflict, dnsLabel, ROLES, type Device, type DeviceInvite, type Key, type Role, type Share, type Store, type Tailnet, type User } from '../store/index.js';
import { checkPolicyTextAsync, etagOf, gatePolicyAsync, ownsTag, parseStored, tagDefined, policyHttpError, topologyOf } from '../policy-service.js';
import type { NetmapHub } from '../netmap.js';
import { webhookTarget } from '../webhook-target.js';
import { badRequest, compilePath, HttpError, jsonObject, matchPath, parseJson, notFound, readBody, sendError, sendJson, type PathPattern } from './http.js';

export interface AdminDeps {
  store: Store;
  hub: NetmapHub;
  log: Logger;
  /** Called after every committed configuration change (webhooks subscribe here). */
  onEvent?: (tailnetId: number, type: string, data: Record<string, unknown>) => void;
  /** The URL people reach this server at (invite links). */
  publicUrl: string;
  allowPrivateWebhooks?: boolean;
}

interface Caller {
  user: User;
  tailnet: Tailnet;
  keyId: string;
}

interface Call {
  req: IncomingMessage;
  url: URL;
  params: Record<string, string>;
  caller: Caller;
  body: () => Promise<Buffer>;
  deps: AdminDeps;
}

interface Answer {
  status?: number;
  body?: unknown;
  text?: string;
  headers?: Record<string, string>;
}

interface Route {
  method: string;
  pattern: PathPattern;
  path: string;
  /** null: no bearer token (login, accepting an invite). */
  perm: Permission | null;
  handler: (c: Call) => Promise<Answer> | Answer;
}

const forbidden = (message = FORBIDDEN_MESSAGE) => new HttpError(403, message);
const DAY = 86_400_000;

// ── helpers ───────────────────────────────────────────────────────────────────

/** `{t}`: the caller's own network by name or `-`. Another or unknown network is 404. */
function tailnetParam(c: Call): Tailnet {
  const t = c.params.t!;
  if (t === '-' || t === c.caller.tailnet.name) return c.caller.tailnet;
  throw notFound(`tailnet "${t}"`);
}

function deviceParam(c: Call): Device {
  const d = c.deps.store.getDevice(c.params.id!);
  if (!d || d.tailnetId !== c.caller.tailnet.id) throw notFound(`device "${c.params.id}"`);
  return d;
}

function userParam(c: Call): User {
  const u = c.deps.store.getUser(c.params.id!);
  if (!u || u.tailnetId !== c.caller.tailnet.id) throw notFound(`user "${c.params.id}"`);
  return u;
}

function actorOf(c: Call) {
  return { id: c.caller.user.id, type: 'USER', loginName: c.caller.user.email, displayName: c.caller.user.displayName };
}

/** Records an audit entry (call inside the write's transaction). */
function audit(c: Call, action: string, target: Record<string, unknown>, old?: unknown, neu?: unknown): void {
  c.deps.store.addAudit(c.caller.tailnet.id, { type: 'CONFIG', origin: 'ADMIN_API', actor: actorOf(c), target, action, old, new: neu });
}

function emit(c: Call, type: string, data: Record<string, unknown>): void {
  c.deps.onEvent?.(c.caller.tailnet.id, type, { ...data, actor: c.caller.user.email });
}

function str(v: unknown, field: string): string {
  if (typeof v !== 'string') throw badRequest(`"${field}" must be a string`);
  return v;
}

function strList(v: unknown, field: string): string[] {
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw badRequest(`"${field}" must be a list of strings`);
  return v as string[];
}

function boolField(v: unknown, field: string): boolean {
  if (typeof v !== 'boolean') throw badRequest(`"${field}" must be true or false`);
  return v;
}

function isCidr(s: string): boolean {
  const [ip, bits, ...rest] = s.split('/');
  if (rest.length > 0 || bits === undefined || !/^\d+$/.test(bits)) return false;
  if (isIPv4(ip!)) return Number(bits) <= 32;
  if (isIPv6(ip!)) return Number(bits) <= 128;
  return false;
}

const TAG_RE = /^tag:[A-Za-z][A-Za-z0-9-]*$/;

/** Checks that the caller may apply every tag; the refusal names the tags like Tailscale does. */
function checkTags(c: Call, tags: string[]): void {
  const policy = c.deps.hub.policyOf(c.caller.tailnet.id);
  const bad = tags.filter(
    (t) => !TAG_RE.test(t) || !tagDefined(policy, t) || !(can(c.caller.user.role, 'tags:any') || ownsTag(policy, c.caller.user, [], t)),
  );
  if (bad.length > 0) throw forbidden(`requested tags [${bad.join(', ')}] are invalid or not permitted`);
}

export function deviceJson(d: Device, t: Tailnet, owner: User | undefined, online: boolean) {
  return {
    id: d.id,
    nodeId: d.id,
    addresses: [d.ipv4, d.ipv6],
    user: owner?.email ?? '',
    name: `${d.name}.${t.domain}`,
    hostname: d.hostname,
    clientVersion: d.clientVersion,
    updateAvailable: false,
    os: d.os,
    created: d.created,
    lastSeen: d.lastSeen,
    connectedToControl: online,
    keyExpiryDisabled: d.keyExpiryDisabled,
    expires: d.expires,
    authorized: d.authorized,
    isExternal: false,
    machineKey: `mkey:${d.machineKey}`,
    nodeKey: `nodekey:${d.nodeKey}`,
    blocksIncomingConnections: false,
    tags: d.tags,
    advertisedRoutes: d.advertisedRoutes,
    enabledRoutes: d.enabledRoutes,
    clientConnectivity: { endpoints: d.endpoints },
  };
}

/** Devices per user of a network. */
function deviceCounts(store: Store, tailnetId: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (const d of store.listDevices(tailnetId)) counts.set(d.userId, (counts.get(d.userId) ?? 0) + 1);
  return counts;
}

function userJson(u: User, store: Store, counts = deviceCounts(store, u.tailnetId)) {
  return {
    id: u.id,
    displayName: u.displayName,
    loginName: u.email,
    profilePicUrl: '',
    tailnetId: String(u.tailnetId),
    created: u.created,
    type: 'member',
    role: u.role,
    status: u.status,
    deviceCount: counts.get(u.id) ?? 0,
    lastSeen: u.lastSeen ?? u.created,
    currentlyConnected: false,
  };
}

function keyJson(k: Key, store: Store, secret?: string) {
  const out: Record<string, unknown> = {
    id: k.id,
    keyType: k.keyType,
    description: k.description,
    created: k.created,
    expires: k.expires,
    revoked: k.revoked ?? undefined,
    invalid: !!k.revoked || (k.expires !== null && Date.parse(k.expires) <= Date.now()),
  };
  if (secret) out.key = secret;
  if (k.keyType === 'auth') {
    out.capabilities = {
      devices: { create: { reusable: k.reusable, ephemeral: k.ephemeral, preauthorized: k.preauthorized, tags: k.tags } },
    };
    out.user = k.deviceUserId ? store.getUser(k.deviceUserId)?.email : undefined;
  } else {
    out.userId = k.userId;
  }
  return out;
}

// ── policy ────────────────────────────────────────────────────────────────────

function policyText(body: Buffer): string {
  const text = body.toString('utf8');
  if (text.trim() === '') throw badRequest('empty policy file');
  return text;
}

function getAcl(c: Call): Answer {
  const t = tailnetParam(c);
  const accept = String(c.req.headers.accept ?? '');
  if (accept.includes('application/hujson')) {
    return { text: t.policy, headers: { 'content-type': 'application/hujson', etag: t.policyEtag } };
  }
  // JSON: the parsed file without comments (what Tailscale answers by default).
  const errors: ParseError[] = [];
  const value = parseJsonc(t.policy, errors, { allowTrailingComma: true, disallowComments: false });
  if (errors.length > 0) throw new HttpError(500, `stored policy does not parse: ${printParseErrorCode(errors[0]!.error)}`);
  return { body: value, headers: { etag: t.policyEtag } };
}

async function postAcl(c: Call): Promise<Answer> {
  const t = tailnetParam(c);
  const text = policyText(await c.body());
  const ifMatch = c.req.headers['if-match'];
  const conditional = ifMatch !== undefined && ifMatch !== '*' && ifMatch !== 'ts-default';
  if (conditional && ifMatch !== t.policyEtag) {
    throw new HttpError(412, 'precondition failed: the policy was changed since it was read (If-Match does not match the current ETag)');
  }
  const { store, hub } = c.deps;
  const policy = await checkPolicyTextAsync(text, () => topologyOf(store, t.id));
  // Compile into the live network first: a policy that does not compile is refused with nothing stored.
  let prepared;
  try {
    prepared = hub.preparePolicy(t.id, policy);
  } catch (err) {
    throw policyHttpError(err);
  }
  const etag = etagOf(text);
  try {
    store.tx(() => {
      const current = store.getTailnet(t.id)!;
      if (conditional && current.policyEtag !== ifMatch) throw new HttpError(412, 'precondition failed: the policy was changed since it was read');
      store.setPolicy(t.id, text, etag);
      audit(c, 'UPDATE', { id: String(t.id), name: t.name, type: 'TAILNET', property: 'ACL' }, current.policy, text);
    });
  } catch (err) {
    prepared.rollback();
    throw err;
  }
  prepared.commit();
  c.deps.log.info({ tailnet: t.name, actor: c.caller.user.email, etag }, 'policy updated');
  emit(c, 'policyUpdate', { tailnet: t.name });
  return { text, headers: { 'content-type': 'application/hujson', etag } };
}

async function validateAcl(c: Call): Promise<Answer> {
  const t = tailnetParam(c);
  const body = await c.body();
  const text = body.length > 0 ? policyText(body) : t.policy;
  try {
    await gatePolicyAsync(text, topologyOf(c.deps.store, t.id));
  } catch (err) {
    // Tailscale answers a validation whose tests ran and failed with 200 and the failures in the body;
    // a file that does not parse or validate is a 400.
    if (err instanceof HttpError && err.status === 400 && err.data !== undefined) return { body: { message: err.message, data: err.data } };
    throw err;
  }
  return { body: {} };
}

async function previewAcl(c: Call): Promise<Answer> {
  const t = tailnetParam(c);
  const type = c.url.searchParams.get('type') ?? 'user';
  const previewFor = c.url.searchParams.get('previewFor');
  if (type !== 'user' && type !== 'ipport') throw badRequest('"type" must be "user" or "ipport"');
  if (!previewFor) throw badRequest('"previewFor" is required (an email for type=user, an ip:port for type=ipport)');
  const body = await c.body();
  const text = body.length > 0 ? policyText(body) : t.policy;
  try {
    const policy = parseStored(text);
    const who = type === 'user' ? { user: previewFor } : { ipPort: previewFor };
    const result = preview(policy, topologyOf(c.deps.store, t.id), who as never);
    return { body: { ...(result as object), type, previewFor } };
  } catch (err) {
    throw policyHttpError(err);
  }
}

// ── devices ───────────────────────────────────────────────────────────────────

function listDevices(c: Call): Answer {
  const t = tailnetParam(c);
  const { store, hub } = c.deps;
  const users = new Map(store.listUsers(t.id).map((u) => [u.id, u]));
  const own = store.listDevices(t.id).map((d) => deviceJson(d, t, users.get(d.userId), hub.isOnline(t.id, d.id)));
  const seen = new Set<string>();
  const external = [];
  for (const sh of store.sharesInto(t.id)) {
    if (seen.has(sh.deviceId)) continue;
    seen.add(sh.deviceId);
    const e = externalDevice(c, sh);
    if (e) external.push(e);
  }
  return { body: { devices: [...own, ...external] } };
}

function getDevice(c: Call): Answer {
  const shared = sharedInParam(c);
  if (shared) return { body: externalDevice(c, shared[0]!) };
  const d = deviceParam(c);
  const t = c.caller.tailnet;
  return { body: deviceJson(d, t, c.deps.store.getUser(d.userId), c.deps.hub.isOnline(t.id, d.id)) };
}

/** Applies a device change in one transaction with its audit entry, then tells the hub. */
function changeDevice(c: Call, d: Device, property: string, patch: Parameters<Store['updateDevice']>[1], old: unknown, neu: unknown): Device {
  const { store } = c.deps;
  const updated = store.tx(() => {
    const u = store.updateDevice(d.id, patch);
    audit(c, 'UPDATE', { id: d.id, name: `${d.name}.${c.caller.tailnet.domain}`, type: 'NODE', property }, old, neu);
    return u;
  });
  c.deps.hub.deviceChanged(d.tailnetId, d.id);
  return updated;
}

async function deleteDevice(c: Call): Promise<Answer> {
  // A device shared into this network: removing it here ends the shares (the recipient's revoke).
  const shared = sharedInParam(c);
  if (shared) {
    revokeShares(c, shared);
    return { body: {} };
  }
  removeDevice(c.deps, deviceParam(c), 'ADMIN_API', actorOf(c));
  return { body: {} };
}

/**
 * Deletes a device of its own network with its audit entry, updates the netmaps of its peers and of
 * the networks it is shared into (its own stream gets `logout`), and emits nodeDeleted. Both an admin's
 * `DELETE /device/{id}` and the device's own `POST /machine/logout` come here.
 */
export function removeDevice(
  deps: Pick<AdminDeps, 'store' | 'hub' | 'onEvent'>,
  d: Device,
  origin: 'ADMIN_API' | 'NODE',
  actor: { id: string; type: string; loginName: string; displayName: string },
): void {
  const { store, hub } = deps;
  const domain = store.getTailnet(d.tailnetId)?.domain ?? '';
  const partners = store.sharesFrom(d.tailnetId).filter((sh) => sh.deviceId === d.id).map((sh) => sh.recipientTailnetId);
  store.tx(() => {
    store.deleteDevice(d.id);
    store.addAudit(d.tailnetId, {
      type: 'CONFIG', origin, actor, target: { id: d.id, name: `${d.name}.${domain}`, type: 'NODE' }, action: 'DELETE',
      old: { name: d.name, addresses: [d.ipv4, d.ipv6] }, new: undefined,
    });
  });
  hub.deviceChanged(d.tailnetId, d.id);
  if (partners.length > 0) hub.sharingChanged([d.tailnetId, ...partners]);
  deps.onEvent?.(d.tailnetId, 'nodeDeleted', { nodeID: d.id, deviceName: d.name, actor: actor.loginName });
}

async function authorizeDevice(c: Call): Promise<Answer> {
  const d = deviceParam(c);
  const authorized = boolField(jsonObject(await c.body()).authorized, 'authorized');
  changeDevice(c, d, 'AUTHORIZED', { authorized }, d.authorized, authorized);
  if (authorized && !d.authorized) emit(c, 'nodeApproved', { nodeID: d.id, deviceName: d.name });
  return { body: {} };
}

async function renameDevice(c: Call): Promise<Answer> {
  const d = deviceParam(c);
  const raw = str(jsonObject(await c.body()).name, 'name');
  const label = dnsLabel(raw.split('.')[0]!);
  if (c.deps.store.freeName(d.tailnetId, label, d.id) !== label) throw new HttpError(409, `name "${label}" is already used by another device`);
  changeDevice(c, d, 'NAME', { name: label }, d.name, label);
  return { body: {} };
}

async function expireDevice(c: Call): Promise<Answer> {
  const d = deviceParam(c);
  const at = new Date().toISOString();
  changeDevice(c, d, 'KEY_EXPIRY', { expires: at, keyExpiryDisabled: false }, d.expires, at);
  emit(c, 'nodeKeyExpired', { nodeID: d.id, deviceName: d.name });
  return { body: {} };
}

async function deviceKey(c: Call): Promise<Answer> {
  const d = deviceParam(c);
  const disabled = boolField(jsonObject(await c.body()).keyExpiryDisabled, 'keyExpiryDisabled');
  changeDevice(c, d, 'KEY_EXPIRY_DISABLED', { keyExpiryDisabled: disabled }, d.keyExpiryDisabled, disabled);
  return { body: {} };
}

async function setDeviceTags(c: Call): Promise<Answer> {
  const d = deviceParam(c);
  const tags = [...new Set(strList(jsonObject(await c.body()).tags, 'tags'))];
  checkTags(c, tags);
  changeDevice(c, d, 'TAGS', { tags }, d.tags, tags);
  return { body: {} };
}

function getRoutes(c: Call): Answer {
  const d = deviceParam(c);
  return { body: { advertisedRoutes: d.advertisedRoutes, enabledRoutes: d.enabledRoutes } };
}

async function setRoutes(c: Call): Promise<Answer> {
  const d = deviceParam(c);
  const routes = strList(jsonObject(await c.body()).routes, 'routes');
  const bad = routes.filter((r) => !isCidr(r));
  if (bad.length > 0) throw badRequest(`invalid routes: ${bad.join(', ')} (expected CIDR prefixes like 10.0.0.0/24)`);
  const notOffered = routes.filter((r) => !d.advertisedRoutes.includes(r));
  if (notOffered.length > 0) throw badRequest(`routes not advertised by the device: ${notOffered.join(', ')}`);
  const u = changeDevice(c, d, 'ROUTES', { enabledRoutes: routes }, d.enabledRoutes, routes);
  return { body: { advertisedRoutes: u.advertisedRoutes, enabledRoutes: u.enabledRoutes } };
}

// ── users ─────────────────────────────────────────────────────────────────────

function listUsers(c: Call): Answer {
  const t = tailnetParam(c);
  const type = c.url.searchParams.get('type');
  const role = c.url.searchParams.get('role');
  let users = c.deps.store.listUsers(t.id);
  if (type === 'shared') return { body: { users: sharedUsersOf(c.deps.store, t) } };
  if (type && type !== 'member' && type !== 'all') throw badRequest(`"type" must be member, shared or all`);
  if (role) users = users.filter((u) => u.role === role);
  const counts = deviceCounts(c.deps.store, t.id);
  const out = users.map((u) => userJson(u, c.deps.store, counts));
  return { body: { users: type === 'all' ? [...out, ...sharedUsersOf(c.deps.store, t)] : out } };
}

function getUser(c: Call): Answer {
  return { body: userJson(userParam(c), c.deps.store) };
}

async function setUserRole(c: Call): Promise<Answer> {
  const target = userParam(c);
  const role = str(jsonObject(await c.body()).role, 'role') as Role;
  if (!ROLES.includes(role)) throw badRequest(`unknown role "${role}" (one of ${ROLES.join(', ')})`);
  const me = c.caller.user;
  const { store } = c.deps;
  if (target.id === me.id) throw forbidden('users cannot change their own role (an owner hands ownership to another user instead)');
  if (target.role === 'owner') throw forbidden("the owner's role changes only when the owner hands ownership to another user");
  if (role === 'owner' && me.role !== 'owner') throw forbidden('only the owner can hand ownership to another user');
  if (target.role === role) return { body: userJson(target, store) };
  store.tx(() => {
    store.setUserRole(target.id, role);
    audit(c, 'UPDATE', { id: target.id, name: target.email, type: 'USER', property: 'ROLE' }, target.role, role);
    if (role === 'owner') {
      store.setUserRole(me.id, 'admin');
      audit(c, 'UPDATE', { id: me.id, name: me.email, type: 'USER', property: 'ROLE' }, 'owner', 'admin');
    }
  });
  c.deps.hub.usersChanged(target.tailnetId);
  emit(c, 'userRoleUpdated', { user: target.email, oldRole: target.role, newRole: role });
  return { body: userJson(store.getUser(target.id)!, store) };
}

function userStatusRoute(action: 'approve' | 'suspend' | 'restore' | 'delete') {
  return (c: Call): Answer => {
    const target = userParam(c);
    const { store } = c.deps;
    if (action === 'suspend' || action === 'delete') {
      if (target.role === 'owner') throw forbidden(`the owner cannot be ${action === 'delete' ? 'deleted' : 'suspended'} before ownership has moved to another user`);
      if (target.id === c.caller.user.id) throw forbidden(`you cannot ${action} yourself`);
    }
    const next = action === 'suspend' ? 'suspended' : 'active';
    if (action === 'approve' && target.status !== 'needs-approval') throw badRequest('user does not need approval');
    if (action === 'restore' && target.status !== 'suspended') throw badRequest('user is not suspended');
    store.tx(() => {
      if (action === 'delete') store.deleteUser(target.id);
      else store.setUserStatus(target.id, next);
      audit(c, action.toUpperCase(), { id: target.id, name: target.email, type: 'USER' }, target.status, action === 'delete' ? undefined : next);
    });
    c.deps.hub.usersChanged(target.tailnetId);
    emit(c, action === 'delete' ? 'userDeleted' : action === 'approve' ? 'userApproved' : action === 'suspend' ? 'userSuspended' : 'userRestored', { user: target.email });
    return { body: {} };
  };
}

// ── keys ──────────────────────────────────────────────────────────────────────

async function createKey(c: Call): Promise<Answer> {
  const t = tailnetParam(c);
  const b = jsonObject(await c.body());
  const keyType = b.keyType === undefined ? 'auth' : str(b.keyType, 'keyType');
  if (keyType !== 'auth' && keyType !== 'api') throw badRequest('"keyType" must be "auth" or "api"');
  if (keyType === 'api' && !can(c.caller.user.role, 'keys:api')) throw forbidden();
  const expirySeconds = b.expirySeconds === undefined ? 90 * 86400 : Number(b.expirySeconds);
  if (!Number.isInteger(expirySeconds) || expirySeconds < 1 || expirySeconds > 90 * 86400) {
    throw badRequest('"expirySeconds" must be a whole number of seconds between 1 and 7776000 (90 days)');
  }
  const description = b.description === undefined ? '' : str(b.description, 'description');
  if (description.length > 50) throw badRequest('"description" must be at most 50 characters');
  const expires = new Date(Date.now() + expirySeconds * 1000).toISOString();
  const { store } = c.deps;
  let created;
  if (keyType === 'api') {
    created = store.tx(() => {
      const k = store.createKey({ tailnetId: t.id, keyType: 'api', userId: c.caller.user.id, description, expires });
      audit(c, 'CREATE', { id: k.key.id, name: description, type: 'API_KEY' }, undefined, { expires });
      return k;
    });
  } else {
    const caps = (b.capabilities as Record<string, any> | undefined)?.devices?.create ?? {};
    if (typeof caps !== 'object') throw badRequest('"capabilities.devices.create" must be an object');
    const tags = caps.tags === undefined ? [] : [...new Set(strList(caps.tags, 'capabilities.devices.create.tags'))];
    if (tags.length > 0) checkTags(c, tags);
    let deviceUser = c.caller.user;
    if (b.user !== undefined) {
      const u = store.getUserByEmail(t.id, str(b.user, 'user'));
      if (!u) throw badRequest(`"user": no user ${JSON.stringify(b.user)} in this network`);
      if (u.id !== c.caller.user.id) {
        if (!can(c.caller.user.role, 'keys:for-others')) throw forbidden('only owners and admins may create auth keys for another user');
        if (u.role === 'owner') throw forbidden("only the owner may create auth keys for the owner's devices");
        if (u.status !== 'active') throw badRequest(`"user": ${u.email} is not active`);
      }
      deviceUser = u;
    }
    const flag = (v: unknown, f: string) => (v === undefined ? false : boolField(v, `capabilities.devices.create.${f}`));
    const opts = { reusable: flag(caps.reusable, 'reusable'), ephemeral: flag(caps.ephemeral, 'ephemeral'), preauthorized: flag(caps.preauthorized, 'preauthorized') };
    created = store.tx(() => {
      const k = store.createKey({ tailnetId: t.id, keyType: 'auth', userId: c.caller.user.id, deviceUserId: deviceUser.id, tags, description, expires, ...opts });
      audit(c, 'CREATE', { id: k.key.id, name: description, type: 'AUTH_KEY' }, undefined, { ...opts, tags, user: deviceUser.email, expires });
      return k;
    });
  }
  return { body: keyJson(created.key, store, created.secret.secret) };
}

function listKeys(c: Call): Answer {
  const t = tailnetParam(c);
  return { body: { keys: c.deps.store.listKeys(t.id, c.caller.user.id).map((k) => keyJson(k, c.deps.store)) } };
}

function keyParam(c: Call): Key {
  const t = tailnetParam(c);
  const k = c.deps.store.getKey(c.params.id!);
  if (!k || k.tailnetId !== t.id || k.keyType === 'session' || (k.keyType === 'api' && k.userId !== c.caller.user.id)) {
    throw notFound(`key "${c.params.id}"`);
  }
  return k;
}

function getKey(c: Call): Answer {
  return { body: keyJson(keyParam(c), c.deps.store) };
}

function deleteKey(c: Call): Answer {
  const k = keyParam(c);
  const { store } = c.deps;
  store.tx(() => {
    store.revokeKey(k.id);
    audit(c, 'DELETE', { id: k.id, name: k.description, type: k.keyType === 'api' ? 'API_KEY' : 'AUTH_KEY' });
  });
  return { body: {} };
}

// ── network configuration, settings, name, billing ────────────────────────────

function dnsGet(field: 'nameservers' | 'searchPaths' | 'magicDNS') {
  return (c: Call): Answer => {
    const dns = tailnetParam(c).dns;
    if (field === 'nameservers') return { body: { dns: dns.nameservers ?? [] } };
    if (field === 'searchPaths') return { body: { searchPaths: dns.searchPaths ?? [] } };
    return { body: { magicDNS: dns.magicDNS !== false } };
  };
}

function dnsSet(field: 'nameservers' | 'searchPaths' | 'magicDNS') {
  return async (c: Call): Promise<Answer> => {
    const t = tailnetParam(c);
    const b = jsonObject(await c.body());
    const dns = { ...t.dns };
    if (field === 'nameservers') {
      const list = strList(b.dns, 'dns');
      const bad = list.filter((ip) => !isIPv4(ip) && !isIPv6(ip));
      if (bad.length > 0) throw badRequest(`invalid nameserver address: ${bad.join(', ')}`);
      dns.nameservers = list;
    } else if (field === 'searchPaths') {
      dns.searchPaths = strList(b.searchPaths, 'searchPaths');
    } else {
      dns.magicDNS = boolField(b.magicDNS, 'magicDNS');
    }
    const { store } = c.deps;
    store.tx(() => {
      store.setTailnetDns(t.id, dns);
      audit(c, 'UPDATE', { id: String(t.id), name: t.name, type: 'TAILNET', property: `DNS_${field.toUpperCase()}` }, t.dns[field], dns[field]);
    });
    c.deps.hub.tailnetChanged(t.id);
    const answer = field === 'nameservers' ? { dns: dns.nameservers, magicDNS: dns.magicDNS !== false } : field === 'searchPaths' ? { searchPaths: dns.searchPaths } : { magicDNS: dns.magicDNS };
    return { body: answer };
  };
}

const SETTINGS_DEFAULTS = { devicesApprovalOn: false, devicesAutoUpdatesOn: false, devicesKeyDurationDays: 180, usersApprovalOn: false };
const SETTINGS_CHECK: Record<string, (v: unknown) => boolean> = {
  devicesApprovalOn: (v) => typeof v === 'boolean',
  devicesAutoUpdatesOn: (v) => typeof v === 'boolean',
  usersApprovalOn: (v) => typeof v === 'boolean',
  devicesKeyDurationDays: (v) => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 180,
};

export function settingsOf(t: Tailnet): typeof SETTINGS_DEFAULTS {
  const s = { ...SETTINGS_DEFAULTS };
  for (const k of Object.keys(SETTINGS_DEFAULTS)) if (t.settings[k] !== undefined) (s as Record<string, unknown>)[k] = t.settings[k];
  return s;
}

function getSettings(c: Call): Answer {
  return { body: settingsOf(tailnetParam(c)) };
}

async function patchSettings(c: Call): Promise<Answer> {
  const t = tailnetParam(c);
  const b = jsonObject(await c.body());
  for (const [k, v] of Object.entries(b)) {
    const check = SETTINGS_CHECK[k];
    if (!check) throw badRequest(`unknown setting "${k}" (known: ${Object.keys(SETTINGS_CHECK).join(', ')})`);
    if (!check(v)) throw badRequest(k === 'devicesKeyDurationDays' ? `"${k}" must be a whole number of days from 1 to 180` : `"${k}" must be true or false`);
  }
  const { store } = c.deps;
  const next = { ...t.settings, ...b };
  store.tx(() => {
    store.setTailnetSettings(t.id, next);
    audit(c, 'UPDATE', { id: String(t.id), name: t.name, type: 'TAILNET', property: 'SETTINGS' }, settingsOf(t), b);
  });
  return { body: settingsOf(store.getTailnet(t.id)!) };
}

async function renameTailnet(c: Call): Promise<Answer> {
  const t = tailnetParam(c);
  const name = str(jsonObject(await c.body()).name, 'name');
  if (!/^[A-Za-z0-9][A-Za-z0-9.@_-]{0,99}$/.test(name)) throw badRequest('"name" may hold letters, digits and . @ _ - (at most 100 characters)');
  const { store } = c.deps;
  try {
    store.tx(() => {
      store.renameTailnet(t.id, name);
      audit(c, 'UPDATE', { id: String(t.id), name, type: 'TAILNET', property: 'NAME' }, t.name, name);
    });
  } catch (err) {
    if (err instanceof Conflict) throw new HttpError(409, err.message);
    throw err;
  }
  c.deps.hub.tailnetChanged(t.id);
  return { body: { name } };
}

function billing(t: Tailnet) {
  const b = (t.settings.billing ?? {}) as Record<string, unknown>;
  return { plan: b.plan ?? 'self-hosted', contact: b.contact ?? null };
}

function getBilling(c: Call): Answer {
  return { body: billing(tailnetParam(c)) };
}

function setBilling(field: 'plan' | 'contact') {
  return async (c: Call): Promise<Answer> => {
    const t = tailnetParam(c);
    const b = jsonObject(await c.body());
    let value: unknown;
    if (field === 'plan') value = str(b.plan, 'plan');
    else {
      const email = str(b.email, 'email');
      if (!/^[^@\s]+@[^@\s]+$/.test(email)) throw badRequest('"email" is not an email address');
      value = { email, name: b.name === undefined ? '' : str(b.name, 'name') };
    }
    const { store } = c.deps;
    const old = billing(t);
    store.tx(() => {
      store.setTailnetSettings(t.id, { ...t.settings, billing: { ...old, [field]: value } });
      audit(c, 'UPDATE', { id: String(t.id), name: t.name, type: 'TAILNET', property: `BILLING_${field.toUpperCase()}` }, old[field], value);
    });
    return { body: billing(store.getTailnet(t.id)!) };
  };
}

// ── user invites and login ────────────────────────────────────────────────────

async function createUserInvites(c: Call): Promise<Answer> {
  const t = tailnetParam(c);
  const raw = parseJson(await c.body());
  const list = Array.isArray(raw) ? raw : [raw];
  const { store } = c.deps;
  const out = store.tx(() =>
    list.map((item) => {
      if (!item || typeof item !== 'object') throw badRequest('each invite is an object {"email": ..., "role": ...}');
      const email = str((item as any).email, 'email');
      const role = ((item as any).role ?? 'member') as Role;
      if (!/^[^@\s]+@[^@\s]+$/.test(email)) throw badRequest(`"email": ${JSON.stringify(email)} is not an email address`);
      if (!ROLES.includes(role) || role === 'owner') throw badRequest(`"role": ${JSON.stringify(role)} is not a role an invite can give`);
      if (store.getUserByEmail(t.id, email)) throw new HttpError(409, `${email} is already a user of this network`);
      const code = newSecret('invite', 'i');
      store.db
        .prepare('INSERT INTO user_invites (id, tailnet_id, email, role, code_hash, inviter_id, created) VALUES (?, ?, ?, ?, ?, ?, ?)')
        .run(code.id, t.id, email, role, code.hash, c.caller.user.id, new Date().toISOString());
      audit(c, 'CREATE', { id: code.id, name: email, type: 'USER_INVITE' }, undefined, { email, role });
      return { id: code.id, role, tailnetId: String(t.id), inviterId: c.caller.user.id, email, code: code.secret, inviteUrl: `${c.deps.publicUrl}/admin/invite/${code.secret}` };
    }),
  );
  return { body: out };
}

function listUserInvites(c: Call): Answer {
  const t = tailnetParam(c);
  const rows = c.deps.store.stmt('SELECT id, email, role, inviter_id, created, accepted FROM user_invites WHERE tailnet_id = ? ORDER BY created').all(t.id) as any[];
  return { body: rows.map((r) => ({ id: r.id, email: r.email, role: r.role, inviterId: r.inviter_id, created: r.created, accepted: !!r.accepted })) };
}

function deleteUserInvite(c: Call): Answer {
  const { store } = c.deps;
  const r = store.stmt('SELECT * FROM user_invites WHERE id = ? AND tailnet_id = ?').get(c.params.id, c.caller.tailnet.id) as any;
  if (!r) throw notFound(`user invite "${c.params.id}"`);
  store.tx(() => {
    store.stmt('DELETE FROM user_invites WHERE id = ?').run(r.id);
    audit(c, 'DELETE', { id: r.id, name: r.email, type: 'USER_INVITE' });
  });
  return { body: {} };
}

/** Failed sign-ins per email and per client address: a few tries, then a pause. */
class LoginLimiter {
  private readonly failures = new Map<string, { count: number; until: number }>();
  check(keys: string[]): void {
    const now = Date.now();
    for (const k of keys) {
      const f = this.failures.get(k);
      if (f && f.count >= 5 && f.until > now) throw new HttpError(429, `too many failed sign-ins; try again in ${Math.ceil((f.until - now) / 1000)} s`);
    }
  }
  fail(keys: string[]): void {
    const now = Date.now();
    for (const k of keys) {
      const f = this.failures.get(k);
      const count = f && f.until > now ? f.count + 1 : 1;
      this.failures.set(k, { count, until: now + 60_000 * Math.min(2 ** Math.max(0, count - 5), 60) });
    }
  }
  ok(keys: string[]): void {
    for (const k of keys) this.failures.delete(k);
  }
}

const limiter = new LoginLimiter();

function clientAddr(req: IncomingMessage): string {
  return req.socket.remoteAddress ?? '';
}

async function acceptUserInvite(req: IncomingMessage, deps: AdminDeps, body: Buffer): Promise<Answer> {
  const b = jsonObject(body);
  const code = str(b.code, 'code');
  const password = str(b.password, 'password');
  if (password.length < 10) throw badRequest('"password" must have at least 10 characters');
  const keys = [`ip:${clientAddr(req)}`];
  limiter.check(keys);
  const parsed = parseSecret(code);
  const { store } = deps;
  const r = parsed && (store.stmt('SELECT * FROM user_invites WHERE id = ?').get(parsed.id) as any);
  if (!r || r.accepted || !secretMatches(code, r.code_hash)) {
    limiter.fail(keys);
    throw new HttpError(401, 'invalid or already used invite code');
  }
  const hash = await hashPassword(password);
  const user = store.tx(() => {
    const again = store.stmt('SELECT accepted FROM user_invites WHERE id = ?').get(r.id) as any;
    if (again.accepted) throw new HttpError(401, 'invalid or already used invite code');
    if (store.getUserByEmail(r.tailnet_id, r.email)) throw new HttpError(409, `${r.email} is already a user of this network`);
    const u = store.createUser(r.tailnet_id, r.email, r.role, typeof b.displayName === 'string' ? b.displayName : undefined);
    store.setUserPassword(u.id, hash);
    store.stmt('UPDATE user_invites SET accepted = ? WHERE id = ?').run(new Date().toISOString(), r.id);
    store.addAudit(r.tailnet_id, {
      type: 'CONFIG', origin: 'ADMIN_API', actor: { id: u.id, type: 'USER', loginName: u.email, displayName: u.displayName },
      target: { id: u.id, name: u.email, type: 'USER' }, action: 'CREATE', old: undefined, new: { role: u.role },
    });
    return u;
  });
  limiter.ok(keys);
  deps.hub.usersChanged(user.tailnetId);
  deps.onEvent?.(user.tailnetId, 'userCreated', { user: user.email });
  return { body: userJson(user, store) };
}

async function login(req: IncomingMessage, deps: AdminDeps, body: Buffer): Promise<Answer> {
  const b = jsonObject(body);
  const tailnetName = str(b.tailnet, 'tailnet');
  const email = str(b.email, 'email');
  const password = str(b.password, 'password');
  const keys = [`ip:${clientAddr(req)}`, `user:${tailnetName}/${email.toLowerCase()}`];
  limiter.check(keys);
  const { store } = deps;
  const t = store.getTailnetByName(tailnetName);
  const u = t && store.getUserByEmail(t.id, email);
  // Always run scrypt so that timing does not tell whether the user exists.
  const ok = await verifyPassword(password, u?.passwordHash ?? 'scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=');
  if (!t || !u || !u.passwordHash || !ok || u.status !== 'active') {
    limiter.fail(keys);
    throw new HttpError(401, 'wrong email or password');
  }
  limiter.ok(keys);
  const expires = new Date(Date.now() + DAY).toISOString();
  const { secret } = store.createKey({ tailnetId: t.id, keyType: 'session', userId: u.id, expires, description: 'session' });
  return { body: { token: secret.secret, expires, user: userJson(u, store) } };
}

// ── audit log ─────────────────────────────────────────────────────────────────

function auditLog(c: Call): Answer {
  const t = tailnetParam(c);
  const start = c.url.searchParams.get('start') ?? '1970-01-01T00:00:00.000Z';
  const end = c.url.searchParams.get('end') ?? new Date().toISOString();
  for (const [k, v] of [['start', start], ['end', end]] as const) if (Number.isNaN(Date.parse(v))) throw badRequest(`"${k}" must be an RFC 3339 time`);
  const logs = c.deps.store.listAudit(t.id, new Date(start).toISOString(), new Date(end).toISOString()).map((e) => ({
    eventGroupID: String(e.id),
    eventTime: e.eventTime,
    type: e.type,
    origin: e.origin,
    actor: e.actor,
    target: e.target,
    action: e.action,
    old: e.old,
    new: e.new,
  }));
  return { body: { version: '1.1', tailnet: t.name, logs } };
}

// ── webhooks ──────────────────────────────────────────────────────────────────

export const WEBHOOK_EVENTS = [
  'nodeCreated', 'nodeNeedsApproval', 'nodeApproved', 'nodeKeyExpiringInOneDay', 'nodeKeyExpired', 'nodeDeleted',
  'policyUpdate', 'userCreated', 'userNeedsApproval', 'userSuspended', 'userRestored', 'userDeleted', 'userApproved',
  'userRoleUpdated',
];

function webhookJson(r: any, secret?: string) {
  const out: Record<string, unknown> = {
    endpointId: r.id, endpointUrl: r.endpoint_url, providerType: r.provider_type, creatorLoginName: r.creator_login_name,
    created: r.created, lastModified: r.last_modified, subscriptions: JSON.parse(r.subscriptions),
  };
  if (secret) out.secret = secret;
  return out;
}

function checkWebhookBody(b: Record<string, unknown>, partial: boolean): { url?: string; subs?: string[] } {
  const out: { url?: string; subs?: string[] } = {};
  if (b.endpointUrl !== undefined || !partial) {
    const url = str(b.endpointUrl, 'endpointUrl');
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw badRequest('"endpointUrl" is not a URL');
    }
    if (u.protocol !== 'https:' && u.protocol !== 'http:') throw badRequest('"endpointUrl" must be an http(s) URL');
    out.url = url;
  }
  if (b.subscriptions !== undefined || !partial) {
    const subs = strList(b.subscriptions ?? [], 'subscriptions');
    const bad = subs.filter((s) => !WEBHOOK_EVENTS.includes(s));
    if (bad.length > 0) throw badRequest(`unknown event types: ${bad.join(', ')} (known: ${WEBHOOK_EVENTS.join(', ')})`);
    out.subs = subs;
  }
  return out;
}

async function createWebhook(c: Call): Promise<Answer> {
  const t = tailnetParam(c);
  const b = jsonObject(await c.body());
  const { url, subs } = checkWebhookBody(b, false);
  await webhookTarget(url!, c.deps.allowPrivateWebhooks);
  const id = 'w' + randomToken(12);
  const secret = 'mwwhsec-' + randomToken(40);
  const now = new Date().toISOString();
  const { store } = c.deps;
  store.tx(() => {
    store.db
      .prepare('INSERT INTO webhooks (id, tailnet_id, endpoint_url, provider_type, subscriptions, secret, creator_login_name, created, last_modified) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
      .run(id, t.id, url, typeof b.providerType === 'string' ? b.providerType : '', JSON.stringify(subs), secret, c.caller.user.email, now, now);
    audit(c, 'CREATE', { id, name: url, type: 'WEBHOOK' }, undefined, { endpointUrl: url, subscriptions: subs });
  });
  return { body: webhookJson(store.stmt('SELECT * FROM webhooks WHERE id = ?').get(id), secret) };
}

function listWebhooks(c: Call): Answer {
  const t = tailnetParam(c);
  const rows = c.deps.store.stmt('SELECT * FROM webhooks WHERE tailnet_id = ? ORDER BY created').all(t.id) as any[];
  return { body: { webhooks: rows.map((r) => webhookJson(r)) } };
}

function webhookParam(c: Call): any {
  const r = c.deps.store.stmt('SELECT * FROM webhooks WHERE id = ? AND tailnet_id = ?').get(c.params.id, c.caller.tailnet.id);
  if (!r) throw notFound(`webhook "${c.params.id}"`);
  return r;
}

async function patchWebhook(c: Call): Promise<Answer> {
  const r = webhookParam(c);
  const { url, subs } = checkWebhookBody(jsonObject(await c.body()), true);
  if (url !== undefined) await webhookTarget(url, c.deps.allowPrivateWebhooks);
  const { store } = c.deps;
  store.tx(() => {
    store.db
      .prepare('UPDATE webhooks SET endpoint_url = ?, subscriptions = ?, last_modified = ? WHERE id = ?')
      .run(url ?? r.endpoint_url, subs ? JSON.stringify(subs) : r.subscriptions, new Date().toISOString(), r.id);
    audit(c, 'UPDATE', { id: r.id, name: r.endpoint_url, type: 'WEBHOOK' }, { endpointUrl: r.endpoint_url, subscriptions: JSON.parse(r.subscriptions) }, { endpointUrl: url, subscriptions: subs });
  });
  return { body: webhookJson(store.stmt('SELECT * FROM webhooks WHERE id = ?').get(r.id)) };
}

function deleteWebhook(c: Call): Answer {
  const r = webhookParam(c);
  const { store } = c.deps;
  store.tx(() => {
    store.stmt('DELETE FROM webhooks WHERE id = ?').run(r.id);
    audit(c, 'DELETE', { id: r.id, name: r.endpoint_url, type: 'WEBHOOK' });
  });
  return { body: {} };
}

// ── device sharing (issue 7) ──────────────────────────────────────────────────
//
// The sharer creates a one-time invite for a device (the code is shown once, stored hashed); a user of
// another network with a role that may accept redeems it, which records a share (device ↔ that user).
// Either side ends it: the sharer deletes the invite, the recipient's network deletes the device.
// Each step is audited in both networks and the netmap hub updates both at once.

const MAX_LABEL = 200;
const inviteLimiter = new LoginLimiter();

function userRefJson(u: User | undefined, id = '') {
  return { id: u?.id ?? id, loginName: u?.email ?? '', displayName: u?.displayName ?? '', profilePicUrl: '' };
}

function inviteJson(store: Store, inv: DeviceInvite, extra: Record<string, unknown> = {}) {
  return {
    id: inv.id,
    created: inv.created,
    tailnetId: String(inv.tailnetId),
    deviceId: inv.deviceId,
    sharerId: inv.sharerId,
    label: inv.label,
    multiUse: false,
    allowExitNode: false,
    accepted: inv.acceptedBy !== null,
    acceptedBy: inv.acceptedBy === null ? null : userRefJson(store.getUser(inv.acceptedBy), inv.acceptedBy),
    acceptedAt: inv.acceptedAt,
    ...extra,
  };
}

/** A device of another network shared into the caller's, as the caller's network sees it. */
function externalDevice(c: Call, sh: Share) {
  const { store, hub } = c.deps;
  const d = store.getDevice(sh.deviceId);
  const home = store.getTailnet(sh.tailnetId);
  if (!d || !home) return undefined;
  const sharer = store.getUser(sh.sharerId);
  return {
    id: d.id,
    nodeId: d.id,
    addresses: [d.ipv4, d.ipv6],
    user: sharer?.email ?? '',
    name: `${d.name}.${home.domain}`,
    hostname: d.hostname,
    clientVersion: d.clientVersion,
    updateAvailable: false,
    os: d.os,
    created: sh.created,
    lastSeen: d.lastSeen,
    connectedToControl: hub.isOnline(home.id, d.id),
    keyExpiryDisabled: d.keyExpiryDisabled,
    expires: d.expires,
    authorized: true,
    isExternal: true,
    machineKey: '',
    nodeKey: `nodekey:${d.nodeKey}`,
    blocksIncomingConnections: false,
    tags: [],
    advertisedRoutes: [],
    enabledRoutes: [],
    clientConnectivity: { endpoints: [] },
  };
}

/** `{id}` naming a device of another network shared into the caller's: its shares here, else undefined. */
function sharedInParam(c: Call): Share[] | undefined {
  const d = c.deps.store.getDevice(c.params.id!);
  if (!d || d.tailnetId === c.caller.tailnet.id) return undefined;
  const shares = c.deps.store.sharesInto(c.caller.tailnet.id).filter((sh) => sh.deviceId === d.id);
  return shares.length > 0 ? shares : undefined;
}

/** The users of other networks this network shares devices with (`GET /tailnet/{t}/users?type=shared`). */
function sharedUsersOf(store: Store, t: Tailnet) {
  const byUser = new Map<string, Set<string>>();
  for (const sh of store.sharesFrom(t.id)) {
    let s = byUser.get(sh.recipientId);
    if (!s) byUser.set(sh.recipientId, (s = new Set()));
    s.add(sh.deviceId);
  }
  const out = [];
  for (const [id, devices] of byUser) {
    const u = store.getUser(id);
    if (!u) continue;
    out.push({
      id: u.id, displayName: u.displayName, loginName: u.email, profilePicUrl: '', tailnetId: String(u.tailnetId),
      created: u.created, type: 'shared', role: 'member', status: u.status, deviceCount: devices.size,
      lastSeen: u.lastSeen ?? u.created, currentlyConnected: false,
    });
  }
  return out;
}

/** An audit entry in another network than the caller's (the other side of a share), by the caller. */
function auditIn(c: Call, tailnetId: number, action: string, target: Record<string, unknown>, old?: unknown, neu?: unknown): void {
  c.deps.store.addAudit(tailnetId, { type: 'CONFIG', origin: 'ADMIN_API', actor: actorOf(c), target, action, old, new: neu });
}

function deviceTarget(store: Store, deviceId: string, type: string, id = deviceId) {
  const d = store.getDevice(deviceId);
  const t = d && store.getTailnet(d.tailnetId);
  return { id, name: d && t ? `${d.name}.${t.domain}` : deviceId, type };
}

async function createDeviceInvites(c: Call): Promise<Answer> {
  const d = deviceParam(c);
  const raw = (await c.body()).length === 0 ? [{}] : parseJson(await c.body());
  const list = Array.isArray(raw) ? raw : [raw];
  if (list.length === 0) list.push({});
  const { store } = c.deps;
  const fqdn = `${d.name}.${c.caller.tailnet.domain}`;
  const out = store.tx(() =>
    list.map((item) => {
      if (!item || typeof item !== 'object' || Array.isArray(item)) throw badRequest('each device invite is an object {"label": ...}');
      const b = item as Record<string, unknown>;
      const label = b.label === undefined ? '' : str(b.label, 'label');
      if (label.length > MAX_LABEL) throw badRequest(`"label" must have at most ${MAX_LABEL} characters`);
      if (b.multiUse !== undefined && boolField(b.multiUse, 'multiUse')) throw badRequest('multi-use device invites are not supported: create one invite per recipient');
      if (b.allowExitNode !== undefined && boolField(b.allowExitNode, 'allowExitNode')) throw badRequest('a shared device is never offered as an exit node');
      const { invite, code } = store.createDeviceInvite(c.caller.tailnet.id, d.id, c.caller.user.id, label);
      audit(c, 'CREATE', { id: invite.id, name: fqdn, type: 'DEVICE_INVITE' }, undefined, { deviceId: d.id, label });
      return inviteJson(store, invite, { inviteUrl: `${c.deps.publicUrl}/admin/invite/${code}` });
    }),
  );
  return { body: out };
}

function listDeviceInvites(c: Call): Answer {
  const d = deviceParam(c);
  return { body: c.deps.store.listDeviceInvites(d.id).map((inv) => inviteJson(c.deps.store, inv)) };
}

/** Ends the given shares (the caller is on the sharer's or the recipient's side), audited on both sides. */
function revokeShares(c: Call, shares: Share[], invite?: DeviceInvite): void {
  const { store } = c.deps;
  const networks = new Set<number>();
  store.tx(() => {
    for (const sh of shares) {
      const recipient = store.getUser(sh.recipientId);
      const info = { deviceId: sh.deviceId, recipient: recipient?.email ?? sh.recipientId };
      store.deleteShare(sh.id);
      for (const t of [sh.tailnetId, sh.recipientTailnetId]) {
        networks.add(t);
        auditIn(c, t, 'DELETE', deviceTarget(store, sh.deviceId, 'SHARED_DEVICE', sh.id), info, undefined);
      }
    }
    if (invite) {
      store.deleteDeviceInvite(invite.id);
      auditIn(c, invite.tailnetId, 'DELETE', deviceTarget(store, invite.deviceId, 'DEVICE_INVITE', invite.id), { label: invite.label }, undefined);
    }
  });
  c.deps.hub.sharingChanged(networks);
}

/** The sharer deletes an invite (and the share it made); the recipient's network may delete its share too. */
function deleteDeviceInvite(c: Call): Answer {
  const { store } = c.deps;
  const inv = store.getDeviceInvite(c.params.id!);
  // The share this invite made (or, when the recipient had it already, the one it confirmed).
  const share = inv && (store.getShare(inv.id) ?? (inv.acceptedBy ? store.shareFor(inv.deviceId, inv.acceptedBy) : undefined));
  const mine = inv && (inv.tailnetId === c.caller.tailnet.id || share?.recipientTailnetId === c.caller.tailnet.id);
  if (!inv || !mine) throw notFound(`device invite "${c.params.id}"`);
  if (inv.tailnetId === c.caller.tailnet.id) revokeShares(c, share ? [share] : [], inv);
  else revokeShares(c, [share!]);
  return { body: {} };
}

async function acceptDeviceInvite(c: Call): Promise<Answer> {
  const b = jsonObject(await c.body());
  const given = b.invite !== undefined ? str(b.invite, 'invite') : b.code !== undefined ? str(b.code, 'code') : undefined;
  if (given === undefined) throw badRequest('"invite" is required: the invite link (or its code)');
  // Per caller: a code has 192 random bits; this stops a caller from grinding through guesses.
  const keys = [`user:${c.caller.user.id}`];
  inviteLimiter.check(keys);
  const code = given.trim().replace(/^.*\//, '');
  const parsed = parseSecret(code);
  const { store } = c.deps;
  const inv = parsed && parsed.kind === 'invite' ? store.getDeviceInvite(parsed.id) : undefined;
  if (!inv || !secretMatches(code, inv.codeHash)) {
    if (!inv) hashSecret(code); // same work on a miss
    inviteLimiter.fail(keys);
    throw notFound('device invite (unknown or wrong code)');
  }
  inviteLimiter.ok(keys);
  if (inv.acceptedBy !== null) throw new HttpError(409, 'this device invite was already accepted; ask the sharer for a new one');
  if (inv.tailnetId === c.caller.tailnet.id) throw badRequest('this device belongs to your own network: there is nothing to share');
  const me = c.caller.user;
  const share = store.tx(() => {
    const sh = store.acceptDeviceInvite(inv, me);
    if (!sh) throw new HttpError(409, 'this device invite was already accepted; ask the sharer for a new one');
    const info = { deviceId: inv.deviceId, label: inv.label, recipient: me.email, sharer: store.getUser(inv.sharerId)?.email ?? inv.sharerId };
    auditIn(c, inv.tailnetId, 'CREATE', deviceTarget(store, inv.deviceId, 'SHARED_DEVICE', sh.id), undefined, info);
    audit(c, 'CREATE', deviceTarget(store, inv.deviceId, 'SHARED_DEVICE', sh.id), undefined, info);
    return sh;
  });
  c.deps.hub.sharingChanged([inv.tailnetId, me.tailnetId]);
  return {
    body: {
      device: externalDevice(c, share),
      sharer: userRefJson(store.getUser(inv.sharerId), inv.sharerId),
      acceptedBy: userRefJson(me),
    },
  };
}

// ── the route table ───────────────────────────────────────────────────────────

const R = (method: string, path: string, perm: Permission | null, handler: Route['handler']): Route => ({
  method, path, pattern: compilePath('/api/v2' + path), perm, handler,
});

export const ROUTES: readonly Route[] = [
  R('GET', '/tailnet/:t/acl', 'policy:read', getAcl),
  R('POST', '/tailnet/:t/acl', 'policy:write', postAcl),
  R('POST', '/tailnet/:t/acl/validate', 'policy:read', validateAcl),
  R('POST', '/tailnet/:t/acl/preview', 'policy:read', previewAcl),

  R('GET', '/tailnet/:t/dns/nameservers', 'network:read', dnsGet('nameservers')),
  R('GET', '/tailnet/:t/dns/searchpaths', 'network:read', dnsGet('searchPaths')),
  R('GET', '/tailnet/:t/dns/preferences', 'network:read', dnsGet('magicDNS')),
  R('POST', '/tailnet/:t/dns/nameservers', 'network:write', dnsSet('nameservers')),
  R('POST', '/tailnet/:t/dns/searchpaths', 'network:write', dnsSet('searchPaths')),
  R('POST', '/tailnet/:t/dns/preferences', 'network:write', dnsSet('magicDNS')),
  R('GET', '/device/:id/routes', 'network:read', getRoutes),
  R('POST', '/device/:id/routes', 'network:write', setRoutes),

  R('GET', '/tailnet/:t/settings', 'feature:read', getSettings),
  R('PATCH', '/tailnet/:t/settings', 'feature:write', patchSettings),

  R('POST', '/tailnet/:t/user-invites', 'provisioning:write', createUserInvites),
  R('GET', '/tailnet/:t/user-invites', 'users:read', listUserInvites),
  R('DELETE', '/user-invites/:id', 'provisioning:write', deleteUserInvite),

  R('GET', '/tailnet/:t/devices', 'machines:read', listDevices),
  R('GET', '/device/:id', 'machines:read', getDevice),
  R('POST', '/device/:id/authorized', 'machines:write', authorizeDevice),
  R('POST', '/device/:id/name', 'machines:write', renameDevice),
  R('POST', '/device/:id/expire', 'machines:write', expireDevice),
  R('POST', '/device/:id/key', 'machines:write', deviceKey),
  R('DELETE', '/device/:id', 'machines:write', deleteDevice),
  R('POST', '/device/:id/tags', 'device-tags:write', setDeviceTags),

  R('GET', '/tailnet/:t/users', 'users:read', listUsers),
  R('GET', '/users/:id', 'users:read', getUser),
  R('POST', '/users/:id/role', 'users:write', setUserRole),
  R('POST', '/users/:id/approve', 'users:write', userStatusRoute('approve')),
  R('POST', '/users/:id/suspend', 'users:write', userStatusRoute('suspend')),
  R('POST', '/users/:id/restore', 'users:write', userStatusRoute('restore')),
  R('POST', '/users/:id/delete', 'users:write', userStatusRoute('delete')),

  R('POST', '/tailnet/:t/keys', 'keys:auth', createKey),
  R('GET', '/tailnet/:t/keys', 'keys:auth', listKeys),
  R('GET', '/tailnet/:t/keys/:id', 'keys:auth', getKey),
  R('DELETE', '/tailnet/:t/keys/:id', 'keys:auth', deleteKey),

  R('POST', '/device/:id/device-invites', 'share', createDeviceInvites),
  R('GET', '/device/:id/device-invites', 'share', listDeviceInvites),
  R('DELETE', '/device-invites/:id', 'share', deleteDeviceInvite),
  R('POST', '/device-invites/-/accept', 'share:accept', acceptDeviceInvite),

  R('GET', '/tailnet/:t/logging/configuration', 'audit:read', auditLog),

  R('POST', '/tailnet/:t/webhooks', 'webhooks:write', createWebhook),
  R('GET', '/tailnet/:t/webhooks', 'webhooks:write', listWebhooks),
  R('PATCH', '/webhooks/:id', 'webhooks:write', patchWebhook),
  R('DELETE', '/webhooks/:id', 'webhooks:write', deleteWebhook),

  R('POST', '/tailnet/:t/name', 'name:write', renameTailnet),

  R('GET', '/tailnet/:t/billing', 'billing:read', getBilling),
  R('POST', '/tailnet/:t/billing/plan', 'billing:write', setBilling('plan')),
  R('POST', '/tailnet/:t/billing/contact', 'billing:contact', setBilling('contact')),
];

// Routes without a bearer token.
const PUBLIC: Record<string, (req: IncomingMessage, deps: AdminDeps, body: Buffer) => Promise<Answer>> = {
  'POST /api/v2/login': login,
  'POST /api/v2/user-invites/-/accept': acceptUserInvite,
};

/** Finds the caller behind `Authorization: Bearer <key>` (or Basic with the key as user name). */
export function authenticate(store: Store, header: string | undefined): Caller | undefined {
  if (!header) return undefined;
  let token: string | undefined;
  const [scheme, value] = header.split(' ', 2);
  if (scheme?.toLowerCase() === 'bearer') token = value;
  else if (scheme?.toLowerCase() === 'basic' && value) token = Buffer.from(value, 'base64').toString('utf8').split(':')[0];
  if (!token) return undefined;
  const parsed = parseSecret(token);
  if (!parsed || (parsed.kind !== 'api' && parsed.kind !== 'session')) return undefined;
  const k = store.getKey(parsed.id);
  if (!k || (k.keyType !== 'api' && k.keyType !== 'session') || !secretMatches(token, k.hash)) {
    hashSecret(token); // same work on a miss
    return undefined;
  }
  if (k.revoked || (k.expires && Date.parse(k.expires) <= Date.now())) return undefined;
  const user = store.getUser(k.userId);
  const tailnet = user && store.getTailnet(user.tailnetId);
  if (!user || !tailnet || user.status !== 'active') return undefined;
  return { user, tailnet, keyId: k.id };
}

/** Handles a request under /api/v2. */
export async function handleAdmin(req: IncomingMessage, res: ServerResponse, url: URL, deps: AdminDeps): Promise<void> {
  try {
    const method = req.method ?? 'GET';
    const pub = PUBLIC[`${method} ${url.pathname.replace(/\/+$/, '')}`];
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

    const caller = authenticate(deps.store, req.headers.authorization);
    if (!caller) throw new HttpError(401, 'missing, unknown, expired or revoked API key (send "Authorization: Bearer <key>")');
    if (!route.perm || !can(caller.user.role, route.perm)) throw forbidden();

    let body: Promise<Buffer> | undefined;
    const call: Call = { req, url, params: params!, caller, deps, body: () => (body ??= readBody(req)) };
    answer(res, await route.handler(call));
  } catch (err) {
    if (err instanceof HttpError) return sendError(res, err);
    if (err instanceof Conflict) return sendError(res, new HttpError(409, err.message));
    deps.log.error({ err, path: url.pathname }, 'admin API request failed');
    sendError(res, new HttpError(500, 'internal error'));
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

