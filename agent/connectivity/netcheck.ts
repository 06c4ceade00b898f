// netcheck: what this device's network allows. STUN Binding requests go out through an injected
// transport (in the agent: the WireGuard UDP socket, so the mappings found are the ones WireGuard traffic
// gets) to every STUN destination (coord's two ports, over IPv4 and IPv6 when the device has them), with
// retransmissions; relays are timed through injected probes. The report is the JSON of `agent netcheck`
// (docs/operations.md, netcheck).
import { createSocket, type Socket } from 'node:dgram';
import { decodeStun, encodeBindingRequest, formatEndpoint, isStunPacket, newTransactionId, STUN_BINDING_SUCCESS } from '../../wire/stun.js';

export interface UdpAddress {
  address: string;
  port: number;
}

/** The UDP socket netcheck speaks through. */
export interface StunTransport {
  /** Which address families the socket can send from. */
  families: { v4: boolean; v6: boolean };
  /** Sends one datagram (never throws; a failure is a lost datagram). */
  send(packet: Buffer, to: UdpAddress): void;
  /** Subscribes to the STUN datagrams the socket receives; returns the unsubscribe function. */
  onStun(handler: (packet: Buffer, from: UdpAddress) => void): () => void;
}

export interface RelayProbe {
  name: string;
  /** Round trip to the relay in milliseconds, or null when it cannot be reached in time. */
  probe(timeoutMs: number): Promise<number | null>;
}

export interface NetcheckOptions {
  /** STUN destinations: typically coord's IPv4 and IPv6 addresses, each on port N and N+1. */
  stun: UdpAddress[];
  relays?: RelayProbe[];
  /** Time before a request is sent again (default 500 ms). */
  retransmitMs?: number;
  /** Requests per destination before giving up on it (default 3). */
  attempts?: number;
  /** Time a relay probe may take (default 3 s). */
  relayTimeoutMs?: number;
}

export interface NetcheckReport {
  /** Some STUN answer came back: UDP works to the outside. */
  udp: boolean;
  /** The distinct public endpoints STUN saw ("ip:port", "[ip6]:port"), IPv4 first. */
  publicEndpoints: string[];
  /**
   * True when the NAT gave different mappings to different destinations (symmetric: hole punching will
   * not work, use the relay); false when two or more destinations of one family saw the same mapping;
   * null when fewer than two answered in every family.
   */
  mappingVariesByDest: boolean | null;
  relays: { name: string; latencyMs: number | null }[];
  /** The relay with the lowest latency, or null when none answered. */
  preferredRelay: string | null;
}

const isV6 = (address: string) => address.includes(':');

/** Runs one netcheck. Never throws for network trouble: what could not be learned is false or null. */
export async function netcheck(t: StunTransport, o: NetcheckOptions): Promise<NetcheckReport> {
  const retransmitMs = o.retransmitMs ?? 500;
  const attempts = o.attempts ?? 3;
  const targets = o.stun.filter((d) => (isV6(d.address) ? t.families.v6 : t.families.v4));
  const relayResults = Promise.all(
    (o.relays ?? []).map(async (r) => {
      let latencyMs: number | null = null;
      try {
        latencyMs = await r.probe(o.relayTimeoutMs ?? 3000);
      } catch {
        latencyMs = null;
      }
      return { name: r.name, latencyMs: latencyMs === null ? null : Math.round(latencyMs * 100) / 100 };
    }),
  );
  const mapped = await stunAll(t, targets, retransmitMs, attempts);
  const relays = await relayResults;

  const endpoints: string[] = [];
  for (const family of [4, 6]) {
    for (const m of mapped) {
      if (!m.result) continue;
      const e = formatEndpoint(m.result);
      if (isV6(m.result.address) === (family === 6) && !endpoints.includes(e)) endpoints.push(e);
    }
  }
  let varies: boolean | null = null;
  for (const v6 of [false, true]) {
    const seen = mapped.filter((m) => m.result && isV6(m.target.address) === v6).map((m) => formatEndpoint(m.result!));
    if (seen.length < 2) continue;
    const differs = seen.some((e) => e !== seen[0]);
    varies = differs || varies === true;
  }
  const reachable = relays.filter((r) => r.latencyMs !== null).sort((a, b) => a.latencyMs! - b.latencyMs!);
  return {
    udp: mapped.some((m) => m.result),
    publicEndpoints: endpoints,
    mappingVariesByDest: varies,
    relays,
    preferredRelay: reachable[0]?.name ?? null,
  };
}

interface Query {
  target: UdpAddress;
  result: UdpAddress | null;
}

/** Asks every target at once; each is retried `attempts` times, `retransmitMs` apart, with a fresh id. */
async function stunAll(t: StunTransport, targets: UdpAddress[], retransmitMs: number, attempts: number): Promise<Query[]> {
  const queries: Query[] = targets.map((target) => ({ target, result: null }));
  if (!queries.length) return queries;
  const byTx = new Map<string, Query>();
  let pending = queries.length;
  let wake: () => void = () => {};
  const unsubscribe = t.onStun((packet) => {
    const r = decodeStun(packet);
    if (!r.ok || r.message.type !== STUN_BINDING_SUCCESS || !r.message.mapped) return;
    const q = byTx.get(r.message.transactionId.toString('hex'));
    if (!q || q.result) return;
    q.result = { address: r.message.mapped.address, port: r.message.mapped.port };
    if (--pending === 0) wake();
  });
  try {
    for (let round = 0; round < attempts && pending > 0; round++) {
      for (const q of queries) {
        if (q.result) continue;
        const id = newTransactionId();
        byTx.set(id.toString('hex'), q);
        t.send(encodeBindingRequest(id, { software: 'meshward' }), q.target);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, retransmitMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  } finally {
    unsubscribe();
  }
  return queries;
}

/**
 * A StunTransport over plain node:dgram sockets, for a netcheck outside the WireGuard device (the NAT
 * lab, trying a STUN server by hand). Non-STUN datagrams are ignored.
 */
export function dgramTransport(v4: Socket | null, v6: Socket | null = null): StunTransport {
  const handlers = new Set<(packet: Buffer, from: UdpAddress) => void>();
  const onMessage = (msg: Buffer, rinfo: { address: string; port: number }) => {
    if (!isStunPacket(msg)) return;
    for (const h of handlers) h(msg, { address: rinfo.address, port: rinfo.port });
  };
  v4?.on('message', onMessage);
  v6?.on('message', onMessage);
  return {
    families: { v4: !!v4, v6: !!v6 },
    send(packet, to) {
      const sock = isV6(to.address) ? v6 : v4;
      sock?.send(packet, to.port, to.address, () => {});
    },
    onStun(handler) {
      handlers.add(handler);
      return () => handlers.delete(handler);
    },
  };
}

/** Binds a UDP socket of the family on `port` (0: any); null when the family is not available. */
export async function bindUdp(type: 'udp4' | 'udp6', port = 0, address?: string): Promise<Socket | null> {
  const sock = createSocket({ type, ipv6Only: type === 'udp6' });
  return new Promise((resolve) => {
    sock.once('error', () => {
      try {
        sock.close();
      } catch {
        // never bound
      }
      resolve(null);
    });
    sock.bind(port, address, () => {
      sock.removeAllListeners('error');
      sock.on('error', () => {});
      resolve(sock);
    });
  });
}

/**
 * The STUN destinations of a relay map: each relay's STUN port and the next, on the addresses its URL's
 * host resolves to (both families). Relays without STUN, and hosts that do not resolve, give none.
 */
export async function stunTargetsOf(
  relays: readonly { url: string; stunPort?: number }[],
  resolve: (host: string) => Promise<string[]>,
): Promise<UdpAddress[]> {
  const out: UdpAddress[] = [];
  const seen = new Set<string>();
  for (const r of relays) {
    if (!r.stunPort) continue;
    let host: string;
    try {
      host = new URL(r.url).hostname.replace(/^\[(.*)\]$/, '$1');
    } catch {
      continue;
    }
    let addresses: string[] = [];
    try {
      addresses = await resolve(host);
    } catch {
      continue;
    }
    for (const address of addresses) {
      for (const port of [r.stunPort, r.stunPort + 1]) {
        const k = `${address}|${port}`;
        if (seen.has(k)) continue;
        seen.add(k);
        out.push({ address, port });
      }
    }
  }
  return out;
}
