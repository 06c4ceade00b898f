// The coord HTTP(S) server: admin API under /api/v2, machine API under /machine, the relay at /relay
// (WebSocket), /healthz.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { AdminApi } from './api/admin/router.js';
import { HttpError, sendError, sendJson } from './api/http.js';
import { clientAddrOf } from './api/client-addr.js';
import { handleConsole } from './console/serve.js';
import { MachineApi } from './api/machine.js';
import { Domain } from './domain/index.js';
import { Mailer, type SmtpSettings } from './mail.js';
import { CoordMetrics } from './metrics.js';
import { ACCOUNT_LIMITS, Limiter } from './domain/limiter.js';
import { NetmapHub } from './netmap-stream.js';
import { coordAuthorizer } from './relay/authorizer.js';
import { createRelayListener, listenerUrl, listenOn } from './relay/listener.js';
import { buildRelayMap } from './relay/relay-map.js';
import { RelayServer } from './relay/server.js';
import { relayVerifier } from './relay/verify-api.js';
import type { Store } from './store/index.js';
import { StunServer } from './stun.js';
import { Webhooks } from './webhooks.js';
import { LOG_STREAM_TARGET } from './domain/log-streams.js';
import { DEFAULT_LIMITS, LogStreamer, type StreamLimits } from './log-stream/streamer.js';
import { OutboundHttp } from './outbound-http.js';
import { RELAY_PATH, VERIFY_PATH } from '../wire/relay.js';
import type { RelayInfo } from '../wire/protocol.js';

export interface ServerOptions {
  store: Store;
  log: Logger;
  host: string;
  port: number;
  tls?: { cert: Buffer; key: Buffer };
  /** The URL people and devices reach this server at (invite links); default: the listen address. */
  publicUrl?: string;
  keepaliveMs?: number;
  /** Ephemeral devices offline for this long are removed (default 10 minutes). */
  ephemeralTimeoutMs?: number;
  /** STUN on this UDP port and the next, on the listener's host (absent or 0: off). */
  stunPort?: number;
  /** STUN's address instead of the listener's (coord on loopback behind a reverse proxy: 0.0.0.0 or ::). */
  stunHost?: string;
  /** Serve the relay at /relay on this listener (default true). */
  relay?: boolean;
  /** The relay's name in the netmap's relay map (default "coord"). */
  relayName?: string;
  /** Let webhooks target loopback, link-local and private addresses (default: public addresses only). */
  allowPrivateWebhooks?: boolean;
  /** Serve Prometheus metrics at http://HOST:PORT/metrics on a listener of their own (absent: off). */
  metricsListen?: { host: string; port: number };
  /** Reverse proxies (addresses or prefixes) whose X-Forwarded-For names the client for sign-in throttling. */
  trustedProxies?: string[];
  /** Batching, retry and backlog bounds of log streaming (default: DEFAULT_LIMITS). */
  logStreamLimits?: Partial<StreamLimits>;
  /** The mail server that sends invites, and the sender address (absent: coord sends no mail). */
  mail?: { smtp: SmtpSettings; from: string };
  /** How often the relay map is read from the store, where `coord relays` changes it (default 1 s). */
  relayMapMs?: number;
}

export interface CoordServer {
  url: string;
  server: Server;
  hub: NetmapHub;
  webhooks: Webhooks;
  logStreamer: LogStreamer;
  stun: StunServer | null;
  /** The metrics endpoint's URL (null: off). */
  metricsUrl: string | null;
  /** Sends invites (null: no mail server). */
  mailer: Mailer | null;
  relay: RelayServer | null;
  /** Reads the relay map from the store now (it is also read every relayMapMs) and sends changes to devices. */
  refreshRelayMap(): RelayInfo[];
  /** Stops accepting, ends every stream, waits for requests in flight. Does not close the store. */
  close(): Promise<void>;
}

export async function startServer(o: ServerOptions): Promise<CoordServer> {
  const hub = new NetmapHub(o.store, o.log, o.keepaliveMs);
  const allowPrivateWebhooks = o.allowPrivateWebhooks ?? false;
  const webhooks = new Webhooks(o.store, o.log, undefined, allowPrivateWebhooks);
  const onEvent = (tailnetId: number, type: string, data: Record<string, unknown>) => webhooks.emit(tailnetId, type, data);
  const logHttp = new OutboundHttp(allowPrivateWebhooks, LOG_STREAM_TARGET);
  const logStreamer = new LogStreamer(o.store, (url, body, headers, keep) => logHttp.post(url, body, headers, keep), o.log, { ...DEFAULT_LIMITS, ...o.logStreamLimits });
  o.store.onAudit = (tailnetId) => logStreamer.notify(tailnetId);
  let publicUrl = o.publicUrl ?? '';
  const mailer = o.mail ? new Mailer(o.mail.smtp, o.mail.from, o.log) : null;
  const domain = new Domain({ store: o.store, hub, log: o.log, onEvent, allowPrivateWebhooks, logStreamer, mailer: mailer ?? undefined });
  const clientAddr = clientAddrOf(o.trustedProxies);
  const admin = new AdminApi({ domain, log: o.log, publicUrl: () => publicUrl, clientAddr });
  const consoleDeps = { domain, store: o.store, log: o.log, tls: !!o.tls, passwordFailures: new Limiter({ ...ACCOUNT_LIMITS, what: 'uses of password links from this address' }), clientAddr };
  const machine = new MachineApi({ domain, log: o.log, keepaliveMs: hub.keepaliveMs });
  const relay = o.relay === false ? null : new RelayServer({ authorizer: coordAuthorizer(o.store, hub), log: o.log });
  const verifyRelay = relayVerifier(o.store, hub, o.log);
  const metrics = o.metricsListen ? new CoordMetrics({ store: o.store, hub, webhooks, relay, logStreamer }) : null;

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://coord');
    } catch {
      return sendError(res, new HttpError(400, 'malformed request URL'));
    }
    metrics?.track(req, res, url.pathname);
    if (url.pathname === '/healthz') return sendJson(res, 200, { ok: true });
    if (url.pathname.startsWith('/api/v2/')) return void admin.handle(req, res, url);
    if (url.pathname.startsWith('/machine/')) return void machine.handle(req, res, url);
    if (url.pathname === VERIFY_PATH) return void verifyRelay(req, res);
    if (url.pathname === '/admin' || url.pathname.startsWith('/admin/')) return void handleConsole(req, res, url, consoleDeps);
    sendError(res, new HttpError(404, `not found: ${url.pathname}`));
  };

  const server = createRelayListener(o.tls, handler, relay);
  // Removal, expiry, suspension, policy: devices that lost their right to the relay are cut off (once per burst).
  let revalidating = false;
  if (relay) {
    hub.onAccessChanged = () => {
      if (revalidating) return;
      revalidating = true;
      setImmediate(() => {
        revalidating = false;
        relay.revalidate().catch((err) => o.log.error({ err }, 'relay revalidation failed'));
      });
    };
  }
  server.requestTimeout = 0; // netmap streams are long-lived
  server.headersTimeout = 30_000;
  server.keepAliveTimeout = 65_000;
  server.maxHeadersCount = 100;
  await listenOn(server, o.port, o.host);
  let stun: StunServer | null = null;
  try {
    if (o.stunPort) stun = await StunServer.start({ host: o.stunHost ?? o.host, port: o.stunPort, log: o.log });
  } catch (err) {
    server.close();
    throw err;
  }
  let metricsServer: { server: Server; url: string } | null = null;
  try {
    if (metrics && o.metricsListen) metricsServer = await metrics.listen(o.metricsListen.host, o.metricsListen.port);
  } catch (err) {
    server.close();
    stun?.close();
    throw new Error(`metrics listener ${o.metricsListen!.host}:${o.metricsListen!.port}: ${(err as Error).message}`);
  }
  // Upkeep: expired devices leave netmaps; ephemeral devices offline for a while are removed.
  const ephemeralTimeoutMs = o.ephemeralTimeoutMs ?? 10 * 60_000;
  const sweeper = setInterval(() => {
    try {
      domain.devices.sweep(ephemeralTimeoutMs);
      hub.onAccessChanged?.(); // keys that expired in networks no stream has loaded
    } catch (err) {
      o.log.error({ err }, 'upkeep failed');
    }
  }, Math.min(30_000, Math.max(100, ephemeralTimeoutMs / 4)));
  sweeper.unref();
  logStreamer.start();

  const url = listenerUrl(server, !!o.tls);
  if (!publicUrl) publicUrl = url;
  // STUN of coord's own relay: on the relay URL's host, when it answers on two consecutive ports.
  const ownStun = stun && stun.ports[1] === stun.ports[0] + 1 ? stun.ports[0] : 0;
  const ownRelay: RelayInfo | null = relay ? { name: o.relayName ?? 'coord', url: relayUrlOf(publicUrl), ...(ownStun ? { stunPort: ownStun } : {}) } : null;
  let lastSkipped = '';
  const refreshRelayMap = (): RelayInfo[] => {
    const { relays, skipped } = buildRelayMap(ownRelay, o.store.listRelays());
    const skippedText = JSON.stringify(skipped);
    if (skippedText !== lastSkipped && skipped.length) o.log.error({ skipped }, 'relays left out of the relay map');
    lastSkipped = skippedText;
    hub.setRelays(relays);
    return relays;
  };
  refreshRelayMap();
  const relayMapTimer = setInterval(() => {
    try {
      refreshRelayMap();
    } catch (err) {
      o.log.error({ err }, 'could not read the relay map');
    }
  }, o.relayMapMs ?? 1000);
  relayMapTimer.unref();
  if (stun) hub.setStunPorts(stun.ports);

  return {
    url,
    server,
    hub,
    webhooks,
    logStreamer,
    stun,
    metricsUrl: metricsServer?.url ?? null,
    mailer,
    relay,
    refreshRelayMap,
    async close() {
      clearInterval(sweeper);
      clearInterval(relayMapTimer);
      stun?.close();
      relay?.close();
      metricsServer?.server.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      hub.close();
      server.closeIdleConnections();
      const timer = setTimeout(() => server.closeAllConnections(), 5_000);
      await closed;
      clearTimeout(timer);
      await webhooks.close();
      o.store.onAudit = undefined;
      await logStreamer.close();
      await logHttp.close();
      mailer?.close();
    },
  };
}

/** The relay's URL for devices: coord's public URL with ws(s) for http(s) and /relay appended to its path. */
export function relayUrlOf(publicUrl: string): string {
  const u = new URL(publicUrl);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  u.pathname = u.pathname.replace(/\/+$/, '') + RELAY_PATH;
  u.search = '';
  u.hash = '';
  return u.toString();
}
