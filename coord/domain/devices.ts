// Devices as admins see and change them: listing (with devices shared in from other tailnets),
// authorization, names, key expiry, tags, subnet routes, and removal (by an admin, by the device
// itself, or by the upkeep of ephemeral devices).
import { Conflict, InvalidInput, NotFound } from '../errors.js';
import { firstLabel } from '../../wire/names.js';
import { dnsLabel, fqdn, type Device, type Share, type Store, type Tailnet, type User } from '../store/index.js';
import { Operations, SYSTEM_ACTOR, userActor, type AuditActor, type Caller, type DomainDeps } from './context.js';
import { CUSTOM_ATTRIBUTE_KEY, customAttributes, MAX_CUSTOM_ATTRIBUTES, postureOf, type AttributeValue } from '../posture-attributes.js';
import { CHROMEOS_VM_RANGE, formatIPv4, parseIPv4, SERVICE_IPV4, TAILNET_IPV4_RANGE } from '../../wire/addr.js';
import { usableIp4 } from '../ipam.js';
import { isCidr, str, strList, tagList } from './input.js';
import type { PolicyOperations } from './policy.js';
import type { ShareOperations } from './shares.js';

/** A device as one tailnet sees it: its own, or one shared in (then `share` is set and `owner` is the sharer). */
export interface DeviceView {
  device: Device;
  /** The device's own tailnet. */
  home: Tailnet;
  owner: User | undefined;
  online: boolean;
  share?: Share;
}

type DevicePatch = Parameters<Store['updateDevice']>[1];

export class DeviceOperations extends Operations {
  constructor(deps: DomainDeps, private readonly policy: PolicyOperations, private readonly shares: ShareOperations) {
    super(deps);
  }

  /** A device of the caller's tailnet; any other is not found. */
  own(c: Caller, id: string): Device {
    const d = this.store.getDevice(id);
    if (!d || d.tailnetId !== c.tailnet.id) throw new NotFound(`device "${id}" not found`);
    return d;
  }

  /** A device of any tailnet by id, to show what a reference names (an invite's device). */
  byId(id: string): Device | undefined {
    return this.store.getDevice(id);
  }

  /** A device of another tailnet shared into the caller's, as the caller's tailnet sees it. */
  externalView(sh: Share): DeviceView | undefined {
    const { store } = this;
    const device = store.getDevice(sh.deviceId);
    const home = store.getTailnet(sh.tailnetId);
    // A device whose owner is suspended has left its own network's netmaps; it is not shown elsewhere.
    if (!device || !home || store.getUser(device.userId)?.status !== 'active') return undefined;
    return { device, home, owner: store.getUser(sh.sharerId), online: this.hub.isOnline(home.id, device.id), share: sh };
  }

  /** The caller's tailnet's own devices, then the devices shared into it (each once). */
  list(t: Tailnet): DeviceView[] {
    const { store, hub } = this;
    const users = new Map(store.listUsers(t.id).map((u) => [u.id, u]));
    const out: DeviceView[] = store.listDevices(t.id).map((device) => ({ device, home: t, owner: users.get(device.userId), online: hub.isOnline(t.id, device.id) }));
    const seen = new Set<string>();
    for (const sh of store.sharesInto(t.id)) {
      if (seen.has(sh.deviceId)) continue;
      seen.add(sh.deviceId);
      const e = this.externalView(sh);
      if (e) out.push(e);
    }
    return out;
  }

  get(c: Caller, id: string): DeviceView {
    const shared = this.shares.sharedIn(c, id);
    if (shared) {
      const view = this.externalView(shared[0]!);
      if (!view) throw new NotFound(`device "${id}" not found`);
      return view;
    }
    const device = this.own(c, id);
    return { device, home: c.tailnet, owner: this.store.getUser(device.userId), online: this.hub.isOnline(c.tailnet.id, device.id) };
  }

  /** Applies a device change in one transaction with its audit entry, then tells the live tailnet. */
  private change(c: Caller, d: Device, property: string, patch: DevicePatch, old: unknown, neu: unknown): Device {
    const { store } = this;
    const updated = store.tx(() => {
      const u = store.updateDevice(d.id, patch);
      this.audit(c, 'UPDATE', { id: d.id, name: fqdn(d, c.tailnet), type: 'NODE', property }, old, neu);
      return u;
    });
    this.hub.deviceChanged(d.tailnetId, d.id);
    return updated;
  }

  setAuthorized(c: Caller, d: Device, authorized: boolean): void {
    this.change(c, d, 'AUTHORIZED', { authorized }, d.authorized, authorized);
    if (authorized && !d.authorized) this.emit(c, 'nodeApproved', { nodeID: d.id, deviceName: d.name });
  }

  /** Renames the device to the DNS label of `name` (its first label); another device's label is a conflict. */
  rename(c: Caller, d: Device, name: string): void {
    str(name, 'name', 253);
    const label = dnsLabel(firstLabel(name));
    if (this.store.freeName(d.tailnetId, label, d.id) !== label) throw new Conflict(`name "${label}" is already used by another device`);
    this.change(c, d, 'NAME', { name: label }, d.name, label);
  }

  expire(c: Caller, d: Device): void {
    const at = new Date().toISOString();
    this.change(c, d, 'KEY_EXPIRY', { expires: at, keyExpiryDisabled: false }, d.expires, at);
    this.emit(c, 'nodeKeyExpired', { nodeID: d.id, deviceName: d.name });
  }

  setKeyExpiryDisabled(c: Caller, d: Device, disabled: boolean): void {
    this.change(c, d, 'KEY_EXPIRY_DISABLED', { keyExpiryDisabled: disabled }, d.keyExpiryDisabled, disabled);
  }

  setTags(c: Caller, d: Device, tags: string[]): void {
    const unique = tagList(tags, 'tags');
    this.policy.checkCallerTags(c, unique);
    this.change(c, d, 'TAGS', { tags: unique }, d.tags, unique);
  }

  /** Enables exactly these of the routes the device advertises; returns the device after the change. */
  setRoutes(c: Caller, d: Device, routes: string[]): Device {
    strList(routes, 'routes', 256, 64);
    const bad = routes.filter((r) => !isCidr(r));
    if (bad.length > 0) throw new InvalidInput(`invalid routes: ${bad.join(', ')} (expected CIDR prefixes like 10.0.0.0/24)`);
    const notOffered = routes.filter((r) => !d.advertisedRoutes.includes(r));
    if (notOffered.length > 0) throw new InvalidInput(`routes not advertised by the device: ${notOffered.join(', ')}`);
    return this.change(c, d, 'ROUTES', { enabledRoutes: routes }, d.enabledRoutes, routes);
  }

  /**
   * Gives the device a new IPv4 address of 100.64.0.0/10 (not the service address, the ChromeOS range, or
   * one another device of any network holds); its IPv6 address follows. Every netmap it is in changes at once.
   */
  setIpv4(c: Caller, d: Device, value: unknown): Device {
    const ipv4 = str(value, 'ipv4').trim();
    const n = parseIPv4(ipv4);
    if (n === null || !usableIp4(n)) throw new InvalidInput(`"ipv4" must be an IPv4 address in ${TAILNET_IPV4_RANGE} (not ${SERVICE_IPV4}, ${CHROMEOS_VM_RANGE}, or one ending in .0 or .255)`);
    const wanted = formatIPv4(n);
    if (wanted === d.ipv4) return d;
    const { store } = this;
    const updated = store.tx(() => {
      const u = store.setDeviceAddress(d.id, wanted);
      this.audit(c, 'UPDATE', { id: d.id, name: fqdn(d, c.tailnet), type: 'NODE', property: 'ADDRESS' }, [d.ipv4, d.ipv6], [u.ipv4, u.ipv6]);
      return u;
    });
    this.hub.deviceChanged(d.tailnetId, d.id);
    return updated;
  }

  /** The device's posture attributes (its own and the custom ones in force) and the custom ones' expiries. */
  attributes(d: Device): { attributes: Record<string, AttributeValue>; expiries: Record<string, string> } {
    const expiries: Record<string, string> = {};
    for (const [k, a] of Object.entries(customAttributes(d))) if (a.expires !== undefined) expiries[k] = a.expires;
    return { attributes: postureOf(d), expiries };
  }

  /**
   * Sets a custom posture attribute (`custom:<name>`) to a string, number or boolean, optionally until
   * `expiry` (RFC 3339, in the future). The device's rules, and its peers', are compiled again at once.
   */
  setAttribute(c: Caller, d: Device, key: string, b: Record<string, unknown>): Device {
    if (!CUSTOM_ATTRIBUTE_KEY.test(key)) throw new InvalidInput(`attribute key ${JSON.stringify(key.slice(0, 80))} must be "custom:" and 1–50 letters, digits or underscores`);
    const value = b.value;
    const okValue = (typeof value === 'string' && value.length <= 50) || (typeof value === 'number' && Number.isFinite(value)) || typeof value === 'boolean';
    if (!okValue) throw new InvalidInput('"value" must be a string of at most 50 characters, a finite number or a boolean');
    let expires: string | undefined;
    if (b.expiry !== undefined && b.expiry !== null && b.expiry !== '') {
      const t = typeof b.expiry === 'string' && /^\d{4}-\d\d-\d\dT/.test(b.expiry) ? Date.parse(b.expiry) : NaN;
      if (Number.isNaN(t)) throw new InvalidInput('"expiry" must be an RFC 3339 date-time');
      if (t <= Date.now()) throw new InvalidInput('"expiry" must be in the future');
      expires = new Date(t).toISOString();
    }
    const current = customAttributes(d);
    if (!(key in current) && Object.keys(current).length >= MAX_CUSTOM_ATTRIBUTES) throw new InvalidInput(`a device has at most ${MAX_CUSTOM_ATTRIBUTES} custom attributes`);
    const next = { ...current, [key]: expires === undefined ? { value: value as AttributeValue } : { value: value as AttributeValue, expires } };
    return this.change(c, d, 'ATTRIBUTES', { posture: next }, current[key]?.value, { [key]: value, ...(expires ? { expiry: expires } : {}) });
  }

  /** Removes a custom posture attribute (nothing to do when it is not set). */
  deleteAttribute(c: Caller, d: Device, key: string): void {
    if (!CUSTOM_ATTRIBUTE_KEY.test(key)) throw new InvalidInput(`attribute key ${JSON.stringify(key.slice(0, 80))} must be "custom:" and 1–50 letters, digits or underscores`);
    const current = customAttributes(d);
    if (!(key in current)) return;
    const next = { ...current };
    delete next[key];
    this.change(c, d, 'ATTRIBUTES', { posture: next }, { [key]: current[key]!.value }, undefined);
  }

  /** An admin deletes a device: its own tailnet's, or one shared in (which ends the shares: the recipient's revoke). */
  delete(c: Caller, id: string): void {
    const shared = this.shares.sharedIn(c, id);
    if (shared) return this.shares.revoke(c, shared);
    this.remove(this.own(c, id), c.via === 'console' ? 'ADMIN_CONSOLE' : 'CONFIG_API', userActor(c.user));
  }

  /**
   * Deletes a device of its own tailnet with its audit entry, updates the netmaps of its peers and of
   * the tailnets it is shared into (its own stream gets `logout`), and emits nodeDeleted. Both an
   * admin's delete and the device's own logout come here.
   */
  remove(d: Device, origin: 'CONFIG_API' | 'ADMIN_CONSOLE' | 'NODE', actor: AuditActor): void {
    const { store, hub } = this;
    const home = store.getTailnet(d.tailnetId);
    const partners = store.sharesFrom(d.tailnetId).filter((sh) => sh.deviceId === d.id).map((sh) => sh.recipientTailnetId);
    store.tx(() => {
      store.deleteDevice(d.id);
      store.addAudit(d.tailnetId, {
        type: 'CONFIG', origin, actor, target: { id: d.id, name: fqdn(d, home ?? { domain: '' }), type: 'NODE' }, action: 'DELETE',
        old: { name: d.name, addresses: [d.ipv4, d.ipv6] }, new: undefined,
      });
    });
    hub.deviceChanged(d.tailnetId, d.id);
    if (partners.length > 0) hub.sharingChanged([d.tailnetId, ...partners]);
    this.deps.onEvent?.(d.tailnetId, 'nodeDeleted', { nodeID: d.id, deviceName: d.name, actor: actor.loginName });
  }

  /** Upkeep: removes ephemeral devices that have been offline for longer than `graceMs`, and expired devices leave netmaps. */
  sweep(graceMs: number): void {
    const { store, hub } = this;
    for (const { tailnetId, deviceId } of hub.sweep(graceMs)) {
      const d = store.getDevice(deviceId);
      if (!d) continue;
      store.tx(() => {
        store.deleteDevice(deviceId);
        store.addAudit(tailnetId, {
          type: 'CONFIG', origin: 'CONTROL', actor: SYSTEM_ACTOR,
          target: { id: d.id, name: d.name, type: 'NODE' }, action: 'DELETE', old: { ephemeral: true, lastSeen: d.lastSeen }, new: undefined,
        });
      });
      hub.deviceChanged(tailnetId, deviceId);
      this.deps.onEvent?.(tailnetId, 'nodeDeleted', { nodeID: d.id, deviceName: d.name });
    }
  }
}
