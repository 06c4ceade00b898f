// Log streaming settings of a tailnet: where its configuration log is sent (one destination per log type).
// Delivery is ../log-stream/streamer.ts. Network flow logs are not collected, so they cannot be streamed.
import { InvalidInput, NotFound } from '../errors.js';
import { DESTINATION_TYPES, TAKES_USER, type DestinationType } from '../log-stream/destinations.js';
import type { StreamStatus } from '../log-stream/streamer.js';
import type { LogStream, LogStreamConfig, Tailnet } from '../store/index.js';
import { checkWebhookTarget, WebhookTargetError, type TargetKind } from '../webhook-target.js';
import { Operations, type Caller } from './context.js';
import { str, text } from './input.js';

export const LOG_STREAM_TARGET: TargetKind = { noun: 'log streaming destination', field: 'url', sends: 'logs' };

const FIELDS = ['logType', 'destinationType', 'url', 'user', 'token', 'compressionFormat'];
const SUPPORTED = DESTINATION_TYPES.join(', ');
const NETWORK_LOGS = 'network flow logs are not collected by this server, so they cannot be streamed; only "configuration" (the configuration audit log) can';

/** `logType` of the path: "configuration"; "network" is refused as not collected, anything else is unknown. */
export function checkLogType(logType: string, refuse: 'not-found' | 'invalid'): 'configuration' {
  if (logType === 'configuration') return logType;
  const message = logType === 'network' ? NETWORK_LOGS : `unknown log type ${JSON.stringify(logType.slice(0, 40))} (log types: configuration, network)`;
  throw refuse === 'invalid' ? new InvalidInput(message) : new NotFound(message);
}

/** What the API answers for a stream's configuration: never the token. */
export function publicConfig(s: LogStream): Record<string, unknown> {
  return { logType: s.logType, destinationType: s.destinationType, url: s.url, user: s.user, compressionFormat: s.compression };
}

export class LogStreamOperations extends Operations {
  /** The stream of this log type; 404 when none is configured. */
  get(t: Tailnet, logType: string): LogStream {
    const type = checkLogType(logType, 'not-found');
    const s = this.store.getLogStream(t.id, type);
    if (!s) throw new NotFound(`log streaming of ${type} logs is not configured`);
    return s;
  }

  status(t: Tailnet, logType: string): StreamStatus {
    const s = this.get(t, logType);
    if (!this.deps.logStreamer) throw new Error('no log streamer');
    return this.deps.logStreamer.status(s);
  }

  /** Sets (creates or replaces) the stream; a token left out keeps the one stored. */
  async set(c: Caller, t: Tailnet, logType: string, b: Record<string, unknown>): Promise<LogStream> {
    const type = checkLogType(logType, 'invalid');
    const old = this.store.getLogStream(t.id, type);
    const config = await this.checkConfig(type, b, old);
    const { store } = this;
    const s = store.tx(() => {
      const saved = store.setLogStream(t.id, type, config);
      this.audit(c, old ? 'UPDATE' : 'CREATE', { id: type, name: `${type} log stream`, type: 'TAILNET', property: 'LOGSTREAM_ENDPOINT' },
        old ? publicConfig(old) : undefined, publicConfig(saved));
      return saved;
    });
    this.deps.logStreamer?.reconfigured(t.id, type);
    return s;
  }

  /** Stops streaming this log type (nothing configured is no error). What was not delivered yet stays in the audit log. */
  delete(c: Caller, t: Tailnet, logType: string): void {
    const type = checkLogType(logType, 'not-found');
    const old = this.store.getLogStream(t.id, type);
    if (!old) return;
    const { store } = this;
    store.tx(() => {
      store.deleteLogStream(t.id, type);
      this.audit(c, 'DELETE', { id: type, name: `${type} log stream`, type: 'TAILNET', property: 'LOGSTREAM_ENDPOINT' }, publicConfig(old));
    });
    this.deps.logStreamer?.removed(t.id, type);
  }

  private async checkConfig(logType: string, b: Record<string, unknown>, old: LogStream | undefined): Promise<LogStreamConfig> {
    const unknown = Object.keys(b).filter((k) => !FIELDS.includes(k));
    if (unknown.length > 0) {
      throw new InvalidInput(`unsupported field(s) ${unknown.map((k) => JSON.stringify(k)).join(', ')}: this server streams to HTTP destinations (${SUPPORTED}) and takes ${FIELDS.slice(1).join(', ')}`);
    }
    if (b.logType !== undefined && b.logType !== logType) throw new InvalidInput(`"logType" is ${JSON.stringify(logType)} (the path's); it cannot be changed`);
    if (b.destinationType === undefined) throw new InvalidInput(`"destinationType" is required (one of ${SUPPORTED})`);
    const destinationType = str(b.destinationType, 'destinationType', 32);
    if (!(DESTINATION_TYPES as readonly string[]).includes(destinationType)) {
      throw new InvalidInput(`"destinationType" ${JSON.stringify(destinationType)} is not supported: this server streams to ${SUPPORTED} (HTTP destinations that take a URL and a token)`);
    }
    if (b.url === undefined) throw new InvalidInput('"url" is required');
    const url = str(b.url, 'url', 2048);
    const allowPrivate = this.deps.allowPrivateWebhooks === true;
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new InvalidInput('"url" is not a URL');
    }
    // The token travels with every request: only over TLS, unless the operator allows private targets (tests, a collector beside coord).
    if (u.protocol !== 'https:' && !(allowPrivate && u.protocol === 'http:')) {
      throw new InvalidInput(`"url" must be an https URL${allowPrivate ? ' (or http)' : ''}`);
    }
    if (u.username || u.password) throw new InvalidInput('"url" must not hold credentials: give them as "user" and "token"');
    try {
      await checkWebhookTarget(url, allowPrivate, LOG_STREAM_TARGET);
    } catch (err) {
      if (err instanceof WebhookTargetError) throw new InvalidInput(err.message);
      throw err;
    }
    const user = b.user === undefined || b.user === '' ? '' : text(b.user, 'user', 256);
    if (user !== '' && !TAKES_USER.includes(destinationType as DestinationType)) {
      throw new InvalidInput(`"user" is not used by ${destinationType} (only by ${TAKES_USER.join(', ')}, for HTTP Basic authentication)`);
    }
    if (user.includes(':')) throw new InvalidInput('"user" must not contain ":"');
    let token: string;
    if (b.token === undefined || b.token === '') {
      if (!old) throw new InvalidInput('"token" is required (the destination\'s API token)');
      token = old.token;
    } else {
      token = str(b.token, 'token', 4096);
      // It travels in an HTTP header: printable ASCII only (API tokens are).
      if (!/^[\x20-\x7e]+$/.test(token)) throw new InvalidInput('"token" must be printable ASCII');
    }
    const compressionFormat = b.compressionFormat === undefined ? 'none' : str(b.compressionFormat, 'compressionFormat', 16);
    if (compressionFormat !== 'none' && compressionFormat !== 'gzip') {
      throw new InvalidInput(`"compressionFormat" ${JSON.stringify(compressionFormat)} is not supported: "none" or "gzip"`);
    }
    return { destinationType, url, user, token, compression: compressionFormat };
  }
}
