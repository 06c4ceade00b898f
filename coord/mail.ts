// Outgoing mail (invites) through the SMTP server `coord serve --smtp-url` names, with nodemailer.
// The URL carries the server's password: it is parsed here once, and only its description without the
// password (describeSmtp) ever reaches a log line or an error message.
import { createTransport } from 'nodemailer';
import type { Logger } from 'pino';
import { UpstreamFailed } from './errors.js';

export interface SmtpSettings {
  host: string;
  port: number;
  /** smtps: TLS from the first byte; smtp: plain, upgraded with STARTTLS when the server offers it. */
  secure: boolean;
  user: string;
  pass: string;
}

const USAGE = 'expected smtp://USER:PASSWORD@HOST:PORT or smtps://USER:PASSWORD@HOST:PORT';

/** Parses `smtp[s]://user:pass@host:port`; the error never repeats the URL (it holds a password). */
export function parseSmtpUrl(raw: string): SmtpSettings {
  let u: URL;
  try {
    u = new URL(raw.trim());
  } catch {
    throw new Error(`the SMTP URL is not a URL: ${USAGE}`);
  }
  if (u.protocol !== 'smtp:' && u.protocol !== 'smtps:') throw new Error(`the SMTP URL must start with smtp:// or smtps:// (${USAGE})`);
  if (u.hostname === '') throw new Error(`the SMTP URL names no host: ${USAGE}`);
  if ((u.pathname !== '' && u.pathname !== '/') || u.search !== '' || u.hash !== '') throw new Error(`the SMTP URL has a path, query or fragment coord does not understand: ${USAGE}`);
  const secure = u.protocol === 'smtps:';
  let user: string;
  let pass: string;
  try {
    user = decodeURIComponent(u.username);
    pass = decodeURIComponent(u.password);
  } catch {
    throw new Error('the SMTP URL\'s user or password is not valid percent-encoding (write a "@" as %40, a ":" as %3A)');
  }
  if (pass !== '' && user === '') throw new Error(`the SMTP URL has a password but no user: ${USAGE}`);
  return { host: u.hostname.replace(/^\[(.*)\]$/, '$1'), port: u.port === '' ? (secure ? 465 : 587) : Number(u.port), secure, user, pass };
}

/** The server as logs and errors may name it: scheme, user, host and port, never the password. */
export function describeSmtp(s: SmtpSettings): string {
  const host = s.host.includes(':') ? `[${s.host}]` : s.host;
  return `${s.secure ? 'smtps' : 'smtp'}://${s.user === '' ? '' : `${encodeURIComponent(s.user)}@`}${host}:${s.port}`;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** nodemailer's SMTP options for the server (exported for its test). */
export function transportOptionsOf(settings: SmtpSettings) {
  const auth = settings.user === '' ? undefined : { user: settings.user, pass: settings.pass };
  return {
    host: settings.host,
    port: settings.port,
    secure: settings.secure,
    auth,
    // A password leaves this machine only encrypted: without smtps, STARTTLS is required unless the server is on loopback.
    requireTLS: !settings.secure && auth !== undefined && !isLoopback(settings.host),
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    socketTimeout: 30_000,
    // Messages are plain text we compose; never let a field make nodemailer read a file or fetch a URL.
    disableFileAccess: true,
    disableUrlAccess: true,
    logger: false,
  };
}

export interface MailMessage {
  to: string;
  subject: string;
  text: string;
}

export class Mailer {
  private readonly transport: ReturnType<typeof createTransport>;
  readonly description: string;

  constructor(readonly settings: SmtpSettings, readonly from: string, private readonly log: Logger) {
    this.description = describeSmtp(settings);
    this.transport = createTransport(transportOptionsOf(settings));
  }

  /** Sends one message; a refusal or an unreachable server is an UpstreamFailed naming the server (not the password). */
  async send(m: MailMessage): Promise<void> {
    let why: string | undefined;
    try {
      // An address object: nodemailer takes it as one address and does not split "a,b@c" into two.
      const info = await this.transport.sendMail({ from: this.from, to: { name: '', address: m.to }, subject: m.subject, text: m.text });
      if (info.rejected.length > 0) why = `it refused the recipient ${m.to}`;
    } catch (err) {
      why = reasonOf(err);
    }
    if (why !== undefined) {
      this.log.warn({ smtp: this.description, reason: why }, 'mail not sent');
      throw new UpstreamFailed(`the mail server ${this.description} did not take the mail: ${why}`);
    }
  }

  /** Connects and signs in without sending (a start-up check); resolves to the problem, or undefined when all is well. */
  async check(): Promise<string | undefined> {
    try {
      await this.transport.verify();
      return undefined;
    } catch (err) {
      return reasonOf(err);
    }
  }

  close(): void {
    this.transport.close();
  }
}

function reasonOf(err: unknown): string {
  const e = err as { message?: string; code?: string; responseCode?: number };
  const message = String(e?.message ?? err).replace(/\s+/g, ' ').slice(0, 300);
  return e?.code ? `${message} (${e.code})` : message;
}
