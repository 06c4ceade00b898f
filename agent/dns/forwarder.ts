// Forwarding a query to upstream nameservers: UDP first, over TCP when the UDP answer is truncated.
// Every upstream of the list is asked at once and the first useful answer wins; each exchange has its
// own connected socket (a fresh source port, and ICMP errors arrive as errors) and a fresh query id, so
// an off-path sender cannot slip in an answer. An upstream that fails or stays silent gives SERVFAIL
// within the deadline, never a hang.
import { randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { Socket } from 'node:net';
import { familyOf } from '../../wire/addr.js';

export interface Upstream {
  host: string;
  port: number;
}

/** "1.2.3.4", "1.2.3.4:5353", "fd00::1", "[fd00::1]:53" → host and port; null when malformed. */
export function parseUpstream(spec: string): Upstream | null {
  if (familyOf(spec)) return { host: spec, port: 53 };
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(spec) ?? /^([^:[\]]+):(\d+)$/.exec(spec);
  if (!m || !familyOf(m[1]!)) return null;
  const port = Number(m[2]);
  return port > 0 && port < 65536 ? { host: m[1]!, port } : null;
}

export interface ForwardOptions {
  /** Give up on all upstreams after this long. */
  timeoutMs: number;
  /** Ask over TCP from the start (the client asked us over TCP). */
  tcp: boolean;
}

export interface ForwardResult {
  answer: Buffer;
  upstream: string;
  /** The answer came over TCP (asked so, or retried after a truncated UDP answer). */
  overTcp: boolean;
}

function withId(packet: Buffer, id: number): Buffer {
  const copy = Buffer.from(packet);
  copy.writeUInt16BE(id, 0);
  return copy;
}

function rcodeOf(answer: Buffer): number {
  return answer.readUInt16BE(2) & 0xf;
}

/**
 * One exchange with an upstream until `deadline`: `start` wires a socket and calls `finish` with the
 * answer or an error; whichever comes first (or the deadline) settles it, and the socket is closed.
 */
function exchange(deadline: number, start: (finish: (err: Error | null, answer?: Buffer) => void) => { close(): void }): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let done = false;
    let sock: { close(): void } | undefined;
    const finish = (err: Error | null, answer?: Buffer) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock?.close();
      if (err) reject(err);
      else resolve(answer!);
    };
    const timer = setTimeout(() => finish(new Error('timeout')), Math.max(1, deadline - Date.now()));
    sock = start(finish);
  });
}

function udpExchange(up: Upstream, query: Buffer, deadline: number): Promise<Buffer> {
  const id = query.readUInt16BE(0);
  return exchange(deadline, (finish) => {
    const sock = createSocket(familyOf(up.host) === 6 ? 'udp6' : 'udp4');
    sock.on('error', (err) => finish(err));
    sock.on('message', (msg) => {
      // A connected socket only hears its upstream; still, the id must be the one we sent.
      if (msg.length >= 12 && msg.readUInt16BE(0) === id && (msg.readUInt16BE(2) & 0x8000) !== 0) finish(null, msg);
    });
    sock.connect(up.port, up.host, () => sock.send(query));
    return sock;
  });
}

function tcpExchange(up: Upstream, query: Buffer, deadline: number): Promise<Buffer> {
  const id = query.readUInt16BE(0);
  return exchange(deadline, (finish) => {
    const sock = new Socket();
    let buffered: Buffer = Buffer.alloc(0);
    sock.on('error', (err) => finish(err));
    sock.on('close', () => finish(new Error('connection closed before an answer')));
    sock.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length > 65537) return finish(new Error('answer too long'));
      if (buffered.length < 2) return;
      const len = buffered.readUInt16BE(0);
      if (buffered.length < 2 + len) return;
      const msg = buffered.subarray(2, 2 + len);
      if (msg.length >= 12 && msg.readUInt16BE(0) === id) finish(null, Buffer.from(msg));
      else finish(new Error('answer with a foreign id'));
    });
    sock.connect(up.port, up.host, () => {
      const framed = Buffer.alloc(2 + query.length);
      framed.writeUInt16BE(query.length, 0);
      query.copy(framed, 2);
      sock.write(framed);
    });
    return { close: () => sock.destroy() };
  });
}

/** Asks one upstream: UDP, then TCP if that answer is truncated (or TCP from the start). */
async function ask(spec: string, up: Upstream, query: Buffer, opts: ForwardOptions, deadline: number): Promise<ForwardResult> {
  const id = randomInt(0, 0x10000);
  const q = withId(query, id);
  if (!opts.tcp) {
    const answer = await udpExchange(up, q, deadline);
    if ((answer.readUInt16BE(2) & 0x0200) === 0) return { answer, upstream: spec, overTcp: false };
  }
  return { answer: await tcpExchange(up, q, deadline), upstream: spec, overTcp: true };
}

/**
 * Forwards `query` (a raw DNS query) to the upstreams and resolves with the first answer that is not
 * SERVFAIL/REFUSED (or, if every upstream answers so, the first answer), its id set back to the
 * query's. Rejects when no upstream answered in time.
 */
export async function forward(query: Buffer, upstreams: string[], opts: ForwardOptions): Promise<ForwardResult> {
  const parsed = upstreams.map((s) => [s, parseUpstream(s)] as const).filter((p): p is readonly [string, Upstream] => p[1] !== null);
  if (parsed.length === 0) throw new Error('no usable upstream nameserver');
  const deadline = Date.now() + opts.timeoutMs;
  const originalId = query.readUInt16BE(0);
  const result = await new Promise<ForwardResult>((resolve, reject) => {
    let pending = parsed.length;
    let fallback: ForwardResult | null = null;
    let lastErr: unknown = null;
    const settle = () => {
      if (--pending > 0) return;
      if (fallback) resolve(fallback);
      else reject(lastErr instanceof Error ? lastErr : new Error('no answer'));
    };
    for (const [spec, up] of parsed) {
      ask(spec, up, query, opts, deadline).then(
        (r) => {
          const rc = rcodeOf(r.answer);
          if (rc !== 2 && rc !== 5) {
            pending = -1;
            resolve(r);
            return;
          }
          fallback ??= r;
          settle();
        },
        (err: unknown) => {
          lastErr = err;
          settle();
        },
      );
    }
  });
  result.answer.writeUInt16BE(originalId, 0);
  return result;
}
