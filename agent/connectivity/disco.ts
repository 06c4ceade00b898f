// Disco: the path-discovery messages devices exchange over every candidate path (UDP endpoints and the
// relay) to find and confirm a direct path: ping, pong, call-me-maybe. Each is sealed from the sender's
// disco key to the receiver's (X25519, a BLAKE2s-derived key, XChaCha20-Poly1305 with a random 24-byte
// nonce), so that an off-path attacker can neither forge a pong to redirect a peer's traffic nor read the
// endpoints in a call-me-maybe. The layout is in docs/protocol.md ("Disco").
//
// On the wire: MAGIC (8) | sender's disco public key (32) | nonce (24) | sealed payload (+16 tag).
// Opening never throws: a datagram that is not disco, is from an unknown sender, fails to open or holds
// a malformed payload yields the reason.
import { randomBytes } from 'node:crypto';
import { xchacha20poly1305 } from '@noble/ciphers/chacha';
import { blake2s } from '@noble/hashes/blake2';
import { addrFrom16, addrTo16 } from '../../wire/addr.js';
import { X25519_KEY_LEN, X25519Key as DiscoKey } from '../../wire/x25519.js';

/** First byte 0xff: never a WireGuard message (types 1–4) nor STUN (first two bits zero). */
export const DISCO_MAGIC = Buffer.from([0xff, 0x4d, 0x57, 0x44, 0x49, 0x53, 0x43, 0x4f]); // "\xffMWDISCO"
const NONCE_LEN = 24;
const TAG_LEN = 16;
const HEADER_LEN = DISCO_MAGIC.length + X25519_KEY_LEN; // authenticated, not encrypted
const MIN_LEN = HEADER_LEN + NONCE_LEN + 2 + TAG_LEN;
/** The largest call-me-maybe list we send or accept. */
export const MAX_CALL_ME_MAYBE = 64;
const KEY_LABEL = new TextEncoder().encode('meshward disco v1');

export const PAYLOAD_VERSION = 1;
const TYPE_PING = 1;
const TYPE_PONG = 2;
const TYPE_CALL_ME_MAYBE = 3;
const TXID_LEN = 12;
const ENDPOINT_LEN = 18; // 16 address bytes (IPv4 mapped into IPv6) + port

export interface Endpoint {
  address: string;
  port: number;
}

export type DiscoMessage =
  /** "Are you there on this path?" `nodeKey` is the sender's WireGuard public key. */
  | { type: 'ping'; txId: Buffer; nodeKey: Buffer }
  /** The answer to a ping, telling the pinger the source address its ping came from. */
  | { type: 'pong'; txId: Buffer; src: Endpoint }
  /** Sent through the relay: "here are my endpoints, ping me on them now" (both sides punch at once). */
  | { type: 'callMeMaybe'; endpoints: Endpoint[] };

export type OpenResult = { ok: true; from: Buffer; message: DiscoMessage } | { ok: false; reason: string };

/** A device's disco key pair: separate from its WireGuard key; its public half goes in the netmap. */
export { DiscoKey };

/** Quick check for demultiplexing the WireGuard socket (and relay frames). */
export function isDiscoPacket(b: Uint8Array, len = b.length): boolean {
  if (len < MIN_LEN) return false;
  for (let i = 0; i < DISCO_MAGIC.length; i++) if (b[i] !== DISCO_MAGIC[i]) return false;
  return true;
}

/** Seals and opens disco messages for one device, caching the symmetric key per peer. */
export class DiscoBox {
  private readonly keys = new Map<string, Uint8Array>();

  constructor(private readonly me: DiscoKey) {}

  get publicKey(): Buffer {
    return this.me.publicKey;
  }

  private keyFor(peer: Uint8Array): Uint8Array | null {
    const id = Buffer.from(peer).toString('hex');
    let k = this.keys.get(id);
    if (k) return k;
    const shared = this.me.shared(peer);
    if (!shared) return null;
    k = blake2s(shared, { key: KEY_LABEL, dkLen: 32 });
    shared.fill(0);
    if (this.keys.size >= 4096) this.keys.clear(); // only known peers get here; this bounds it anyway
    this.keys.set(id, k);
    return k;
  }

  /** Forgets cached keys (a peer left, or the key rotated). */
  forget(peer?: Uint8Array): void {
    if (peer) this.keys.delete(Buffer.from(peer).toString('hex'));
    else this.keys.clear();
  }

  /** Seals `m` for the peer whose disco public key is `to`. Throws only on our own bad arguments. */
  seal(to: Uint8Array, m: DiscoMessage): Buffer {
    const key = this.keyFor(to);
    if (!key) throw new Error('not a usable disco public key');
    const header = Buffer.concat([DISCO_MAGIC, this.me.publicKey]);
    const nonce = randomBytes(NONCE_LEN);
    const sealed = xchacha20poly1305(key, nonce, header).encrypt(encodePayload(m));
    return Buffer.concat([header, nonce, sealed]);
  }

  /**
   * Opens a datagram. `isKnown` is asked about the sender's key before any key agreement, so that a
   * flood from made-up keys costs no X25519 per datagram.
   */
  open(b: Uint8Array, isKnown: (senderKey: Buffer) => boolean): OpenResult {
    if (!isDiscoPacket(b)) return { ok: false, reason: 'not a disco message' };
    const buf = Buffer.from(b.buffer, b.byteOffset, b.length);
    const from = Buffer.from(buf.subarray(DISCO_MAGIC.length, HEADER_LEN));
    if (!isKnown(from)) return { ok: false, reason: 'unknown sender' };
    const key = this.keyFor(from);
    if (!key) return { ok: false, reason: 'unusable sender key' };
    let plain: Uint8Array;
    try {
      plain = xchacha20poly1305(key, buf.subarray(HEADER_LEN, HEADER_LEN + NONCE_LEN), buf.subarray(0, HEADER_LEN)).decrypt(buf.subarray(HEADER_LEN + NONCE_LEN));
    } catch {
      return { ok: false, reason: 'does not open' };
    }
    const message = decodePayload(Buffer.from(plain.buffer, plain.byteOffset, plain.length));
    if (typeof message === 'string') return { ok: false, reason: message };
    return { ok: true, from, message };
  }
}

function encodeEndpoint(e: Endpoint, out: Buffer, off: number): void {
  const a = addrTo16(e.address);
  if (!a) throw new Error(`not an IP address: ${JSON.stringify(e.address)}`);
  if (!Number.isInteger(e.port) || e.port < 1 || e.port > 65535) throw new Error(`not a port: ${e.port}`);
  out.set(a, off);
  out.writeUInt16BE(e.port, off + 16);
}

function decodeEndpoint(b: Buffer, off: number): Endpoint | null {
  const port = b.readUInt16BE(off + 16);
  if (port === 0) return null;
  return { address: addrFrom16(b, off), port };
}

/** The plaintext: type (1) | version (1) | body. */
export function encodePayload(m: DiscoMessage): Buffer {
  switch (m.type) {
    case 'ping': {
      if (m.txId.length !== TXID_LEN || m.nodeKey.length !== 32) throw new Error('ping needs a 12-byte txId and a 32-byte node key');
      return Buffer.concat([Buffer.from([TYPE_PING, PAYLOAD_VERSION]), m.txId, m.nodeKey]);
    }
    case 'pong': {
      if (m.txId.length !== TXID_LEN) throw new Error('pong needs a 12-byte txId');
      const out = Buffer.alloc(2 + TXID_LEN + ENDPOINT_LEN);
      out[0] = TYPE_PONG;
      out[1] = PAYLOAD_VERSION;
      m.txId.copy(out, 2);
      encodeEndpoint(m.src, out, 2 + TXID_LEN);
      return out;
    }
    case 'callMeMaybe': {
      if (m.endpoints.length > MAX_CALL_ME_MAYBE) throw new Error(`at most ${MAX_CALL_ME_MAYBE} endpoints`);
      const out = Buffer.alloc(2 + ENDPOINT_LEN * m.endpoints.length);
      out[0] = TYPE_CALL_ME_MAYBE;
      out[1] = PAYLOAD_VERSION;
      m.endpoints.forEach((e, i) => encodeEndpoint(e, out, 2 + i * ENDPOINT_LEN));
      return out;
    }
  }
}

/**
 * Decodes a plaintext payload, or says why not. A newer version may append fields to ping and pong:
 * extra bytes after the known ones are ignored.
 */
export function decodePayload(b: Buffer): DiscoMessage | string {
  if (b.length < 2) return 'payload too short';
  if (b[1]! < 1) return 'bad payload version';
  switch (b[0]) {
    case TYPE_PING:
      if (b.length < 2 + TXID_LEN + 32) return 'ping too short';
      return { type: 'ping', txId: Buffer.from(b.subarray(2, 14)), nodeKey: Buffer.from(b.subarray(14, 46)) };
    case TYPE_PONG: {
      if (b.length < 2 + TXID_LEN + ENDPOINT_LEN) return 'pong too short';
      const src = decodeEndpoint(b, 2 + TXID_LEN);
      if (!src) return 'pong with port 0';
      return { type: 'pong', txId: Buffer.from(b.subarray(2, 14)), src };
    }
    case TYPE_CALL_ME_MAYBE: {
      const n = (b.length - 2) / ENDPOINT_LEN;
      if (!Number.isInteger(n)) return 'call-me-maybe of a bad length';
      if (n > MAX_CALL_ME_MAYBE) return 'call-me-maybe with too many endpoints';
      const endpoints: Endpoint[] = [];
      for (let i = 0; i < n; i++) {
        const e = decodeEndpoint(b, 2 + i * ENDPOINT_LEN);
        if (!e) return 'call-me-maybe with port 0';
        endpoints.push(e);
      }
      return { type: 'callMeMaybe', endpoints };
    }
    default:
      return `unknown message type ${b[0]}`;
  }
}
