// Device sharing. The sharer creates an invite for a device (the code is shown once, stored hashed); a
// user of another tailnet with a role that may accept redeems it, which records a share (device ↔ that
// user). A one-time invite makes one share; a multi-use one makes a share for each user who accepts it,
// until it is deleted. Either side ends a share: the sharer deletes the invite (ending every share it
// made), the recipient's tailnet deletes the device or the invite (its own shares only). Each step is
// audited in both tailnets and the live tailnets update both at once.
import { Conflict, Forbidden, InvalidInput, NotFound } from '../errors.js';
import { hashSecret, parseSecret, secretFor, secretMatches } from '../secrets.js';
import { fqdn, type Device, type DeviceInvite, type DeviceInviteAcceptance, type Share, type Tailnet, type User } from '../store/index.js';
import { Operations, type Caller } from './context.js';
import { bool, email as emailOf, optionalText } from './input.js';
import { deviceInviteMail, mailEachNewInvite, MailsInFlight, mailerOf, sendInviteMail, type LinkOf } from './invite-mail.js';
import { ACCOUNT_LIMITS, Limiter, reserveAll } from './limiter.js';
import { settingsOf } from './tailnets.js';

const MAX_LABEL = 200;
/** Device invites one request may create. */
const MAX_INVITES = 100;
const ALREADY_ACCEPTED = 'this device invite was already accepted; ask the sharer for a new one';
/** Acceptances of one multi-use invite (Tailscale's multi-use links work up to 1,000 times). */
export const MAX_INVITE_USES = 1000;
const USED_UP = `this multi-use device invite was accepted ${MAX_INVITE_USES} times, as many as one invite allows; ask the sharer for a new one`;
const REVOKED_BEFORE = 'you accepted this device invite before and that share was revoked since; ask the sharer for a new invite';

/** A user of another tailnet this tailnet shares devices with, and how many. */
export interface SharedUser {
  user: User;
  deviceCount: number;
}

export class ShareOperations extends Operations {
  /** Per caller: a code has 192 random bits; this stops a caller from grinding through guesses. */
  private readonly limiter = new Limiter({ ...ACCOUNT_LIMITS, what: 'device invite codes' });
  private readonly mailing = new MailsInFlight();

  /** `id` naming a device of another tailnet shared into the caller's: its shares there, else undefined. */
  sharedIn(c: Caller, id: string): Share[] | undefined {
    const d = this.store.getDevice(id);
    if (!d || d.tailnetId === c.tailnet.id) return undefined;
    const shares = this.store.sharesInto(c.tailnet.id).filter((sh) => sh.deviceId === d.id);
    return shares.length > 0 ? shares : undefined;
  }

  /** The users of other tailnets this tailnet shares devices with. */
  sharedUsers(t: Tailnet): SharedUser[] {
    const byUser = new Map<string, Set<string>>();
    for (const sh of this.store.sharesFrom(t.id)) {
      let s = byUser.get(sh.recipientId);
      if (!s) byUser.set(sh.recipientId, (s = new Set()));
      s.add(sh.deviceId);
    }
    const out: SharedUser[] = [];
    for (const [id, devices] of byUser) {
      const user = this.store.getUser(id);
      if (user) out.push({ user, deviceCount: devices.size });
    }
    return out;
  }

  /** An audit target naming a device by its full DNS name (its id when it is gone). */
  private deviceTarget(deviceId: string, type: string, id = deviceId) {
    const d = this.store.getDevice(deviceId);
    const t = d && this.store.getTailnet(d.tailnetId);
    return { id, name: d && t ? fqdn(d, t) : deviceId, type };
  }

  /** Creates one invite per entry ({"label", "email"}); returns each with its one-time code. */
  createInvites(c: Caller, d: Device, entries: unknown[]): { invite: DeviceInvite; code: string }[] {
    if (entries.length === 0) entries = [{}];
    if (entries.length > MAX_INVITES) throw new InvalidInput(`at most ${MAX_INVITES} device invites at once`);
    const { store } = this;
    const name = fqdn(d, c.tailnet);
    return store.tx(() =>
      entries.map((item) => {
        if (!item || typeof item !== 'object' || Array.isArray(item)) throw new InvalidInput('each device invite is an object {"label": ..., "email": ...}');
        const b = item as Record<string, unknown>;
        const label = optionalText(b.label, 'label', MAX_LABEL);
        const email = b.email === undefined || b.email === '' ? '' : emailOf(b.email, 'email');
        const multiUse = b.multiUse !== undefined && bool(b.multiUse, 'multiUse');
        if (b.allowExitNode !== undefined && bool(b.allowExitNode, 'allowExitNode')) throw new InvalidInput('a shared device is never offered as an exit node');
        const made = store.createDeviceInvite(c.tailnet.id, d.id, c.user.id, label, email, multiUse);
        this.audit(c, 'CREATE', { id: made.invite.id, name, type: 'DEVICE_INVITE' }, undefined, { deviceId: d.id, label, ...(email ? { email } : {}), ...(multiUse ? { multiUse } : {}) });
        return made;
      }),
    );
  }

  /** Mails each new invite that names an "email" its link (the code just made, shown in the answer too). */
  async mailNewInvites(made: { invite: DeviceInvite; code: string }[], linkOf: LinkOf): Promise<{ invite: DeviceInvite; code: string; mailError?: string }[]> {
    return mailEachNewInvite(this.deps, this.mailing, made, (invite, code) => this.mailInvite(invite, code, linkOf));
  }

  /**
   * Mails the invite again to its "email" with a new code (only the old code's hash is kept); the new code
   * replaces the old once the mail server took the message, and a failure changes nothing. Audited as a RESEND.
   */
  async resendInvite(c: Caller, id: string, linkOf: LinkOf): Promise<DeviceInvite> {
    const inv = this.invite(c, id);
    if (inv.email === '') throw new InvalidInput('this device invite has no "email" to send it to: pass its link on yourself, or create an invite with "email"');
    if (inv.acceptedBy !== null) throw new Conflict('this device invite was accepted already: there is nothing to resend');
    mailerOf(this.deps);
    return this.mailing.run(inv.id, async () => {
      const fresh = secretFor('invite', inv.id);
      return this.mailInvite(inv, fresh.secret, linkOf, fresh.hash, (at) =>
        this.audit(c, 'RESEND', this.deviceTarget(inv.deviceId, 'DEVICE_INVITE', inv.id), undefined, { email: inv.email, lastEmailSentAt: at }));
    });
  }

  /** Sends the mail, then records it (with `newHash`: the code it carried replaces the stored one). */
  private async mailInvite(inv: DeviceInvite, code: string, linkOf: LinkOf, newHash?: Buffer, audit?: (at: string) => void): Promise<DeviceInvite> {
    const { store } = this;
    const t = store.getTailnet(inv.tailnetId)!;
    const sharer = store.getUser(inv.sharerId);
    const device = this.deviceTarget(inv.deviceId, 'DEVICE').name;
    const message = deviceInviteMail(inv.email, { device, sharer: sharer?.email ?? `An admin of ${t.name}`, network: t.name, link: linkOf(code) });
    await sendInviteMail(this.deps, message, 'the device invite', (at) => store.markDeviceInviteMailed(inv.id, at, newHash), audit);
    return store.getDeviceInvite(inv.id)!;
  }

  /** Whether the share an accepted invite made is still on (for a multi-use invite: any of them). */
  inviteStillShared(inv: DeviceInvite): boolean {
    if (inv.multiUse) return this.acceptances(inv).some((a) => a.shared);
    return inv.acceptedBy !== null && this.store.shareFor(inv.deviceId, inv.acceptedBy) !== undefined;
  }

  /** Who accepted a multi-use invite, first to last, and whether each one's share is still on. */
  acceptances(inv: DeviceInvite): (DeviceInviteAcceptance & { shared: boolean })[] {
    return this.store.deviceInviteAcceptances(inv.id).map((a) => ({ ...a, shared: this.store.shareFor(inv.deviceId, a.userId) !== undefined }));
  }

  /**
   * The shares deleting this invite ends: the share of each user who accepted it, whether the invite made
   * it or found it made already by an earlier invite (then it confirmed it: the answers call it `shared`).
   */
  private sharesOf(inv: DeviceInvite): Share[] {
    const { store } = this;
    const made = store.sharesOfInvite(inv.id);
    const users = inv.multiUse ? store.deviceInviteAcceptances(inv.id).map((a) => a.userId) : inv.acceptedBy === null ? [] : [inv.acceptedBy];
    const confirmed = users.map((u) => store.shareFor(inv.deviceId, u)).filter((sh): sh is Share => sh !== undefined);
    return [...new Map([...made, ...confirmed].map((sh) => [sh.id, sh])).values()];
  }

  /** An invite to share a device of the caller's tailnet; any other is not found. */
  invite(c: Caller, id: string): DeviceInvite {
    const inv = this.store.getDeviceInvite(id);
    if (!inv || inv.tailnetId !== c.tailnet.id) throw new NotFound(`device invite "${id}" not found`);
    return inv;
  }

  listInvites(d: Device): DeviceInvite[] {
    return this.store.listDeviceInvites(d.id);
  }

  /** Ends the given shares (the caller is on the sharer's or the recipient's side), audited on both sides. */
  revoke(c: Caller, shares: Share[], invite?: DeviceInvite): void {
    const { store } = this;
    const tailnets = new Set<number>();
    store.tx(() => {
      for (const sh of shares) {
        const recipient = store.getUser(sh.recipientId);
        const info = { deviceId: sh.deviceId, recipient: recipient?.email ?? sh.recipientId };
        store.deleteShare(sh.id);
        for (const t of [sh.tailnetId, sh.recipientTailnetId]) {
          tailnets.add(t);
          this.audit(c, 'DELETE', this.deviceTarget(sh.deviceId, 'SHARED_DEVICE', sh.id), info, undefined, t);
        }
      }
      if (invite) {
        store.deleteDeviceInvite(invite.id);
        this.audit(c, 'DELETE', this.deviceTarget(invite.deviceId, 'DEVICE_INVITE', invite.id), { label: invite.label }, undefined, invite.tailnetId);
      }
    });
    this.hub.sharingChanged(tailnets);
  }

  /**
   * The sharer deletes an invite and every share it made (a multi-use invite: each recipient's); the
   * recipient's tailnet may delete its own shares from it, leaving the invite and other networks' shares.
   */
  deleteInvite(c: Caller, id: string): void {
    const inv = this.store.getDeviceInvite(id);
    const shares = inv ? this.sharesOf(inv) : [];
    if (inv && inv.tailnetId === c.tailnet.id) return this.revoke(c, shares, inv);
    const mine = shares.filter((sh) => sh.recipientTailnetId === c.tailnet.id);
    if (!inv || mine.length === 0) throw new NotFound(`device invite "${id}" not found`);
    this.revoke(c, mine);
  }

  /** Redeems an invite link (or its code) for the caller: the device is shared with them. */
  accept(c: Caller, given: string): { share: Share; invite: DeviceInvite } {
    const allowed = settingsOf(c.tailnet).usersRoleAllowedToJoinExternalTailnets;
    if (allowed === 'none' || (allowed === 'admin' && c.user.role !== 'owner' && c.user.role !== 'admin')) {
      throw new Forbidden(`this tailnet's settings let ${allowed === 'none' ? 'nobody' : 'only owners and admins'} accept devices shared from other tailnets (usersRoleAllowedToJoinExternalTailnets)`);
    }
    const { limiter } = this;
    const key = c.user.id;
    reserveAll([[limiter, key]]);
    const code = given.trim().replace(/^.*\//, '');
    const parsed = parseSecret(code);
    const { store } = this;
    const inv = parsed && parsed.kind === 'invite' ? store.getDeviceInvite(parsed.id) : undefined;
    if (!inv || !secretMatches(code, inv.codeHash)) {
      if (!inv) hashSecret(code); // same work on a miss
      limiter.fail(key);
      throw new NotFound('device invite (unknown or wrong code) not found');
    }
    limiter.succeed(key, true);
    if (inv.acceptedBy !== null) throw new Conflict(ALREADY_ACCEPTED);
    if (inv.tailnetId === c.tailnet.id) throw new InvalidInput('this device belongs to your own network: there is nothing to share');
    const me = c.user;
    if (inv.multiUse) {
      const before = store.deviceInviteAcceptances(inv.id);
      if (before.some((a) => a.userId === me.id)) {
        // Accepting the same link again changes nothing while the share is on; a revoke sticks.
        const sh = store.shareFor(inv.deviceId, me.id);
        if (sh) return { share: sh, invite: inv };
        throw new Conflict(REVOKED_BEFORE);
      }
      if (before.length >= MAX_INVITE_USES) throw new Conflict(USED_UP);
    }
    const share = store.tx(() => {
      const sh = store.acceptDeviceInvite(inv, me);
      if (!sh) throw new Conflict(inv.multiUse ? REVOKED_BEFORE : ALREADY_ACCEPTED);
      const info = { deviceId: inv.deviceId, label: inv.label, recipient: me.email, sharer: store.getUser(inv.sharerId)?.email ?? inv.sharerId };
      this.audit(c, 'CREATE', this.deviceTarget(inv.deviceId, 'SHARED_DEVICE', sh.id), undefined, info, inv.tailnetId);
      this.audit(c, 'CREATE', this.deviceTarget(inv.deviceId, 'SHARED_DEVICE', sh.id), undefined, info);
      return sh;
    });
    this.hub.sharingChanged([inv.tailnetId, me.tailnetId]);
    return { share, invite: inv };
  }
}
