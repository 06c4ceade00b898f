// The HTTP(S) listener both places that serve the relay share: coord itself (server.ts) and a standalone
// relay (standalone.ts). Only the relay's path is upgraded; any other upgrade is refused.
import { createServer as createHttp, type IncomingMessage, type RequestListener, type Server } from 'node:http';
import { createServer as createHttps } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { RELAY_PATH } from '../../wire/relay.js';
import type { RelayServer } from './server.js';

/** An HTTPS server with `tls`, else plain HTTP; upgrades to RELAY_PATH go to `relay` (none: refused too). */
export function createRelayListener(tls: { cert: Buffer; key: Buffer } | undefined, handler: RequestListener, relay: RelayServer | null): Server {
  const server: Server = tls ? createHttps({ cert: tls.cert, key: tls.key }, handler) : createHttp(handler);
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    let path = '';
    try {
      path = new URL(req.url ?? '/', 'http://relay').pathname;
    } catch {
      // refused below
    }
    if (relay && path === RELAY_PATH) return relay.handleUpgrade(req, socket, head);
    socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
  });
  return server;
}

/** Listens on host:port; a failure (address in use, no right to the port) rejects. */
export function listenOn(server: Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** The base URL of a listening server, e.g. https://[::1]:8443. */
export function listenerUrl(server: Server, tls: boolean): string {
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return `${tls ? 'https' : 'http'}://${host}:${addr.port}`;
}
