// The admin API's JSON shapes (Tailscale API v2 where Tailscale has them), from domain objects.
import type { DeviceView, UserView } from '../../domain/index.js';
import { fqdn, type AuditEntry, type DeviceInvite, type Key, type User, type UserInvite, type Webhook } from '../../store/index.js';

/** A device as a tailnet sees it; one shared in from another tailnet is `isExternal`, owned by its sharer. */
export function deviceJson(v: DeviceView) {
  const { device: d, share } = v;
  const external = share !== undefined;
  return {
    id: d.id,
    nodeId: d.id,
    addresses: [d.ipv4, d.ipv6],
    user: v.owner?.email ?? '',
    name: fqdn(d, v.home),
    hostname: d.hostname,
    clientVersion: d.clientVersion,
    updateAvailable: false,
    os: d.os,
    created: share?.created ?? d.created,
    lastSeen: d.lastSeen,
    connectedToControl: v.online,
    keyExpiryDisabled: d.keyExpiryDisabled,
    expires: d.expires,
    authorized: external || d.authorized,
    isExternal: external,
    machineKey: external ? '' : `mkey:${d.machineKey}`,
    nodeKey: `nodekey:${d.nodeKey}`,
    blocksIncomingConnections: false,
    tags: external ? [] : d.tags,
    advertisedRoutes: external ? [] : d.advertisedRoutes,
    enabledRoutes: external ? [] : d.enabledRoutes,
    clientConnectivity: { endpoints: external ? [] : d.endpoints },
  };
}

/** A user; one of another tailnet this one shares devices with is `type: "shared"`, with no role here. */
export function userJson(v: UserView) {
  const u = v.user;
  return {
    id: u.id,
    displayName: u.displayName,
    loginName: u.email,
    profilePicUrl: '',
    tailnetId: String(u.tailnetId),
    created: u.created,
    type: v.shared ? 'shared' : 'member',
    role: v.shared ? 'member' : u.role,
    status: u.status,
    deviceCount: v.deviceCount,
    lastSeen: u.lastSeen ?? u.created,
    currentlyConnected: false,
  };
}

export function userRefJson(u: User | undefined, id = '') {
  return { id: u?.id ?? id, loginName: u?.email ?? '', displayName: u?.displayName ?? '', profilePicUrl: '' };
}

/** A key; `deviceUser` is the user an auth key registers devices for; `secret` only when just created. */
export function keyJson(k: Key, deviceUser: User | undefined, secret?: string) {
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
    out.user = k.deviceUserId ? deviceUser?.email : undefined;
  } else {
    out.userId = k.userId;
  }
  return out;
}

export function deviceInviteJson(inv: DeviceInvite, acceptedBy: User | undefined, extra: Record<string, unknown> = {}) {
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
    acceptedBy: inv.acceptedBy === null ? null : userRefJson(acceptedBy, inv.acceptedBy),
    acceptedAt: inv.acceptedAt,
    ...extra,
  };
}

export function userInviteJson(inv: UserInvite) {
  return { id: inv.id, email: inv.email, role: inv.role, inviterId: inv.inviterId, created: inv.created, accepted: !!inv.accepted };
}

/** A link that opens the invite page of the admin console. */
export function inviteUrl(publicUrl: string, code: string): string {
  return `${publicUrl}/admin/invite/${code}`;
}

export function webhookJson(w: Webhook, secret?: string) {
  const out: Record<string, unknown> = {
    endpointId: w.id, endpointUrl: w.endpointUrl, providerType: w.providerType, creatorLoginName: w.creatorLoginName,
    created: w.created, lastModified: w.lastModified, subscriptions: w.subscriptions,
  };
  if (secret) out.secret = secret;
  return out;
}

export function auditEntryJson(e: AuditEntry) {
  return {
    eventGroupID: String(e.id),
    eventTime: e.eventTime,
    type: e.type,
    origin: e.origin,
    actor: e.actor,
    target: e.target,
    action: e.action,
    old: e.old,
    new: e.new,
  };
}
