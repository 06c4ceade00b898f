// The admin API's JSON shapes (Tailscale API v2 where Tailscale has them), from domain objects.
import type { DeviceView, UserView } from '../../domain/index.js';
import { fqdn, type Device, type DeviceInvite, type Key, type User, type UserInvite, type Webhook } from '../../store/index.js';

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
    // A date-time or absent, never null (Tailscale's spec has a string).
    revoked: k.revoked ?? undefined,
    invalid: !!k.revoked || Date.parse(k.expires) <= Date.now(),
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

/** The users and device an invite refers to, for their numeric ids (0 once deleted). */
export interface InviteRefs {
  device?: Device;
  sharer?: User;
  acceptedBy?: User;
  /** A multi-use invite's acceptances, first to last. */
  acceptances?: { userId: string; user?: User; acceptedAt: string; shared: boolean }[];
}

/**
 * A device invite. Tailscale's spec has numbers for `tailnetId`, `deviceId`, `sharerId` and `acceptedBy.id`
 * (our numeric ids of the device and users); `acceptedBy` only once accepted. A multi-use invite answers
 * the spec's single `acceptedBy` with its first recipient, and every recipient in `acceptances` (ours).
 */
export function deviceInviteJson(inv: DeviceInvite, refs: InviteRefs, extra: Record<string, unknown> = {}) {
  const out: Record<string, unknown> = {
    id: inv.id,
    created: inv.created,
    tailnetId: inv.tailnetId,
    deviceId: refs.device?.num ?? 0,
    sharerId: refs.sharer?.num ?? 0,
    label: inv.label,
    multiUse: inv.multiUse,
    allowExitNode: false,
    accepted: inv.acceptedBy !== null,
    acceptedAt: inv.acceptedAt,
  };
  // As in Tailscale's API: no "email" when the invite is not mailed to anyone.
  if (inv.email !== '') out.email = inv.email;
  if (inv.lastEmailSentAt !== null) out.lastEmailSentAt = inv.lastEmailSentAt;
  const ref = (user: User | undefined, id: string) => ({ ...userRefJson(user, id), id: user?.num ?? 0 });
  if (inv.acceptedBy !== null) out.acceptedBy = ref(refs.acceptedBy, inv.acceptedBy);
  if (inv.multiUse) {
    const all = refs.acceptances ?? [];
    out.accepted = all.length > 0;
    out.acceptedAt = all[0]?.acceptedAt ?? null;
    if (all[0]) out.acceptedBy = ref(all[0].user, all[0].userId);
    out.acceptances = all.map((a) => ({ ...ref(a.user, a.userId), acceptedAt: a.acceptedAt, shared: a.shared }));
  }
  return { ...out, ...extra };
}

/** A user invite; `tailnetId` and `inviterId` are numbers, as in Tailscale's spec. */
export function userInviteJson(inv: UserInvite, inviter: User | undefined, extra: Record<string, unknown> = {}) {
  return {
    id: inv.id, email: inv.email, role: inv.role, tailnetId: inv.tailnetId, inviterId: inviter?.num ?? 0, created: inv.created,
    accepted: !!inv.accepted, ...(inv.lastEmailSentAt !== null ? { lastEmailSentAt: inv.lastEmailSentAt } : {}), ...extra,
  };
}

/** A link that opens the invite page of the admin console. */
export function inviteUrl(publicUrl: string, code: string): string {
  return `${publicUrl}/admin/invite/${code}`;
}

/** A webhook endpoint; `providerType` only for a chat service's format (a plain endpoint has none). */
export function webhookJson(w: Webhook, secret?: string) {
  const out: Record<string, unknown> = {
    endpointId: w.id, endpointUrl: w.endpointUrl, creatorLoginName: w.creatorLoginName,
    created: w.created, lastModified: w.lastModified, subscriptions: w.subscriptions,
  };
  if (w.providerType !== '') out.providerType = w.providerType;
  if (secret) out.secret = secret;
  return out;
}

export { auditEntryJson } from './audit-vocabulary.js';
