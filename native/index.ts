// meshward's N-API addon (C, native/src/): a TUN device and a batched UDP socket, both non-blocking and
// watched by uv_poll on the event loop (never the threadpool). Built by `npm run build:native`.
//
// Batches. Reading hands JS one batch per callback, at most `batch` packets: `buf` holds `count` packets,
// packet i is buf[offsets[i] .. offsets[i] + lengths[i]) (offsets are 16-byte aligned). `buf`, `offsets`,
// `lengths` (and for UDP `addrs`, `ports`, `families`) are allocated once per device and REUSED: they are
// valid only during the callback; copy what you keep. Writing takes the same shape: one sendmmsg per batch
// for UDP; for TUN (which has no batch write) one write(2) per packet, or per run of TCP segments with
// offload. Nothing is allocated per packet on either path.
//
// Errors thrown by these methods carry `code` = the errno name ('EPERM', 'EBUSY', 'EINVAL', 'EADDRINUSE',
// ...) and a message saying what failed. Using a device after close() throws code 'EBADF'. Bad arguments
// throw TypeError/RangeError with code 'EINVAL'. A packet the kernel refuses (malformed, unreachable, too
// big) is dropped and counted in stats(), never thrown. An exception thrown by onBatch is reported like one
// thrown by an event listener (process 'uncaughtException'); reading goes on.
//
// UDP addresses. Each packet's peer is (family, address, port): families[i] is 4 or 6; addrs holds 16 bytes
// per packet (addrs[16*i ..]): an IPv4 address in its first 4 bytes (the other 12 zero), an IPv6 address
// in all 16; ports[i] is the port in host order. The same layout is used for receiving and for sending,
// so a received source can be stored as a peer endpoint and sent back to without conversion.
//
// Offloads (on by default for UDP, opt-in for TUN) are invisible to JS: batches always hold ordinary,
// MTU-sized IP packets / single datagrams. See UdpOptions.gso/gro and TunOptions.offload.

import { existsSync } from 'node:fs';
import type { Socket } from 'node:net';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { addrFromBytes, addrToBytes, formatAddr as formatAddrText, parseAddr } from '../wire/addr.js';

export interface NativeError extends Error {
  /** errno name, e.g. 'EPERM', 'EBUSY', 'EINVAL', 'EBADF' */
  code: string;
  /** negative errno, as in Node's own system errors (absent for argument errors) */
  errno?: number;
}

/** Called once per batch of packets read from a TUN device. Buffers are reused: valid only during the call. */
export type TunBatchHandler = (buf: Buffer, offsets: Uint32Array, lengths: Uint32Array, count: number) => void;

/** Called once per batch of datagrams received. Buffers are reused: valid only during the call. */
export type UdpBatchHandler = (
  buf: Buffer,
  offsets: Uint32Array,
  lengths: Uint32Array,
  addrs: Uint8Array,
  ports: Uint16Array,
  families: Uint8Array,
  count: number,
) => void;

/** A read error after start(); the device stops reading. Without a handler it is thrown as an uncaught exception. */
export type ErrorHandler = (err: NativeError) => void;

export interface TunOptions {
  /** set the MTU right after opening */
  mtu?: number;
  /** most packets handed to one onBatch call (default 128, 1..1024) */
  batch?: number;
  /**
   * TCP segmentation and checksum offload (IFF_VNET_HDR, TUNSETOFFLOAD TSO4/TSO6/CSUM; default off). The
   * kernel then hands over TCP super-packets of up to 64 KiB in one read, which the addon cuts into
   * MTU-sized segments with their own headers and checksums (and finishes partial checksums): JS still sees
   * ordinary IP packets, at far fewer system calls per packet. On write(), consecutive TCP segments of one
   * flow (in sequence, same headers, checksums verified) go to the kernel as one super-packet (GRO), which
   * its TCP stack takes in one pass. Invisible to JS either way; stats() counts both. If the kernel refuses
   * offload, the device works without it (see Tun.offload).
   */
  offload?: boolean;
}

export interface TunStats {
  /** packets read and handed to JS */
  rxPackets: number;
  rxBytes: number;
  /** packets written to the kernel */
  txPackets: number;
  txBytes: number;
  /** packets the kernel refused on write (malformed or otherwise invalid), dropped */
  txDropped: number;
  /** offload: TCP super-packets read and cut into segments (each segment counts in rxPackets) */
  rxSuper: number;
  /** offload: frames read that could not be made into packets (unknown GSO type, malformed), dropped */
  rxDropped: number;
  /** offload: super-packets written, each made of several TCP segments of one flow (each counts in txPackets) */
  txSuper: number;
}

interface NativeTun {
  name: string;
  offload: boolean;
}
interface NativeUdp {
  port: number;
}

interface Addon {
  tunOpen(name: string, batch: number, offload: boolean): NativeTun;
  tunSetMtu(h: NativeTun, mtu: number): void;
  tunGetMtu(h: NativeTun): number;
  tunAddAddress(h: NativeTun, cidr: string): void;
  tunAddRoute(h: NativeTun, cidr: string): void;
  tunRemoveAddress(h: NativeTun, cidr: string): boolean;
  tunSetUp(h: NativeTun, up: boolean): void;
  tunStart(h: NativeTun, onBatch: TunBatchHandler, onError: ErrorHandler | undefined): void;
  tunStop(h: NativeTun): void;
  tunWrite(h: NativeTun, buf: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number): number;
  tunWriteOne(h: NativeTun, buf: Uint8Array, offset: number, length: number): boolean;
  tunStats(h: NativeTun, out: Float64Array): void;
  tunClose(h: NativeTun): void;
  udpBind(
    port: number,
    host: string,
    batch: number,
    slot: number,
    rcvbuf: number,
    sndbuf: number,
    offload: number,
  ): NativeUdp;
  udpOffload(h: NativeUdp): number;
  udpStart(h: NativeUdp, onBatch: UdpBatchHandler, onError: ErrorHandler | undefined): void;
  udpStop(h: NativeUdp): void;
  udpSendBatch(
    h: NativeUdp,
    buf: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    addrs: Uint8Array,
    ports: Uint16Array,
    families: Uint8Array,
    count: number,
  ): number;
  udpStats(h: NativeUdp, out: Float64Array): void;
  udpClose(h: NativeUdp): void;
  udpSetMark(h: NativeUdp, mark: number): void;
  aeadKey(key: Uint8Array): NativeAead;
  aeadSeal(h: NativeAead, buf: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, counters: Float64Array, count: number): void;
  aeadOpen(
    h: NativeAead,
    buf: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    counters: Float64Array,
    count: number,
    ok: Uint8Array,
  ): number;
  aeadDestroy(h: NativeAead): void;
  tcpSetUserTimeout(fd: number, ms: number): void;
  tcpUserTimeout(fd: number): number;
}

type NativeAead = object;

let loaded: Addon | undefined;

/** Where the compiled addon lives: beside this file when run from source (native/index.ts), or from dist/native/index.js. */
export function addonPath(): string {
  const candidates = [
    new URL('./build/Release/meshward_native.node', import.meta.url),
    new URL('../../native/build/Release/meshward_native.node', import.meta.url),
  ].map((u) => fileURLToPath(u));
  return candidates.find((p) => existsSync(p)) ?? candidates[0]!;
}

/** Loads the addon on first use, so that importing this module never fails where it is not built. */
function addon(): Addon {
  if (loaded) return loaded;
  const path = addonPath();
  if (!existsSync(path)) {
    const err = new Error(`meshward native addon not built (${path} missing); run: npm run build:native`) as NativeError;
    err.code = 'ENOENT';
    throw err;
  }
  loaded = createRequire(import.meta.url)(path) as Addon;
  return loaded;
}

/** True when the compiled addon is present. */
export function nativeAvailable(): boolean {
  return existsSync(addonPath());
}

function checkBatch(batch: number | undefined, def: number): number {
  const b = batch ?? def;
  if (!Number.isInteger(b) || b < 1 || b > 1024) {
    throw Object.assign(new RangeError(`batch must be an integer 1..1024, got ${String(batch)}`), { code: 'EINVAL' });
  }
  return b;
}

/**
 * A TUN device (IFF_TUN | IFF_NO_PI, non-blocking). Packets are raw IPv4/IPv6. It lives in the network
 * namespace of the process that opened it, and disappears on close() (or when the process exits).
 */
export class Tun {
  readonly name: string;
  /** true when TCP segmentation/checksum offload is on (asked for, and the kernel agreed) */
  readonly offload: boolean;
  readonly #h: NativeTun;
  readonly #statsOut = new Float64Array(8);

  private constructor(h: NativeTun) {
    this.#h = h;
    this.name = h.name;
    this.offload = h.offload;
  }

  /** Opens a device. name '' lets the kernel choose (tun0, tun1, ...); a name may contain %d. Needs CAP_NET_ADMIN. */
  static open(name: string, opts: TunOptions = {}): Tun {
    const a = addon();
    const t = new Tun(a.tunOpen(name, checkBatch(opts.batch, 128), opts.offload === true));
    if (opts.mtu !== undefined) {
      try {
        t.setMtu(opts.mtu);
      } catch (err) {
        t.close();
        throw err;
      }
    }
    return t;
  }

  get mtu(): number {
    return addon().tunGetMtu(this.#h);
  }

  setMtu(mtu: number): void {
    addon().tunSetMtu(this.#h, mtu);
  }

  /** Adds an address with its prefix length, e.g. '100.64.0.1/32' or 'fd7a:115c:a1e0::1/128' (rtnetlink). */
  addAddress(cidr: string): void {
    addon().tunAddAddress(this.#h, cidr);
  }

  /**
   * Removes an address added with addAddress (same text, prefix length included; rtnetlink RTM_DELADDR).
   * Returns false when the device did not have it. Routes through the device are left alone.
   */
  removeAddress(cidr: string): boolean {
    return addon().tunRemoveAddress(this.#h, cidr);
  }

  /** Routes a prefix through this device, e.g. '100.64.0.0/10' (rtnetlink, main table). */
  addRoute(cidr: string): void {
    addon().tunAddRoute(this.#h, cidr);
  }

  setUp(up: boolean): void {
    addon().tunSetUp(this.#h, up);
  }

  /**
   * Starts reading: whenever the device is readable, reads packets until EAGAIN or the batch limit and calls
   * onBatch once. Buffers are reused (valid only during the call). onError gets a read error (reading stops).
   * Calling start() again replaces the handlers.
   */
  start(onBatch: TunBatchHandler, onError?: ErrorHandler): void {
    addon().tunStart(this.#h, onBatch, onError);
  }

  /** Stops reading; start() may be called again. */
  stop(): void {
    addon().tunStop(this.#h);
  }

  /**
   * Writes packets buf[offsets[i] .. +lengths[i]) for i < count. Returns how many packets from the front of the
   * batch were consumed: written, or refused by the kernel as invalid (dropped, counted in stats().txDropped).
   * Less than count only when the kernel would block (EAGAIN); retry the rest later.
   */
  write(buf: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number): number {
    return addon().tunWrite(this.#h, buf, offsets, lengths, count);
  }

  /** Writes one packet; false if it was dropped (would block, or refused as invalid). */
  writeOne(buf: Uint8Array, offset: number, length: number): boolean {
    return addon().tunWriteOne(this.#h, buf, offset, length);
  }

  stats(): TunStats {
    const o = this.#statsOut;
    addon().tunStats(this.#h, o);
    return {
      rxPackets: o[0]!,
      rxBytes: o[1]!,
      txPackets: o[2]!,
      txBytes: o[3]!,
      txDropped: o[4]!,
      rxSuper: o[5]!,
      rxDropped: o[6]!,
      txSuper: o[7]!,
    };
  }

  /** Stops reading and closes the device, which removes it. Idempotent. */
  close(): void {
    addon().tunClose(this.#h);
  }
}

export interface UdpOptions {
  /** most datagrams per receive batch and per sendmmsg call (default 128, 1..1024) */
  batch?: number;
  /** bytes reserved per received datagram; larger ones are dropped and counted (default 2048; 65536 with GRO) */
  maxPacket?: number;
  /**
   * UDP GSO (UDP_SEGMENT, default on where the kernel has it): sendBatch hands the kernel each run of datagrams
   * to one destination, all of one size except a shorter last one, as one message. Invisible to the caller.
   */
  gso?: boolean;
  /**
   * UDP GRO (default on where the kernel has it): the kernel may deliver several datagrams of one flow
   * coalesced; they are split back into separate batch entries, so this too is invisible to the caller.
   */
  gro?: boolean;
  /** SO_RCVBUF / SO_SNDBUF in bytes (default: 4 MiB each, capped by the kernel's limits) */
  rcvbuf?: number;
  sndbuf?: number;
}

export interface UdpStats {
  rxPackets: number;
  rxBytes: number;
  /** datagrams larger than maxPacket, dropped */
  rxTruncated: number;
  txPackets: number;
  txBytes: number;
  /** datagrams the kernel refused (bad address, unreachable, too big, family mismatch), dropped */
  txDropped: number;
  /** GRO: messages that arrived holding several datagrams (counted once each) */
  rxCoalesced: number;
  /** GSO: messages sent holding several datagrams (counted once each) */
  txCoalesced: number;
}

/**
 * A UDP socket doing recvmmsg/sendmmsg, watched by uv_poll. onBatch gets at most `batch` datagrams per call. bind(port) with no host is dual-stack ('::' with
 * IPV6_V6ONLY off): it receives IPv4 and IPv6, and reports IPv4 peers as family 4.
 */
export class UdpSocket {
  readonly localPort: number;
  readonly #h: NativeUdp;
  readonly #statsOut = new Float64Array(8);

  private constructor(h: NativeUdp) {
    this.#h = h;
    this.localPort = h.port;
  }

  /** port 0 = kernel chooses. host: '' or '::' (dual-stack, default), '0.0.0.0', or a specific v4/v6 address. */
  static bind(port: number, host = '', opts: UdpOptions = {}): UdpSocket {
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw Object.assign(new RangeError(`port must be an integer 0..65535, got ${String(port)}`), { code: 'EINVAL' });
    }
    const maxPacket = opts.maxPacket ?? 2048;
    if (!Number.isInteger(maxPacket) || maxPacket < 1 || maxPacket > 65535) {
      throw Object.assign(new RangeError(`maxPacket must be an integer 1..65535, got ${String(maxPacket)}`), {
        code: 'EINVAL',
      });
    }
    const a = addon();
    const offload = (opts.gso === false ? 0 : 1) | (opts.gro === false ? 0 : 2);
    return new UdpSocket(
      a.udpBind(port, host, checkBatch(opts.batch, 128), maxPacket, opts.rcvbuf ?? 4 << 20, opts.sndbuf ?? 4 << 20, offload),
    );
  }

  /** The offloads in use (GSO turns itself off if the kernel refuses it on the route in use). */
  get offload(): { gso: boolean; gro: boolean } {
    const bits = addon().udpOffload(this.#h);
    return { gso: (bits & 1) !== 0, gro: (bits & 2) !== 0 };
  }

  /** Starts receiving: one onBatch call per recvmmsg batch. Buffers are reused (valid only during the call). */
  start(onBatch: UdpBatchHandler, onError?: ErrorHandler): void {
    addon().udpStart(this.#h, onBatch, onError);
  }

  stop(): void {
    addon().udpStop(this.#h);
  }

  /**
   * Sends datagram i (buf[offsets[i] .. +lengths[i])) to (families[i], addrs[16*i..], ports[i]) for i < count,
   * with sendmmsg. Returns how many from the front were consumed (sent, or refused and counted in
   * stats().txDropped); less than count only when the socket buffer is full (EAGAIN).
   */
  sendBatch(
    buf: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    addrs: Uint8Array,
    ports: Uint16Array,
    families: Uint8Array,
    count: number,
  ): number {
    return addon().udpSendBatch(this.#h, buf, offsets, lengths, addrs, ports, families, count);
  }

  stats(): UdpStats {
    const o = this.#statsOut;
    addon().udpStats(this.#h, o);
    return {
      rxPackets: o[0]!,
      rxBytes: o[1]!,
      rxTruncated: o[2]!,
      txPackets: o[3]!,
      txBytes: o[4]!,
      txDropped: o[5]!,
      rxCoalesced: o[6]!,
      txCoalesced: o[7]!,
    };
  }

  /** SO_MARK: the firewall mark of every packet the socket sends (policy routing keys on it). Needs CAP_NET_ADMIN. */
  setMark(mark: number): void {
    addon().udpSetMark(this.#h, mark >>> 0);
  }

  /** Stops receiving and closes the socket. Idempotent. */
  close(): void {
    addon().udpClose(this.#h);
  }
}

/**
 * ChaCha20-Poly1305 (RFC 8439) with one key, over batches of packets, in place: WireGuard's transport AEAD
 * (nonce = 4 zero bytes + the 64-bit little-endian counter, no associated data). It runs the OpenSSL built
 * into Node, from C: no allocation and no JS/C crossing per packet (node:crypto needs a cipher object
 * and several calls per packet). Counters are plain numbers (exact up to 2^53), in a Float64Array.
 */
export class AeadKey {
  readonly #h: NativeAead;

  /** key: 32 bytes (copied into OpenSSL's context; destroy() wipes it) */
  constructor(key: Uint8Array) {
    this.#h = addon().aeadKey(key);
  }

  /**
   * Encrypts buf[offsets[i] .. +lengths[i]) in place with nonce counters[i], and writes the 16-byte tag
   * right after it (leave room: the sealed packet is lengths[i] + 16 bytes).
   */
  seal(buf: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, counters: Float64Array, count: number): void {
    addon().aeadSeal(this.#h, buf, offsets, lengths, counters, count);
  }

  /**
   * Authenticates and decrypts buf[offsets[i] .. +lengths[i]) (ciphertext + 16-byte tag) in place. ok[i] = 1
   * when authentic (the plaintext is its first lengths[i] - 16 bytes), else 0 (drop it; its bytes are garbage).
   * Returns how many were authentic.
   */
  open(
    buf: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    counters: Float64Array,
    count: number,
    ok: Uint8Array,
  ): number {
    return addon().aeadOpen(this.#h, buf, offsets, lengths, counters, count, ok);
  }

  /** Wipes and frees the key; later use throws code 'EBADF'. Idempotent. */
  destroy(): void {
    addon().aeadDestroy(this.#h);
  }
}

/** Formats addrs[16*i..] of the given family as text (for logs and tests; allocates). */
export function formatAddr(addrs: Uint8Array, i: number, family: number): string {
  return formatAddrText(addrFromBytes(addrs, 16 * i, family === 4 ? 4 : 6));
}

/** Writes an address given as text into addrs[16*i..] and returns its family (4 or 6); for setup, not per packet. */
export function parseAddrInto(addrs: Uint8Array, i: number, text: string): 4 | 6 {
  const a = parseAddr(text);
  if (!a) {
    const what = /^[\d.]+$/.test(text) ? 'IPv4 address' : 'IP address';
    throw Object.assign(new Error(`invalid ${what} '${text}'`), { code: 'EINVAL' });
  }
  addrs.fill(0, 16 * i, 16 * i + 16);
  addrs.set(addrToBytes(a), 16 * i);
  return a.family;
}

/** The file descriptor under a connected TCP socket, plain or TLS (both keep it on their handle), or -1. */
function fdOf(socket: Socket): number {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : -1;
}

/**
 * TCP_USER_TIMEOUT: the kernel aborts the connection (the socket errors with ETIMEDOUT, then closes) once
 * data it sent has stayed unacknowledged for `ms` (0 = the kernel default, ~15 minutes of retransmits).
 * It only fires while something is in flight: pair it with periodic writes. Returns false when the
 * socket has no descriptor (not connected, or not TCP); throws with `code` = the errno name otherwise.
 */
export function setTcpUserTimeout(socket: Socket, ms: number): boolean {
  const fd = fdOf(socket);
  if (fd < 0) return false;
  addon().tcpSetUserTimeout(fd, ms);
  return true;
}

/** The socket's TCP_USER_TIMEOUT in ms (0 = off), or undefined when it has no descriptor. */
export function tcpUserTimeout(socket: Socket): number | undefined {
  const fd = fdOf(socket);
  return fd < 0 ? undefined : addon().tcpUserTimeout(fd);
}
