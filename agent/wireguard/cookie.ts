// mac1/mac2 and cookie replies (WireGuard paper section 5.4.7): mac1 proves the sender knows our
// public key; under load we answer with a cookie bound to the sender's address, and accept only
// handshakes whose mac2 carries that cookie.
import { ctEqual, hash, mac, randomBytes, xaeadOpen, xaeadSeal, type PublicKey } from './crypto.js';
import { COOKIE_ENCRYPTED, COOKIE_NONCE, COOKIE_RECEIVER, COOKIE_REPLY_SIZE, MSG_COOKIE_REPLY, mac1Offset } from './messages.js';

const LABEL_MAC1 = Buffer.from('mac1----');
const LABEL_COOKIE = Buffer.from('cookie--');
/** Cookie secrets rotate and received cookies expire after two minutes. */
export const COOKIE_REFRESH_MS = 120_000;

/** The responder side: checks macs of messages sent to us, makes cookie replies. */
export class CookieChecker {
  private mac1Key: Buffer | null = null;
  private cookieKey: Buffer | null = null;
  private secret = randomBytes(32);
  private secretSet = -Infinity;

  constructor(private readonly now: () => number) {}

  /** Set with our own public key (null when the device has no private key). */
  init(ourPublic: PublicKey | null): void {
    this.mac1Key = ourPublic ? hash(LABEL_MAC1, ourPublic.raw) : null;
    this.cookieKey = ourPublic ? hash(LABEL_COOKIE, ourPublic.raw) : null;
  }

  checkMac1(msg: Buffer): boolean {
    const off = mac1Offset(msg[0]);
    if (!this.mac1Key || off < 0) return false;
    return ctEqual(mac(this.mac1Key, msg.subarray(0, off)), msg.subarray(off, off + 16));
  }

  /** `src` identifies the sender's address (IP bytes and port). */
  checkMac2(msg: Buffer, src: Uint8Array): boolean {
    const off = mac1Offset(msg[0]);
    if (off < 0 || this.now() - this.secretSet > COOKIE_REFRESH_MS) return false;
    const cookie = mac(this.secret, src);
    return ctEqual(mac(cookie, msg.subarray(0, off + 16)), msg.subarray(off + 16, off + 32));
  }

  /** A cookie reply to `msg` (whose mac1 was valid) from address `src`. */
  createReply(msg: Buffer, src: Uint8Array): Buffer | null {
    const off = mac1Offset(msg[0]);
    if (off < 0 || !this.cookieKey) return null;
    const now = this.now();
    if (now - this.secretSet > COOKIE_REFRESH_MS) {
      this.secret = randomBytes(32);
      this.secretSet = now;
    }
    const cookie = mac(this.secret, src);
    const reply = Buffer.alloc(COOKIE_REPLY_SIZE);
    reply[0] = MSG_COOKIE_REPLY;
    msg.copy(reply, COOKIE_RECEIVER, 4, 8); // the sender index of the message we answer
    const nonce = randomBytes(24);
    nonce.copy(reply, COOKIE_NONCE);
    xaeadSeal(this.cookieKey, nonce, cookie, msg.subarray(off, off + 16)).copy(reply, COOKIE_ENCRYPTED);
    return reply;
  }
}

/** The initiator side for one peer: adds macs to messages we send, remembers its cookie. */
export class CookieGenerator {
  private mac1Key: Buffer;
  private cookieKey: Buffer;
  private cookie: Buffer | null = null;
  private cookieSet = -Infinity;
  private lastMac1: Buffer | null = null;

  constructor(
    peerPublic: PublicKey,
    private readonly now: () => number,
  ) {
    this.mac1Key = hash(LABEL_MAC1, peerPublic.raw);
    this.cookieKey = hash(LABEL_COOKIE, peerPublic.raw);
  }

  /** Fills mac1 and (with a fresh cookie) mac2 of a handshake message. */
  addMacs(msg: Buffer): void {
    const off = mac1Offset(msg[0]);
    const m1 = mac(this.mac1Key, msg.subarray(0, off));
    m1.copy(msg, off);
    this.lastMac1 = m1;
    if (this.cookie && this.now() - this.cookieSet < COOKIE_REFRESH_MS) {
      mac(this.cookie, msg.subarray(0, off + 16)).copy(msg, off + 16);
    } else {
      msg.fill(0, off + 16, off + 32);
    }
  }

  /** Takes a cookie reply answering our last handshake message; false if it does not decrypt. */
  consumeReply(reply: Buffer): boolean {
    if (!this.lastMac1) return false;
    const nonce = reply.subarray(COOKIE_NONCE, COOKIE_NONCE + 24);
    const cookie = xaeadOpen(this.cookieKey, nonce, reply.subarray(COOKIE_ENCRYPTED, COOKIE_REPLY_SIZE), this.lastMac1);
    if (!cookie) return false;
    this.cookie = cookie;
    this.cookieSet = this.now();
    this.lastMac1 = null;
    return true;
  }
}
