// The store's rows as SQLite returns them (snake_case, JSON as text, booleans as 0/1), and their
// conversion to the model (model.ts). Only the store reads rows.
import type { AuditEntry, Device, DeviceInvite, Key, KeyType, LogStream, RelayRecord, Role, Share, Tailnet, User, UserInvite, UserStatus, Webhook } from './model.js';

const bool = (v: unknown) => v === 1 || v === true;

export type SqlBool = 0 | 1;
export interface TailnetRow { id: number; name: string; domain: string; created: string; policy: string; policy_etag: string; settings: string; dns: string }
export interface UserRow {
  id: string; num: number; tailnet_id: number; email: string; display_name: string; role: Role; status: UserStatus; password_hash: string | null;
  created: string; last_seen: string | null;
}
export interface KeyRow {
  id: string; tailnet_id: number; key_type: KeyType; hash: Buffer; user_id: string; device_user_id: string | null; reusable: SqlBool;
  ephemeral: SqlBool; preauthorized: SqlBool; tags: string; description: string; created: string; expires: string | null;
  revoked: string | null; uses: number;
}
export interface DeviceRow {
  id: string; num: number; tailnet_id: number; user_id: string; machine_key: string; node_key: string; hostname: string; name: string;
  ipv4: string; ipv6: string; tags: string; os: string; client_version: string; endpoints: string; advertised_routes: string;
  enabled_routes: string; posture: string; authorized: SqlBool; ephemeral: SqlBool; key_expiry_disabled: SqlBool;
  created: string; last_seen: string | null; expires: string | null; auth_key_id: string | null;
  disco_key: string; home_relay: string;
}
export interface AuditRow {
  id: number; tailnet_id: number; event_time: string; type: string; origin: string; actor: string; target: string;
  action: string; old: string | null; new: string | null;
}
export interface DeviceInviteRow {
  id: string; tailnet_id: number; device_id: string; sharer_id: string; label: string; email: string; code_hash: Buffer; created: string; multi_use: number;
  accepted_by: string | null; accepted_at: string | null; last_email_sent_at: string | null;
}
export interface ShareRow {
  id: string; tailnet_id: number; device_id: string; sharer_id: string; recipient_id: string; recipient_tailnet_id: number; created: string;
  invite_id: string | null;
}
export interface UserInviteRow {
  id: string; tailnet_id: number; email: string; role: Role; code_hash: Buffer; inviter_id: string; created: string; accepted: string | null;
  last_email_sent_at: string | null;
}
export interface WebhookRow {
  id: string; tailnet_id: number; endpoint_url: string; provider_type: string; subscriptions: string; secret: string;
  creator_login_name: string; created: string; last_modified: string;
}

export function tailnetFrom(r: TailnetRow): Tailnet {
  return {
    id: r.id, name: r.name, domain: r.domain, created: r.created, policy: r.policy, policyEtag: r.policy_etag,
    settings: JSON.parse(r.settings), dns: JSON.parse(r.dns),
  };
}
export function userFrom(r: UserRow): User {
  return {
    id: r.id, num: r.num, tailnetId: r.tailnet_id, email: r.email, displayName: r.display_name, role: r.role, status: r.status,
    passwordHash: r.password_hash ?? null, created: r.created, lastSeen: r.last_seen ?? null,
  };
}
export function keyFrom(r: KeyRow): Key {
  return {
    id: r.id, tailnetId: r.tailnet_id, keyType: r.key_type, hash: r.hash, userId: r.user_id,
    deviceUserId: r.device_user_id ?? null, reusable: bool(r.reusable), ephemeral: bool(r.ephemeral),
    preauthorized: bool(r.preauthorized), tags: JSON.parse(r.tags), description: r.description, created: r.created,
    expires: r.expires!, revoked: r.revoked ?? null, uses: r.uses,
  };
}
export function deviceFrom(r: DeviceRow): Device {
  return {
    id: r.id, num: r.num, tailnetId: r.tailnet_id, userId: r.user_id, machineKey: r.machine_key, nodeKey: r.node_key,
    hostname: r.hostname, name: r.name, ipv4: r.ipv4, ipv6: r.ipv6, tags: JSON.parse(r.tags), os: r.os,
    clientVersion: r.client_version, endpoints: JSON.parse(r.endpoints), advertisedRoutes: JSON.parse(r.advertised_routes),
    enabledRoutes: JSON.parse(r.enabled_routes), posture: JSON.parse(r.posture), authorized: bool(r.authorized),
    ephemeral: bool(r.ephemeral), keyExpiryDisabled: bool(r.key_expiry_disabled), created: r.created,
    lastSeen: r.last_seen ?? null, expires: r.expires ?? null, authKeyId: r.auth_key_id ?? null,
    discoKey: r.disco_key ?? '', homeRelay: r.home_relay ?? '',
  };
}
export function auditFrom(r: AuditRow): AuditEntry {
  return {
    id: r.id, tailnetId: r.tailnet_id, eventTime: r.event_time, type: r.type, origin: r.origin,
    actor: JSON.parse(r.actor), target: JSON.parse(r.target), action: r.action,
    old: r.old == null ? undefined : JSON.parse(r.old), new: r.new == null ? undefined : JSON.parse(r.new),
  };
}

export function inviteFrom(r: DeviceInviteRow): DeviceInvite {
  return {
    id: r.id, tailnetId: r.tailnet_id, deviceId: r.device_id, sharerId: r.sharer_id, label: r.label, email: r.email, codeHash: r.code_hash,
    multiUse: r.multi_use === 1, created: r.created, acceptedBy: r.accepted_by ?? null, acceptedAt: r.accepted_at ?? null, lastEmailSentAt: r.last_email_sent_at ?? null,
  };
}
export function shareFrom(r: ShareRow): Share {
  return {
    id: r.id, tailnetId: r.tailnet_id, deviceId: r.device_id, sharerId: r.sharer_id, recipientId: r.recipient_id,
    recipientTailnetId: r.recipient_tailnet_id, created: r.created, inviteId: r.invite_id ?? null,
  };
}
export function userInviteFrom(r: UserInviteRow): UserInvite {
  return {
    id: r.id, tailnetId: r.tailnet_id, email: r.email, role: r.role, codeHash: r.code_hash, inviterId: r.inviter_id,
    created: r.created, accepted: r.accepted ?? null, lastEmailSentAt: r.last_email_sent_at ?? null,
  };
}
export function webhookFrom(r: WebhookRow): Webhook {
  return {
    id: r.id, tailnetId: r.tailnet_id, endpointUrl: r.endpoint_url, providerType: r.provider_type,
    subscriptions: JSON.parse(r.subscriptions), secret: r.secret, creatorLoginName: r.creator_login_name,
    created: r.created, lastModified: r.last_modified,
  };
}

export interface LogStreamRow {
  tailnet_id: number; log_type: string; destination_type: string; url: string; user: string; token: string; compression: string;
  cursor: number; created: string; last_modified: string; entries_sent: number; bytes_sent: number; requests: number;
  failed_requests: number; dropped_entries: number; last_activity: string | null; last_error: string;
}

export function logStreamFrom(r: LogStreamRow): LogStream {
  return {
    tailnetId: r.tailnet_id, logType: r.log_type, destinationType: r.destination_type, url: r.url, user: r.user, token: r.token,
    compression: r.compression === 'gzip' ? 'gzip' : 'none', cursor: r.cursor, created: r.created, lastModified: r.last_modified,
    entriesSent: r.entries_sent, bytesSent: r.bytes_sent, requests: r.requests, failedRequests: r.failed_requests,
    droppedEntries: r.dropped_entries, lastActivity: r.last_activity, lastError: r.last_error,
  };
}

export interface RelayRow { name: string; url: string; stun_port: number; secret_id: string; secret_hash: Buffer; created: string }

export function relayFrom(r: RelayRow): RelayRecord {
  return { name: r.name, url: r.url, stunPort: r.stun_port, secretId: r.secret_id, secretHash: r.secret_hash, created: r.created };
}
