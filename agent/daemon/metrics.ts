// The agent's Prometheus metrics (local API `GET /metrics`, `agent metrics`, optionally
// `agent daemon --metrics-listen`). Nothing here runs per packet: every value is read at scrape time
// (collect callbacks) from counters the data path keeps anyway (the filter's counts by reason and
// direction, the WireGuard device's drop and handshake counters, its peers' byte counts), from the
// resolver's counters and from the daemon's state. Labels are bounded: no peer names or addresses.
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { DnsCounters } from '../dns/server.js';
import type { FilterCounters } from '../../filter/index.js';

/** A peer's session older than this (WireGuard's REJECT_AFTER_TIME) carries nothing: no path. */
const SESSION_LIFETIME_MS = 180_000;

export interface PeerSample {
  /** The direct endpoint in use (null: none confirmed). */
  endpoint: string | null;
  /** The relay's name while relayed, else null. */
  relay?: string | null;
  /** Wall-clock ms of the last handshake, 0 for never. */
  lastHandshake: number;
  txBytes: number;
  rxBytes: number;
}

/** What the daemon shows the metrics at scrape time; null parts: the data path or resolver is down. */
export interface AgentSnapshot {
  filter: FilterCounters | null;
  /** WireGuard's own drops before the filter (decrypt, replay, no route, …), by name. */
  wireguardDrops: Record<string, number> | null;
  handshakes: { initiated: number; completed: number; failed: number } | null;
  peers: PeerSample[];
  /** The netmap's version (coord's clock, ms since the epoch), null without a netmap. */
  netmapVersion: number | null;
  coord: { connected: boolean; connects: number; losses: number };
  dns: DnsCounters | null;
}

/** snake_case for a counter name from the status JSON's spelling ("no-route", "noRoute" → "no_route"). */
const snake = (s: string) => s.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase()).replace(/-/g, '_');

export function agentRegistry(snapshot: () => AgentSnapshot): Registry {
  const registry = new Registry();
  const registers = [registry];
  collectDefaultMetrics({ register: registry });
  // One snapshot per scrape, however many metrics read it.
  let cached: { at: number; value: AgentSnapshot } | null = null;
  const snap = () => {
    const now = performance.now();
    if (!cached || now - cached.at > 100) cached = { at: now, value: snapshot() };
    return cached.value;
  };

  new Counter({
    name: 'meshward_agent_packets_total',
    help: 'IP packets that reached the filter: direction in (from peers, decrypted) or out (from the TUN device).',
    labelNames: ['direction'],
    registers,
    collect() {
      this.reset();
      const f = snap().filter;
      for (const [direction, side] of [['in', f?.in], ['out', f?.out]] as const) {
        let n = side?.accepted ?? 0;
        if (side) for (const v of Object.values(side.dropped)) n += v;
        this.inc({ direction }, n);
      }
    },
  });
  new Counter({
    name: 'meshward_agent_bytes_total',
    help: 'WireGuard bytes (encrypted, as on the wire) received from (in) and sent to (out) current peers.',
    labelNames: ['direction'],
    registers,
    collect() {
      this.reset();
      let rx = 0;
      let tx = 0;
      for (const p of snap().peers) {
        rx += p.rxBytes;
        tx += p.txBytes;
      }
      this.inc({ direction: 'in' }, rx);
      this.inc({ direction: 'out' }, tx);
    },
  });
  new Counter({
    name: 'meshward_agent_filter_accepted_total',
    help: 'Packets the filter accepted, by direction.',
    labelNames: ['direction'],
    registers,
    collect() {
      this.reset();
      const f = snap().filter;
      this.inc({ direction: 'in' }, f?.in.accepted ?? 0);
      this.inc({ direction: 'out' }, f?.out.accepted ?? 0);
    },
  });
  new Counter({
    name: 'meshward_agent_filter_drops_total',
    help: 'Packets the filter dropped, by reason (filter/reasons.ts) and direction.',
    labelNames: ['reason', 'direction'],
    registers,
    collect() {
      this.reset();
      const f = snap().filter;
      if (!f) return;
      for (const [direction, side] of [['in', f.in], ['out', f.out]] as const) {
        for (const [reason, n] of Object.entries(side.dropped)) this.inc({ reason: snake(reason), direction }, n);
      }
    },
  });
  new Counter({
    name: 'meshward_agent_wireguard_drops_total',
    help: 'Datagrams and packets WireGuard dropped before the filter, by reason.',
    labelNames: ['reason'],
    registers,
    collect() {
      this.reset();
      for (const [reason, n] of Object.entries(snap().wireguardDrops ?? {})) this.inc({ reason: snake(reason) }, n);
    },
  });
  new Counter({
    name: 'meshward_agent_wireguard_handshakes_total',
    help: 'WireGuard handshakes: initiated (initiations sent), completed (a session made, either role), failed (a peer given up on after 90 s).',
    labelNames: ['result'],
    registers,
    collect() {
      this.reset();
      const h = snap().handshakes;
      this.inc({ result: 'initiated' }, h?.initiated ?? 0);
      this.inc({ result: 'completed' }, h?.completed ?? 0);
      this.inc({ result: 'failed' }, h?.failed ?? 0);
    },
  });
  new Gauge({
    name: 'meshward_agent_peers',
    help: 'Peers in the netmap by path: direct or relay (a session in the last 3 minutes, over UDP or through a relay), none (no session).',
    labelNames: ['path'],
    registers,
    collect() {
      const now = Date.now();
      let direct = 0;
      let relay = 0;
      let none = 0;
      for (const p of snap().peers) {
        const active = p.lastHandshake > 0 && now - p.lastHandshake < SESSION_LIFETIME_MS;
        if (active && p.relay) relay++;
        else if (active && p.endpoint !== null) direct++;
        else none++;
      }
      this.set({ path: 'direct' }, direct);
      this.set({ path: 'relay' }, relay);
      this.set({ path: 'none' }, none);
    },
  });
  new Gauge({
    name: 'meshward_agent_netmap_version_age_seconds',
    help: 'Seconds since coord made the netmap in use (its version); 0 without a netmap (see meshward_agent_netmap_present).',
    registers,
    collect() {
      const v = snap().netmapVersion;
      this.set(v === null ? 0 : Math.max(0, (Date.now() - v) / 1000));
    },
  });
  new Gauge({
    name: 'meshward_agent_netmap_present',
    help: '1 when the device has a netmap (from coord or, after a restart, from disk), else 0.',
    registers,
    collect() {
      this.set(snap().netmapVersion === null ? 0 : 1);
    },
  });
  new Gauge({
    name: 'meshward_agent_coord_connected',
    help: '1 while the netmap stream to coord is open, else 0.',
    registers,
    collect() {
      this.set(snap().coord.connected ? 1 : 0);
    },
  });
  new Counter({
    name: 'meshward_agent_coord_connects_total',
    help: 'Netmap streams to coord opened (the first, and each reconnect).',
    registers,
    collect() {
      this.reset();
      this.inc(snap().coord.connects);
    },
  });
  new Counter({
    name: 'meshward_agent_coord_reconnects_total',
    help: 'Open netmap streams lost (the agent then reconnects, working on its last netmap meanwhile).',
    registers,
    collect() {
      this.reset();
      this.inc(snap().coord.losses);
    },
  });
  new Counter({
    name: 'meshward_agent_dns_queries_total',
    help: 'DNS queries to the MagicDNS resolver by outcome: local (from the netmap), forwarded, servfail, dropped.',
    labelNames: ['outcome'],
    registers,
    collect() {
      this.reset();
      const d = snap().dns;
      for (const outcome of ['local', 'forwarded', 'servfail', 'dropped'] as const) this.inc({ outcome }, d?.[outcome] ?? 0);
    },
  });
  return registry;
}
