// The relay protocol (docs/protocol.md, "Relay"): frames carried one per binary WebSocket message
// between a device and a relay, which forwards opaque packets between devices by their WireGuard public
// keys. A frame is `type (1) | body`. A device proves it holds the private half of its key by answering
// the relay's challenge with a MAC keyed by X25519(device key, relay's ephemeral key).
import { timingSafeEqual } from 'node:crypto';
import { blake2s } from '@noble/hashes/blake2';

export const RELAY_PATH = '/relay';
export const RELAY_VERSION = 1;
export const KEY_LEN = 32;
export const CHALLENGE_LEN = 32;
export const PROOF_LEN = 32;
/** The largest packet a relay forwards (a WireGuard message never comes near it). */
export const MAX_PACKET = 65535;
export const MAX_FRAME = 1 + KEY_LEN + MAX_PACKET;
/** The most packets one batch frame can hold (each at least 1 byte behind its 2-byte length). */
export const MAX_BATCH_PACKETS = Math.floor((MAX_FRAME - 1 - KEY_LEN) / 3);

export const FRAME = {
  /** relay → device: version (1) | relay's ephemeral X25519 public key (32) | challenge (32) */
  serverHello: 0x01,
  /** device → relay: version (1) | device's public key (32) | proof (32) */
  clientHello: 0x02,
  /** relay → device: the device may send now (empty body) */
  ready: 0x03,
  /** relay → device, then the relay closes: reason (UTF-8) */
  refused: 0x04,
  /** device → relay: destination key (32) | packet */
  send: 0x10,
  /** relay → device: source key (32) | packet */
  recv: 0x11,
  /** device → relay: destination key (32) | one or more of (length (2) | packet) */
  sendBatch: 0x13,
  /** relay → device: source key (32) | one or more of (length (2) | packet) */
  recvBatch: 0x14,
  /** relay → device: destination key (32) | reason (1): a packet to it was not delivered */
  undeliverable: 0x12,
  /** either way: 8 bytes the other side echoes in a pong */
  ping: 0x20,
  pong: 0x21,
} as const;

export const UNDELIVERABLE = {
  /** The destination is not connected to this relay. */
  notHere: 1,
  /** The destination is not a peer of the sender. */
  notAllowed: 2,
} as const;

const PROOF_LABEL = new TextEncoder().encode('meshward relay v1');

/** The proof a device sends: BLAKE2s keyed with the shared secret over label, challenge and its key. */
export function relayProof(shared: Uint8Array, challenge: Uint8Array, clientKey: Uint8Array): Buffer {
  const msg = new Uint8Array(PROOF_LABEL.length + CHALLENGE_LEN + KEY_LEN);
  msg.set(PROOF_LABEL, 0);
  msg.set(challenge, PROOF_LABEL.length);
  msg.set(clientKey, PROOF_LABEL.length + CHALLENGE_LEN);
  return Buffer.from(blake2s(msg, { key: shared, dkLen: PROOF_LEN }));
}

export function proofMatches(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

export function serverHello(ephemeralPublic: Uint8Array, challenge: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([FRAME.serverHello, RELAY_VERSION]), ephemeralPublic, challenge]);
}

export function clientHello(clientKey: Uint8Array, proof: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([FRAME.clientHello, RELAY_VERSION]), clientKey, proof]);
}

export function parseServerHello(f: Buffer): { ephemeral: Buffer; challenge: Buffer } | null {
  if (f.length !== 2 + KEY_LEN + CHALLENGE_LEN || f[0] !== FRAME.serverHello || f[1] !== RELAY_VERSION) return null;
  return { ephemeral: f.subarray(2, 2 + KEY_LEN), challenge: f.subarray(2 + KEY_LEN) };
}

export function parseClientHello(f: Buffer): { key: Buffer; proof: Buffer } | null {
  if (f.length !== 2 + KEY_LEN + PROOF_LEN || f[0] !== FRAME.clientHello || f[1] !== RELAY_VERSION) return null;
  return { key: f.subarray(2, 2 + KEY_LEN), proof: f.subarray(2 + KEY_LEN) };
}

/** A frame with a key and a packet (send, recv). */
export function keyedFrame(type: number, key: Uint8Array, packet: Uint8Array): Buffer {
  const f = Buffer.allocUnsafe(1 + KEY_LEN + packet.length);
  f[0] = type;
  f.set(key, 1);
  f.set(packet, 1 + KEY_LEN);
  return f;
}

export function undeliverable(dst: Uint8Array, reason: number): Buffer {
  const f = Buffer.alloc(2 + KEY_LEN);
  f[0] = FRAME.undeliverable;
  f.set(dst, 1);
  f[1 + KEY_LEN] = reason;
  return f;
}

export function refused(reason: string): Buffer {
  return Buffer.concat([Buffer.from([FRAME.refused]), Buffer.from(reason, 'utf8')]);
}

/**
 * A batch frame for packets to one destination: the data path works in batches, and one WebSocket
 * message per batch costs far less than one per packet. Throws on our own bad arguments.
 */
export function batchFrame(type: number, key: Uint8Array, packets: readonly Uint8Array[], count = packets.length): Buffer {
  let len = 1 + KEY_LEN;
  for (let i = 0; i < count; i++) {
    const n = packets[i]!.length;
    if (n < 1 || n > MAX_PACKET) throw new Error('relay batch: packets of 1 to 65535 bytes');
    len += 2 + n;
  }
  if (len > MAX_FRAME) throw new Error(`relay batch: at most ${MAX_FRAME} bytes in one frame`);
  const f = Buffer.allocUnsafe(len);
  f[0] = type;
  f.set(key, 1);
  let off = 1 + KEY_LEN;
  for (let i = 0; i < count; i++) {
    const p = packets[i]!;
    f.writeUInt16BE(p.length, off);
    f.set(p, off + 2);
    off += 2 + p.length;
  }
  return f;
}

/**
 * The length of a batch frame for the packets buf[offsets[pick[i]] .. +lengths[pick[i]]) for i < count
 * (the WireGuard send path's layout); throws when it would not be a valid frame.
 */
export function slotsFrameLength(lengths: Uint32Array, pick: Uint32Array, count: number): number {
  let len = 1 + KEY_LEN;
  for (let i = 0; i < count; i++) {
    const n = lengths[pick[i]!]!;
    if (n < 1 || n > MAX_PACKET) throw new Error('relay batch: packets of 1 to 65535 bytes');
    len += 2 + n;
  }
  if (len > MAX_FRAME) throw new Error(`relay batch: at most ${MAX_FRAME} bytes in one frame`);
  return len;
}

/** Writes that frame at the start of `f` (room for slotsFrameLength bytes), without a view per packet; returns its length. */
export function writeSlotsFrame(f: Buffer, type: number, key: Uint8Array, buf: Buffer, offsets: Uint32Array, lengths: Uint32Array, pick: Uint32Array, count: number): number {
  f[0] = type;
  f.set(key, 1);
  let off = 1 + KEY_LEN;
  for (let i = 0; i < count; i++) {
    const s = pick[i]!;
    const n = lengths[s]!;
    f[off] = n >> 8;
    f[off + 1] = n & 0xff;
    buf.copy(f, off + 2, offsets[s]!, offsets[s]! + n);
    off += 2 + n;
  }
  return off;
}

/**
 * Where the packets of a batch frame are: fills offsets/lengths (room for MAX_BATCH_PACKETS) and returns
 * their number, or -1 when the lengths do not add up (or one is 0).
 */
export function batchSlots(f: Uint8Array, offsets: Uint32Array, lengths: Uint32Array): number {
  let off = 1 + KEY_LEN;
  let n = 0;
  while (off < f.length) {
    if (off + 2 > f.length || n === offsets.length) return -1;
    const len = (f[off]! << 8) | f[off + 1]!;
    if (len === 0 || off + 2 + len > f.length) return -1;
    offsets[n] = off + 2;
    lengths[n] = len;
    off += 2 + len;
    n++;
  }
  return n > 0 ? n : -1;
}

/** Number of packets in a batch frame's body, or -1 when the lengths do not add up (or one is 0). */
export function countBatch(f: Uint8Array): number {
  let off = 1 + KEY_LEN;
  let n = 0;
  while (off < f.length) {
    if (off + 2 > f.length) return -1;
    const len = (f[off]! << 8) | f[off + 1]!;
    if (len === 0 || off + 2 + len > f.length) return -1;
    off += 2 + len;
    n++;
  }
  return n > 0 ? n : -1;
}

/**
 * The relay-to-coord check a standalone relay (`coord relay`) makes: POST VERIFY_PATH on coord with
 * `Authorization: Bearer <relay secret>` and `{"keys": [...]}` (node keys, base64, at most
 * VERIFY_MAX_KEYS); coord answers `{"relay": NAME, "devices": {KEY: {"authorized": bool, "peers": [...]}}}`
 * (docs/protocol.md, "Relay verification").
 */
export const VERIFY_PATH = '/relay-auth/v1/verify';
export const VERIFY_MAX_KEYS = 1000;

export interface VerifyRequest {
  keys: string[];
}

export interface VerifyAnswer {
  /** A registered, authorized, unexpired device of an active user holds this key. */
  authorized: boolean;
  /** The node keys of the device's peers (its last netmap's); empty when not authorized. */
  peers: string[];
}

export interface VerifyResponse {
  relay: string;
  devices: Record<string, VerifyAnswer>;
}
