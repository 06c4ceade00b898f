// coord's Prometheus metrics (`coord serve --metrics-listen ADDR`), on a listener of their own so that
// the admin API's port need not be reachable by the scraper. Each server has its own registry (two
// servers in one process share nothing). Labels are bounded: route templates (never raw paths),
// statuses, network names (the operator makes them), device states; never a device name, an email or
// a secret. Device counts and open streams are read from the store and the hub at scrape time.
import { serveMetrics } from '../wire/metrics-http.js';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { MACHINE_PATHS } from '../wire/protocol.js';
import { ROUTES } from './api/admin/router.js';
import { matchPath } from './api/http.js';
import { publicRoutes } from './api/admin/users.js';
import type { NetmapHub } from './netmap-stream.js';
import type { RelayServer } from './relay/server.js';
import type { Store } from './store/index.js';
import { isActive } from './topology.js';
import type { Webhooks } from './webhooks.js';
import { DESTINATION_TYPES } from './log-stream/destinations.js';
import type { DestinationBacklog, DestinationCounts, LogStreamer } from './log-stream/streamer.js';

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
const MACHINE = new Set<string>(Object.values(MACHINE_PATHS));
/** The console's own endpoints worth telling apart (coord/console/serve.ts); the rest are '/admin/api/*'. */
const CONSOLE_API = new Set(['/admin/api/session', '/admin/api/password']);

/** The route template a request matched ("/api/v2/tailnet/:t/devices"), or a fixed word for the rest. */
export function routeOf(method: string, pathname: string): string {
  if (pathname === '/healthz') return pathname;
  if (MACHINE.has(pathname)) return pathname;
  if (CONSOLE_API.has(pathname)) return pathname;
  if (pathname === '/admin' || pathname.startsWith('/admin/')) return pathname.startsWith('/admin/api/') ? '/admin/api/*' : '/admin/*';
  if (pathname.startsWith('/api/v2/')) {
    const bare = pathname.replace(/\/+$/, '');
    if (publicRoutes[`${method} ${bare}`]) return bare;
    for (const r of ROUTES) if (matchPath(r.pattern, pathname)) return '/api/v2' + r.path;
    return '/api/v2/*';
  }
  if (pathname.startsWith('/machine/')) return '/machine/*';
  return 'other';
}

/** Which kind of sign-in a 401 (or a throttled 429) on this route refused, if any. */
function loginKindOf(route: string, status: number): string | null {
  if (route === '/api/v2/login' || route === '/admin/api/session') return status === 401 || status === 429 ? 'password' : null;
  if (status !== 401) return null;
  if (route.startsWith('/api/v2/')) return 'api_key';
  if (route.startsWith('/machine/')) return 'machine_key';
  return null;
}

export type DeviceState = 'connected' | 'offline' | 'expired' | 'awaiting_approval';

export function deviceStateOf(d: { authorized: boolean; keyExpiryDisabled: boolean; expires: string | null }, online: boolean, now = Date.now()): DeviceState {
  if (!d.authorized) return 'awaiting_approval';
  if (!isActive(d as Parameters<typeof isActive>[0], now)) return 'expired';
  return online ? 'connected' : 'offline';
}

export interface CoordMetricsDeps {
  store: Store;
  hub: NetmapHub;
  webhooks: Webhooks;
  /** coord's own relay (absent or null: --no-relay, and no relay metrics). */
  relay?: RelayServer | null;
  /** Log streams (absent: no log stream metrics). */
  logStreamer?: LogStreamer;
}

export class CoordMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'method' | 'route' | 'status'>;
  private readonly latency: Histogram<'route'>;
  private readonly logins: Counter<'kind'>;
  private readonly compile: Histogram;
  private readonly fanOut: Histogram;

  constructor(deps: CoordMetricsDeps) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.requests = new Counter({
      name: 'meshward_coord_http_requests_total',
      help: 'HTTP requests answered, by method, route template and status.',
      labelNames: ['method', 'route', 'status'],
      registers,
    });
    this.latency = new Histogram({
      name: 'meshward_coord_http_request_duration_seconds',
      help: 'Time from a request arriving to its answer being sent (netmap streams excluded).',
      labelNames: ['route'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.logins = new Counter({
      name: 'meshward_coord_login_failures_total',
      help: 'Refused sign-ins: password (API login and console, throttled included), api_key, machine_key.',
      labelNames: ['kind'],
      registers,
    });
    for (const kind of ['password', 'api_key', 'machine_key']) this.logins.inc({ kind }, 0);
    this.compile = new Histogram({
      name: 'meshward_coord_policy_compile_seconds',
      help: 'Compiling a changed policy into the live network (devices whose filters changed).',
      buckets: [0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.fanOut = new Histogram({
      name: 'meshward_coord_policy_fanout_seconds',
      help: 'From a policy change reaching the netmap hub to the last affected device’s netmap written to its stream.',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    deps.hub.observer = {
      policyCompiled: (ms) => this.compile.observe(ms / 1000),
      policyFannedOut: (ms) => this.fanOut.observe(ms / 1000),
    };
    new Gauge({
      name: 'meshward_coord_netmap_streams_open',
      help: 'Netmap streams open to devices.',
      registers,
      collect() {
        this.set(deps.hub.openStreams());
      },
    });
    new Gauge({
      name: 'meshward_coord_devices',
      help: 'Devices by network and state: connected (streaming), offline, expired (node key), awaiting_approval.',
      labelNames: ['tailnet', 'state'],
      registers,
      collect() {
        this.reset();
        const now = Date.now();
        for (const t of deps.store.listTailnets()) {
          const counts: Record<DeviceState, number> = { connected: 0, offline: 0, expired: 0, awaiting_approval: 0 };
          for (const d of deps.store.listDevices(t.id)) counts[deviceStateOf(d, deps.hub.isOnline(t.id, d.id), now)]++;
          for (const [state, n] of Object.entries(counts)) this.set({ tailnet: t.name, state }, n);
        }
      },
    });
    const wh = deps.webhooks.counts;
    new Counter({
      name: 'meshward_coord_webhook_deliveries_total',
      help: 'Webhook delivery attempts the endpoint answered with 2xx.',
      registers,
      collect() {
        this.reset();
        this.inc(wh.delivered);
      },
    });
    new Counter({
      name: 'meshward_coord_webhook_failures_total',
      help: 'Webhook delivery attempts that failed (each retry counts); given_up: the last attempt failed.',
      labelNames: ['outcome'],
      registers,
      collect() {
        this.reset();
        this.inc({ outcome: 'retried' }, wh.failedAttempts - wh.givenUp);
        this.inc({ outcome: 'given_up' }, wh.givenUp);
      },
    });
    if (deps.relay) registerRelayMetrics(this.registry, deps.relay);
    if (deps.logStreamer) this.logStreamMetrics(deps.logStreamer, registers);
  }

  /**
   * Log streams, labelled by destination type only (a URL may carry a token, and a tailnet's streams are
   * told apart by the API's status). Counters count since this process started; the backlog is read
   * from the store at scrape time. Every known type is present, at 0 until used.
   */
  private logStreamMetrics(streamer: LogStreamer, registers: Registry[]): void {
    const counter = (name: string, help: string, field: keyof DestinationCounts) =>
      new Counter({
        name,
        help,
        labelNames: ['destination'],
        registers,
        collect() {
          this.reset();
          for (const t of DESTINATION_TYPES) this.inc({ destination: t }, streamer.counts.get(t)?.[field] ?? 0);
        },
      });
    counter('meshward_coord_log_stream_requests_total', 'Log stream requests sent to destinations (failed ones included).', 'requests');
    counter('meshward_coord_log_stream_failed_requests_total', 'Log stream requests that failed (no answer, or not the destination’s success); each retry counts.', 'failedRequests');
    counter('meshward_coord_log_stream_entries_sent_total', 'Configuration log entries a destination accepted.', 'entriesSent');
    counter('meshward_coord_log_stream_sent_bytes_total', 'Bytes of request body (before compression) a destination accepted.', 'bytesSent');
    counter('meshward_coord_log_stream_dropped_entries_total', 'Entries skipped because a stream’s backlog was over its bound while its destination did not take them.', 'droppedEntries');
    const gauge = (name: string, help: string, field: keyof DestinationBacklog) =>
      new Gauge({
        name,
        help,
        labelNames: ['destination'],
        registers,
        collect() {
          this.reset();
          const now = streamer.backlogByDestination();
          for (const t of DESTINATION_TYPES) this.set({ destination: t }, now.get(t)?.[field] ?? 0);
        },
      });
    gauge('meshward_coord_log_streams', 'Log streams configured.', 'streams');
    gauge('meshward_coord_log_stream_backlog_entries', 'Entries waiting to be sent.', 'entries');
    gauge('meshward_coord_log_stream_backlog_bytes', 'Entries waiting to be sent: their bytes as stored.', 'bytes');
  }

  /** Call at the start of every request on coord's main listener; counts it when its answer is done. */
  track(req: IncomingMessage, res: ServerResponse, pathname: string): void {
    const start = process.hrtime.bigint();
    const method = METHODS.has(req.method ?? '') ? req.method! : 'OTHER';
    const route = routeOf(method, pathname);
    const done = () => {
      const status = String(res.statusCode);
      this.requests.inc({ method, route, status });
      // A netmap stream's duration is the device's session, not a latency.
      if (route !== MACHINE_PATHS.map) this.latency.observe({ route }, Number(process.hrtime.bigint() - start) / 1e9);
      const kind = loginKindOf(route, res.statusCode);
      if (kind) this.logins.inc({ kind });
    };
    // 'close' comes after the answer is sent, and also when the client went away first (a stream ended).
    res.once('close', done);
  }

  /** Serves the text format on its own listener: GET /metrics only. */
  async listen(host: string, port: number): Promise<{ server: Server; url: string }> {
    return serveMetrics(this.registry, host, port);
  }
}

/**
 * A relay's metrics, read from its counters at scrape time (coord's own relay, or a standalone one).
 * No label carries a key or a device: only fixed reasons and outcomes.
 */
export function registerRelayMetrics(registry: Registry, relay: Pick<RelayServer, 'size' | 'counters'>): void {
  const registers = [registry];
  const c = relay.counters;
  const counter = (name: string, help: string, value: () => number) =>
    new Counter({
      name,
      help,
      registers,
      collect() {
        this.reset();
        this.inc(value());
      },
    });
  new Gauge({
    name: 'meshward_relay_clients',
    help: 'Devices connected to the relay (past the key proof and authorization).',
    registers,
    collect() {
      this.set(relay.size);
    },
  });
  new Counter({
    name: 'meshward_relay_connections_total',
    help: 'Relay connections by outcome: accepted, or refused (bad key proof, not authorized).',
    labelNames: ['outcome'],
    registers,
    collect() {
      this.reset();
      this.inc({ outcome: 'accepted' }, c.accepted);
      this.inc({ outcome: 'refused' }, c.refused);
    },
  });
  counter('meshward_relay_forwarded_packets_total', 'Packets the relay forwarded to a device.', () => c.forwardedPackets);
  counter('meshward_relay_forwarded_bytes_total', 'Bytes of packets the relay forwarded (framing not counted).', () => c.forwardedBytes);
  new Counter({
    name: 'meshward_relay_dropped_packets_total',
    help: 'Packets the relay did not forward, by reason: no_such_peer (not connected here), not_a_peer, queue_full (the receiver is behind), malformed (frames that closed their connection).',
    labelNames: ['reason'],
    registers,
    collect() {
      this.reset();
      this.inc({ reason: 'no_such_peer' }, c.dropped.notHere);
      this.inc({ reason: 'not_a_peer' }, c.dropped.notAllowed);
      this.inc({ reason: 'queue_full' }, c.dropped.queueFull);
      this.inc({ reason: 'malformed' }, c.dropped.malformed);
    },
  });
  counter('meshward_relay_slow_clients_dropped_total', 'Devices the relay disconnected because their queue stayed full (slow readers).', () => c.slowReadersDropped);
}
