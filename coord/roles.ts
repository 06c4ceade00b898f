// The role permission matrix as data (docs/architecture.md, The role table): one table, one check. Every admin API route names
// exactly one permission from this table (see api/admin/router.ts), and the router calls `can` before the handler.
import type { Role } from './store/index.js';

export type Permission =
  | 'policy:read' | 'policy:write'
  | 'network:read' | 'network:write'
  | 'feature:read' | 'feature:write'
  | 'provisioning:write'
  | 'machines:read' | 'machines:write'
  | 'users:read' | 'users:write'
  | 'keys:auth' | 'keys:api'
  | 'share' | 'share:accept'
  | 'tags:any' | 'device-tags:write' | 'keys:for-others'
  | 'audit:read'
  | 'webhooks:write'
  | 'logstream:write'
  | 'name:write'
  | 'billing:read' | 'billing:write' | 'billing:contact';

const O = 'owner', A = 'admin', N = 'network-admin', I = 'it-admin', B = 'billing-admin', U = 'auditor';

/** permission → the roles that have it (members have none: no admin access at all). */
export const MATRIX: Readonly<Record<Permission, readonly Role[]>> = {
  'policy:read':        [O, A, N, I, B, U],
  'policy:write':       [O, A, N],
  'network:read':       [O, A, N, I, B, U],
  'network:write':      [O, A, N],
  'feature:read':       [O, A, N, I, B, U],
  'feature:write':      [O, A, I],
  'provisioning:write': [O, A, I],
  'machines:read':      [O, A, N, I, B, U],
  'machines:write':     [O, A, I],
  'users:read':         [O, A, N, I, B, U],
  'users:write':        [O, A, I],
  'keys:auth':          [O, A, N, I],
  'keys:api':           [O, A, N, I],
  'share':              [O, A, I],
  'share:accept':       [O, A, I],
  'tags:any':           [O, A, N],
  // Not a row of the product's role matrix: who may call POST /device/{id}/tags at all. Tailnet admins may (they may use
  // any tag); IT admins may, but only with tags tagOwners gives them (then 'tags:any' decides).
  'device-tags:write':  [O, A, N, I],
  // Not a row of the product's role matrix: an auth key whose devices belong to another user (our `user` extension of
  // POST /keys) lets its holder act as that user on the tailnet, so only owners and admins may make one
  // (and a key for the owner only the owner).
  'keys:for-others':    [O, A],
  'audit:read':         [O, A, N, I, B, U],
  'webhooks:write':     [O, A, N, I],
  // Not yet a row of roles.md: who may set or stop log streaming (PUT/DELETE /tailnet/{t}/logging/{type}/stream).
  // Tailscale's log streaming docs: Owner, Admin, Network admin or IT admin. Reading the configuration (never the
  // token) and the status is 'audit:read', like the log itself.
  'logstream:write':    [O, A, N, I],
  'name:write':         [O, A, N],
  'billing:read':       [O, A, B],
  'billing:write':      [O, A, B],
  'billing:contact':    [O, A, B],
};

/** The one check. */
export function can(role: Role, permission: Permission): boolean {
  return MATRIX[permission].includes(role);
}

export const FORBIDDEN_MESSAGE = 'calling actor does not have enough permissions to perform this function';
