// The coord HTTP(S) server: admin API under /api/v2, machine API under /machine, /healthz.
import { createServer as createHttp, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttps } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { handleAdmin } from './api/admin.js';
import { HttpError, sendError, sendJson } from './api/http.js';
import { MachineApi } from './api/machine.js';
import { NetmapHub } from './netmap.js';
import type { Store } from './store/index.js';
import { Webhooks } from './webhooks.js';

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
  /** Let webhooks target loopback, link-local and private addresses (default: public addresses only). */
  allowPrivateWebhooks?: boolean;
}

export interface CoordServer {
  url: string;
  server: Server;
  hub: NetmapHub;
  webhooks: Webhooks;
  /** Stops accepting, ends every stream, waits for requests in flight. Does not close the store. */
  close(): Promise<void>;
}

export async function startServer(o: ServerOptions): Promise<CoordServer> {
  const hub = new NetmapHub(o.store, o.log, o.keepaliveMs);
  const allowPrivateWebhooks = o.allowPrivateWebhooks ?? false;
  const webhooks = new Webhooks(o.store, o.log, undefined, allowPrivateWebhooks);
  const onEvent = (tailnetId: number, type: string, data: Record<string, unknown>) => webhooks.emit(tailnetId, type, data);
  let publicUrl = o.publicUrl ?? '';
  const machine = new MachineApi({ store: o.store, hub, log: o.log, onEvent });

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://coord');
    } catch {
      return sendError(res, new HttpError(400, 'malformed request URL'));
    }
    if (url.pathname === '/healthz') return sendJson(res, 200, { ok: true });
    if (url.pathname.startsWith('/api/v2/')) return void handleAdmin(req, res, url, { store: o.store, hub, log: o.log, onEvent, publicUrl, allowPrivateWebhooks });
    if (url.pathname.startsWith('/machine/')) return void machine.handle(req, res, url);
    sendError(res, new HttpError(404, `not found: ${url.pathname}`));
  };

  const server: Server = o.tls ? createHttps({ cert: o.tls.cert, key: o.tls.key }, handler) : createHttp(handler);
  server.requestTimeout = 0; // netmap streams are long-lived
  server.headersTimeout = 30_000;
  server.keepAliveTimeout = 65_000;
  server.maxHeadersCount = 100;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // Upkeep: expired devices leave netmaps; ephemeral devices offline for a while are removed.
  const ephemeralTimeoutMs = o.ephemeralTimeoutMs ?? 10 * 60_000;
  const sweeper = setInterval(() => {
    try {
      for (const { tailnetId, deviceId } of hub.sweep(ephemeralTimeoutMs)) {
        const d = o.store.getDevice(deviceId);
        if (!d) continue;
        o.store.tx(() => {
          o.store.deleteDevice(deviceId);
          o.store.addAudit(tailnetId, {
            type: 'CONFIG', origin: 'SYSTEM', actor: { id: '', type: 'SYSTEM', loginName: 'coord', displayName: 'coord' },
            target: { id: d.id, name: d.name, type: 'NODE' }, action: 'DELETE', old: { ephemeral: true, lastSeen: d.lastSeen }, new: undefined,
          });
        });
        hub.deviceChanged(tailnetId, deviceId);
        onEvent(tailnetId, 'nodeDeleted', { nodeID: d.id, deviceName: d.name });
      }
    } catch (err) {
      o.log.error({ err }, 'upkeep failed');
    }
  }, Math.min(30_000, Math.max(100, ephemeralTimeoutMs / 4)));
  sweeper.unref();

  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  const url = `${o.tls ? 'https' : 'http'}://${host}:${addr.port}`;
  if (!publicUrl) publicUrl = url;

  return {
    url,
    server,
    hub,
    webhooks,
    async close() {
      clearInterval(sweeper);
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      hub.close();
      server.closeIdleConnections();
      const timer = setTimeout(() => server.closeAllConnections(), 5_000);
      await closed;
      clearTimeout(timer);
      await webhooks.close();
    },
  };
}
