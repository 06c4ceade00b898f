// IP addresses as bytes and back, for the binary wire formats (STUN, disco). node:net has no such helpers.
import { isIPv4, isIPv6 } from 'node:net';


/** 16 bytes of an IPv6 address given as text (a zone is ignored); the caller checks isIPv6 first. */
export function ipv6Bytes(text: string): Buffer {
  let s = text;
  const out = Buffer.alloc(16);
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  // A trailing dotted IPv4 part (::ffff:1.2.3.4) becomes two hex groups.
  const lastColon = s.lastIndexOf(':');
  if (s.includes('.', lastColon)) {
    const v4 = s.slice(lastColon + 1).split('.').map(Number);
    s = `${s.slice(0, lastColon + 1)}${((v4[0]! << 8) | v4[1]!).toString(16)}:${((v4[2]! << 8) | v4[3]!).toString(16)}`;
  }
  const [head, tail] = s.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

/** Canonical text of 16 IPv6 bytes (compressed; IPv4-mapped ones as ::ffff:a.b.c.d). */
export function ipv6Text(b: Buffer): string {
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push(b.readUInt16BE(i));
  // IPv4-mapped addresses read best in their dotted form.
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** An IPv4 or IPv6 address as 16 bytes (IPv4 as ::ffff:a.b.c.d); null when the text is no address. */
export function ip16(text: string): Buffer | null {
  if (isIPv4(text)) return ipv6Bytes(`::ffff:${text}`);
  if (isIPv6(text)) return ipv6Bytes(text);
  return null;
}

/** The text of 16 address bytes; IPv4-mapped addresses come back as plain dotted IPv4. */
export function ip16Text(b: Uint8Array): string {
  const t = ipv6Text(Buffer.from(b.buffer, b.byteOffset, 16));
  return t.startsWith('::ffff:') && t.includes('.') ? t.slice(7) : t;
}
