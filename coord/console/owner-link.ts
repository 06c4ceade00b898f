// The first owner's way into the console: `coord tailnet create` makes a one-time link to set the owner's
// password. It is a user invite with the role "owner", which no API invite can give (so an invite like
// this only ever comes from here), for the owner's own email; it works once, for 7 days, and only while
// that user is still the owner.
import { hashPassword, secretMatches } from '../secrets.js';
import type { Store, User, UserInvite } from '../store/index.js';

export const OWNER_LINK_DAYS = 7;

/** Makes the link's code (shown once); the caller prints `<public-url>/admin/invite/<code>`. */
export function createOwnerPasswordCode(store: Store, owner: User): string {
  return store.createUserInvite(owner.tailnetId, owner.email, 'owner', owner.id).code;
}

/** The owner a still-usable password link stands for, or undefined. */
export function ownerForCode(store: Store, inv: UserInvite, code: string): User | undefined {
  if (inv.role !== 'owner' || inv.accepted || !secretMatches(code, inv.codeHash)) return undefined;
  if (Date.now() - Date.parse(inv.created) > OWNER_LINK_DAYS * 86_400_000) return undefined;
  const u = store.getUserByEmail(inv.tailnetId, inv.email);
  return u && u.role === 'owner' && u.status === 'active' ? u : undefined;
}

/** Sets the owner's password and uses the link up, with an audit entry; undefined when the link is not usable. */
export async function setOwnerPassword(store: Store, inv: UserInvite, code: string, password: string): Promise<User | undefined> {
  if (!ownerForCode(store, inv, code)) return undefined;
  const hash = await hashPassword(password);
  return store.tx(() => {
    const again = store.getUserInvite(inv.id);
    const u = again && ownerForCode(store, again, code);
    if (!u) return undefined;
    store.setUserPassword(u.id, hash);
    store.markUserInviteAccepted(inv.id);
    store.addAudit(u.tailnetId, {
      type: 'CONFIG', origin: 'ADMIN_CONSOLE', actor: { id: u.id, type: 'USER', loginName: u.email, displayName: u.displayName },
      target: { id: u.id, name: u.email, type: 'USER', property: 'PASSWORD' }, action: 'UPDATE', old: undefined, new: undefined,
    });
    return u;
  });
}
