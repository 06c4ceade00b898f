// Subnet routes and exit nodes: which advertised routes are enabled. An admin enables routes through
// the API; the policy's autoApprovers enable them on their own when the device (by its tags, or its
// user, group or role when untagged) is an approver for a prefix that contains the route.
import { parsePrefix, prefixWithin as within } from '../wire/addr.js';
import { isAutoApprover, type Policy } from './policy/index.js';
import type { Device, User } from './store/index.js';

const EXIT_ROUTES = new Set(['0.0.0.0/0', '::/0']);

/** Whether prefix `inner` lies within prefix `outer` (both CIDR text; false when either is not one). */
export function prefixWithin(inner: string, outer: string): boolean {
  const a = parsePrefix(inner), b = parsePrefix(outer);
  return a !== null && b !== null && within(a, b);
}

/** The advertised routes that autoApprovers enable for this device. */
export function autoApproved(policy: Policy, owner: User | undefined, tags: string[], advertised: string[]): string[] {
  const { routes, exitNode } = policy.autoApprovers;
  const device = { email: owner?.email, role: owner?.role, tags }; // tagged devices match by tag only
  return advertised.filter((r) =>
    EXIT_ROUTES.has(r)
      ? isAutoApprover(policy, device, exitNode)
      : Object.entries(routes).some(([prefix, approvers]) => prefixWithin(r, prefix) && isAutoApprover(policy, device, approvers)),
  );
}

/** Routes to enable now: those already enabled that are still advertised, plus the auto-approved ones. */
export function enabledRoutesFor(policy: Policy, owner: User | undefined, d: Pick<Device, 'tags' | 'advertisedRoutes' | 'enabledRoutes'>): string[] {
  const out = new Set(d.enabledRoutes.filter((r) => d.advertisedRoutes.includes(r)));
  for (const r of autoApproved(policy, owner, d.tags, d.advertisedRoutes)) out.add(r);
  return d.advertisedRoutes.filter((r) => out.has(r));
}
