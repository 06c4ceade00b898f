// Subnet routes and exit nodes: which advertised routes are enabled. An admin enables routes through
// the API; the policy's autoApprovers enable them on their own when the device (by its tags, or its
// user, group or role when untagged) is an approver for a prefix that contains the route.
import ipaddr from 'ipaddr.js';
import type { Policy } from './policy/index.js';
import type { Device, User } from './store/index.js';

const EXIT_ROUTES = new Set(['0.0.0.0/0', '::/0']);

const ROLE_AUTOGROUPS: Record<string, string> = {
  'autogroup:owner': 'owner', 'autogroup:admin': 'admin', 'autogroup:network-admin': 'network-admin',
  'autogroup:it-admin': 'it-admin', 'autogroup:billing-admin': 'billing-admin', 'autogroup:auditor': 'auditor',
};

function cidr(s: string): [ipaddr.IPv4 | ipaddr.IPv6, number] | undefined {
  try {
    return ipaddr.parseCIDR(s);
  } catch {
    return undefined;
  }
}

/** Whether prefix `inner` lies within prefix `outer`. */
export function prefixWithin(inner: string, outer: string): boolean {
  const a = cidr(inner), b = cidr(outer);
  if (!a || !b || a[0].kind() !== b[0].kind() || a[1] < b[1]) return false;
  return (a[0] as ipaddr.IPv4).match(b as [ipaddr.IPv4, number]);
}

/** Whether a device is one of `approvers` (tagged devices match by tag only). */
function isApprover(policy: Policy, owner: User | undefined, tags: string[], approvers: string[]): boolean {
  for (const a of approvers) {
    if (a.startsWith('tag:')) {
      if (tags.includes(a)) return true;
      continue;
    }
    if (tags.length > 0 || !owner) continue;
    if (a.startsWith('group:')) {
      if ((policy.groups.get(a) ?? []).some((m) => m.toLowerCase() === owner.email.toLowerCase())) return true;
    } else if (a === 'autogroup:member') {
      return true;
    } else if (ROLE_AUTOGROUPS[a]) {
      if (owner.role === ROLE_AUTOGROUPS[a]) return true;
    } else if (a.toLowerCase() === owner.email.toLowerCase()) {
      return true;
    }
  }
  return false;
}

/** The advertised routes that autoApprovers enable for this device. */
export function autoApproved(policy: Policy, owner: User | undefined, tags: string[], advertised: string[]): string[] {
  const { routes, exitNode } = policy.autoApprovers;
  return advertised.filter((r) =>
    EXIT_ROUTES.has(r)
      ? isApprover(policy, owner, tags, exitNode)
      : Object.entries(routes).some(([prefix, approvers]) => prefixWithin(r, prefix) && isApprover(policy, owner, tags, approvers)),
  );
}

/** Routes to enable now: those already enabled that are still advertised, plus the auto-approved ones. */
export function enabledRoutesFor(policy: Policy, owner: User | undefined, d: Pick<Device, 'tags' | 'advertisedRoutes' | 'enabledRoutes'>): string[] {
  const out = new Set(d.enabledRoutes.filter((r) => d.advertisedRoutes.includes(r)));
  for (const r of autoApproved(policy, owner, d.tags, d.advertisedRoutes)) out.add(r);
  return d.advertisedRoutes.filter((r) => out.has(r));
}
