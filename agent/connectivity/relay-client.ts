// A device's connection to one relay: proves its key, sends and receives opaque packets addressed by
// public key, measures latency with relay pings, and reconnects (exponential backoff with full jitter)
// whenever the connection drops, until close().
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import WebSocket, { type ClientOptions, type RawData } from 'ws';
import {
  batchFrame,
  batchSlots,
  clientHello,
  FRAME,
  keyedFrame,
  KEY_LEN,
  MAX_BATCH_PACKETS,
  MAX_FRAME,
  MAX_PACKET,
  parseServerHello,
  relayProof,
  slotsFrameLength,
  writeSlotsFrame,
} from '../../wire/relay.js';
import type { X25519Key } from '../../wire/x25519.js';

/** Frame buffers kept for reuse (at most this many: 2 MiB). */
const FRAME_POOL = 32;

export type RelayClientState = 'connecting' | 'connected' | 'backoff' | 'closed';

export interface RelayClientOptions {
  /** ws:// or wss:// URL of the relay, path included (…/relay). */
  url: string;
  /** The device's WireGuard key pair: the relay knows the device by its public half. */
  key: X25519Key;
  /** A packet from `src`; both are views valid only during the call. Not called when onPackets is given. */
  onPacket?(src: Buffer, packet: Buffer): void;
  /**
   * Packets buf[offsets[i] .. +lengths[i]) for i < count from `src`, as they came in one frame (the
   * batched data path wants them as a batch); all are valid only during the call.
   */
  onPackets?(src: Buffer, buf: Buffer, offsets: Uint32Array, lengths: Uint32Array, count: number): void;
  /** The relay could not deliver a packet to `dst` (1: not connected there, 2: not a peer). */
  onUndeliverable?(dst: Buffer, reason: number): void;
  onState?(state: RelayClientState, detail?: string): void;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Bytes that may wait to be written before send() refuses packets (default 4 MiB). */
  maxQueueBytes?: number;
  /** Passed to the WebSocket (TLS trust for a private CA, for example). */
  wsOptions?: ClientOptions;
}

export class RelayClient {
  state: RelayClientState = 'closed';
  /** Why the last connection ended, for status and logs. */
  lastError = '';
  private ws: WebSocket | null = null;
  private ready = false;
  private stopped = true;
  private attempt = 0;
  private retry: NodeJS.Timeout | null = null;
  private readonly pings = new Map<string, { start: number; resolve: (ms: number | null) => void }>();
  private readonly waiters = new Set<() => void>();
  private readonly maxQueueBytes: number;
  /** Frame buffers for sendSlots whose bytes the socket has written. */
  private readonly framePool: Buffer[] = [];
  /** Where the packets of a received frame are (reused for every frame). */
  private readonly inOffsets = new Uint32Array(MAX_BATCH_PACKETS);
  private readonly inLengths = new Uint32Array(MAX_BATCH_PACKETS);

  constructor(private readonly o: RelayClientOptions) {
    this.maxQueueBytes = o.maxQueueBytes ?? 4 * 1024 * 1024;
  }

  get connected(): boolean {
    return this.ready;
  }

  /** Bytes queued for writing on the current connection. */
  get queuedBytes(): number {
    return this.ws?.bufferedAmount ?? 0;
  }

  start(): this {
    if (!this.stopped) return this;
    this.stopped = false;
    this.connect();
    return this;
  }

  close(): void {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
    this.ws?.terminate();
    this.ws = null;
    this.setReady(false);
    this.setState('closed');
  }

  /** Resolves once connected (or rejects after `timeoutMs`). */
  waitConnected(timeoutMs = 10_000): Promise<void> {
    if (this.ready) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(done);
        reject(new Error(`relay ${this.o.url}: not connected after ${timeoutMs} ms${this.lastError ? ` (${this.lastError})` : ''}`));
      }, timeoutMs);
      this.waiters.add(done);
    });
  }

  /**
   * Sends a packet to the device with public key `dst`. False (the packet is dropped) while not
   * connected or while more than maxQueueBytes wait to be written.
   */
  send(dst: Uint8Array, packet: Uint8Array): boolean {
    const ws = this.ws;
    if (!this.ready || !ws || ws.bufferedAmount > this.maxQueueBytes) return false;
    if (dst.length !== KEY_LEN || packet.length > MAX_PACKET) throw new Error('relay send: a 32-byte key and at most 65535 bytes');
    ws.send(keyedFrame(FRAME.send, dst, packet));
    return true;
  }

  /**
   * Sends the packets buf[offsets[pick[i]] .. +lengths[pick[i]]) for i < count to `dst` in one batch
   * frame (the WireGuard send path's layout). The frame is built in a buffer
   * that is reused once the socket has written it, so a busy data path does not allocate and collect
   * 64 KiB per batch. False (all are dropped) under the same conditions as send().
   */
  sendSlots(dst: Uint8Array, buf: Buffer, offsets: Uint32Array, lengths: Uint32Array, pick: Uint32Array, count: number): boolean {
    const ws = this.ws;
    if (!this.ready || !ws || ws.bufferedAmount > this.maxQueueBytes) return false;
    if (dst.length !== KEY_LEN) throw new Error('relay send: a 32-byte key');
    if (count === 0) return true;
    const len = slotsFrameLength(lengths, pick, count);
    const out = this.framePool.pop() ?? Buffer.allocUnsafeSlow(MAX_FRAME);
    writeSlotsFrame(out, FRAME.sendBatch, dst, buf, offsets, lengths, pick, count);
    ws.send(out.subarray(0, len), () => {
      if (this.framePool.length < FRAME_POOL) this.framePool.push(out);
    });
    return true;
  }

  /**
   * Sends packets[0..count) to `dst` in one frame (what the batched data path wants). False (all are
   * dropped) under the same conditions as send().
   */
  sendBatch(dst: Uint8Array, packets: readonly Uint8Array[], count = packets.length): boolean {
    const ws = this.ws;
    if (!this.ready || !ws || ws.bufferedAmount > this.maxQueueBytes) return false;
    if (dst.length !== KEY_LEN) throw new Error('relay send: a 32-byte key');
    if (count > 0) ws.send(batchFrame(FRAME.sendBatch, dst, packets, count));
    return true;
  }

  /** Round trip to the relay in milliseconds (null when not connected or no answer in time). */
  ping(timeoutMs = 5000): Promise<number | null> {
    const ws = this.ws;
    if (!this.ready || !ws) return Promise.resolve(null);
    const id = randomBytes(8);
    const key = id.toString('hex');
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pings.delete(key);
        resolve(null);
      }, timeoutMs);
      this.pings.set(key, {
        start: performance.now(),
        resolve: (ms: number | null) => {
          clearTimeout(timer);
          resolve(ms);
        },
      });
      ws.send(Buffer.concat([Buffer.from([FRAME.ping]), id]));
    });
  }

  private setState(s: RelayClientState, detail?: string): void {
    if (this.state === s) return;
    this.state = s;
    this.o.onState?.(s, detail);
  }

  private setReady(r: boolean): void {
    this.ready = r;
    if (r) {
      for (const w of this.waiters) w();
      this.waiters.clear();
    }
  }

  private connect(): void {
    if (this.stopped) return;
    this.setState('connecting');
    const ws = new WebSocket(this.o.url, {
      perMessageDeflate: false,
      maxPayload: MAX_FRAME,
      handshakeTimeout: 10_000,
      // A zero masking key lets both ends skip masking each byte. Masking protects intermediaries from
      // browser scripts that choose the bytes; ours are WireGuard ciphertext from no browser.
      generateMask: (mask: Buffer) => void mask.fill(0),
      ...this.o.wsOptions,
    });
    this.ws = ws;
    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (!isBinary || !Buffer.isBuffer(data)) return ws.terminate();
      this.onFrame(ws, data);
    });
    ws.on('error', (err) => {
      this.lastError = err.message;
    });
    ws.on('close', (code, reason) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.setReady(false);
      if (reason.length) this.lastError = `${code} ${reason.toString()}`;
      for (const p of this.pings.values()) p.resolve(null);
      this.pings.clear();
      this.scheduleReconnect();
    });
  }

  private scheduleReconnect(): void {
    if (this.stopped) return;
    const min = this.o.minBackoffMs ?? 250;
    const max = this.o.maxBackoffMs ?? 10_000;
    const ceiling = Math.min(max, min * 2 ** Math.min(this.attempt++, 16));
    const delay = min / 2 + Math.random() * ceiling;
    this.setState('backoff', this.lastError);
    this.retry = setTimeout(() => {
      this.retry = null;
      this.connect();
    }, delay);
  }

  private onFrame(ws: WebSocket, f: Buffer): void {
    switch (f[0]) {
      case FRAME.serverHello: {
        const hello = parseServerHello(f);
        const shared = hello && this.o.key.shared(hello.ephemeral);
        if (!hello || !shared) {
          this.lastError = 'bad server hello';
          return ws.terminate();
        }
        ws.send(clientHello(this.o.key.publicKey, relayProof(shared, hello.challenge, this.o.key.publicKey)));
        return;
      }
      case FRAME.ready:
        this.attempt = 0;
        this.lastError = '';
        this.setReady(true);
        this.setState('connected');
        return;
      case FRAME.refused:
        // The relay closes right after this frame: from here on nothing sent would be forwarded.
        this.lastError = `refused: ${f.subarray(1).toString('utf8')}`;
        this.setReady(false);
        return;
      case FRAME.recv:
        if (f.length <= 1 + KEY_LEN) return;
        if (this.o.onPackets) {
          this.inOffsets[0] = 1 + KEY_LEN;
          this.inLengths[0] = f.length - 1 - KEY_LEN;
          this.o.onPackets(f.subarray(1, 1 + KEY_LEN), f, this.inOffsets, this.inLengths, 1);
        } else this.o.onPacket?.(f.subarray(1, 1 + KEY_LEN), f.subarray(1 + KEY_LEN));
        return;
      case FRAME.recvBatch: {
        const n = batchSlots(f, this.inOffsets, this.inLengths);
        if (n < 0) return; // a relay never sends one; ignore rather than deliver half
        const src = f.subarray(1, 1 + KEY_LEN);
        if (this.o.onPackets) this.o.onPackets(src, f, this.inOffsets, this.inLengths, n);
        else for (let i = 0; i < n; i++) this.o.onPacket?.(src, f.subarray(this.inOffsets[i], this.inOffsets[i]! + this.inLengths[i]!));
        return;
      }
      case FRAME.undeliverable:
        if (f.length === 2 + KEY_LEN) this.o.onUndeliverable?.(f.subarray(1, 1 + KEY_LEN), f[1 + KEY_LEN]!);
        return;
      case FRAME.ping:
        if (f.length === 9) {
          f[0] = FRAME.pong;
          ws.send(f);
        }
        return;
      case FRAME.pong: {
        const key = f.subarray(1).toString('hex');
        const p = this.pings.get(key);
        if (p) {
          this.pings.delete(key);
          p.resolve(performance.now() - p.start);
        }
        return;
      }
      default:
        // A newer relay's frame: ignore it.
        return;
    }
  }
}

/**
 * Times a relay for netcheck: connects (unless already connected) and sends one relay ping. The client
 * is left as it was found: one started here is closed again.
 */
export async function probeRelay(client: RelayClient, timeoutMs: number): Promise<number | null> {
  const started = client.state === 'closed';
  if (started) client.start();
  const t0 = performance.now();
  try {
    await client.waitConnected(timeoutMs);
    return await client.ping(Math.max(1, timeoutMs - (performance.now() - t0)));
  } catch {
    return null;
  } finally {
    if (started) client.close();
  }
}
