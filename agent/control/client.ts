// The agent's client for coord's machine API (docs/protocol.md): signed requests, registration,
// posture updates, and the netmap stream with reconnects (reconnect.ts: back within seconds after a
// short outage, backing off while one lasts, jittered).
import { createHash, randomBytes, sign } from 'node:crypto';
import type { LookupAddress, LookupOptions } from 'node:dns';
import { Agent, request, type Dispatcher } from 'undici';
import {
  applyDelta, HDR_KEEPALIVE_MS, HDR_MACHINE_KEY, HDR_NONCE, HDR_SIGNATURE, HDR_TIMESTAMP, MACHINE_PATHS, signingString,
  type Netmap, type RegisterRequest, type RegisterResponse, type StreamMessage, type UpdateRequest,
} from '../../wire/protocol.js';
import type { MachineKey } from './keys.js';
import { ReconnectSchedule, type ReconnectOptions } from './reconnect.js';

/** A refusal from coord: HTTP status and coord's message, verbatim (the CLI prints it as is). */
export class ControlError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = 'ControlError';
  }
  /** 401/403/404 and other 4xx: retrying the same request will not help. 429/5xx and network errors may. */
  get permanent(): boolean {
    return this.status >= 400 && this.status < 500 && this.status !== 408 && this.status !== 429;
  }
}

export function signedHeaders(key: MachineKey, method: string, pathAndQuery: string, body: Buffer): Record<string, string> {
  const timestamp = String(Date.now());
  const nonce = randomBytes(18).toString('base64url');
  const bodyHash = createHash('sha256').update(body).digest('hex');
  const sig = sign(null, Buffer.from(signingString(method, pathAndQuery, bodyHash, timestamp, nonce)), key.privateKey);
  return {
    [HDR_MACHINE_KEY]: key.publicKey,
    [HDR_TIMESTAMP]: timestamp,
    [HDR_NONCE]: nonce,
    [HDR_SIGNATURE]: sig.toString('base64'),
  };
}

export interface StreamHandlers {
  onNetmap(netmap: Netmap): void;
  /** Every failure; `fatal` ones end the stream (device unknown, removed, or its key expired). */
  onError?(err: Error, info: { fatal: boolean; retryInMs?: number }): void;
  /** The stream is open; `idleTimeoutMs`: how long it may now stay silent before it is reopened. */
  onConnected?(info: { idleTimeoutMs: number }): void;
}

export interface StreamOptions extends ReconnectOptions {
  /** For tests: the clock and random source of the reconnect schedule. */
  now?: () => number;
  random?: () => number;
  /**
   * With no line (netmap or keepalive) for this long, the stream is considered dead and reopened.
   * Default: three of the keepalive intervals coord announces (streamIdleTimeoutMs).
   */
  idleTimeoutMs?: number;
}

/** Without an announced interval (a coord before mw-keepalive-ms), three of its 30 s keepalives. */
export const DEFAULT_IDLE_TIMEOUT_MS = 90_000;

/**
 * How long the stream may stay silent before the agent gives up on it: three keepalive intervals as
 * coord announces them in the mw-keepalive-ms header (two may be lost or late), never below 10 s nor
 * above the 90 s that suits coords that do not announce theirs.
 */
export function streamIdleTimeoutMs(announced: string | string[] | undefined): number {
  const ms = typeof announced === 'string' && /^[0-9]{1,9}$/.test(announced) ? Number(announced) : 0;
  if (ms <= 0) return DEFAULT_IDLE_TIMEOUT_MS;
  return Math.min(DEFAULT_IDLE_TIMEOUT_MS, Math.max(10_000, 3 * ms));
}

export interface NetmapStream {
  /** Ends the stream and stops reconnecting. */
  close(): void;
  /** Resolves when the stream has ended for good (close() or a fatal error). */
  done: Promise<void>;
}

export interface ClientOptions {
  /** Extra CA certificate(s) (PEM) to trust for coord's TLS certificate, e.g. a self-signed one. */
  ca?: string | Buffer;
  /**
   * Finds coord's addresses (the routing's, so that reaching coord never needs DNS through the tunnel);
   * the system resolver without it. TLS still checks the certificate against the URL's host name.
   */
  lookup?: (hostname: string, options: LookupOptions, callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void) => void;
}

export class ControlClient {
  readonly base: string;
  private readonly dispatcher: Dispatcher | undefined;

  constructor(coordUrl: string, readonly key: MachineKey, opts: ClientOptions = {}) {
    this.base = coordUrl.replace(/\/+$/, '');
    if (opts.ca || opts.lookup) {
      this.dispatcher = new Agent({ connect: { ...(opts.ca ? { ca: opts.ca } : {}), ...(opts.lookup ? { lookup: opts.lookup } : {}) } });
    }
  }

  private async call<T>(path: string, payload: unknown, timeoutMs = 30_000): Promise<T> {
    const body = Buffer.from(JSON.stringify(payload));
    const res = await request(this.base + path, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json', ...signedHeaders(this.key, 'POST', path, body) },
      dispatcher: this.dispatcher,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.body.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new ControlError(res.statusCode, `coord answered ${res.statusCode} with a body that is not JSON`);
    }
    if (res.statusCode !== 200) {
      throw new ControlError(res.statusCode, (parsed as { message?: string }).message ?? `coord answered ${res.statusCode}`);
    }
    return parsed as T;
  }

  register(r: RegisterRequest): Promise<RegisterResponse> {
    return this.call(MACHINE_PATHS.register, r);
  }

  update(u: UpdateRequest): Promise<void> {
    return this.call(MACHINE_PATHS.update, u);
  }

  /**
   * Tells coord to delete this device (`agent logout`). Rejects with a ControlError when coord refuses
   * (401: it does not know this machine key), or with the network error when coord cannot be reached.
   */
  async logout(timeoutMs = 10_000): Promise<void> {
    await this.call(MACHINE_PATHS.logout, {}, timeoutMs);
  }

  /** Holds the netmap stream open, reconnecting after failures, until close() or a fatal error. */
  stream(h: StreamHandlers, o: StreamOptions = {}): NetmapStream {
    const schedule = new ReconnectSchedule(o, o.now, o.random);
    let closed = false;
    let abort: AbortController | undefined;
    let wake: (() => void) | undefined;
    let lastVersion = 0;

    const sleep = (ms: number) =>
      new Promise<void>((resolve) => {
        const t = setTimeout(resolve, ms);
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });

    const once = async (): Promise<'fatal' | 'retry' | 'gotNetmap'> => {
      abort = new AbortController();
      // Until coord's answer says how often it writes, assume the slowest coord.
      let idleTimeoutMs = o.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
      let idle: NodeJS.Timeout | undefined;
      const armIdle = () => {
        clearTimeout(idle);
        idle = setTimeout(() => abort?.abort(new Error(`no data from coord for ${idleTimeoutMs} ms`)), idleTimeoutMs);
      };
      let got = false;
      // Deltas apply to the last netmap of this stream; each stream starts with a full one.
      let current: Netmap | undefined;
      try {
        armIdle();
        const res = await request(this.base + MACHINE_PATHS.map, {
          method: 'GET',
          headers: signedHeaders(this.key, 'GET', MACHINE_PATHS.map, Buffer.alloc(0)),
          signal: abort.signal,
          dispatcher: this.dispatcher,
          headersTimeout: 30_000,
          bodyTimeout: 0,
        });
        if (res.statusCode !== 200) {
          const text = await res.body.text();
          let message = `coord answered ${res.statusCode}`;
          try {
            message = (JSON.parse(text) as { message?: string }).message ?? message;
          } catch {
            /* keep the status message */
          }
          const err = new ControlError(res.statusCode, message);
          h.onError?.(err, { fatal: err.permanent });
          return err.permanent ? 'fatal' : 'retry';
        }
        if (o.idleTimeoutMs === undefined) {
          idleTimeoutMs = streamIdleTimeoutMs(res.headers[HDR_KEEPALIVE_MS]);
          armIdle();
        }
        h.onConnected?.({ idleTimeoutMs });
        let buf = '';
        for await (const chunk of res.body) {
          armIdle();
          buf += (chunk as Buffer).toString('utf8');
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            if (line.trim() === '') continue;
            const msg = JSON.parse(line) as StreamMessage;
            if (msg.type === 'netmap') {
              current = msg.netmap;
              if (msg.netmap.version <= lastVersion) continue;
              lastVersion = msg.netmap.version;
              got = true;
              h.onNetmap(msg.netmap);
            } else if (msg.type === 'delta') {
              if (!current) throw new Error('coord sent a delta before a full netmap');
              current = applyDelta(current, msg.delta);
              if (current.version <= lastVersion) continue;
              lastVersion = current.version;
              got = true;
              h.onNetmap(current);
            } else if (msg.type === 'logout') {
              h.onError?.(new ControlError(401, msg.message), { fatal: true });
              return 'fatal';
            }
          }
        }
        if (!closed) h.onError?.(new Error('coord ended the netmap stream'), { fatal: false });
        return got ? 'gotNetmap' : 'retry';
      } catch (err) {
        if (closed) return 'fatal';
        h.onError?.(err as Error, { fatal: false });
        return got ? 'gotNetmap' : 'retry';
      } finally {
        clearTimeout(idle);
      }
    };

    const done = (async () => {
      while (!closed) {
        const r = await once();
        if (r === 'fatal' || closed) break;
        // A stream that delivered and then broke ends an outage-free spell: the next wait is short.
        if (r === 'gotNetmap') schedule.succeeded();
        await sleep(schedule.failed());
      }
    })();

    return {
      close() {
        closed = true;
        abort?.abort();
        wake?.();
      },
      done,
    };
  }
}
