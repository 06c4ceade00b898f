// A standalone relay (`coord relay`): the relay endpoint on an HTTP(S) listener of its own, a STUN server
// on two UDP ports, and devices verified with coord (coord-verifier.ts). It keeps no state of its own.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { RELAY_PATH } from '../../wire/relay.js';
import { StunServer } from '../stun.js';
import { CoordVerifier } from './coord-verifier.js';
import { createRelayListener, listenerUrl, listenOn } from './listener.js';
import { RelayServer } from './server.js';

export interface StandaloneRelayOptions {
  host: string;
  port: number;
  tls?: { cert: Buffer; key: Buffer };
  /** STUN on this UDP port and the next (0: off)… */
  stunPort: number;
  /** …on this address (default: `host`; behind a reverse proxy the relay listens on loopback, STUN must not). */
  stunHost?: string;
  coordUrl: string;
  secret: string;
  /** PEM of a private CA that signed coord's certificate. */
  coordCa?: Buffer;
  /** How often connected devices are checked with coord again (default 2 s). */
  refreshMs?: number;
  /** How long coord's answers stay in force while it cannot be reached (default 10 minutes). */
  maxStaleMs?: number;
  log: Logger;
}

export interface StandaloneRelay {
  url: string;
  name: string;
  relay: RelayServer;
  verifier: CoordVerifier;
  stun: StunServer | null;
  close(): Promise<void>;
}

export async function startStandaloneRelay(o: StandaloneRelayOptions): Promise<StandaloneRelay> {
  const verifier = new CoordVerifier({ coordUrl: o.coordUrl, secret: o.secret, ca: o.coordCa, refreshMs: o.refreshMs, maxStaleMs: o.maxStaleMs, log: o.log });
  // A wrong secret or URL should stop the relay at once, not refuse every device later.
  await verifier.check();
  const relay = new RelayServer({ authorizer: verifier, log: o.log });
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://relay').pathname;
    const body = path === '/healthz'
      ? { ok: true, relay: verifier.relayName, devices: relay.size, coord: verifier.lastError ? { error: verifier.lastError } : { ok: true } }
      : { message: path === RELAY_PATH ? 'the relay speaks WebSocket here (an HTTP upgrade)' : `not found: ${path}` };
    const text = JSON.stringify(body);
    res.writeHead(path === '/healthz' ? 200 : path === RELAY_PATH ? 426 : 404, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
  const server = createRelayListener(o.tls, handler, relay);
  server.headersTimeout = 30_000;
  await listenOn(server, o.port, o.host);
  let stun: StunServer | null = null;
  try {
    if (o.stunPort) stun = await StunServer.start({ host: o.stunHost ?? o.host, port: o.stunPort, log: o.log });
  } catch (err) {
    server.close();
    relay.close();
    throw err;
  }
  verifier.start(() => relay.revalidate());
  return {
    url: listenerUrl(server, !!o.tls),
    name: verifier.relayName,
    relay,
    verifier,
    stun,
    async close() {
      verifier.stop();
      stun?.close();
      relay.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
