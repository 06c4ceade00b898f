// The JSON the admin API answers (Tailscale's API v2 shapes where Tailscale has them; docs/api.md), as
// a client sees it. Written from the documented shapes, not from the server's code, so that a client
// never depends on coord's internals.

/** A role in a network (the role table: docs/api.md). */
export type Role = 'owner' | 'admin' | 'network-admin' | 'it-admin' | 'billing-admin' | 'auditor' | 'member';

export interface User {
  id: string;
  displayName: string;
  /** The user's email. */
  loginName: string;
  profilePicUrl: string;
  tailnetId: string;
  created: string;
  type: 'member' | 'shared';
  role: Role;
  status: 'active' | 'needs-approval' | 'suspended';
  deviceCount: number;
  lastSeen: string;
  currentlyConnected: boolean;
}

/** A user as another object refers to it (sharer, acceptedBy). */
export interface UserRef {
  id: string;
  loginName: string;
  displayName: string;
  profilePicUrl: string;
}

export interface Device {
  id: string;
  nodeId: string;
  /** [IPv4, IPv6] in the network. */
  addresses: string[];
  /** The owner's email (for a shared-in device: the sharer's). */
  user: string;
  /** The full DNS name, "host.<network domain>". */
  name: string;
  hostname: string;
  clientVersion: string;
  updateAvailable: boolean;
  os: string;
  created: string;
  lastSeen: string | null;
  connectedToControl: boolean;
  keyExpiryDisabled: boolean;
  expires: string | null;
  authorized: boolean;
  /** A device of another network shared into this one. */
  isExternal: boolean;
  machineKey: string;
  nodeKey: string;
  blocksIncomingConnections: boolean;
  tags: string[];
  advertisedRoutes: string[];
  enabledRoutes: string[];
  clientConnectivity: { endpoints: string[] };
}

/** GET /device/{id}/attributes (and the answer of setting one). */
export interface DevicePostureAttributes {
  attributes: Record<string, string | number | boolean>;
  expiries: Record<string, string>;
}

export interface DeviceRoutes {
  advertisedRoutes: string[];
  enabledRoutes: string[];
}

export interface AuthKeyCapabilities {
  devices: { create: { reusable?: boolean; ephemeral?: boolean; preauthorized?: boolean; tags?: string[] } };
}

export interface Key {
  id: string;
  keyType: 'auth' | 'api';
  description: string;
  created: string;
  /** Absent only for a key made before keys always expired. */
  expires?: string;
  revoked?: string;
  invalid: boolean;
  /** Auth keys: what a device that registers with it gets. */
  capabilities?: AuthKeyCapabilities;
  /** Auth keys: the email of the user the devices will belong to. */
  user?: string;
  /** API keys: the id of the user the key acts as. */
  userId?: string;
}

/** A key just created: the secret is in the answer this once. */
export interface NewKey extends Key {
  key: string;
}

/** POST /tailnet/{t}/keys. Without `keyType` (or "auth"): an auth key for devices. */
export interface CreateKeyRequest {
  keyType?: 'auth' | 'api';
  capabilities?: AuthKeyCapabilities;
  expirySeconds?: number;
  description?: string;
  /** Auth keys: the email of the user the devices will belong to (default: the caller). */
  user?: string;
}

/** An invitation for a person to join the network (the code is shown only in the creating answer). */
export interface UserInvite {
  id: string;
  role: Exclude<Role, 'owner'>;
  /** Numbers, as in Tailscale's API: the network's and the inviting user's numeric ids. */
  tailnetId: number;
  inviterId: number;
  email: string;
  created: string;
  accepted: boolean;
  /** When coord last mailed it (absent: never; coord has a mail server only with `serve --smtp-url`). */
  lastEmailSentAt?: string;
}

/** A user invite just created: its code and link are in the answer this once. */
export interface NewUserInvite extends UserInvite {
  code: string;
  inviteUrl: string;
  /** Why its mail did not go out (the invite was made all the same). */
  mailError?: string;
}

export interface Session {
  token: string;
  expires: string;
  user: User;
}

export interface DeviceInvite {
  id: string;
  created: string;
  /** Numbers, as in Tailscale's API: the numeric ids of the network, the device and the sharing user. */
  tailnetId: number;
  deviceId: number;
  sharerId: number;
  label: string;
  multiUse: boolean;
  allowExitNode: boolean;
  /** Whom it is mailed to (absent: no one; the sharer passes the link on). */
  email?: string;
  /** When coord last mailed it. */
  lastEmailSentAt?: string;
  /** Only in the creating answer: why its mail did not go out (the invite was made all the same). */
  mailError?: string;
  accepted: boolean;
  /** Once accepted: who accepted (`id` is the user's numeric id); a multi-use invite's first recipient. */
  acceptedBy?: Omit<UserRef, 'id'> & { id: number };
  acceptedAt: string | null;
  /** A multi-use invite only: every user who accepted it, first to last, and whether their share is still on. */
  acceptances?: (Omit<UserRef, 'id'> & { id: number; acceptedAt: string; shared: boolean })[];
  /** Whether the share it made is still on (a multi-use invite: any of them). */
  shared: boolean;
  /** Only in the creating answer: the link to send (its last part is the code). */
  inviteUrl?: string;
}

export interface AcceptedShare {
  /** The shared device, as the accepting network now sees it. */
  device: Device;
  sharer: UserRef;
  acceptedBy: UserRef;
}

/** POST /acl/validate: {} when the file is valid and its tests pass, else the failing tests. */
export interface PolicyValidation {
  message?: string;
  data?: { user: string; errors: string[] }[];
}

export interface PolicyPreview {
  type: 'user' | 'ipport';
  previewFor: string;
  matches: { users: string[]; ports: string[]; lineNumber: number }[];
}

/** An entry of the configuration audit log, in the values of Tailscale's API (docs/api.md). */
export interface AuditEvent {
  eventGroupID: string;
  eventTime: string;
  type: 'CONFIG';
  /** CONFIG_API (an API key), ADMIN_CONSOLE (a console session), NODE (a device), CONTROL (coord itself). */
  origin: 'CONFIG_API' | 'ADMIN_CONSOLE' | 'NODE' | 'CONTROL';
  actor: { id?: string; type: string; loginName?: string; displayName?: string };
  target: { id?: string; name?: string; type: string; property?: string };
  action: string;
  /** Absent when there was no value before (a creation) or after (a deletion). */
  old?: unknown;
  new?: unknown;
  /** What Tailscale's values cannot say (our finer target type, property or action). */
  actionDetails?: string;
}

export interface AuditLog {
  version: string;
  tailnet: string;
  logs: AuditEvent[];
}

/** An error answer: `message`, and for some (failing policy tests) `data`. */
export interface ErrorBody {
  message: string;
  data?: unknown;
}

/** Where a log stream delivers (the token is write-only: no answer shows it). */
export interface LogStreamConfig {
  logType: 'configuration';
  destinationType: 'splunk' | 'elastic' | 'panther' | 'cribl' | 'datadog' | 'axiom';
  url: string;
  /** Only the types that take a user name (elastic, cribl); else ''. */
  user: string;
  compressionFormat: 'none' | 'gzip';
}

/** PUT …/logging/{logType}/stream: `token` may be left out of a change to keep the one set before. */
export interface SetLogStreamRequest {
  destinationType: LogStreamConfig['destinationType'];
  url: string;
  user?: string;
  token?: string;
  compressionFormat?: LogStreamConfig['compressionFormat'];
}

/** GET …/stream/status: Tailscale's publishing status, and ours (dropped and pending entries). */
export interface LogStreamStatus {
  lastActivity: string;
  lastError: string;
  maxBodySize: number;
  numBytesSent: number;
  numEntriesSent: number;
  numSpoofedEntries: number;
  numTotalRequests: number;
  numFailedRequests: number;
  rateBytesSent: number;
  rateEntriesSent: number;
  rateTotalRequests: number;
  rateFailedRequests: number;
  numDroppedEntries: number;
  numPendingEntries: number;
  numPendingBytes: number;
}
