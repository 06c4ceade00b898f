// Users and roles of a tailnet, user invites, and signing in (password → session key).
import { Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated } from '../errors.js';
import { hashPassword, parseSecret, secretFor, secretMatches, verifyPassword } from '../secrets.js';
import { ROLES, type Role, type Tailnet, type User, type UserInvite } from '../store/index.js';
import { can } from '../roles.js';
import { Operations, userActor, type Caller, type DomainDeps } from './context.js';
import { email as emailOf, MAX_EMAIL, optionalText, str } from './input.js';
import { mailEachNewInvite, MailsInFlight, mailerOf, sendInviteMail, userInviteMail, type LinkOf } from './invite-mail.js';
import { ACCOUNT_LIMITS, ADDRESS_LIMITS, Limiter, reserveAll } from './limiter.js';
import { settingsOf } from './tailnets.js';
import type { ShareOperations, SharedUser } from './shares.js';

const DAY = 86_400_000;
/** Invites one request may create. */
const MAX_INVITES = 100;
/** A valid scrypt hash of nothing: a sign-in of an unknown user does the same work as a known one. */
const NO_PASSWORD = 'scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';

export type StatusAction = 'approve' | 'suspend' | 'restore' | 'delete';

/** A user of the tailnet with their device count; `shared`: a user of another tailnet this one shares with. */
export interface UserView extends SharedUser {
  shared: boolean;
}

export class UserOperations extends Operations {
  /** Failed sign-ins per account, and (generously) per client address. */
  private readonly accounts = new Limiter(ACCOUNT_LIMITS);
  private readonly addresses = new Limiter(ADDRESS_LIMITS);
  /** Wrong user invite codes per client address. */
  private readonly inviteCodes = new Limiter({ ...ACCOUNT_LIMITS, what: 'invite codes from this address' });
  private readonly mailing = new MailsInFlight();

  constructor(deps: DomainDeps, private readonly shares: ShareOperations) {
    super(deps);
  }

  /** A user of the caller's tailnet; any other is not found. */
  own(c: Caller, id: string): User {
    const u = this.store.getUser(id);
    if (!u || u.tailnetId !== c.tailnet.id) throw new NotFound(`user "${id}" not found`);
    return u;
  }

  /** A user of any tailnet by id, to show who a reference names (a key's device user, an invite's recipient). */
  byId(id: string | null): User | undefined {
    return id === null ? undefined : this.store.getUser(id);
  }

  /** Devices per user of a tailnet. */
  private deviceCounts(tailnetId: number): Map<string, number> {
    const counts = new Map<string, number>();
    for (const d of this.store.listDevices(tailnetId)) counts.set(d.userId, (counts.get(d.userId) ?? 0) + 1);
    return counts;
  }

  view(u: User): UserView {
    return { user: u, deviceCount: this.deviceCounts(u.tailnetId).get(u.id) ?? 0, shared: false };
  }

  /** `type`: member (default), shared (users of other tailnets with shares), or all; `role` filters members. */
  list(t: Tailnet, type: string | null, role: string | null): UserView[] {
    const shared = () => this.shares.sharedUsers(t).map((s) => ({ ...s, shared: true }));
    if (role !== null && role !== 'all' && !ROLES.includes(role as Role)) throw new InvalidInput(`"role" must be all or one of ${ROLES.join(', ')}`);
    if (type === 'shared') return shared();
    if (type && type !== 'member' && type !== 'all') throw new InvalidInput(`"type" must be member, shared or all`);
    let users = this.store.listUsers(t.id);
    if (role !== null && role !== 'all') users = users.filter((u) => u.role === role);
    const counts = this.deviceCounts(t.id);
    const out = users.map((user) => ({ user, deviceCount: counts.get(user.id) ?? 0, shared: false }));
    return type === 'all' ? [...out, ...shared()] : out;
  }

  setRole(c: Caller, target: User, value: unknown): User {
    const role = str(value, 'role') as Role;
    if (!ROLES.includes(role)) throw new InvalidInput(`unknown role "${role}" (one of ${ROLES.join(', ')})`);
    const me = c.user;
    const { store } = this;
    if (target.id === me.id) throw new Forbidden('users cannot change their own role (an owner hands ownership to another user instead)');
    if (target.role === 'owner') throw new Forbidden("the owner's role changes only when the owner hands ownership to another user");
    if (role === 'owner' && me.role !== 'owner') throw new Forbidden('only the owner can hand ownership to another user');
    if (target.role === role) return target;
    store.tx(() => {
      store.setUserRole(target.id, role);
      this.audit(c, 'UPDATE', { id: target.id, name: target.email, type: 'USER', property: 'ROLE' }, target.role, role);
      if (role === 'owner') {
        store.setUserRole(me.id, 'admin');
        this.audit(c, 'UPDATE', { id: me.id, name: me.email, type: 'USER', property: 'ROLE' }, 'owner', 'admin');
      }
    });
    this.hub.usersChanged(target.tailnetId);
    this.emit(c, 'userRoleUpdated', { user: target.email, oldRole: target.role, newRole: role });
    return store.getUser(target.id)!;
  }

  changeStatus(c: Caller, target: User, action: StatusAction): void {
    const { store } = this;
    if (action === 'suspend' || action === 'delete') {
      if (target.role === 'owner') throw new Forbidden(`the owner cannot be ${action === 'delete' ? 'deleted' : 'suspended'} before ownership has moved to another user`);
      if (target.id === c.user.id) throw new Forbidden(`you cannot ${action} yourself`);
    }
    const next = action === 'suspend' ? 'suspended' : 'active';
    if (action === 'approve' && target.status !== 'needs-approval') throw new InvalidInput('user does not need approval');
    if (action === 'restore' && target.status !== 'suspended') throw new InvalidInput('user is not suspended');
    store.tx(() => {
      if (action === 'delete') store.deleteUser(target.id);
      else store.setUserStatus(target.id, next);
      this.audit(c, action.toUpperCase(), { id: target.id, name: target.email, type: 'USER' }, target.status, action === 'delete' ? undefined : next);
    });
    this.hub.usersChanged(target.tailnetId);
    const event = { approve: 'userApproved', suspend: 'userSuspended', restore: 'userRestored', delete: 'userDeleted' }[action];
    this.emit(c, event, { user: target.email });
  }

  // ── user invites ────────────────────────────────────────────────────────────

  /** One invite per entry ({"email", "role"}); returns each with its one-time code. */
  createInvites(c: Caller, t: Tailnet, entries: unknown[]): { invite: UserInvite; code: string }[] {
    if (entries.length > MAX_INVITES) throw new InvalidInput(`at most ${MAX_INVITES} invites at once`);
    const { store } = this;
    return store.tx(() =>
      entries.map((item) => {
        if (!item || typeof item !== 'object') throw new InvalidInput('each invite is an object {"email": ..., "role": ...}');
        const b = item as Record<string, unknown>;
        const email = emailOf(b.email, 'email');
        const role = (b.role ?? 'member') as Role;
        if (!ROLES.includes(role) || role === 'owner') throw new InvalidInput(`"role": ${JSON.stringify(role)} is not a role an invite can give`);
        if (store.getUserByEmail(t.id, email)) throw new Conflict(`${email} is already a user of this network`);
        const made = store.createUserInvite(t.id, email, role, c.user.id);
        this.audit(c, 'CREATE', { id: made.invite.id, name: email, type: 'USER_INVITE' }, undefined, { email, role });
        return made;
      }),
    );
  }

  /** The tailnet's invites to join. Not the owner's password link (console/owner-link.ts): no one joins by it. */
  listInvites(t: Tailnet): UserInvite[] {
    return this.store.listUserInvites(t.id).filter((inv) => inv.role !== 'owner');
  }

  /** One invite to join the caller's tailnet; any other (or the owner's password link) is not found. */
  invite(c: Caller, id: string): UserInvite {
    const inv = this.store.getUserInvite(id);
    if (!inv || inv.tailnetId !== c.tailnet.id || inv.role === 'owner') throw new NotFound(`user invite "${id}" not found`);
    return inv;
  }

  /** Whether coord can mail invites (has a mail server). */
  get canMail(): boolean {
    return this.deps.mailer !== undefined;
  }

  /** Mails each new invite its code (just made, shown in the answer too). */
  async mailNewInvites(made: { invite: UserInvite; code: string }[], linkOf: LinkOf): Promise<{ invite: UserInvite; code: string; mailError?: string }[]> {
    return mailEachNewInvite(this.deps, this.mailing, made, (invite, code) => this.mailInvite(invite, code, linkOf));
  }

  /**
   * Mails the invite again with a new code (only the old code's hash is kept); the new code replaces the
   * old once the mail server took the message, and a failure changes nothing. Audited as a RESEND.
   */
  async resendInvite(c: Caller, id: string, linkOf: LinkOf): Promise<UserInvite> {
    const inv = this.invite(c, id);
    if (inv.accepted) throw new Conflict('this invite was accepted already: there is nothing to resend');
    // Accepting checks the inviter's rights then (acceptInvite): do not mail a link that cannot work.
    if (!this.inviterMayInvite(inv)) throw new Conflict('the user who sent this invite may no longer invite users: its link cannot work; delete it and create a new invite');
    mailerOf(this.deps);
    return this.mailing.run(inv.id, async () => {
      const fresh = secretFor('invite', inv.id);
      return this.mailInvite(inv, fresh.secret, linkOf, fresh.hash, (at) =>
        this.audit(c, 'RESEND', { id: inv.id, name: inv.email, type: 'USER_INVITE' }, undefined, { email: inv.email, lastEmailSentAt: at }));
    });
  }

  /** Whether the invite's sender is still an active user of its tailnet who may invite (accepting needs that). */
  private inviterMayInvite(inv: UserInvite): boolean {
    const inviter = this.store.getUser(inv.inviterId);
    return !!inviter && inviter.tailnetId === inv.tailnetId && inviter.status === 'active' && can(inviter.role, 'provisioning:write');
  }

  /** Sends the mail, then records it (with `newHash`: the code it carried replaces the stored one). */
  private async mailInvite(inv: UserInvite, code: string, linkOf: LinkOf, newHash?: Buffer, audit?: (at: string) => void): Promise<UserInvite> {
    const { store } = this;
    const t = store.getTailnet(inv.tailnetId)!;
    const inviter = store.getUser(inv.inviterId);
    const inviterName = inviter ? (inviter.displayName && inviter.displayName !== inviter.email ? `${inviter.displayName} (${inviter.email})` : inviter.email) : `An admin of ${t.name}`;
    const message = userInviteMail(inv.email, { network: t.name, inviter: inviterName, role: inv.role, link: linkOf(code) });
    await sendInviteMail(this.deps, message, 'the invite', (at) => store.markUserInviteMailed(inv.id, at, newHash), audit);
    return store.getUserInvite(inv.id)!;
  }

  deleteInvite(c: Caller, id: string): void {
    const { store } = this;
    const inv = store.getUserInvite(id);
    if (!inv || inv.tailnetId !== c.tailnet.id) throw new NotFound(`user invite "${id}" not found`);
    store.tx(() => {
      store.deleteUserInvite(inv.id);
      this.audit(c, 'DELETE', { id: inv.id, name: inv.email, type: 'USER_INVITE' });
    });
  }

  /** Redeems a user invite: the new user, with a password, joins the tailnet (no caller: not signed in yet). */
  async acceptInvite(clientAddr: string, code: string, password: string, displayNameIn: unknown): Promise<User> {
    str(code, 'code');
    str(password, 'password');
    // Copied into every peer's netmap entry: short, and no control characters.
    const displayName = displayNameIn === undefined ? undefined : optionalText(displayNameIn, 'displayName', 100);
    if (password.length < 10) throw new InvalidInput('"password" must have at least 10 characters');
    const codes = this.inviteCodes;
    reserveAll([[codes, clientAddr]]);
    const parsed = parseSecret(code);
    const { store } = this;
    const inv = parsed ? store.getUserInvite(parsed.id) : undefined;
    if (!inv || inv.accepted || !secretMatches(code, inv.codeHash)) {
      codes.fail(clientAddr);
      throw new Unauthenticated('invalid or already used invite code');
    }
    codes.succeed(clientAddr, true);
    const hash = await hashPassword(password);
    const user = store.tx(() => {
      if (store.getUserInvite(inv.id)?.accepted) throw new Unauthenticated('invalid or already used invite code');
      if (store.getUserByEmail(inv.tailnetId, inv.email)) throw new Conflict(`${inv.email} is already a user of this network`);
      // The inviter's rights now, not when the invite was made: a deleted, suspended or demoted inviter admits nobody.
      if (!this.inviterMayInvite(inv)) throw new Forbidden('the user who sent this invite may no longer invite users; ask an admin for a new invite');
      const created = store.createUser(inv.tailnetId, inv.email, inv.role, displayName);
      store.setUserPassword(created.id, hash);
      // With user approval on, a new user signs in only once an admin has approved them.
      const u = settingsOf(store.getTailnet(inv.tailnetId)!).usersApprovalOn ? { ...created, status: 'needs-approval' as const } : created;
      if (u.status === 'needs-approval') store.setUserStatus(u.id, 'needs-approval');
      store.markUserInviteAccepted(inv.id);
      store.addAudit(inv.tailnetId, {
        type: 'CONFIG', origin: 'ADMIN_CONSOLE', actor: userActor(u),
        target: { id: u.id, name: u.email, type: 'USER' }, action: 'CREATE', old: undefined, new: { role: u.role, status: u.status },
      });
      return u;
    });
    this.hub.usersChanged(user.tailnetId);
    this.deps.onEvent?.(user.tailnetId, 'userCreated', { user: user.email });
    if (user.status === 'needs-approval') this.deps.onEvent?.(user.tailnetId, 'userNeedsApproval', { user: user.email });
    return user;
  }

  /** Signs in with email and password: a session key valid for a day. */
  async login(clientAddr: string, tailnetName: string, email: string, password: string): Promise<{ token: string; expires: string; user: User }> {
    str(tailnetName, 'tailnet', 100);
    str(email, 'email', MAX_EMAIL);
    str(password, 'password');
    const { accounts, addresses } = this;
    const account = `${tailnetName}/${email.toLowerCase()}`;
    // Reserved before the password hash runs: parallel attempts share one allowance.
    reserveAll([[accounts, account], [addresses, clientAddr]]);
    const { store } = this;
    let ok = false;
    let t: Tailnet | undefined;
    let u: User | undefined;
    try {
      t = store.getTailnetByName(tailnetName);
      u = t && store.getUserByEmail(t.id, email);
      // Always run scrypt so that timing does not tell whether the user exists.
      ok = await verifyPassword(password, u?.passwordHash ?? NO_PASSWORD);
    } finally {
      ok = ok && !!t && !!u?.passwordHash && u.status !== 'suspended';
      if (ok) {
        accounts.succeed(account, true);
        addresses.succeed(clientAddr, false);
      } else {
        accounts.fail(account);
        addresses.fail(clientAddr);
      }
    }
    if (!ok || !t || !u) throw new Unauthenticated('wrong email or password');
    // The password was right: saying so tells nothing to someone who did not know it.
    if (u.status !== 'active') throw new Forbidden('this account awaits approval by an admin of the network');
    const expires = new Date(Date.now() + DAY).toISOString();
    const { secret } = store.createKey({ tailnetId: t.id, keyType: 'session', userId: u.id, expires, description: 'session' });
    return { token: secret.secret, expires, user: u };
  }
}
