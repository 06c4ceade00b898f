// The first owner's way into the console: `coord tailnet create` makes a one-time link to set the owner's
// password. It is a row of user_invites with the role "owner", which no API invite can give (so a row
// like this only ever comes from here), for the owner's own email; it works once, for 7 days, and only
// while that user is still the owner.
import { hashPassword, newSecret, secretMatches } from '../secrets.js';
import type { Store, User } from '../store/index.js';

export const OWNER_LINK_DAYS = 7;

/** Makes the link's code (shown once); the caller prints `<public-url>/admin/invite/<code>`. */
export function createOwnerPasswordCode(store: Store, owner: User): string {
  const code = newSecret('invite', 'i');
  store
    .stmt('INSERT INTO user_invites (id, tailnet_id, email, role, code_hash, inviter_id, created) VALUES (?, ?, ?, ?, ?, ?, ?)')
    .run(code.id, owner.tailnetId, owner.email, 'owner', code.hash, owner.id, new Date().toISOString());
  return code.secret;
}

interface InviteRow {
  id: string;
  tailnet_id: number;
  email: string;
  role: string;
  code_hash: Buffer;
  created: string;
  accepted: string | null;
}

/** The owner a still-usable password link stands for, or undefined. */
export function ownerForCode(store: Store, row: InviteRow, code: string): User | undefined {
  if (row.role !== 'owner' || row.accepted || !secretMatches(code, row.code_hash)) return undefined;
  if (Date.now() - Date.parse(row.created) > OWNER_LINK_DAYS * 86_400_000) return undefined;
  const u = store.getUserByEmail(row.tailnet_id, row.email);
  return u && u.role === 'owner' && u.status === 'active' ? u : undefined;
}

/** Sets the owner's password and uses the link up, with an audit entry; false when the link is not usable. */
export async function setOwnerPassword(store: Store, row: InviteRow, code: string, password: string): Promise<User | undefined> {
  if (!ownerForCode(store, row, code)) return undefined;
  const hash = await hashPassword(password);
  return store.tx(() => {
    const again = store.stmt('SELECT * FROM user_invites WHERE id = ?').get(row.id) as InviteRow | undefined;
    const u = again && ownerForCode(store, again, code);
    if (!u) return undefined;
    store.setUserPassword(u.id, hash);
    store.stmt('UPDATE user_invites SET accepted = ? WHERE id = ?').run(new Date().toISOString(), row.id);
    store.addAudit(u.tailnetId, {
      type: 'CONFIG', origin: 'ADMIN_API', actor: { id: u.id, type: 'USER', loginName: u.email, displayName: u.displayName },
      target: { id: u.id, name: u.email, type: 'USER', property: 'PASSWORD' }, action: 'UPDATE', old: undefined, new: undefined,
    });
    return u;
  });
}
