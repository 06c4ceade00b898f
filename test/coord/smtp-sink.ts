// A real SMTP server for tests: Debian's aiosmtpd (python3-aiosmtpd, installed by scripts/bootstrap) on
// loopback, with AUTH, writing each message it takes to a directory (smtp-sink.py). Stop it to play a mail
// server that is down; start it again on the same port to bring it back.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const SCRIPT = fileURLToPath(new URL('./smtp-sink.py', import.meta.url));
/** Debian's interpreter, where python3-aiosmtpd lives (not whatever python3 comes first on PATH). */
const PYTHON = '/usr/bin/python3';

export interface SinkMail {
  mailFrom: string;
  rcptTos: string[];
  /** The user the client signed in as. */
  user: string | null;
  subject: string;
  from: string;
  to: string;
  text: string;
}

export class SmtpSink {
  port = 0;
  readonly dir = mkdtempSync(join(tmpdir(), 'mw-smtp-sink-'));
  private proc: ChildProcess | undefined;
  private stderr = '';

  /** `tls`: PEM files of a certificate for 127.0.0.1 and its key: the server speaks SMTPS. */
  constructor(readonly user = 'coord', readonly password = 'p@ss:word with spaces', readonly tls?: { cert: string; key: string }) {}

  /** The URL coord is given (user and password percent-encoded). */
  get url(): string {
    return `${this.tls ? 'smtps' : 'smtp'}://${encodeURIComponent(this.user)}:${encodeURIComponent(this.password)}@127.0.0.1:${this.port}`;
  }

  /** Starts the server (again on the same port once it has one); resolves once it listens. */
  async start(): Promise<this> {
    if (!existsSync(PYTHON)) throw new Error(`${PYTHON} is missing: run scripts/bootstrap (it installs python3-aiosmtpd)`);
    const proc = spawn(PYTHON, [SCRIPT, this.dir, String(this.port), this.user, ...(this.tls ? [this.tls.cert, this.tls.key] : [])], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SINK_PASSWORD: this.password } });
    this.proc = proc;
    proc.stderr!.on('data', (c: Buffer) => (this.stderr += c.toString()));
    const lines = createInterface({ input: proc.stdout! });
    this.port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the SMTP sink did not start: ${this.stderr}`)), 15_000);
      proc.once('exit', (code) => reject(new Error(`the SMTP sink exited with ${code}: ${this.stderr} (is python3-aiosmtpd installed? run scripts/bootstrap)`)));
      lines.once('line', (line) => {
        clearTimeout(timer);
        resolve((JSON.parse(line) as { port: number }).port);
      });
    });
    return this;
  }

  /** Stops the server (the port refuses connections until start). */
  async stop(): Promise<void> {
    const p = this.proc;
    this.proc = undefined;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => p.once('exit', () => resolve()));
    p.kill('SIGTERM');
    await exited;
  }

  /** Every message taken so far, oldest first. */
  mails(): SinkMail[] {
    return readdirSync(this.dir)
      .filter((f) => /^\d+\.json$/.test(f))
      .sort((a, b) => parseInt(a) - parseInt(b))
      .map((f) => JSON.parse(readFileSync(join(this.dir, f), 'utf8')) as SinkMail);
  }

  async cleanup(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The invite link in a mail's text (`<public-url>/admin/invite/<code>`), and its code. */
export function linkIn(mail: SinkMail): { link: string; code: string } {
  const m = /(https?:\/\/\S+\/admin\/invite\/(mwkey-invite-[A-Za-z0-9-]+))/.exec(mail.text);
  if (!m) throw new Error(`no invite link in the mail: ${mail.text}`);
  return { link: m[1]!, code: m[2]! };
}
