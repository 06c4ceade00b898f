// Devices acting for themselves (the machine API): registering with an auth key, reporting posture,
// endpoints and routes, and logging out. The machine API checks the request signatures; this is what
// the requests do.
import { familyOf, formatPrefix, parsePrefix } from '../../wire/addr.js';
import type { RegisterRequest, RegisterResponse, UpdateRequest } from '../../wire/protocol.js';
import { Forbidden, InvalidInput, Unauthenticated } from '../errors.js';
import { enabledRoutesFor } from '../routes.js';
import { parseSecret, secretMatches } from '../secrets.js';
import { fqdn, type Device, type Key, type Tailnet, type User } from '../store/index.js';
import type { StreamSink } from '../netmap-stream.js';
import { Operations, userActor, type DomainDeps } from './context.js';
import type { DeviceOperations } from './devices.js';
import { sameSet, str, tagList, text, uniqueStrings } from './input.js';
import { checkTags, userMayUseTag } from './policy.js';
import { settingsOf } from './tailnets.js';

export class MachineOperations extends Operations {
  constructor(deps: DomainDeps, private readonly devices: DeviceOperations) {
    super(deps);
  }

  private authKey(secret: string): Key {
    const parsed = parseSecret(secret);
    const k = parsed?.kind === 'auth' ? this.store.getKey(parsed.id) : undefined;
    if (!k || k.keyType !== 'auth' || !secretMatches(secret, k.hash)) throw new Unauthenticated('invalid auth key');
    if (k.revoked) throw new Unauthenticated('auth key has been revoked');
    if (k.expires && Date.parse(k.expires) <= Date.now()) throw new Unauthenticated('auth key has expired');
    if (!k.reusable && k.uses > 0) throw new Unauthenticated('auth key has already been used (it is not reusable)');
    return k;
  }

  /**
   * Tags a device may carry: each must be defined in tagOwners and be one of the key's tags (checked
   * against its creator when the key was made), or one that both the key's creator and the device's
   * user may use (by role or tagOwners): a key never grants more than either of them has.
   */
  private checkTags(t: Tailnet, creator: User, user: User, key: Key, tags: string[]): void {
    const policy = this.hub.policyOf(t.id);
    // The key's own tags were checked against its creator's rights when it was made; they are checked
    // again now, so a creator since demoted no longer lends tags they may not use.
    checkTags(policy, tags, (tag) => userMayUseTag(policy, creator, tag) && (key.tags.includes(tag) || userMayUseTag(policy, user, tag)));
  }

  /**
   * Spends a signed request's nonce: false when it was seen before (a replay). Kept in the store until
   * `expires`, so a replay is refused across a restart of coord too.
   */
  useNonce(key: string, now: number, expires: number): boolean {
    return this.store.useNonce(key, now, expires);
  }

  register(machineKey: string, r: RegisterRequest): RegisterResponse {
    const { store, hub } = this;
    const nodeKey = checkNodeKey(r.nodeKey);
    if (text(r.hostname, 'hostname', 255).trim() === '') throw new InvalidInput('"hostname" must not be empty');
    const tags = r.tags === undefined ? undefined : tagList(r.tags, 'tags');
    const posture = postureOf(r);
    const existing = store.getDeviceByMachineKey(machineKey);
    let device: Device;
    let created = false;
    let removed: Device | undefined;
    let removedFrom: number[] = [];

    if (r.authKey !== undefined) {
      const key = this.authKey(str(r.authKey, 'authKey', 256));
      const t = store.getTailnet(key.tailnetId)!;
      const user = store.getUser(key.deviceUserId ?? key.userId);
      if (!user || user.status !== 'active') throw new Forbidden('the user this auth key registers devices for is not active');
      const wanted = tags ?? key.tags;
      const creator = store.getUser(key.userId);
      if (!creator || creator.status !== 'active') throw new Forbidden('the user who created this auth key is no longer active');
      this.checkTags(t, creator, user, key, wanted);
      const settings = settingsOf(t);
      const expires = new Date(Date.now() + settings.devicesKeyDurationDays * 86_400_000).toISOString();
      device = store.tx(() => {
        // The key may have been used by a concurrent registration since it was checked.
        const fresh = store.getKey(key.id)!;
        if (!fresh.reusable && fresh.uses > 0) throw new Unauthenticated('auth key has already been used (it is not reusable)');
        store.countKeyUse(key.id);
        if (existing && existing.tailnetId !== t.id) {
          // The device leaves its old network as if deleted there: an audit entry, and below the same
          // netmap updates and nodeDeleted event as any other delete.
          removedFrom = store.sharesFrom(existing.tailnetId).filter((sh) => sh.deviceId === existing.id).map((sh) => sh.recipientTailnetId);
          const home = store.getTailnet(existing.tailnetId);
          store.deleteDevice(existing.id);
          store.addAudit(existing.tailnetId, {
            type: 'CONFIG', origin: 'NODE', actor: { id: existing.id, type: 'NODE', loginName: existing.name, displayName: existing.hostname },
            target: { id: existing.id, name: fqdn(existing, home ?? { domain: '' }), type: 'NODE' }, action: 'DELETE',
            old: { name: existing.name, addresses: [existing.ipv4, existing.ipv6] }, new: { movedTo: t.name },
          });
          removed = existing;
        }
        const actor = userActor(user);
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
          discoKey: posture.discoKey ?? '', homeRelay: posture.homeRelay ?? '',
          // As in Tailscale, tagged devices (servers) do not expire by default.
          authorized: key.preauthorized || !settings.devicesApprovalOn, ephemeral: key.ephemeral, keyExpiryDisabled: wanted.length > 0,
          expires, authKeyId: key.id,
        });
        store.addAudit(t.id, { type: 'CONFIG', origin: 'NODE', actor, target: { id: d.id, name: d.name, type: 'NODE' }, action: 'CREATE', old: undefined, new: { name: d.name, addresses: [d.ipv4, d.ipv6], tags: wanted } });
        return d;
      });
    } else {
      if (!existing) throw new Unauthenticated('this machine is not registered; register with an auth key (agent up --authkey KEY)');
      if (existing.expires && !existing.keyExpiryDisabled && Date.parse(existing.expires) <= Date.now()) {
        throw new Unauthenticated('the node key of this device has expired; register again with an auth key');
      }
      if (tags !== undefined && !sameSet(tags, existing.tags)) {
        throw new Forbidden(`changing the tags of a registered device needs a fresh authorization: register with an auth key that allows [${tags.join(', ')}], or ask an admin to set them`);
      }
      device = store.updateDevice(existing.id, { nodeKey, hostname: r.hostname, ...posture });
    }

    device = this.applyRouteApprovals(device);
    this.deps.log.info({ device: device.id, tailnet: device.tailnetId, created, tags: device.tags, authorized: device.authorized }, 'device registered');
    if (removed) {
      hub.deviceChanged(removed.tailnetId, removed.id);
      if (removedFrom.length > 0) hub.sharingChanged([removed.tailnetId, ...removedFrom]);
      this.deps.onEvent?.(removed.tailnetId, 'nodeDeleted', { nodeID: removed.id, deviceName: removed.name });
    }
    hub.deviceChanged(device.tailnetId, device.id);
    if (created) {
      this.deps.onEvent?.(device.tailnetId, device.authorized ? 'nodeCreated' : 'nodeNeedsApproval', { nodeID: device.id, deviceName: device.name });
    }
    const t = store.getTailnet(device.tailnetId)!;
    return {
      deviceId: device.id,
      name: fqdn(device, t),
      addresses: [device.ipv4, device.ipv6],
      user: store.getUser(device.userId)?.email ?? '',
      tags: device.tags,
      network: t.name,
      authorized: device.authorized,
      expires: device.keyExpiryDisabled ? null : device.expires,
    };
  }

  /** Opens the device's netmap stream: it gets its full netmap at once. Returns the function that closes it. */
  subscribe(d: Device, sink: StreamSink): () => void {
    return this.hub.subscribe(d, sink);
  }

  deviceOf(machineKey: string): Device {
    const d = this.store.getDeviceByMachineKey(machineKey);
    if (!d) throw new Unauthenticated('this machine is not registered; register with an auth key (agent up --authkey KEY)');
    return d;
  }

  update(machineKey: string, u: UpdateRequest): void {
    const d = this.deviceOf(machineKey);
    const patch = { ...postureOf(u), ...(u.nodeKey !== undefined ? { nodeKey: checkNodeKey(u.nodeKey) } : {}) };
    const changed = Object.entries(patch).some(([k, v]) => JSON.stringify((d as unknown as Record<string, unknown>)[k]) !== JSON.stringify(v));
    if (!changed) return;
    this.applyRouteApprovals(this.store.updateDevice(d.id, patch));
    this.hub.deviceChanged(d.tailnetId, d.id);
  }

  /** The device logs itself out (`agent logout`): deleted exactly as an admin deletes it. */
  logout(machineKey: string): void {
    const d = this.deviceOf(machineKey);
    const user = this.store.getUser(d.userId);
    const actor = user ? userActor(user) : { id: d.id, type: 'NODE', loginName: d.name, displayName: d.hostname };
    this.devices.remove(d, 'NODE', actor);
    this.deps.log.info({ device: d.id, tailnet: d.tailnetId }, 'device logged out');
  }

  /** Brings enabled routes in line with what the device advertises and what autoApprovers allow. */
  private applyRouteApprovals(d: Device): Device {
    const { store, hub } = this;
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
}

function checkNodeKey(v: unknown): string {
  if (typeof v !== 'string' || Buffer.from(v, 'base64').length !== 32 || Buffer.from(v, 'base64').toString('base64') !== v) {
    throw new InvalidInput('"nodeKey" must be a WireGuard public key (base64 of 32 bytes)');
  }
  return v;
}

/** The posture fields of a register or update request, checked. */
function postureOf(r: { os?: unknown; version?: unknown; endpoints?: unknown; advertisedRoutes?: unknown; discoKey?: unknown; homeRelay?: unknown }) {
  const out: Partial<Pick<Device, 'os' | 'clientVersion' | 'endpoints' | 'advertisedRoutes' | 'discoKey' | 'homeRelay'>> = {};
  if (r.discoKey !== undefined) {
    const k = typeof r.discoKey === 'string' ? Buffer.from(r.discoKey, 'base64') : null;
    if (!k || k.length !== 32 || k.toString('base64') !== r.discoKey) throw new InvalidInput('"discoKey" must be an X25519 public key (base64 of 32 bytes)');
    out.discoKey = r.discoKey as string;
  }
  if (r.homeRelay !== undefined) {
    if (typeof r.homeRelay !== 'string' || !RELAY_NAME.test(r.homeRelay)) throw new InvalidInput('"homeRelay" must be a relay name (letters, digits, "-", at most 63) or ""');
    out.homeRelay = r.homeRelay;
  }
  if (r.os !== undefined) {
    out.os = text(r.os, 'os', 64);
  }
  if (r.version !== undefined) {
    out.clientVersion = text(r.version, 'version', 64);
  }
  if (r.endpoints !== undefined) {
    const eps = uniqueStrings(r.endpoints, 'endpoints', 32, 64);
    if (eps.length > 32 || eps.some((e) => !isEndpoint(e))) {
      throw new InvalidInput('"endpoints" must be at most 32 "ip:port" strings ("[v6]:port" for IPv6)');
    }
    out.endpoints = eps;
  }
  if (r.advertisedRoutes !== undefined) {
    const routes = uniqueStrings(r.advertisedRoutes, 'advertisedRoutes', 256, 64);
    const bad = routes.find((x) => !x.includes('/') || parsePrefix(x) === null);
    if (bad !== undefined || routes.length > 256) throw new InvalidInput(`"advertisedRoutes" must be at most 256 CIDR prefixes${bad !== undefined ? ` (not one: ${JSON.stringify(bad.slice(0, 64))})` : ''}`);
    // One spelling per prefix: approval, primaries and WireGuard compare them as text.
    for (const x of routes) {
      const canonical = formatPrefix(parsePrefix(x)!);
      if (canonical !== x) throw new InvalidInput(`"advertisedRoutes": ${x} is not written as its prefix ${canonical} (host bits set, or not in canonical form)`);
    }
    out.advertisedRoutes = routes;
  }
  return out;
}

/** A relay's name as the netmap's relay map gives it; '' means none. */
const RELAY_NAME = /^(?:[A-Za-z0-9][A-Za-z0-9-]{0,62})?$/;

/** "IP:PORT" ("[v6]:PORT" for IPv6), as devices report their endpoints. */
function isEndpoint(e: string): boolean {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(e) ?? /^([^:[\]]+):(\d{1,5})$/.exec(e);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) return false;
  const family = familyOf(m[1]!);
  return family !== 0 && (family === 6) === e.startsWith('[');
}
