// `coord serve`: runs the coordination server until SIGTERM/SIGINT, then shuts down gracefully.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { pino } from 'pino';
import { parseFlags, UsageError, type Command } from '../../wire/cli.js';
import { badProxyEntries } from '../api/client-addr.js';
import type { StreamLimits } from '../log-stream/streamer.js';
import { EMAIL_RE } from '../domain/input.js';
import { describeSmtp, parseSmtpUrl, type SmtpSettings } from '../mail.js';
import { startServer } from '../server.js';
import { Store } from '../store/index.js';
import { DEFAULT_DB, parseDuration, parseListen } from './common.js';

const isLoopback = (host: string) => host === 'localhost' || host === '::1' || host.startsWith('127.');

function hostOf(url: string): string {
  try {
    return new URL(url).hostname.replace(/^\[(.*)\]$/, '$1');
  } catch {
    return '';
  }
}

export const serveCommand: Command = {
  usage: 'serve [--listen 127.0.0.1:8080] [--db FILE] [--tls-cert FILE --tls-key FILE] [--public-url URL] [--ephemeral-timeout 10m] [--stun-port 3478] [--stun-listen ADDR] [--no-relay] [--relay-name coord] [--allow-private-webhooks] [--log-stream-flush 5s] [--log-stream-retry-max 5m] [--log-stream-backlog 100000] [--log-stream-backlog-bytes 64M] [--trusted-proxy ADDR[,ADDR...]] [--metrics-listen 127.0.0.1:9180] [--smtp-url-file FILE | --smtp-url smtp[s]://USER:PASS@HOST:PORT] [--mail-from ADDRESS] [--log-level LEVEL]',
  summary: 'run the coordination server',
  async run(argv) {
    const { values } = parseFlags(argv, {
      listen: { type: 'string', default: '127.0.0.1:8080' },
      db: { type: 'string', default: DEFAULT_DB },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'public-url': { type: 'string' },
      'log-level': { type: 'string', default: 'info' },
      'ephemeral-timeout': { type: 'string', default: '10m' },
      'stun-port': { type: 'string', default: '3478' },
      'stun-listen': { type: 'string' },
      'allow-private-webhooks': { type: 'boolean' },
      'metrics-listen': { type: 'string' },
      'no-relay': { type: 'boolean' },
      'relay-name': { type: 'string', default: 'coord' },
      'trusted-proxy': { type: 'string', multiple: true },
      'log-stream-flush': { type: 'string', default: '5s' },
      'log-stream-retry-max': { type: 'string', default: '5m' },
      'log-stream-backlog': { type: 'string', default: '100000' },
      'log-stream-backlog-bytes': { type: 'string', default: '64M' },
      'smtp-url': { type: 'string' },
      'smtp-url-file': { type: 'string' },
      'mail-from': { type: 'string' },
    });
    const logStreamLimits = logStreamLimitsOf(values);
    const mail = mailOptions(values['smtp-url'], values['smtp-url-file'], values['mail-from']);
    if (!/^[A-Za-z0-9][A-Za-z0-9-]{0,62}$/.test(values['relay-name']!)) throw new UsageError('--relay-name must be letters, digits and "-" (at most 63)');
    const trustedProxies = (values['trusted-proxy'] ?? []).flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v !== '');
    const badProxies = badProxyEntries(trustedProxies);
    if (badProxies.length > 0) throw new UsageError(`--trusted-proxy takes IP addresses or prefixes, not ${badProxies.map((b) => JSON.stringify(b)).join(', ')}`);
    const ephemeralTimeoutMs = parseDuration(values['ephemeral-timeout']!) * 1000;
    if (ephemeralTimeoutMs < 1000) throw new UsageError('--ephemeral-timeout must be at least 1s');
    const { host, port } = parseListen(values.listen!);
    const metricsFlag = values['metrics-listen'];
    if (metricsFlag !== undefined && !/^(\[[0-9a-fA-F:.]+\]|[^:[\]]*):\d{1,5}$/.test(metricsFlag)) {
      throw new UsageError(`--metrics-listen ${JSON.stringify(metricsFlag)}: expected HOST:PORT, e.g. 127.0.0.1:9180`);
    }
    const metricsListen = metricsFlag === undefined ? undefined : parseListen(metricsFlag);
    const stunPort = /^\d+$/.test(values['stun-port']!) ? Number(values['stun-port']) : NaN;
    if (!(stunPort >= 0 && stunPort <= 65534)) throw new UsageError('--stun-port must be a UDP port below 65535 (0 turns STUN off)');
    const stunHost = values['stun-listen'];
    if (stunHost !== undefined && isIP(stunHost) === 0) throw new UsageError(`--stun-listen ${JSON.stringify(stunHost)}: an IP address (0.0.0.0 or :: for all)`);
    if (!!values['tls-cert'] !== !!values['tls-key']) throw new UsageError('--tls-cert and --tls-key go together');
    const levels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
    if (!levels.includes(values['log-level']!)) throw new UsageError(`--log-level must be one of ${levels.join(', ')}`);
    const log = pino({ level: values['log-level']!, base: { program: 'coord' } });
    const tls = values['tls-cert'] ? { cert: readFileSync(values['tls-cert']), key: readFileSync(values['tls-key']!) } : undefined;
    const store = new Store(values.db!);
    const server = await startServer({
      store, log, host, port, tls, publicUrl: values['public-url'], ephemeralTimeoutMs, stunPort, stunHost, relay: values['no-relay'] !== true, relayName: values['relay-name'],
      allowPrivateWebhooks: values['allow-private-webhooks'] === true, metricsListen, trustedProxies, logStreamLimits, mail,
    });
    log.info({ url: server.url, db: values.db, schema: store.schemaVersion(), stun: server.stun?.ports ?? null, relay: server.relay ? values['relay-name'] : null, metrics: server.metricsUrl, mail: server.mailer?.description ?? null }, 'coord listening');
    // Behind a reverse proxy coord listens on loopback, and STUN (UDP, not proxied) with it unless told.
    if (server.stun && isLoopback(stunHost ?? host) && !isLoopback(hostOf(values['public-url'] ?? server.url))) {
      log.warn({ stun: `${stunHost ?? host}:${server.stun.ports.join(',')}`, publicUrl: values['public-url'] }, 'STUN listens on loopback only, where no device can reach it: give --stun-listen a public address (or 0.0.0.0)');
    }
    // Say at once whether the mail server answers; coord serves either way (a failed invite mail is reported to its caller).
    void server.mailer?.check().then((problem) => {
      if (problem) log.warn({ smtp: server.mailer!.description, reason: problem }, 'the mail server does not answer now: invite mails fail until it does');
      else log.info({ smtp: server.mailer!.description }, 'mail server ready');
    });
    // For scripts and tests: the address actually bound (useful with port 0).
    process.stdout.write(JSON.stringify({ listening: server.url, ...(server.metricsUrl ? { metrics: server.metricsUrl } : {}) }) + '\n');
    await new Promise<void>((resolve) => {
      const stop = (signal: string) => {
        log.info({ signal }, 'shutting down');
        resolve();
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
    await server.close();
    store.close();
    log.info('stopped');
    return 0;
  },
};

/** The log streaming flags: how long a batch waits, the longest retry delay, the backlog's bounds. */
function logStreamLimitsOf(values: Record<string, unknown>): Partial<StreamLimits> {
  const flushMs = parseDuration(String(values['log-stream-flush'])) * 1000;
  const retryMaxMs = parseDuration(String(values['log-stream-retry-max'])) * 1000;
  if (retryMaxMs < 1000) throw new UsageError('--log-stream-retry-max must be at least 1s');
  const backlogEntries = /^\d+$/.test(String(values['log-stream-backlog'])) ? Number(values['log-stream-backlog']) : NaN;
  if (!(backlogEntries >= 1)) throw new UsageError('--log-stream-backlog must be a number of entries (at least 1)');
  const m = /^(\d+)([KMG]?)$/.exec(String(values['log-stream-backlog-bytes']));
  const backlogBytes = m ? Number(m[1]) * { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2] as '' | 'K' | 'M' | 'G'] : NaN;
  if (!(backlogBytes >= 1024)) throw new UsageError('--log-stream-backlog-bytes must be a size of at least 1024 bytes (e.g. 65536, 512K, 64M, 1G)');
  return { flushMs, retryMaxMs, retryBaseMs: Math.min(1000, retryMaxMs), backlogEntries, backlogBytes };
}

/**
 * The mail server from --smtp-url-file FILE, --smtp-url URL or MESHWARD_SMTP_URL (the URL holds a password:
 * the file or the environment keep it out of `ps`), and the sender: --mail-from, else the SMTP user when it
 * is an address.
 */
function mailOptions(flag: string | undefined, file: string | undefined, from: string | undefined): { smtp: SmtpSettings; from: string } | undefined {
  if (flag !== undefined && file !== undefined) throw new UsageError('give the mail server once: --smtp-url-file FILE or --smtp-url URL');
  let raw = flag ?? process.env.MESHWARD_SMTP_URL;
  let source = flag !== undefined ? '--smtp-url' : 'MESHWARD_SMTP_URL';
  if (file !== undefined) {
    source = `--smtp-url-file ${file}`;
    try {
      raw = readFileSync(file, 'utf8').trim();
    } catch (err) {
      throw new UsageError(`${source}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  delete process.env.MESHWARD_SMTP_URL; // read once; nothing coord starts needs it
  if (raw === undefined || raw === '') {
    if (from !== undefined) throw new UsageError('--mail-from needs a mail server: --smtp-url-file FILE, --smtp-url URL or MESHWARD_SMTP_URL');
    return undefined;
  }
  let smtp: SmtpSettings;
  try {
    smtp = parseSmtpUrl(raw);
  } catch (err) {
    throw new UsageError(`${source}: ${(err as Error).message}`);
  }
  const sender = from ?? (EMAIL_RE.test(smtp.user) ? smtp.user : undefined);
  if (sender === undefined) throw new UsageError(`--mail-from ADDRESS is needed: the sender of invite mails (the SMTP user of ${describeSmtp(smtp)} is no address)`);
  const address = /^[^<>]*<([^<>]*)>$/.exec(sender)?.[1] ?? sender;
  if (!EMAIL_RE.test(address) || /[\u0000-\u001f\u007f]/.test(sender)) throw new UsageError(`--mail-from ${JSON.stringify(sender)}: expected an address, or "Name <address>"`);
  return { smtp, from: sender };
}
