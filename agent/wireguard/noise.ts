// The Noise_IKpsk2 handshake exactly as the WireGuard paper (section 5.4) specifies it, and the
// transport keypairs it derives. Pure protocol: no sockets, no timers; the clock is passed in.
import type { KeyObject } from 'node:crypto';
import { AeadKey } from '../../native/index.js';
import {
  PrivateKey,
  PublicKey,
  aeadOpen,
  aeadSeal,
  dhObjects,
  generateEphemeral,
  hash,
  kdf,
  wipe,
  KEY_LEN,
  TAG_LEN,
} from './crypto.js';
import {
  INITIATION_SIZE,
  INIT_EPHEMERAL,
  INIT_SENDER,
  INIT_STATIC,
  INIT_TIMESTAMP,
  MSG_INITIATION,
  MSG_RESPONSE,
  RESPONSE_SIZE,
  RESP_EMPTY,
  RESP_EPHEMERAL,
  RESP_RECEIVER,
  RESP_SENDER,
} from './messages.js';
import { ReplayWindow } from './replay.js';

const CONSTRUCTION = Buffer.from('Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s');
const IDENTIFIER = Buffer.from('WireGuard v1 zx2c4 Jason@zx2c4.com');
export const INITIAL_CHAIN_KEY = hash(CONSTRUCTION);
const INITIAL_HASH = hash(INITIAL_CHAIN_KEY, IDENTIFIER);
const EMPTY = Buffer.alloc(0);

/** Seconds since 1970 as TAI64 (2^62 + 10 s for the TAI-UTC offset WireGuard uses) plus nanoseconds. */
export function tai64n(wallMs: number): Buffer {
  const out = Buffer.alloc(12);
  const secs = Math.floor(wallMs / 1000);
  out.writeBigUInt64BE(0x400000000000000an + BigInt(secs), 0);
  // Whiten the sub-second part to 2^24 ns so the timestamp does not leak a precise clock.
  const nanos = Math.floor((wallMs - secs * 1000) * 1e6);
  out.writeUInt32BE(nanos - (nanos % 0x1000000), 8);
  return out;
}

export const enum HandshakeState {
  Zeroed,
  InitiationCreated,
  InitiationConsumed,
  ResponseCreated,
  ResponseConsumed,
}

/** One peer's handshake state. */
export class Handshake {
  state = HandshakeState.Zeroed;
  hash: Buffer = Buffer.alloc(32);
  chainKey: Buffer = Buffer.alloc(32);
  localEphemeral: KeyObject | null = null;
  remoteEphemeral = Buffer.alloc(32);
  localIndex = 0;
  remoteIndex = 0;
  presharedKey = Buffer.alloc(32);
  /** DH(our static, their static), fixed while both keys are; null if the DH is invalid. */
  precomputedStaticStatic: Buffer | null = null;
  /** Highest TAI64N timestamp accepted from this peer (initiations at or below it are replays). */
  lastTimestamp = Buffer.alloc(12);
  /** Monotonic ms of the last initiation we accepted (flood limit), -Infinity if none. */
  lastInitiationConsumed = -Infinity;
  /** Monotonic ms of the last initiation we sent. */
  lastSentInitiation = -Infinity;
  /** The peer this handshake belongs to (set by the device). */
  owner: unknown = null;

  constructor(readonly remoteStatic: PublicKey) {}

  precompute(local: PrivateKey | null): void {
    this.precomputedStaticStatic = local ? local.dh(this.remoteStatic) : null;
  }

  clear(): void {
    wipe(this.hash);
    wipe(this.chainKey);
    wipe(this.remoteEphemeral);
    this.localEphemeral = null;
    this.localIndex = 0;
    this.remoteIndex = 0;
    this.state = HandshakeState.Zeroed;
  }
}

/**
 * Transport keys of one session and their counters. Each direction's key also lives in a native AeadKey
 * (an OpenSSL context set up once, so packets are sealed and opened in batches, in place, with no
 * per-packet cipher object); wipe() zeroes the raw keys and destroys both contexts.
 */
export class Keypair {
  readonly replay = new ReplayWindow();
  sendCounter = 0;
  readonly sendAead: AeadKey;
  readonly recvAead: AeadKey;
  /** True once wipe() ran: the keys are gone and the AEAD contexts destroyed. */
  wiped = false;
  constructor(
    readonly sendKey: Buffer,
    readonly recvKey: Buffer,
    readonly isInitiator: boolean,
    readonly created: number,
    readonly localIndex: number,
    readonly remoteIndex: number,
  ) {
    this.sendAead = new AeadKey(sendKey);
    try {
      this.recvAead = new AeadKey(recvKey);
    } catch (err) {
      this.sendAead.destroy();
      throw err;
    }
  }

  wipe(): void {
    this.wiped = true;
    this.sendAead.destroy();
    this.recvAead.destroy();
    wipe(this.sendKey);
    wipe(this.recvKey);
  }
}

/** What the handshake needs from the device: our static key, index allocation, peer lookup, clocks. */
export interface NoiseHost {
  readonly staticKey: PrivateKey | null;
  lookupByStatic(pub: Buffer): Handshake | undefined;
  /** A fresh random 32-bit index not in use, registered for this handshake. */
  allocateIndex(hs: Handshake): number;
  now(): number;
  wallNow(): number;
}

/** Minimum spacing of initiations accepted from one peer (50 per second). */
export const HANDSHAKE_INITIATION_RATE_MS = 20;

function mixHash(h: Buffer, data: Uint8Array): Buffer {
  return hash(h, data);
}

/**
 * Builds an initiation (macs left zero; the cookie generator fills them). Returns null without a
 * static key or when the static-static DH is invalid.
 */
export function createInitiation(host: NoiseHost, hs: Handshake): Buffer | null {
  const local = host.staticKey;
  if (!local || !hs.precomputedStaticStatic) return null;
  const msg = Buffer.alloc(INITIATION_SIZE);
  let h = mixHash(INITIAL_HASH, hs.remoteStatic.raw);
  let ck = INITIAL_CHAIN_KEY;

  const eph = generateEphemeral();
  ck = kdf(1, ck, eph.pub)[0];
  eph.pub.copy(msg, INIT_EPHEMERAL);
  h = mixHash(h, eph.pub);

  const es = dhObjects(eph.priv, hs.remoteStatic.raw);
  if (!es) return null;
  let key: Buffer;
  [ck, key] = kdf(2, ck, es);
  const encStatic = aeadSeal(key, local.publicKey.raw, h);
  encStatic.copy(msg, INIT_STATIC);
  h = mixHash(h, encStatic);

  [ck, key] = kdf(2, ck, hs.precomputedStaticStatic);
  const encTs = aeadSeal(key, tai64n(host.wallNow()), h);
  encTs.copy(msg, INIT_TIMESTAMP);
  h = mixHash(h, encTs);

  hs.localIndex = host.allocateIndex(hs);
  msg[0] = MSG_INITIATION;
  msg.writeUInt32LE(hs.localIndex, INIT_SENDER);
  hs.hash = h;
  hs.chainKey = ck;
  hs.localEphemeral = eph.priv;
  hs.state = HandshakeState.InitiationCreated;
  hs.lastSentInitiation = host.now();
  return msg;
}

export type InitiationResult = { hs: Handshake } | { error: 'decrypt' | 'unknown-peer' | 'replay' | 'flood' };

/** Consumes an initiation whose macs were already checked. */
export function consumeInitiation(host: NoiseHost, msg: Buffer): InitiationResult {
  const local = host.staticKey;
  if (!local) return { error: 'decrypt' };
  let h = mixHash(INITIAL_HASH, local.publicKey.raw);
  let ck = INITIAL_CHAIN_KEY;
  const ephPub = msg.subarray(INIT_EPHEMERAL, INIT_EPHEMERAL + KEY_LEN);
  ck = kdf(1, ck, ephPub)[0];
  h = mixHash(h, ephPub);

  const es = dhObjects(local.object, ephPub);
  if (!es) return { error: 'decrypt' };
  let key: Buffer;
  [ck, key] = kdf(2, ck, es);
  const encStatic = msg.subarray(INIT_STATIC, INIT_STATIC + KEY_LEN + TAG_LEN);
  const peerStatic = aeadOpen(key, encStatic, h);
  if (!peerStatic) return { error: 'decrypt' };
  h = mixHash(h, encStatic);

  const hs = host.lookupByStatic(peerStatic);
  if (!hs) return { error: 'unknown-peer' };
  if (!hs.precomputedStaticStatic) return { error: 'decrypt' };
  [ck, key] = kdf(2, ck, hs.precomputedStaticStatic);
  const encTs = msg.subarray(INIT_TIMESTAMP, INIT_TIMESTAMP + 12 + TAG_LEN);
  const ts = aeadOpen(key, encTs, h);
  if (!ts) return { error: 'decrypt' };
  h = mixHash(h, encTs);

  if (Buffer.compare(ts, hs.lastTimestamp) <= 0) return { error: 'replay' };
  const now = host.now();
  if (now - hs.lastInitiationConsumed <= HANDSHAKE_INITIATION_RATE_MS) return { error: 'flood' };

  hs.hash = h;
  hs.chainKey = ck;
  hs.remoteIndex = msg.readUInt32LE(INIT_SENDER);
  msg.copy(hs.remoteEphemeral, 0, INIT_EPHEMERAL, INIT_EPHEMERAL + KEY_LEN);
  ts.copy(hs.lastTimestamp);
  hs.lastInitiationConsumed = now;
  hs.state = HandshakeState.InitiationConsumed;
  return { hs };
}

/** Builds the response to a consumed initiation (macs left zero). */
export function createResponse(host: NoiseHost, hs: Handshake): Buffer | null {
  if (hs.state !== HandshakeState.InitiationConsumed) return null;
  const msg = Buffer.alloc(RESPONSE_SIZE);
  hs.localIndex = host.allocateIndex(hs);
  msg[0] = MSG_RESPONSE;
  msg.writeUInt32LE(hs.localIndex, RESP_SENDER);
  msg.writeUInt32LE(hs.remoteIndex, RESP_RECEIVER);

  let h = hs.hash;
  let ck = hs.chainKey;
  const eph = generateEphemeral();
  eph.pub.copy(msg, RESP_EPHEMERAL);
  ck = kdf(1, ck, eph.pub)[0];
  h = mixHash(h, eph.pub);

  const ee = dhObjects(eph.priv, hs.remoteEphemeral);
  const se = dhObjects(eph.priv, hs.remoteStatic.raw);
  if (!ee || !se) return null;
  ck = kdf(1, ck, ee)[0];
  ck = kdf(1, ck, se)[0];

  const [ck2, tau, key] = kdf(3, ck, hs.presharedKey);
  ck = ck2;
  h = mixHash(h, tau);
  const empty = aeadSeal(key, EMPTY, h);
  empty.copy(msg, RESP_EMPTY);
  h = mixHash(h, empty);

  hs.hash = h;
  hs.chainKey = ck;
  hs.localEphemeral = eph.priv;
  hs.state = HandshakeState.ResponseCreated;
  return msg;
}

/** Consumes a response to our initiation (macs already checked); `hs` is found by the receiver index. */
export function consumeResponse(host: NoiseHost, hs: Handshake, msg: Buffer): boolean {
  const local = host.staticKey;
  if (!local || hs.state !== HandshakeState.InitiationCreated || !hs.localEphemeral) return false;
  if (msg.readUInt32LE(RESP_RECEIVER) !== hs.localIndex) return false;
  let h = hs.hash;
  let ck = hs.chainKey;
  const ephPub = msg.subarray(RESP_EPHEMERAL, RESP_EPHEMERAL + KEY_LEN);
  ck = kdf(1, ck, ephPub)[0];
  h = mixHash(h, ephPub);

  const ee = dhObjects(hs.localEphemeral, ephPub);
  const se = dhObjects(local.object, ephPub);
  if (!ee || !se) return false;
  ck = kdf(1, ck, ee)[0];
  ck = kdf(1, ck, se)[0];

  const [ck2, tau, key] = kdf(3, ck, hs.presharedKey);
  ck = ck2;
  h = mixHash(h, tau);
  const encEmpty = msg.subarray(RESP_EMPTY, RESP_EMPTY + TAG_LEN);
  if (!aeadOpen(key, encEmpty, h)) return false;
  h = mixHash(h, encEmpty);

  hs.hash = h;
  hs.chainKey = ck;
  hs.remoteIndex = msg.readUInt32LE(RESP_SENDER);
  hs.state = HandshakeState.ResponseConsumed;
  return true;
}

/**
 * Derives the transport keypair from a completed handshake (initiator after consuming the
 * response, responder after creating it) and wipes the handshake's secrets.
 */
export function deriveKeypair(hs: Handshake, now: number): Keypair | null {
  let isInitiator: boolean;
  if (hs.state === HandshakeState.ResponseConsumed) isInitiator = true;
  else if (hs.state === HandshakeState.ResponseCreated) isInitiator = false;
  else return null;
  const [t1, t2] = kdf(2, hs.chainKey, EMPTY);
  const kp = isInitiator
    ? new Keypair(t1, t2, true, now, hs.localIndex, hs.remoteIndex)
    : new Keypair(t2, t1, false, now, hs.localIndex, hs.remoteIndex);
  wipe(hs.chainKey);
  wipe(hs.hash);
  hs.localEphemeral = null;
  hs.state = HandshakeState.Zeroed;
  return kp;
}
