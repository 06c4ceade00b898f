// The relay's core: devices connect over WebSocket, prove their key, and exchange opaque packets
// addressed by public key (they are WireGuard messages and disco messages: the relay never sees
// plaintext). An injected authorizer decides who may connect and who may send to whom, so that coord
// can answer from its store ("registered, authorized, unexpired", "peers of each other").
//
// Per-client queues are bounded: a packet for a device whose queue is full is dropped, and a device that
// stays full (a slow reader) for `slowReaderMs` is disconnected, so it cannot stall anyone else.
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import {
  countBatch,
  FRAME,
  KEY_LEN,
  MAX_FRAME,
  parseClientHello,
  proofMatches,
  RELAY_PATH,
  refused,
  relayProof,
  serverHello,
  UNDELIVERABLE,
  undeliverable,
} from '../../wire/relay.js';
import { X25519Key } from '../../wire/x25519.js';

export interface RelayAuthorizer {
  /** May the device with this public key (base64) use the relay? Asked at connect and by revalidate(). */
  mayConnect(key: string): boolean | Promise<boolean>;
  /** May `from` send to `to` (both base64)? Asked for every packet: answer from memory. */
  maySend(from: string, to: string): boolean;
}

export interface RelayServerOptions {
  authorizer: RelayAuthorizer;
  /** Bytes that may wait to be written to one device before packets to it are dropped (default 4 MiB). */
  maxQueueBytes?: number;
  /** A device whose queue stays full this long is disconnected (default 2 s). */
  slowReaderMs?: number;
  /** Time a device has to prove its key (default 10 s). */
  handshakeTimeoutMs?: number;
  /** WebSocket keepalive: a ping this often; no pong by the next one ends the connection (default 30 s). */
  keepaliveMs?: number;
  log?: Logger;
}

export interface RelayCounters {
  accepted: number;
  refused: number;
  forwardedPackets: number;
  forwardedBytes: number;
  /** Packets not delivered, by reason. */
  dropped: { notHere: number; notAllowed: number; queueFull: number; malformed: number };
  slowReadersDropped: number;
}

interface Client {
  ws: WebSocket;
  key: Buffer;
  id: string;
  /** When its queue was first found full (0 while it is not). */
  fullSince: number;
  /** Last "not here / not allowed" notice per destination, to send at most one a second. */
  notices: Map<string, number>;
  alive: boolean;
}

/** Close codes (4000–4999 are the application's). */
export const CLOSE = { refused: 4003, replaced: 4001, slowReader: 4002, protocol: 4000 } as const;

export class RelayServer {
  readonly counters: RelayCounters = {
    accepted: 0, refused: 0, forwardedPackets: 0, forwardedBytes: 0,
    dropped: { notHere: 0, notAllowed: 0, queueFull: 0, malformed: 0 }, slowReadersDropped: 0,
  };
  private readonly table = new KeyTable<Client>();
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME, perMessageDeflate: false });
  private readonly maxQueueBytes: number;
  private readonly slowReaderMs: number;
  private readonly keepalive: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly o: RelayServerOptions) {
    this.maxQueueBytes = o.maxQueueBytes ?? 4 * 1024 * 1024;
    this.slowReaderMs = o.slowReaderMs ?? 2000;
    this.keepalive = setInterval(() => this.ping(), o.keepaliveMs ?? 30_000);
    this.keepalive.unref();
  }

  /** Number of devices connected and past the handshake. */
  get size(): number {
    return this.table.size;
  }

  /** Serves the relay at `path` on an HTTP(S) server (other upgrade requests are left alone). */
  attach(server: Server, path = RELAY_PATH): void {
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      if (new URL(req.url ?? '/', 'http://relay').pathname !== path) return;
      this.handleUpgrade(req, socket, head);
    });
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.closed) return void socket.destroy();
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws));
  }

  /** Takes over an open WebSocket: challenge, proof, authorization, then forwarding. */
  accept(ws: WebSocket): void {
    const ephemeral = X25519Key.generate();
    const challenge = randomBytes(32);
    let client: Client | null = null;
    const timer = setTimeout(() => ws.terminate(), this.o.handshakeTimeoutMs ?? 10_000);
    ws.on('error', () => ws.terminate());
    ws.on('close', () => {
      clearTimeout(timer);
      if (client && this.table.get(client.key, 0) === client) this.table.delete(client.key, 0);
    });
    ws.on('pong', () => client && (client.alive = true));
    let checking = false;
    ws.on('message', (data: RawData, isBinary: boolean) => {
      const f = data as Buffer; // binaryType 'nodebuffer' and no fragments list: maxPayload bounds it
      if (!isBinary || !Buffer.isBuffer(f)) return this.protocolError(ws, 'binary frames only');
      if (client) {
        try {
          return this.onFrame(client, f);
        } catch (err) {
          // A bug here must cost one connection, never the server.
          this.o.log?.error({ err }, 'relay: frame handling failed');
          return this.protocolError(ws, 'internal error');
        }
      }
      if (checking) return this.protocolError(ws, 'a frame before the handshake finished');
      checking = true;
      const hello = parseClientHello(f);
      const shared = hello && ephemeral.shared(hello.key);
      if (!hello || !shared || !proofMatches(relayProof(shared, challenge, hello.key), hello.proof)) {
        this.counters.refused++;
        return this.refuse(ws, 'bad client hello');
      }
      const key = Buffer.from(hello.key);
      const id = key.toString('base64');
      Promise.resolve()
        .then(() => this.o.authorizer.mayConnect(id))
        .catch((err) => {
          this.o.log?.warn({ err }, 'relay authorizer failed');
          return false;
        })
        .then((ok) => {
          clearTimeout(timer);
          if (ws.readyState !== ws.OPEN) return;
          if (!ok || this.closed) {
            this.counters.refused++;
            return this.refuse(ws, 'not authorized');
          }
          const old = this.table.get(key, 0);
          if (old) old.ws.close(CLOSE.replaced, 'replaced by a newer connection');
          client = { ws, key, id, fullSince: 0, notices: new Map(), alive: true };
          this.table.set(key, 0, client);
          this.counters.accepted++;
          ws.send(Buffer.from([FRAME.ready]));
        });
    });
    ws.send(serverHello(ephemeral.publicKey, challenge));
  }

  /** Asks the authorizer again about every connected device and disconnects those now refused. */
  async revalidate(): Promise<void> {
    for (const c of this.table.values()) {
      let ok = false;
      try {
        ok = await this.o.authorizer.mayConnect(c.id);
      } catch {
        ok = false;
      }
      if (!ok) this.refuse(c.ws, 'no longer authorized');
    }
  }

  /** Disconnects the device with this key (base64), e.g. when coord removes it. */
  disconnect(key: string, reason = 'disconnected'): void {
    const k = Buffer.from(key, 'base64');
    const c = k.length === KEY_LEN ? this.table.get(k, 0) : undefined;
    if (c) this.refuse(c.ws, reason);
  }

  close(): void {
    this.closed = true;
    clearInterval(this.keepalive);
    for (const c of this.table.values()) c.ws.terminate();
    for (const ws of this.wss.clients) ws.terminate();
    this.wss.close();
  }

  private refuse(ws: WebSocket, reason: string): void {
    if (ws.readyState === ws.OPEN) ws.send(refused(reason));
    ws.close(CLOSE.refused, reason.slice(0, 100));
  }

  private protocolError(ws: WebSocket, reason: string): void {
    this.counters.dropped.malformed++;
    ws.close(CLOSE.protocol, reason);
  }

  private onFrame(from: Client, f: Buffer): void {
    switch (f[0]) {
      case FRAME.send:
        return this.forward(from, f, 1);
      case FRAME.sendBatch: {
        const n = countBatch(f);
        if (n < 0) return this.protocolError(from.ws, 'malformed batch');
        return this.forward(from, f, n);
      }
      case FRAME.ping:
        if (f.length !== 9) return this.protocolError(from.ws, 'a ping carries 8 bytes');
        f[0] = FRAME.pong;
        from.ws.send(f);
        return;
      case FRAME.pong:
        return;
      default:
        return this.protocolError(from.ws, `unknown frame type ${f[0]}`);
    }
  }

  /** Forwards a send or sendBatch frame holding `packets` packets. */
  private forward(from: Client, f: Buffer, packets: number): void {
    if (f.length < 1 + KEY_LEN + 1) {
      this.counters.dropped.malformed++;
      return;
    }
    const to = this.table.get(f, 1);
    if (!to) {
      this.counters.dropped.notHere += packets;
      return this.notice(from, f, UNDELIVERABLE.notHere);
    }
    if (!this.o.authorizer.maySend(from.id, to.id)) {
      this.counters.dropped.notAllowed += packets;
      return this.notice(from, f, UNDELIVERABLE.notAllowed);
    }
    if (to.ws.bufferedAmount > this.maxQueueBytes) {
      this.counters.dropped.queueFull += packets;
      const now = Date.now();
      if (!to.fullSince) to.fullSince = now;
      else if (now - to.fullSince > this.slowReaderMs) {
        this.counters.slowReadersDropped++;
        this.o.log?.info({ key: to.id }, 'relay: slow reader disconnected');
        this.table.delete(to.key, 0);
        to.ws.terminate();
      }
      return;
    }
    to.fullSince = 0;
    // The frame becomes the receiver's in place: same layout, the source key where the destination was.
    const batch = f[0] === FRAME.sendBatch;
    f[0] = batch ? FRAME.recvBatch : FRAME.recv;
    from.key.copy(f, 1);
    to.ws.send(f);
    this.counters.forwardedPackets += packets;
    this.counters.forwardedBytes += f.length - 1 - KEY_LEN - (batch ? 2 * packets : 0);
  }

  private notice(from: Client, f: Buffer, reason: number): void {
    const dst = f.subarray(1, 1 + KEY_LEN);
    const id = dst.toString('base64');
    const now = Date.now();
    if (now - (from.notices.get(id) ?? 0) < 1000) return;
    if (from.notices.size > 1024) from.notices.clear();
    from.notices.set(id, now);
    from.ws.send(undeliverable(dst, reason));
  }

  private ping(): void {
    for (const c of this.table.values()) {
      if (!c.alive) {
        c.ws.terminate();
        continue;
      }
      c.alive = false;
      c.ws.ping();
    }
  }
}

/**
 * Clients by 32-byte key, looked up straight from a frame's bytes (no string per packet): buckets by the
 * key's first 30 bits (a small integer to V8), then a byte compare.
 */
class KeyTable<T> {
  private readonly buckets = new Map<number, { key: Buffer; value: T }[]>();
  size = 0;

  private static hash(b: Buffer, off: number): number {
    return b.readUInt32LE(off) & 0x3fffffff;
  }

  private static same(a: Buffer, b: Buffer, off: number): boolean {
    for (let i = 0; i < KEY_LEN; i++) if (a[i] !== b[off + i]) return false;
    return true;
  }

  get(b: Buffer, off: number): T | undefined {
    const bucket = this.buckets.get(KeyTable.hash(b, off));
    if (!bucket) return undefined;
    for (const e of bucket) if (KeyTable.same(e.key, b, off)) return e.value;
    return undefined;
  }

  set(key: Buffer, off: number, value: T): void {
    const h = KeyTable.hash(key, off);
    const bucket = this.buckets.get(h) ?? [];
    const e = bucket.find((x) => KeyTable.same(x.key, key, off));
    if (e) e.value = value;
    else {
      bucket.push({ key: Buffer.from(key.subarray(off, off + KEY_LEN)), value });
      this.size++;
    }
    this.buckets.set(h, bucket);
  }

  delete(key: Buffer, off: number): void {
    const h = KeyTable.hash(key, off);
    const bucket = this.buckets.get(h);
    if (!bucket) return;
    const i = bucket.findIndex((x) => KeyTable.same(x.key, key, off));
    if (i < 0) return;
    bucket.splice(i, 1);
    this.size--;
    if (!bucket.length) this.buckets.delete(h);
  }

  *values(): IterableIterator<T> {
    for (const bucket of this.buckets.values()) for (const e of bucket) yield e.value;
  }
}
