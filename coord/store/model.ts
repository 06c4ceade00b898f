// coord's data model: what the store keeps, as the rest of coord sees it (camelCase, parsed JSON).
export const ROLES = ['owner', 'admin', 'network-admin', 'it-admin', 'billing-admin', 'auditor', 'member'] as const;
export type Role = (typeof ROLES)[number];
export type UserStatus = 'active' | 'suspended' | 'needs-approval';
export type KeyType = 'auth' | 'api' | 'session';

export interface Tailnet {
  id: number;
  name: string;
  domain: string;
  created: string;
  policy: string;
  policyEtag: string;
  settings: Record<string, unknown>;
  dns: Record<string, unknown>;
}

export interface User {
  id: string;
  /** The numeric id Tailscale's API answers where it has numbers (an invite's inviterId, sharerId); never reused. */
  num: number;
  tailnetId: number;
  email: string;
  displayName: string;
  role: Role;
  status: UserStatus;
  passwordHash: string | null;
  created: string;
  lastSeen: string | null;
}

export interface Key {
  id: string;
  tailnetId: number;
  keyType: KeyType;
  hash: Buffer;
  userId: string;
  deviceUserId: string | null;
  reusable: boolean;
  ephemeral: boolean;
  preauthorized: boolean;
  tags: string[];
  description: string;
  created: string;
  expires: string;
  revoked: string | null;
  uses: number;
}

export interface Device {
  id: string;
  /** The numeric id Tailscale's API answers where it has numbers (an invite's deviceId); never reused. */
  num: number;
  tailnetId: number;
  userId: string;
  machineKey: string;
  nodeKey: string;
  hostname: string;
  name: string;
  ipv4: string;
  ipv6: string;
  tags: string[];
  os: string;
  clientVersion: string;
  endpoints: string[];
  advertisedRoutes: string[];
  enabledRoutes: string[];
  posture: Record<string, unknown>;
  authorized: boolean;
  ephemeral: boolean;
  keyExpiryDisabled: boolean;
  created: string;
  lastSeen: string | null;
  expires: string | null;
  authKeyId: string | null;
  /** The device's disco public key (base64), '' until it reports one. */
  discoKey: string;
  /** The name of the relay the device prefers (its home relay), '' until it reports one. */
  homeRelay: string;
}

export interface AuditEntry {
  id: number;
  tailnetId: number;
  eventTime: string;
  type: string;
  origin: string;
  actor: Record<string, unknown>;
  target: Record<string, unknown>;
  action: string;
  old: unknown;
  new: unknown;
}

/** An invitation to share a device with a user of another tailnet. */
export interface DeviceInvite {
  id: string;
  tailnetId: number;
  deviceId: string;
  sharerId: string;
  label: string;
  /** Whom the invite is mailed to ('' when it is not: the sharer passes the link on). */
  email: string;
  codeHash: Buffer;
  /** Many users may accept it (each gets a share; see DeviceInviteAcceptance); else it works once. */
  multiUse: boolean;
  created: string;
  /** A one-time invite's recipient once accepted (a multi-use invite keeps its acceptances apart). */
  acceptedBy: string | null;
  acceptedAt: string | null;
  lastEmailSentAt: string | null;
}

/** A device of one tailnet shared with a user of another. */
export interface Share {
  id: string;
  tailnetId: number;
  deviceId: string;
  sharerId: string;
  recipientId: string;
  recipientTailnetId: number;
  created: string;
  /** The invite that made it (null for none on record). */
  inviteId: string | null;
}

/** A user who accepted a multi-use device invite, and when (kept when their share is revoked). */
export interface DeviceInviteAcceptance {
  inviteId: string;
  userId: string;
  acceptedAt: string;
}

/** An invitation to join a tailnet with a role (the code is shown once and stored hashed). */
export interface UserInvite {
  id: string;
  tailnetId: number;
  email: string;
  role: Role;
  codeHash: Buffer;
  inviterId: string;
  created: string;
  accepted: string | null;
  lastEmailSentAt: string | null;
}

/** An endpoint that receives the tailnet's events (see ../webhooks.ts). */
export interface Webhook {
  id: string;
  tailnetId: number;
  endpointUrl: string;
  providerType: string;
  subscriptions: string[];
  secret: string;
  creatorLoginName: string;
  created: string;
  lastModified: string;
}

/** Where a tailnet's log of one type is streamed, and how far the stream got (see ../log-stream/). */
export interface LogStream {
  tailnetId: number;
  logType: string;
  destinationType: string;
  url: string;
  user: string;
  /** A secret coord sends to the destination: never answered, never logged. */
  token: string;
  compression: 'none' | 'gzip';
  /** The id of the last audit entry delivered or dropped; newer entries are the backlog. */
  cursor: number;
  created: string;
  lastModified: string;
  entriesSent: number;
  bytesSent: number;
  requests: number;
  failedRequests: number;
  droppedEntries: number;
  lastActivity: string | null;
  lastError: string;
}

export type LogStreamConfig = Pick<LogStream, 'destinationType' | 'url' | 'user' | 'token' | 'compression'>;

/** An extra relay of the relay map (`coord relays add`): a standalone `coord relay` process. */
export interface RelayRecord {
  name: string;
  /** ws:// or wss:// URL devices connect to, path included. */
  url: string;
  /** STUN on this UDP port and the next, on the URL's host (0: none). */
  stunPort: number;
  /** Finds the row from the relay's secret (`mwkey-relay-<id>-…`). */
  secretId: string;
  secretHash: Buffer;
  created: string;
}

export type AuditInput = Omit<AuditEntry, 'id' | 'eventTime' | 'tailnetId'>;

// Device names are DNS labels (wire/names.ts).
export { dnsLabel } from '../../wire/names.js';

/** A device's full DNS name: its label in its tailnet's domain. */
export function fqdn(d: Pick<Device, 'name'>, t: Pick<Tailnet, 'domain'>): string {
  return `${d.name}.${t.domain}`;
}
