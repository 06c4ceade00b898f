// Invites by mail: what the mail says, and the rules both kinds of invite share. Only a hash of an
// invite's code is stored, so a resend cannot repeat the code that was shown at creation: it mails a new
// one, and the new code replaces the old only once the mail server took the message (a failed resend
// changes nothing; the old link keeps working).
import { Conflict, NotConfigured } from '../errors.js';
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
