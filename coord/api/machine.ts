// The machine API: devices register with an auth key, report posture and endpoints, and hold their
// netmap stream. Every request is signed with the device's Ed25519 machine key (see docs/protocol.md):
// no bearer secret travels, and a captured request cannot be replayed (timestamp + single-use nonce).
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import {
  HDR_KEEPALIVE_MS, HDR_MACHINE_KEY, HDR_NONCE, HDR_SIGNATURE, HDR_TIMESTAMP, MACHINE_PATHS, MAX_CLOCK_SKEW_MS, signingString,
  type RegisterRequest, type UpdateRequest,
} from '../../wire/protocol.js';
import { nativeAvailable, setTcpUserTimeout } from '../../native/index.js';
import type { Domain } from '../domain/index.js';
import { DEFAULT_KEEPALIVE_MS } from '../netmap-stream.js';
import { HttpError, httpErrorOf, jsonObject, readBody, sendError, sendJson } from './http.js';

export interface MachineDeps {
  domain: Domain;
  log: Logger;
  /** How often the hub writes a keepalive line to every stream (0: never, and silence goes unnoticed). */
  keepaliveMs?: number;
}

/**
 * How long a keepalive (or any line) written to a stream may stay unacknowledged by the device's TCP
 * stack before the kernel drops the connection (TCP_USER_TIMEOUT). With a keepalive every 15 s, a
 * device whose network vanished is noticed within 30 s, instead of after ~15 minutes of retransmits.
 */
export const STREAM_ACK_TIMEOUT_MS = 15_000;

const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const NONCE_RE = /^[A-Za-z0-9_-]{16,64}$/;

const unauthorized = (m: string) => new HttpError(401, m);

export class MachineApi {
  private readonly keyCache = new Map<string, KeyObject>();
  private readonly keepaliveMs: number;
  /** Whether TCP_USER_TIMEOUT can be set (the addon is built and the kernel takes it). */
  private ackTimeout: boolean;
  /** Sockets already given the timeout (a keep-alive connection may carry a second stream). */
  private readonly timed = new WeakSet<Socket>();

  constructor(private readonly deps: MachineDeps) {
    this.keepaliveMs = deps.keepaliveMs ?? DEFAULT_KEEPALIVE_MS;
    this.ackTimeout = this.keepaliveMs > 0 && nativeAvailable();
    if (this.keepaliveMs > 0 && !this.ackTimeout) {
      deps.log.warn('native addon not built: a device that vanishes without closing its connection is noticed only when TCP gives up (~15 min); run npm run build:native');
    }
  }

  /** Checks the request's signature; returns the machine key (base64 of the raw Ed25519 public key). */
  verify(req: IncomingMessage, pathAndQuery: string, body: Buffer): string {
    const h = (name: string) => {
      const v = req.headers[name];
      if (typeof v !== 'string' || v === '') throw unauthorized(`missing ${name} header: machine API requests must be signed with the machine key`);
      return v;
    };
    const machineKey = h(HDR_MACHINE_KEY);
    const timestamp = h(HDR_TIMESTAMP);
    const nonce = h(HDR_NONCE);
    const signature = Buffer.from(h(HDR_SIGNATURE), 'base64');
    const raw = Buffer.from(machineKey, 'base64');
    if (raw.length !== 32 || raw.toString('base64') !== machineKey) throw unauthorized('malformed machine key');
    if (!NONCE_RE.test(nonce)) throw unauthorized('malformed nonce');
    const now = Date.now();
    const ts = Number(timestamp);
    if (!Number.isFinite(ts) || Math.abs(now - ts) > MAX_CLOCK_SKEW_MS) {
      throw unauthorized('request timestamp is too far from the server clock (check the device clock)');
    }
    let pub = this.keyCache.get(machineKey);
    if (!pub) {
      pub = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
      if (this.keyCache.size > 100_000) this.keyCache.clear();
      this.keyCache.set(machineKey, pub);
    }
    const bodyHash = createHash('sha256').update(body).digest('hex');
    const msg = Buffer.from(signingString(req.method ?? 'GET', pathAndQuery, bodyHash, timestamp, nonce));
    if (signature.length !== 64 || !verify(null, msg, pub, signature)) throw unauthorized('bad machine key signature');
    if (!this.deps.domain.machines.useNonce(`${machineKey}/${nonce}`, now, now + 2 * MAX_CLOCK_SKEW_MS)) throw unauthorized('replayed request (nonce already used)');
    return machineKey;
  }

  async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    try {
      // The signature covers the request target exactly as sent (not a normalized form of it).
      const pathAndQuery = req.url ?? '/';
      if (url.pathname === MACHINE_PATHS.register && req.method === 'POST') {
        const body = await readBody(req, 64 * 1024);
        const mk = this.verify(req, pathAndQuery, body);
        return sendJson(res, 200, this.deps.domain.machines.register(mk, jsonObject(body) as unknown as RegisterRequest));
      }
      if (url.pathname === MACHINE_PATHS.update && req.method === 'POST') {
        const body = await readBody(req, 64 * 1024);
        const mk = this.verify(req, pathAndQuery, body);
        this.deps.domain.machines.update(mk, jsonObject(body) as UpdateRequest);
        return sendJson(res, 200, {});
      }
      if (url.pathname === MACHINE_PATHS.logout && req.method === 'POST') {
        const body = await readBody(req, 64 * 1024);
        this.deps.domain.machines.logout(this.verify(req, pathAndQuery, body));
        return sendJson(res, 200, {});
      }
      if (url.pathname === MACHINE_PATHS.map && req.method === 'GET') {
        const mk = this.verify(req, pathAndQuery, Buffer.alloc(0));
        return this.stream(mk, req, res);
      }
      throw new HttpError(404, `no such machine API endpoint: ${req.method} ${url.pathname}`);
    } catch (err) {
      const known = httpErrorOf(err);
      if (known) return sendError(res, known);
      this.deps.log.error({ err, path: url.pathname }, 'machine API request failed');
      sendError(res, new HttpError(500, 'internal error'));
    }
  }

  private stream(machineKey: string, req: IncomingMessage, res: ServerResponse): void {
    const d = this.deps.domain.machines.deviceOf(machineKey);
    const headers: Record<string, string> = { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store', 'x-accel-buffering': 'no' };
    if (this.keepaliveMs > 0) headers[HDR_KEEPALIVE_MS] = String(this.keepaliveMs);
    res.writeHead(200, headers);
    res.flushHeaders();
    req.socket.setNoDelay(true);
    req.socket.setKeepAlive(true, 30_000);
    if (this.ackTimeout && !this.timed.has(req.socket)) this.noticeSilence(req.socket, d.name);
    const sink = {
      write: (line: string) => {
        // A device that does not read its stream is cut off rather than buffered without bound.
        if (res.writableLength > 32 * 1024 * 1024) {
          res.destroy();
          return;
        }
        res.write(line);
      },
      end: () => res.end(),
    };
    const close = this.deps.domain.machines.subscribe(d, sink);
    res.on('close', close);
  }

  /**
   * A device that vanished without closing its connection (power loss, its network cut) never reads the
   * keepalives; the kernel keeps retransmitting them. TCP_USER_TIMEOUT makes the kernel give up after
   * STREAM_ACK_TIMEOUT_MS: the socket errors with ETIMEDOUT and closes, and the stream ends as if the
   * device had hung up (offline, its routes fail over). Plain TCP and TLS alike; the device's TCP stack
   * does the acknowledging, so it works with agents of any version.
   */
  private noticeSilence(socket: Socket, device: string): void {
    const { log } = this.deps;
    try {
      setTcpUserTimeout(socket, STREAM_ACK_TIMEOUT_MS);
    } catch (err) {
      this.ackTimeout = false;
      log.warn({ err: (err as Error).message }, 'cannot set TCP_USER_TIMEOUT on netmap streams: a device that vanishes is noticed only when TCP gives up (~15 min)');
      return;
    }
    this.timed.add(socket);
    socket.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ETIMEDOUT') log.info({ device }, 'netmap stream: the device stopped acknowledging data; ending its stream (offline)');
    });
  }
}
