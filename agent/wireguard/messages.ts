// WireGuard's four message types and their byte layouts (all integers little-endian).

export const MSG_INITIATION = 1;
export const MSG_RESPONSE = 2;
export const MSG_COOKIE_REPLY = 3;
export const MSG_TRANSPORT = 4;

export const INITIATION_SIZE = 148;
export const RESPONSE_SIZE = 92;
export const COOKIE_REPLY_SIZE = 64;
/** type(1) reserved(3) receiver(4) counter(8) */
export const TRANSPORT_HEADER_SIZE = 16;
export const TRANSPORT_MIN_SIZE = TRANSPORT_HEADER_SIZE + 16;

// Initiation: type, sender(4..8), ephemeral(8..40), static(40..88), timestamp(88..116), mac1(116..132), mac2(132..148)
export const INIT_SENDER = 4;
export const INIT_EPHEMERAL = 8;
export const INIT_STATIC = 40;
export const INIT_TIMESTAMP = 88;
export const INIT_MAC1 = 116;
export const INIT_MAC2 = 132;

// Response: type, sender(4..8), receiver(8..12), ephemeral(12..44), empty(44..60), mac1(60..76), mac2(76..92)
export const RESP_SENDER = 4;
export const RESP_RECEIVER = 8;
export const RESP_EPHEMERAL = 12;
export const RESP_EMPTY = 44;
export const RESP_MAC1 = 60;
export const RESP_MAC2 = 76;

// Cookie reply: type, receiver(4..8), nonce(8..32), cookie(32..64)
export const COOKIE_RECEIVER = 4;
export const COOKIE_NONCE = 8;
export const COOKIE_ENCRYPTED = 32;

/** Offset of mac1 in a handshake message (mac2 follows it), or -1 for other types. */
export function mac1Offset(type: number): number {
  if (type === MSG_INITIATION) return INIT_MAC1;
  if (type === MSG_RESPONSE) return RESP_MAC1;
  return -1;
}

/** The message type of a datagram if its length fits that type, else 0 (malformed). */
export function messageType(buf: Uint8Array, off: number, len: number): number {
  if (len < 4) return 0;
  // The three reserved bytes must be zero (the type is effectively a little-endian u32).
  if (buf[off + 1] !== 0 || buf[off + 2] !== 0 || buf[off + 3] !== 0) return 0;
  const t = buf[off];
  switch (t) {
    case MSG_INITIATION:
      return len === INITIATION_SIZE ? t : 0;
    case MSG_RESPONSE:
      return len === RESPONSE_SIZE ? t : 0;
    case MSG_COOKIE_REPLY:
      return len === COOKIE_REPLY_SIZE ? t : 0;
    case MSG_TRANSPORT:
      return len >= TRANSPORT_MIN_SIZE ? t : 0;
    default:
      return 0;
  }
}

/** The address family the receive path is given for a message that came through the relay (not 4 or 6). */
export const RELAY_FAMILY = 0xff;
