// The machine API: devices register with an auth key, report posture and endpoints, and hold their
// netmap stream. Every request is signed with the device's Ed25519 machine key (see docs/protocol.md):
// no bearer secret travels, and a captured request cannot be replayed (timestamp + single-use nonce).
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import {
  HDR_MACHINE_KEY, HDR_NONCE, HDR_SIGNATURE, HDR_TIMESTAMP, MACHINE_PATHS, MAX_CLOCK_SKEW_MS, signingString,
  type RegisterRequest, type RegisterResponse, type UpdateRequest,
} from '../../wire/protocol.js';
import type { NetmapHub } from '../netmap.js';
import { ownsTag, tagDefined } from '../policy-service.js';
import { can } from '../roles.js';
import { enabledRoutesFor } from '../routes.js';
import { parseSecret, secretMatches } from '../secrets.js';
import { Conflict, type Device, type Key, type Store, type Tailnet, type User } from '../store/index.js';
import { removeDevice, settingsOf } from './admin.js';
import { badRequest, HttpError, jsonObject, readBody, sendError, sendJson } from './http.js';

export interface MachineDeps {
  store: Store;
  hub: NetmapHub;
  log: Logger;
  onEvent?: (tailnetId: number, type: string, data: Record<string, unknown>) => void;
}

const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const TAG_RE = /^tag:[A-Za-z][A-Za-z0-9-]*$/;
const NONCE_RE = /^[A-Za-z0-9_-]{16,64}$/;

const unauthorized = (m: string) => new HttpError(401, m);

export class MachineApi {
  private readonly keyCache = new Map<string, KeyObject>();

  constructor(private readonly deps: MachineDeps) {}

  /** Checks the request's signature; returns the machine key (base64 of the raw Ed25519 public key). */
  verify(req: IncomingMessage, pathAndQuery: string, body: Buffer): string {
    const h = (name: string) => {
      const v = req.headers[name];
      if (typeof v !== 'string' || v === '') throw unauthorized(`missing ${name} header: machine API requests must be signed with the machine key`);
      return v;
    };
    const machineKey = h(HDR_MACHINE_KEY);
    const timestamp = h(HDR_TIMESTAMP);
    const nonce = h(HDR_NONCE);
    const signature = Buffer.from(h(HDR_SIGNATURE), 'base64');
    const raw = Buffer.from(machineKey, 'base64');
    if (raw.length !== 32 || raw.toString('base64') !== machineKey) throw unauthorized('malformed machine key');
    if (!NONCE_RE.test(nonce)) throw unauthorized('malformed nonce');
    const now = Date.now();
    const ts = Number(timestamp);
    if (!Number.isFinite(ts) || Math.abs(now - ts) > MAX_CLOCK_SKEW_MS) {
      throw unauthorized('request timestamp is too far from the server clock (check the device clock)');
    }
    let pub = this.keyCache.get(machineKey);
    if (!pub) {
      pub = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
      if (this.keyCache.size > 100_000) this.keyCache.clear();
      this.keyCache.set(machineKey, pub);
    }
    const bodyHash = createHash('sha256').update(body).digest('hex');
    const msg = Buffer.from(signingString(req.method ?? 'GET', pathAndQuery, bodyHash, timestamp, nonce));
    if (signature.length !== 64 || !verify(null, msg, pub, signature)) throw unauthorized('bad machine key signature');
    if (!this.deps.store.useNonce(`${machineKey}/${nonce}`, now, now + 2 * MAX_CLOCK_SKEW_MS)) throw unauthorized('replayed request (nonce already used)');
    return machineKey;
  }

  async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    try {
      // The signature covers the request target exactly as sent (not a normalized form of it).
      const pathAndQuery = req.url ?? '/';
      if (url.pathname === MACHINE_PATHS.register && req.method === 'POST') {
        const body = await readBody(req, 64 * 1024);
        const mk = this.verify(req, pathAndQuery, body);
        return sendJson(res, 200, this.register(mk, jsonObject(body) as unknown as RegisterRequest));
      }
      if (url.pathname === MACHINE_PATHS.update && req.method === 'POST') {
        const body = await readBody(req, 64 * 1024);
        const mk = this.verify(req, pathAndQuery, body);
        this.update(mk, jsonObject(body) as UpdateRequest);
        return sendJson(res, 200, {});
      }
      if (url.pathname === MACHINE_PATHS.logout && req.method === 'POST') {
        const body = await readBody(req, 64 * 1024);
        this.logout(this.verify(req, pathAndQuery, body));
        return sendJson(res, 200, {});
      }
      if (url.pathname === MACHINE_PATHS.map && req.method === 'GET') {
        const mk = this.verify(req, pathAndQuery, Buffer.alloc(0));
        return this.stream(mk, req, res);
      }
      throw new HttpError(404, `no such machine API endpoint: ${req.method} ${url.pathname}`);
    } catch (err) {
      if (err instanceof HttpError) return sendError(res, err);
      if (err instanceof Conflict) return sendError(res, new HttpError(409, err.message));
      this.deps.log.error({ err, path: url.pathname }, 'machine API request failed');
      sendError(res, new HttpError(500, 'internal error'));
    }
  }

  private authKey(secret: string): Key {
    const parsed = parseSecret(secret);
    const k = parsed?.kind === 'auth' ? this.deps.store.getKey(parsed.id) : undefined;
    if (!k || k.keyType !== 'auth' || !secretMatches(secret, k.hash)) throw unauthorized('invalid auth key');
    if (k.revoked) throw unauthorized('auth key has been revoked');
    if (k.expires && Date.parse(k.expires) <= Date.now()) throw unauthorized('auth key has expired');
    if (!k.reusable && k.uses > 0) throw unauthorized('auth key has already been used (it is not reusable)');
    return k;
  }

  /**
   * Tags a device may carry: each must be defined in tagOwners and be one of the key's tags (checked
   * against its creator when the key was made), or one that both the key's creator and the device's
   * user may use (by role or tagOwners): a key never grants more than either of them has.
   */
  private checkTags(t: Tailnet, creator: User, user: User, key: Key, tags: string[]): void {
    const policy = this.deps.hub.policyOf(t.id);
    const mayUse = (u: User, tag: string) => can(u.role, 'tags:any') || ownsTag(policy, u, [], tag);
    const bad = tags.filter(
      (tag) => !TAG_RE.test(tag) || !tagDefined(policy, tag) || !(key.tags.includes(tag) || (mayUse(creator, tag) && mayUse(user, tag))),
    );
    if (bad.length > 0) throw new HttpError(403, `requested tags [${bad.join(', ')}] are invalid or not permitted`);
  }

  register(machineKey: string, r: RegisterRequest): RegisterResponse {
    const { store, hub } = this.deps;
    const nodeKey = checkNodeKey(r.nodeKey);
    if (typeof r.hostname !== 'string' || r.hostname.trim() === '' || r.hostname.length > 255) throw badRequest('"hostname" must be a non-empty string');
    const tags = r.tags === undefined ? undefined : uniqueStrings(r.tags, 'tags');
    const posture = postureOf(r);
    const existing = store.getDeviceByMachineKey(machineKey);
    let device: Device;
    let created = false;
    let removed: Device | undefined;

    if (r.authKey !== undefined) {
      if (typeof r.authKey !== 'string') throw badRequest('"authKey" must be a string');
      const key = this.authKey(r.authKey);
      const t = store.getTailnet(key.tailnetId)!;
      const user = store.getUser(key.deviceUserId ?? key.userId);
      if (!user || user.status !== 'active') throw new HttpError(403, 'the user this auth key registers devices for is not active');
      const wanted = tags ?? key.tags;
      const creator = store.getUser(key.userId);
      if (!creator || creator.status !== 'active') throw new HttpError(403, 'the user who created this auth key is no longer active');
      this.checkTags(t, creator, user, key, wanted);
      const settings = settingsOf(t);
      const expires = new Date(Date.now() + settings.devicesKeyDurationDays * 86_400_000).toISOString();
      device = store.tx(() => {
        // The key may have been used by a concurrent registration since it was checked.
        const fresh = store.getKey(key.id)!;
        if (!fresh.reusable && fresh.uses > 0) throw unauthorized('auth key has already been used (it is not reusable)');
        store.countKeyUse(key.id);
        if (existing && existing.tailnetId !== t.id) {
          store.deleteDevice(existing.id);
          removed = existing;
        }
        const actor = { id: user.id, type: 'USER', loginName: user.email, displayName: user.displayName };
        if (existing && existing.tailnetId === t.id) {
          const d = store.updateDevice(existing.id, {
            nodeKey, hostname: r.hostname, tags: wanted, userId: user.id, expires, authKeyId: key.id, ...posture,
            authorized: existing.authorized || key.preauthorized || !settings.devicesApprovalOn,
          });
          store.addAudit(t.id, { type: 'CONFIG', origin: 'NODE', actor, target: { id: d.id, name: d.name, type: 'NODE' }, action: 'REAUTHENTICATE', old: { tags: existing.tags }, new: { tags: wanted } });
          return d;
        }
        created = true;
        const d = store.createDevice({
          tailnetId: t.id, userId: user.id, machineKey, nodeKey, hostname: r.hostname, tags: wanted,
          os: posture.os ?? '', clientVersion: posture.clientVersion ?? '', endpoints: posture.endpoints ?? [],
          advertisedRoutes: posture.advertisedRoutes ?? [], enabledRoutes: [], posture: {},
          // As in Tailscale, tagged devices (servers) do not expire by default.
          authorized: key.preauthorized || !settings.devicesApprovalOn, ephemeral: key.ephemeral, keyExpiryDisabled: wanted.length > 0,
          expires, authKeyId: key.id,
        });
        store.addAudit(t.id, { type: 'CONFIG', origin: 'NODE', actor, target: { id: d.id, name: d.name, type: 'NODE' }, action: 'CREATE', old: undefined, new: { name: d.name, addresses: [d.ipv4, d.ipv6], tags: wanted } });
        return d;
      });
    } else {
      if (!existing) throw unauthorized('this machine is not registered; register with an auth key (agent up --authkey KEY)');
      if (existing.expires && !existing.keyExpiryDisabled && Date.parse(existing.expires) <= Date.now()) {
        throw unauthorized('the node key of this device has expired; register again with an auth key');
      }
      if (tags !== undefined && !sameSet(tags, existing.tags)) {
        throw new HttpError(403, `changing the tags of a registered device needs a fresh authorization: register with an auth key that allows [${tags.join(', ')}], or ask an admin to set them`);
      }
      device = store.updateDevice(existing.id, { nodeKey, hostname: r.hostname, ...posture });
    }

    device = this.applyRouteApprovals(device);
    this.deps.log.info({ device: device.id, tailnet: device.tailnetId, created, tags: device.tags, authorized: device.authorized }, 'device registered');
    if (removed) hub.deviceChanged(removed.tailnetId, removed.id);
    hub.deviceChanged(device.tailnetId, device.id);
    if (created) {
      this.deps.onEvent?.(device.tailnetId, device.authorized ? 'nodeCreated' : 'nodeNeedsApproval', { nodeID: device.id, deviceName: device.name });
    }
    const t = store.getTailnet(device.tailnetId)!;
    return {
      deviceId: device.id,
      name: `${device.name}.${t.domain}`,
      addresses: [device.ipv4, device.ipv6],
      user: store.getUser(device.userId)?.email ?? '',
      tags: device.tags,
      network: t.name,
      authorized: device.authorized,
      expires: device.keyExpiryDisabled ? null : device.expires,
    };
  }

  private deviceOf(machineKey: string): Device {
    const d = this.deps.store.getDeviceByMachineKey(machineKey);
    if (!d) throw unauthorized('this machine is not registered; register with an auth key (agent up --authkey KEY)');
    return d;
  }

  update(machineKey: string, u: UpdateRequest): void {
    const d = this.deviceOf(machineKey);
    const patch = { ...postureOf(u), ...(u.nodeKey !== undefined ? { nodeKey: checkNodeKey(u.nodeKey) } : {}) };
    const changed = Object.entries(patch).some(([k, v]) => JSON.stringify((d as unknown as Record<string, unknown>)[k]) !== JSON.stringify(v));
    if (!changed) return;
    this.applyRouteApprovals(this.deps.store.updateDevice(d.id, patch));
    this.deps.hub.deviceChanged(d.tailnetId, d.id);
  }

  /** The device logs itself out (`agent logout`): deleted exactly as an admin deletes it. */
  logout(machineKey: string): void {
    const d = this.deviceOf(machineKey);
    const user = this.deps.store.getUser(d.userId);
    const actor = user
      ? { id: user.id, type: 'USER', loginName: user.email, displayName: user.displayName }
      : { id: d.id, type: 'NODE', loginName: d.name, displayName: d.hostname };
    removeDevice(this.deps, d, 'NODE', actor);
    this.deps.log.info({ device: d.id, tailnet: d.tailnetId }, 'device logged out');
  }

  /** Brings enabled routes in line with what the device advertises and what autoApprovers allow. */
  private applyRouteApprovals(d: Device): Device {
    const { store, hub } = this.deps;
    const enabled = enabledRoutesFor(hub.policyOf(d.tailnetId), store.getUser(d.userId), d);
    if (sameSet(enabled, d.enabledRoutes)) return d;
    return store.tx(() => {
      store.addAudit(d.tailnetId, {
        type: 'CONFIG', origin: 'NODE', actor: { id: '', type: 'SYSTEM', loginName: 'autoApprovers', displayName: 'autoApprovers' },
        target: { id: d.id, name: d.name, type: 'NODE', property: 'ROUTES' }, action: 'UPDATE', old: d.enabledRoutes, new: enabled,
      });
      return store.updateDevice(d.id, { enabledRoutes: enabled });
    });
  }

  private stream(machineKey: string, req: IncomingMessage, res: ServerResponse): void {
    const d = this.deviceOf(machineKey);
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
    res.flushHeaders();
    req.socket.setNoDelay(true);
    req.socket.setKeepAlive(true, 30_000);
    const sink = {
      write: (line: string) => {
        // A device that does not read its stream is cut off rather than buffered without bound.
        if (res.writableLength > 32 * 1024 * 1024) {
          res.destroy();
          return;
        }
        res.write(line);
      },
      end: () => res.end(),
    };
    const close = this.deps.hub.subscribe(d, sink);
    res.on('close', close);
  }
}

function checkNodeKey(v: unknown): string {
  if (typeof v !== 'string' || Buffer.from(v, 'base64').length !== 32 || Buffer.from(v, 'base64').toString('base64') !== v) {
    throw badRequest('"nodeKey" must be a WireGuard public key (base64 of 32 bytes)');
  }
  return v;
}

function uniqueStrings(v: unknown, field: string): string[] {
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw badRequest(`"${field}" must be a list of strings`);
  return [...new Set(v as string[])];
}

function sameSet(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}

/** The posture fields of a register or update request, checked. */
function postureOf(r: { os?: unknown; version?: unknown; endpoints?: unknown; advertisedRoutes?: unknown }) {
  const out: Partial<Pick<Device, 'os' | 'clientVersion' | 'endpoints' | 'advertisedRoutes'>> = {};
  if (r.os !== undefined) {
    if (typeof r.os !== 'string' || r.os.length > 64) throw badRequest('"os" must be a short string');
    out.os = r.os;
  }
  if (r.version !== undefined) {
    if (typeof r.version !== 'string' || r.version.length > 64) throw badRequest('"version" must be a short string');
    out.clientVersion = r.version;
  }
  if (r.endpoints !== undefined) {
    const eps = uniqueStrings(r.endpoints, 'endpoints');
    if (eps.length > 32 || eps.some((e) => !/^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\]):\d{1,5}$/.test(e))) {
      throw badRequest('"endpoints" must be at most 32 "ip:port" strings ("[v6]:port" for IPv6)');
    }
    out.endpoints = eps;
  }
  if (r.advertisedRoutes !== undefined) {
    const routes = uniqueStrings(r.advertisedRoutes, 'advertisedRoutes');
    if (routes.some((x) => !/^[0-9a-fA-F:.]+\/\d{1,3}$/.test(x))) throw badRequest('"advertisedRoutes" must be CIDR prefixes');
    out.advertisedRoutes = routes;
  }
  return out;
}
