// Who a policy names as an owner, in tagOwners and autoApprovers: a user listed by email, a member of a
// listed group, any user for autogroup:member, a user whose role has a listed role autogroup, or a
// device already carrying a listed tag. Rights a role has beyond the policy (admins may use any tag,
// coord/roles.ts) are coord's to add, not the policy's.
import { ROLES, type Policy } from './parse.js';

/** Who asks: a user (email and role; no email means no user) and/or a device with its tags. */
export interface Claimant {
  email?: string | undefined;
  role?: string | undefined;
  tags?: readonly string[] | undefined;
}

const ROLE_AUTOGROUPS = new Map(ROLES.filter((r) => r !== 'member').map((r) => [`autogroup:${r}`, r]));

function listed(policy: Policy, who: Claimant, entries: readonly string[], byUser: boolean): boolean {
  for (const e of entries) {
    if (e.startsWith('tag:')) {
      if (who.tags?.includes(e)) return true;
      continue;
    }
    if (!byUser || who.email === undefined) continue;
    const email = who.email.toLowerCase();
    if (e.startsWith('group:')) {
      if ((policy.groups.get(e) ?? []).some((m) => m.toLowerCase() === email)) return true;
    } else if (e === 'autogroup:member') {
      return true;
    } else if (ROLE_AUTOGROUPS.has(e)) {
      if (who.role === ROLE_AUTOGROUPS.get(e)) return true;
    } else if (e.toLowerCase() === email) {
      return true;
    }
  }
  return false;
}

/** Whether the policy's tagOwners let `who` apply `tag` (an undefined tag: nobody). */
export function mayUseTag(policy: Policy, who: Claimant, tag: string): boolean {
  const owners = policy.tagOwners.get(tag);
  return owners !== undefined && listed(policy, who, owners, true);
}

/**
 * Whether `who` is one of `approvers` (an autoApprovers list): a tagged device matches by its tags only,
 * an untagged one by its user.
 */
export function isAutoApprover(policy: Policy, who: Claimant, approvers: readonly string[]): boolean {
  return listed(policy, who, approvers, (who.tags?.length ?? 0) === 0);
}
