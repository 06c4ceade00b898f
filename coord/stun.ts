// coord's STUN server (RFC 5389 Binding) on two UDP ports, N and N+1 by default, so that a device that
// knows only this coord can still compare the mappings its NAT makes for two destinations. Every
// datagram is answered or dropped and counted; nothing a client sends can throw.
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { Logger } from 'pino';
import {
  CHANGE_IP,
  CHANGE_PORT,
  decodeStun,
  encodeBindingError,
  encodeBindingSuccess,
  STUN_BINDING_REQUEST,
} from '../wire/stun.js';

export interface StunServerOptions {
  /** The address to bind ('0.0.0.0' and '::' bind every address). */
  host: string;
  /** The first port; 0 picks a free one (tests). */
  port: number;
  /** The second port (default port + 1; a free one when port is 0). */
  altPort?: number;
  log?: Logger;
  software?: string;
}

export interface StunCounters {
  requests: number;
  answered: number;
  /** Dropped datagrams by reason. */
  dropped: Record<string, number>;
}

export class StunServer {
  readonly counters: StunCounters = { requests: 0, answered: 0, dropped: {} };
  private readonly sockets: Socket[] = [];
  private readonly software: string;

  private constructor(
    private readonly o: StunServerOptions,
  ) {
    this.software = o.software ?? 'meshward';
  }

  /** Binds both ports; rejects (and binds nothing) when either is taken. */
  /** Binds both ports; the error of a failed bind names the ports and the address. */
  static async start(o: StunServerOptions): Promise<StunServer> {
    const s = new StunServer(o);
    try {
      const first = await s.bind(o.port);
      await s.bind(o.altPort ?? (o.port === 0 ? 0 : first + 1));
    } catch (err) {
      s.close();
      throw new Error(`STUN ports ${o.port} and ${o.altPort ?? (o.port === 0 ? 0 : o.port + 1)} on ${o.host}: ${(err as Error).message}`);
    }
    return s;
  }

  /** The two bound ports, [primary, alternate]. */
  get ports(): [number, number] {
    return [this.sockets[0]!.address().port, this.sockets[1]!.address().port];
  }

  close(): void {
    for (const sock of this.sockets) {
      try {
        sock.close();
      } catch {
        // already closed
      }
    }
    this.sockets.length = 0;
  }

  private bind(port: number): Promise<number> {
    const sock = createSocket({ type: isIPv6(this.o.host) ? 'udp6' : 'udp4' });
    const index = this.sockets.length;
    this.sockets.push(sock);
    return new Promise((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(port, this.o.host, () => {
        sock.off('error', reject);
        sock.on('error', (err) => this.o.log?.warn({ err }, 'STUN socket error'));
        sock.on('message', (msg, rinfo) => this.onMessage(index, msg, rinfo));
        resolve(sock.address().port);
      });
    });
  }

  private drop(reason: string): void {
    this.counters.dropped[reason] = (this.counters.dropped[reason] ?? 0) + 1;
  }

  private onMessage(index: number, msg: Buffer, from: RemoteInfo): void {
    const r = decodeStun(msg);
    if (!r.ok) return this.drop(r.reason);
    const m = r.message;
    if (m.type !== STUN_BINDING_REQUEST) return this.drop('not a Binding request');
    this.counters.requests++;
    const opts = { software: this.software };
    let answer: Buffer;
    let via = index;
    if (m.unknownRequired.length) {
      answer = encodeBindingError(m.transactionId, 420, 'Unknown Attribute', m.unknownRequired, opts);
    } else if (m.changeRequest & CHANGE_IP) {
      // We have no second IP address to answer from (RFC 5780 §6.1: 420 when it cannot be honoured).
      answer = encodeBindingError(m.transactionId, 420, 'Unknown Attribute', [0x0003], opts);
    } else {
      if (m.changeRequest & CHANGE_PORT) via = 1 - index;
      // A v4 client on a dual-stack socket shows up as ::ffff:a.b.c.d: tell it the address it knows.
      const address = from.address.startsWith('::ffff:') && from.address.includes('.') ? from.address.slice(7) : from.address;
      answer = encodeBindingSuccess(m.transactionId, { address, port: from.port }, opts);
    }
    const sock = this.sockets[via];
    if (!sock) return this.drop('closed');
    sock.send(answer, from.port, from.address, (err) => {
      if (err) this.drop('send failed');
    });
    this.counters.answered++;
  }
}
