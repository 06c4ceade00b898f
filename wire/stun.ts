// STUN (RFC 5389) Binding messages: what coord's STUN server answers and what the agent's netcheck sends
// through its WireGuard socket. Decoding never throws: a malformed datagram yields the reason it was
// refused, so that a server can count and drop it. Classic RFC 3489 requests (no magic cookie, a 16-byte
// transaction id) are understood too, and answered with MAPPED-ADDRESS as those clients expect.
import { randomBytes } from 'node:crypto';
import { addrFromBytes, addrToBytes, formatAddr, parseAddr } from './addr.js';

export const STUN_MAGIC_COOKIE = 0x2112a442;
export const STUN_HEADER_LEN = 20;

export const STUN_BINDING_REQUEST = 0x0001;
export const STUN_BINDING_SUCCESS = 0x0101;
export const STUN_BINDING_ERROR = 0x0111;

export const ATTR_MAPPED_ADDRESS = 0x0001;
/** RFC 3489's CHANGE-REQUEST (kept by RFC 5780): flags 0x4 change IP, 0x2 change port. */
export const ATTR_CHANGE_REQUEST = 0x0003;
export const ATTR_ERROR_CODE = 0x0009;
export const ATTR_UNKNOWN_ATTRIBUTES = 0x000a;
export const ATTR_XOR_MAPPED_ADDRESS = 0x0020;
export const ATTR_SOFTWARE = 0x8022;
export const ATTR_FINGERPRINT = 0x8028;

export const CHANGE_IP = 0x4;
export const CHANGE_PORT = 0x2;

const FINGERPRINT_XOR = 0x5354554e;
const FAMILY_IPV4 = 0x01;
const FAMILY_IPV6 = 0x02;

export interface StunAddress {
  /** Dotted IPv4 or canonical IPv6 text. */
  address: string;
  port: number;
  family: 4 | 6;
}

export interface StunMessage {
  type: number;
  /** The bytes after the type and length fields that identify the transaction: 12 bytes for RFC 5389
   * (after the cookie), 16 for a classic RFC 3489 message (the cookie's place is part of the id). */
  transactionId: Buffer;
  /** True when the magic cookie is present (RFC 5389); false for a classic RFC 3489 message. */
  rfc5389: boolean;
  /** XOR-MAPPED-ADDRESS, or MAPPED-ADDRESS when that is all the message has. */
  mapped: StunAddress | null;
  software: string | null;
  error: { code: number; reason: string } | null;
  /** CHANGE-REQUEST flags (0 when absent). */
  changeRequest: number;
  /** Comprehension-required attributes (type < 0x8000) this codec does not know. */
  unknownRequired: number[];
  /** True when a FINGERPRINT attribute was present (and it matched: a wrong one refuses the message). */
  fingerprint: boolean;
}

export type StunDecodeResult = { ok: true; message: StunMessage } | { ok: false; reason: string };

/**
 * A cheap check for demultiplexing a UDP socket shared with WireGuard: STUN's first two bits are zero,
 * the magic cookie sits at offset 4, and the length field counts the rest. WireGuard's message types
 * 1–4 are followed by three zero bytes, which no STUN method we speak has (the method 0x000 is reserved).
 */
export function isStunPacket(b: Uint8Array, len = b.length): boolean {
  if (len < STUN_HEADER_LEN || (b[0]! & 0xc0) !== 0) return false;
  if (b[4] !== 0x21 || b[5] !== 0x12 || b[6] !== 0xa4 || b[7] !== 0x42) return false;
  if (b[1] === 0 && b[2] === 0 && b[3] === 0) return false;
  const bodyLen = (b[2]! << 8) | b[3]!;
  return (bodyLen & 3) === 0 && STUN_HEADER_LEN + bodyLen === len;
}

/** A fresh random 12-byte RFC 5389 transaction id. */
export function newTransactionId(): Buffer {
  return randomBytes(12);
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (ISO 3309, as FINGERPRINT uses) of b[0..len). */
export function crc32(b: Uint8Array, len = b.length): number {
  let c = 0xffffffff;
  for (let i = 0; i < len; i++) c = CRC_TABLE[(c ^ b[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

// ---- encoding ----

interface Attr {
  type: number;
  value: Buffer;
}

function encodeAddress(type: number, a: { address: string; port: number }, xorWith: Buffer | null): Attr {
  const parsed = parseAddr(a.address.replace(/%.*$/, ''));
  if (!parsed) throw new Error(`not an IP address: ${JSON.stringify(a.address)}`);
  if (!Number.isInteger(a.port) || a.port < 0 || a.port > 65535) throw new Error(`not a port: ${a.port}`);
  const v6 = parsed.family === 6;
  const ip = Buffer.from(addrToBytes(parsed));
  const value = Buffer.alloc(4 + ip.length);
  value[1] = v6 ? FAMILY_IPV6 : FAMILY_IPV4;
  let port = a.port;
  if (xorWith) {
    port ^= STUN_MAGIC_COOKIE >>> 16;
    for (let i = 0; i < ip.length; i++) ip[i]! ^= xorWith[i]!;
  }
  value.writeUInt16BE(port, 2);
  ip.copy(value, 4);
  return { type, value };
}

function encodeMessage(type: number, transactionId: Uint8Array, attrs: Attr[], fingerprint: boolean): Buffer {
  const classic = transactionId.length === 16;
  if (!classic && transactionId.length !== 12) throw new Error('a STUN transaction id has 12 bytes (16 for RFC 3489)');
  let len = 0;
  for (const a of attrs) len += 4 + ((a.value.length + 3) & ~3);
  if (fingerprint) len += 8;
  const out = Buffer.alloc(STUN_HEADER_LEN + len);
  out.writeUInt16BE(type, 0);
  out.writeUInt16BE(len, 2);
  if (classic) out.set(transactionId, 4);
  else {
    out.writeUInt32BE(STUN_MAGIC_COOKIE, 4);
    out.set(transactionId, 8);
  }
  let off = STUN_HEADER_LEN;
  for (const a of attrs) {
    out.writeUInt16BE(a.type, off);
    out.writeUInt16BE(a.value.length, off + 2);
    a.value.copy(out, off + 4);
    off += 4 + ((a.value.length + 3) & ~3);
  }
  if (fingerprint) {
    out.writeUInt16BE(ATTR_FINGERPRINT, off);
    out.writeUInt16BE(4, off + 2);
    out.writeUInt32BE((crc32(out, off) ^ FINGERPRINT_XOR) >>> 0, off + 4);
  }
  return out;
}

function cookieAndId(transactionId: Uint8Array): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt32BE(STUN_MAGIC_COOKIE, 0);
  b.set(transactionId, 4);
  return b;
}

export interface EncodeOptions {
  software?: string;
  /** Add FINGERPRINT (default true; never for a classic RFC 3489 message). */
  fingerprint?: boolean;
}

function softwareAttr(software: string | undefined): Attr[] {
  return software ? [{ type: ATTR_SOFTWARE, value: Buffer.from(software.slice(0, 127), 'utf8') }] : [];
}

/** A Binding request. `changeRequest` (RFC 3489/5780 flags) is for tests of other servers' behaviour. */
export function encodeBindingRequest(transactionId: Uint8Array, o: EncodeOptions & { changeRequest?: number } = {}): Buffer {
  const attrs: Attr[] = [];
  if (o.changeRequest !== undefined) {
    const v = Buffer.alloc(4);
    v.writeUInt32BE(o.changeRequest, 0);
    attrs.push({ type: ATTR_CHANGE_REQUEST, value: v });
  }
  attrs.push(...softwareAttr(o.software));
  return encodeMessage(STUN_BINDING_REQUEST, transactionId, attrs, o.fingerprint ?? true);
}

/**
 * A Binding success answer telling the client the address its request came from: XOR-MAPPED-ADDRESS for
 * an RFC 5389 transaction id, MAPPED-ADDRESS for a classic 16-byte one.
 */
export function encodeBindingSuccess(transactionId: Uint8Array, mapped: { address: string; port: number }, o: EncodeOptions = {}): Buffer {
  if (transactionId.length === 16) {
    return encodeMessage(STUN_BINDING_SUCCESS, transactionId, [encodeAddress(ATTR_MAPPED_ADDRESS, mapped, null), ...softwareAttr(o.software)], false);
  }
  const attrs = [encodeAddress(ATTR_XOR_MAPPED_ADDRESS, mapped, cookieAndId(transactionId)), ...softwareAttr(o.software)];
  return encodeMessage(STUN_BINDING_SUCCESS, transactionId, attrs, o.fingerprint ?? true);
}

/** A Binding error answer; `unknown` fills UNKNOWN-ATTRIBUTES (for 420). */
export function encodeBindingError(transactionId: Uint8Array, code: number, reason: string, unknown: number[] = [], o: EncodeOptions = {}): Buffer {
  const r = Buffer.from(reason.slice(0, 127), 'utf8');
  const ec = Buffer.alloc(4 + r.length);
  ec[2] = Math.floor(code / 100);
  ec[3] = code % 100;
  r.copy(ec, 4);
  const attrs: Attr[] = [{ type: ATTR_ERROR_CODE, value: ec }];
  if (unknown.length) {
    const u = Buffer.alloc(unknown.length * 2);
    unknown.forEach((t, i) => u.writeUInt16BE(t, i * 2));
    attrs.push({ type: ATTR_UNKNOWN_ATTRIBUTES, value: u });
  }
  attrs.push(...softwareAttr(o.software));
  const classic = transactionId.length === 16;
  return encodeMessage(STUN_BINDING_ERROR, transactionId, attrs, !classic && (o.fingerprint ?? true));
}

// ---- decoding ----

function decodeAddress(v: Buffer, xorWith: Buffer | null): StunAddress | string {
  if (v.length < 4) return 'address attribute too short';
  const family = v[1];
  const ipLen = family === FAMILY_IPV4 ? 4 : family === FAMILY_IPV6 ? 16 : 0;
  if (!ipLen) return `unknown address family ${family}`;
  if (v.length !== 4 + ipLen) return 'address attribute of the wrong length';
  let port = v.readUInt16BE(2);
  const ip = Buffer.from(v.subarray(4, 4 + ipLen));
  if (xorWith) {
    port ^= STUN_MAGIC_COOKIE >>> 16;
    for (let i = 0; i < ipLen; i++) ip[i]! ^= xorWith[i]!;
  }
  return ipLen === 4 ? { address: Array.from(ip).join('.'), port, family: 4 } : { address: ipv6Text(ip), port, family: 6 };
}

/** Decodes one whole STUN datagram. Never throws. */
export function decodeStun(b: Uint8Array): StunDecodeResult {
  if (b.length < STUN_HEADER_LEN) return { ok: false, reason: 'shorter than a STUN header' };
  const buf = Buffer.from(b.buffer, b.byteOffset, b.length);
  if ((buf[0]! & 0xc0) !== 0) return { ok: false, reason: 'not STUN: first two bits set' };
  const type = buf.readUInt16BE(0);
  const bodyLen = buf.readUInt16BE(2);
  if (bodyLen & 3) return { ok: false, reason: 'length not a multiple of 4' };
  if (STUN_HEADER_LEN + bodyLen !== buf.length) return { ok: false, reason: 'length field does not match the datagram' };
  const rfc5389 = buf.readUInt32BE(4) === STUN_MAGIC_COOKIE;
  const transactionId = Buffer.from(buf.subarray(rfc5389 ? 8 : 4, 20));
  const xorWith = rfc5389 ? buf.subarray(4, 20) : null;
  const m: StunMessage = { type, transactionId, rfc5389, mapped: null, software: null, error: null, changeRequest: 0, unknownRequired: [], fingerprint: false };
  let xorMapped: StunAddress | null = null;
  let plainMapped: StunAddress | null = null;
  let off = STUN_HEADER_LEN;
  while (off < buf.length) {
    if (m.fingerprint) return { ok: false, reason: 'attribute after FINGERPRINT' };
    if (off + 4 > buf.length) return { ok: false, reason: 'truncated attribute header' };
    const at = buf.readUInt16BE(off);
    const alen = buf.readUInt16BE(off + 2);
    const start = off + 4;
    const next = start + ((alen + 3) & ~3);
    if (next > buf.length) return { ok: false, reason: 'attribute runs past the end' };
    const v = buf.subarray(start, start + alen);
    switch (at) {
      case ATTR_XOR_MAPPED_ADDRESS:
      case ATTR_MAPPED_ADDRESS: {
        const a = decodeAddress(v, at === ATTR_XOR_MAPPED_ADDRESS ? (xorWith ?? Buffer.alloc(16)) : null);
        if (typeof a === 'string') return { ok: false, reason: a };
        if (at === ATTR_XOR_MAPPED_ADDRESS) xorMapped ??= a;
        else plainMapped ??= a;
        break;
      }
      case ATTR_SOFTWARE:
        m.software = v.toString('utf8');
        break;
      case ATTR_ERROR_CODE:
        if (alen < 4) return { ok: false, reason: 'ERROR-CODE too short' };
        m.error = { code: (v[2]! & 7) * 100 + v[3]!, reason: v.subarray(4).toString('utf8') };
        break;
      case ATTR_CHANGE_REQUEST:
        if (alen !== 4) return { ok: false, reason: 'CHANGE-REQUEST of the wrong length' };
        m.changeRequest = v.readUInt32BE(0);
        break;
      case ATTR_UNKNOWN_ATTRIBUTES:
        break;
      case ATTR_FINGERPRINT:
        if (alen !== 4) return { ok: false, reason: 'FINGERPRINT of the wrong length' };
        {
          // The CRC covers the header with the length as it stands (which already includes FINGERPRINT).
          const want = (crc32(buf, off) ^ FINGERPRINT_XOR) >>> 0;
          if (v.readUInt32BE(0) !== want) return { ok: false, reason: 'FINGERPRINT mismatch' };
        }
        m.fingerprint = true;
        break;
      default:
        if (at < 0x8000) m.unknownRequired.push(at);
    }
    off = next;
  }
  m.mapped = xorMapped ?? plainMapped;
  return { ok: true, message: m };
}

/** "ip:port", with brackets around IPv6. */
export function formatEndpoint(a: { address: string; port: number }): string {
  return a.address.includes(':') ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}

/** An IPv6 address as sockets report it: an IPv4-mapped one keeps its IPv4 part dotted (::ffff:1.2.3.4). */
function ipv6Text(ip: Buffer): string {
  const mapped = ip.subarray(0, 10).every((b) => b === 0) && ip[10] === 0xff && ip[11] === 0xff;
  return mapped ? `::ffff:${formatAddr(addrFromBytes(ip, 12, 4))}` : formatAddr(addrFromBytes(ip, 0, 6));
}
