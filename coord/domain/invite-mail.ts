// Invites by mail: what the mail says, and the rules both kinds of invite share. Only a hash of an
// invite's code is stored, so a resend cannot repeat the code that was shown at creation: it mails a new
// one, and the new code replaces the old only once the mail server took the message (a failed resend
// changes nothing; the old link keeps working).
import { Conflict, DomainError, NotConfigured } from '../errors.js';
import type { MailMessage, Mailer } from '../mail.js';
import type { DomainDeps } from './context.js';

export const NO_MAIL_SERVER = 'coord has no mail server: start it with --smtp-url smtp[s]://USER:PASSWORD@HOST:PORT (see docs/operations.md)';

/** The link in the mail for an invite's code (the admin console's invite page). */
export type LinkOf = (code: string) => string;

/** The mail server, or a NotConfigured error that says how to set one up. */
export function mailerOf(deps: DomainDeps): Mailer {
  if (!deps.mailer) throw new NotConfigured(NO_MAIL_SERVER);
  return deps.mailer;
}

/** Invites whose mail is on its way: a second resend of the same invite meanwhile is refused, not raced. */
export class MailsInFlight {
  private readonly ids = new Set<string>();

  async run<T>(id: string, send: () => Promise<T>): Promise<T> {
    if (this.ids.has(id)) throw new Conflict('a mail for this invite is being sent right now; try again in a moment');
    this.ids.add(id);
    try {
      return await send();
    } finally {
      this.ids.delete(id);
    }
  }
}

/** A device or user invite, as far as mailing it goes. */
interface MailableInvite {
  id: string;
  email: string;
}

/**
 * Mails each new invite that names an "email" (one at a time, through `mailing`); a mail the server did not
 * take leaves its invite as it is, with the reason. Nothing is mailed when coord has no mail server.
 */
export async function mailEachNewInvite<I extends MailableInvite>(
  deps: DomainDeps,
  mailing: MailsInFlight,
  made: { invite: I; code: string }[],
  mail: (invite: I, code: string) => Promise<I>,
): Promise<{ invite: I; code: string; mailError?: string }[]> {
  if (!deps.mailer) return made;
  const out: { invite: I; code: string; mailError?: string }[] = [];
  for (const { invite, code } of made) {
    if (invite.email === '') {
      out.push({ invite, code });
      continue;
    }
    try {
      out.push({ invite: await mailing.run(invite.id, () => mail(invite, code)), code });
    } catch (err) {
      if (!(err instanceof DomainError)) throw err;
      out.push({ invite, code, mailError: err.message });
    }
  }
  return out;
}

/**
 * Sends an invite's mail, then records it in one transaction with `audit` (`markMailed` says whether the
 * invite is still there, unaccepted); `what` names the invite in the Conflict when it is not.
 */
export async function sendInviteMail(
  deps: DomainDeps,
  message: MailMessage,
  what: string,
  markMailed: (at: string) => boolean,
  audit?: (at: string) => void,
): Promise<void> {
  await mailerOf(deps).send(message);
  const at = new Date().toISOString();
  const recorded = deps.store.tx(() => {
    const ok = markMailed(at);
    if (ok) audit?.(at);
    return ok;
  });
  if (!recorded) throw new Conflict(`${what} was accepted or deleted while its mail was being sent: the link in that mail does not work`);
}

const ONE_USE = 'The link works once. If you did not expect this mail, ignore it: nothing happens until someone opens the link.';

export function userInviteMail(to: string, a: { network: string; inviter: string; role: string; link: string }): MailMessage {
  return {
    to,
    subject: `You are invited to the network ${a.network}`,
    text: [
      `${a.inviter} invited you to join the network ${a.network} on meshward as ${a.role === 'member' ? 'a member' : `${a.role}`}.`,
      '',
      'Open this link to accept and choose your password:',
      a.link,
      '',
      ONE_USE,
      '',
    ].join('\n'),
  };
}

export function deviceInviteMail(to: string, a: { device: string; sharer: string; network: string; link: string }): MailMessage {
  return {
    to,
    subject: `${a.sharer} shared the device ${a.device} with you`,
    text: [
      `${a.sharer} (network ${a.network}) shared the device ${a.device} with you on meshward.`,
      '',
      'Open this link and sign in to your own network to accept it:',
      a.link,
      '',
      'Once accepted, the device appears among your network\'s machines; it answers your connections but cannot start its own.',
      ONE_USE,
      '',
    ].join('\n'),
  };
}
