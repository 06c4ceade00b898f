// The configuration audit log in Tailscale's vocabulary. The store keeps our own, finer names (a device
// invite, an auth key, a device's authorization); the API answers with the values Tailscale's API allows
// for origin, actor and target types, properties and actions, and names what those cannot say in
// `actionDetails`, so nothing is lost.
import type { AuditEntry } from '../../store/index.js';

const ORIGINS = new Set(['ADMIN_CONSOLE', 'CONFIG_API', 'CONTROL', 'IDENTITY_PROVIDER', 'NODE', 'SUPPORT_REQUEST', 'STRIPE', 'SECURITY_NOTIFICATION', 'LEGAL_NOTIFICATION']);
const ACTOR_TYPES = new Set(['USER', 'NODE', 'AUTOMATED_WORKER', 'OAUTH_CLIENT', 'SCIM', 'MULLVAD', 'LOGSTREAM', 'SECRET_SCANNER']);
const TARGET_TYPES = new Set(['TAILNET', 'USER', 'GROUP', 'NODE', 'API_KEY', 'INVITE', 'SHARE', 'BILLING', 'ADMIN_CONSOLE', 'WEB_INTERFACE', 'WEBHOOK_ENDPOINT', 'FAILED_REQUEST']);
const ACTIONS = new Set([
  'LOGIN', 'LOGOUT', 'CREATE', 'UPDATE', 'DELETE', 'CANCEL', 'REVOKE', 'APPROVE', 'SUSPEND', 'RESTORE', 'ENABLE', 'DISABLE', 'ACCEPT',
  'EXPIRED', 'PUSH_USER', 'PUSH_GROUP', 'VERIFY', 'JOIN_WAITLIST', 'INVITE', 'JOIN', 'LEAVE', 'RESEND', 'MIGRATE_AUTH_PROVIDER',
]);

const PROPERTIES = new Set([
  'ACL', 'ACL_TAGS', 'ACCOUNT_EMAIL', 'ADDRESS', 'ALLOWED_IPS', 'AUTO_APPROVED_ROUTES', 'ATTRIBUTES', 'BILLING_OWNER', 'COLLECT_SERVICES',
  'COLLECT_POSTURE_IDENTITY', 'MULLVAD_VPN', 'DNS_CONFIG', 'EMAIL', 'EXIT_NODE', 'FEATURE', 'FILE_SHARING', 'HTTPS', 'KEY_EXPIRY_TIME',
  'KEY_EXPIRY', 'LOG_EXIT_FLOWS', 'LOGSTREAM_ENDPOINT', 'MAGIC_DNS', 'MACHINE_AUTH_NEEDED', 'MACHINE_APPROVAL_NEEDED',
  'USER_APPROVAL_REQUIRED', 'MACHINE_NAME', 'MAX_KEY_DURATION', 'NETWORK_FLOW_LOGGING', 'GEOSTEERING', 'NODE_SHARE', 'TAILNET_INVITE',
  'PAYMENT_INFO', 'POSTURE_IDENTITY', 'POSTURE_INTEGRATION', 'USER_ROLE', 'SCIM', 'SECURITY_EMAIL', 'STRIPE_CUSTOMER_ID', 'SUBSCRIPTION',
  'SUBSCRIBED_EVENTS', 'SUPPORT_EMAIL', 'SECRET', 'TCD', 'TKA', 'AUTH_PROVIDER',
]);

/** Whether `event` is a TARGET_TYPE.ACTION[.PROPERTY] in Tailscale's vocabulary (the audit log's `event` filter). */
export function isAuditEvent(event: string): boolean {
  const [type, action, property, ...rest] = event.split('.');
  return rest.length === 0 && TARGET_TYPES.has(type!) && action !== undefined && ACTIONS.has(action) && (property === undefined || PROPERTIES.has(property));
}

/** Origins written before the API spoke Tailscale's vocabulary (and coord's own work). */
const ORIGIN_OF: Record<string, string> = { ADMIN_API: 'CONFIG_API', SYSTEM: 'CONTROL' };
const ACTOR_TYPE_OF: Record<string, string> = { SYSTEM: 'AUTOMATED_WORKER' };

/** Our target type → Tailscale's type and, where ours says more, the property it implies. */
const TARGET_OF: Record<string, { type: string; property?: string }> = {
  AUTH_KEY: { type: 'API_KEY' },
  DEVICE_INVITE: { type: 'INVITE', property: 'NODE_SHARE' },
  SHARED_DEVICE: { type: 'SHARE' },
  USER_INVITE: { type: 'INVITE', property: 'TAILNET_INVITE' },
  WEBHOOK: { type: 'WEBHOOK_ENDPOINT' },
};

/** Our property (per target type, or for any) → Tailscale's. */
const PROPERTY_OF: Record<string, string> = {
  ACL: 'ACL',
  'WEBHOOK.SECRET': 'SECRET',
  'NODE.NAME': 'MACHINE_NAME',
  'NODE.ATTRIBUTES': 'ATTRIBUTES',
  'NODE.ADDRESS': 'ADDRESS',
  'NODE.TAGS': 'ACL_TAGS',
  'NODE.ROUTES': 'ALLOWED_IPS',
  'NODE.KEY_EXPIRY': 'KEY_EXPIRY',
  'NODE.KEY_EXPIRY_DISABLED': 'KEY_EXPIRY',
  'USER.ROLE': 'USER_ROLE',
  'TAILNET.SETTINGS': 'FEATURE',
  'TAILNET.LOGSTREAM_ENDPOINT': 'LOGSTREAM_ENDPOINT',
  'TAILNET.DNS_NAMESERVERS': 'DNS_CONFIG',
  'TAILNET.DNS_SEARCHPATHS': 'DNS_CONFIG',
  'TAILNET.DNS_SPLIT_DNS': 'DNS_CONFIG',
  'TAILNET.DNS_MAGICDNS': 'MAGIC_DNS',
  'TAILNET.BILLING_PLAN': 'SUBSCRIPTION',
  'TAILNET.ACCOUNT_CONTACT': 'ACCOUNT_EMAIL',
  'TAILNET.SUPPORT_CONTACT': 'SUPPORT_EMAIL',
  'TAILNET.SECURITY_CONTACT': 'SECURITY_EMAIL',
  'TAILNET.BILLING_CONTACT': 'BILLING_OWNER',
};

/**
 * The action and property where Tailscale's event names (the audit log's `event` filter values) say more than
 * "UPDATE" of a property: turning something on or off, approving, revoking. `property: null` drops it.
 */
function eventOf(ourType: string, ourProperty: string | undefined, action: string, neu: unknown): { action: string; property?: string | null } | undefined {
  switch (`${ourType}.${ourProperty ?? ''}`) {
    case 'NODE.AUTHORIZED': return neu === true ? { action: 'APPROVE', property: null } : undefined;
    case 'NODE.KEY_EXPIRY_DISABLED': return { action: neu === true ? 'DISABLE' : 'ENABLE', property: 'KEY_EXPIRY' };
    case 'NODE.KEY_EXPIRY': return { action, property: 'KEY_EXPIRY_TIME' };
    case 'TAILNET.DNS_MAGICDNS': return { action: neu === true ? 'ENABLE' : 'DISABLE', property: 'MAGIC_DNS' };
    case 'WEBHOOK.': return action === 'UPDATE' ? { action, property: 'SUBSCRIBED_EVENTS' } : undefined;
    case 'API_KEY.': case 'AUTH_KEY.': return action === 'DELETE' ? { action: 'REVOKE' } : undefined;
    case 'TAILNET.SETTINGS': {
      // One setting changed: its own event where Tailscale has one; several: a FEATURE update.
      const changed = neu !== null && typeof neu === 'object' ? Object.entries(neu) : [];
      if (changed.length !== 1) return undefined;
      const [name, value] = changed[0]!;
      if (name === 'devicesApprovalOn') return { action: value === true ? 'ENABLE' : 'DISABLE', property: 'MACHINE_APPROVAL_NEEDED' };
      if (name === 'usersApprovalOn') return { action: value === true ? 'ENABLE' : 'DISABLE', property: 'USER_APPROVAL_REQUIRED' };
      if (name === 'devicesKeyDurationDays') return { action, property: 'MAX_KEY_DURATION' };
      return undefined;
    }
    default: return undefined;
  }
}

/** One entry as the API answers it. */
export interface AuditEntryJson {
  [field: string]: unknown;
  eventGroupID: string;
  eventTime: string;
  type: string;
  origin: string;
  actor: Record<string, unknown>;
  target: Record<string, unknown>;
  action: string;
  old?: unknown;
  new?: unknown;
  actionDetails?: string;
}

export function auditEntryJson(e: AuditEntry): AuditEntryJson {
  const details: string[] = [];
  const origin = ORIGIN_OF[e.origin] ?? (ORIGINS.has(e.origin) ? e.origin : 'CONTROL');
  const actorType = String(e.actor.type ?? '');
  const actor = { ...e.actor, type: ACTOR_TYPE_OF[actorType] ?? (ACTOR_TYPES.has(actorType) ? actorType : 'AUTOMATED_WORKER') };

  const ourType = String(e.target.type ?? '');
  const ourProperty = typeof e.target.property === 'string' ? e.target.property : undefined;
  const mapped = TARGET_OF[ourType];
  const type = mapped?.type ?? (TARGET_TYPES.has(ourType) ? ourType : 'TAILNET');
  if (type !== ourType) details.push(ourType);
  const target: Record<string, unknown> = { ...e.target, type };
  delete target.property;
  const event = eventOf(ourType, ourProperty, e.action, e.new);
  const named = ourProperty === undefined ? mapped?.property : PROPERTY_OF[`${ourType}.${ourProperty}`] ?? PROPERTY_OF[ourProperty];
  const property = event?.property === null ? undefined : event?.property ?? named;
  if (property !== undefined) target.property = property;
  if (ourProperty !== undefined && ourProperty !== property) details.push(ourProperty);

  const action = event?.action ?? (ACTIONS.has(e.action) ? e.action : 'UPDATE');
  if (action !== e.action) details.push(e.action);

  const out: AuditEntryJson = { eventGroupID: String(e.id), eventTime: e.eventTime, type: 'CONFIG', origin, actor, target, action };
  // The spec's `old` and `new` are values, never null: absent when there was none.
  if (e.old !== null && e.old !== undefined) out.old = e.old;
  if (e.new !== null && e.new !== undefined) out.new = e.new;
  if (details.length > 0) out.actionDetails = details.join(' ');
  return out;
}
