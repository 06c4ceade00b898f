// netcheck against the real STUN server and relay over real UDP and WebSocket on loopback.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { StunServer } from '../../coord/stun.js';
import { RelayServer } from '../../coord/relay/server.js';
import { X25519Key } from '../../wire/x25519.js';
import { bindUdp, dgramTransport, netcheck, type StunTransport } from './netcheck.js';
import { probeRelay, RelayClient } from './relay-client.js';

describe('netcheck', () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });

  async function relayUrl(): Promise<string> {
    const http = createServer();
    const relay = new RelayServer({ authorizer: { mayConnect: () => true, maySend: () => false } });
    relay.attach(http);
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    cleanup.push(() => (relay.close(), http.closeAllConnections(), new Promise((r) => http.close(r))));
    return `ws://127.0.0.1:${(http.address() as AddressInfo).port}/relay`;
  }

  const relay = (name: string, url: string) => {
    const client = new RelayClient({ url, key: X25519Key.generate(), onPacket: () => {}, minBackoffMs: 50 });
    cleanup.push(() => client.close());
    return { name, probe: (ms: number) => probeRelay(client, ms) };
  };

  it('finds the public endpoints on both ports and families, no varying mapping, and times the relays', async () => {
    const stun4 = await StunServer.start({ host: '127.0.0.1', port: 0 });
    cleanup.push(() => stun4.close());
    const v4 = (await bindUdp('udp4', 0, '127.0.0.1'))!;
    cleanup.push(() => v4.close());
    const stun6 = await StunServer.start({ host: '::1', port: 0 }).catch(() => null);
    const v6 = stun6 ? await bindUdp('udp6', 0, '::1') : null;
    cleanup.push(() => (stun6?.close(), v6?.close()));
    const targets = stun4.ports.map((port) => ({ address: '127.0.0.1', port }));
    if (stun6) targets.push(...stun6.ports.map((port) => ({ address: '::1', port })));
    const url = await relayUrl();
    const report = await netcheck(dgramTransport(v4, v6), {
      stun: targets,
      relays: [relay('here', url), relay('nowhere', 'ws://127.0.0.1:1/relay')],
      relayTimeoutMs: 1500,
    });
    expect(report.udp).toBe(true);
    const expected = [`127.0.0.1:${v4.address().port}`];
    if (v6) expected.push(`[::1]:${v6.address().port}`);
    expect(report.publicEndpoints).toEqual(expected);
    expect(report.mappingVariesByDest).toBe(false);
    expect(report.relays.map((r) => r.name)).toEqual(['here', 'nowhere']);
    expect(report.relays[0]!.latencyMs).toBeGreaterThan(0);
    expect(report.relays[1]!.latencyMs).toBeNull();
    expect(report.preferredRelay).toBe('here');
    expect(Object.keys(report).sort()).toEqual(['mappingVariesByDest', 'preferredRelay', 'publicEndpoints', 'relays', 'udp']);
  });

  it('retries lost requests, and reports no UDP when nothing answers', async () => {
    const stun = await StunServer.start({ host: '127.0.0.1', port: 0 });
    const sock = (await bindUdp('udp4', 0, '127.0.0.1'))!;
    cleanup.push(() => stun.close(), () => sock.close());
    const real = dgramTransport(sock);
    let sent = 0;
    // Loses the first request to each destination.
    const lossy: StunTransport = { ...real, send: (p, to) => (++sent > 2 ? real.send(p, to) : undefined) };
    const targets = stun.ports.map((port) => ({ address: '127.0.0.1', port }));
    const r = await netcheck(lossy, { stun: targets, retransmitMs: 200 });
    expect(sent).toBe(4);
    expect(r.udp).toBe(true);
    expect(r.mappingVariesByDest).toBe(false);

    const silent = await netcheck(real, { stun: [{ address: '127.0.0.1', port: 9 }], retransmitMs: 50, attempts: 3 });
    expect(silent).toEqual({ udp: false, publicEndpoints: [], mappingVariesByDest: null, relays: [], preferredRelay: null });
    // One answer in a family says nothing about varying mappings.
    const one = await netcheck(real, { stun: [targets[0]!], retransmitMs: 100 });
    expect(one.mappingVariesByDest).toBeNull();
  });

  it('reports a varying mapping when destinations see different source ports', async () => {
    const stun = await StunServer.start({ host: '127.0.0.1', port: 0 });
    const a = (await bindUdp('udp4', 0, '127.0.0.1'))!;
    const b = (await bindUdp('udp4', 0, '127.0.0.1'))!;
    cleanup.push(() => stun.close(), () => a.close(), () => b.close());
    // Two sockets behind one transport: what a symmetric NAT does to one socket's traffic.
    const ta = dgramTransport(a);
    const tb = dgramTransport(b);
    const t: StunTransport = {
      families: { v4: true, v6: false },
      send: (p, to) => (to.port === stun.ports[0] ? ta : tb).send(p, to),
      onStun: (h) => {
        const u1 = ta.onStun(h);
        const u2 = tb.onStun(h);
        return () => (u1(), u2());
      },
    };
    const r = await netcheck(t, { stun: stun.ports.map((port) => ({ address: '127.0.0.1', port })) });
    expect(r.mappingVariesByDest).toBe(true);
    expect(r.publicEndpoints.sort()).toEqual([`127.0.0.1:${a.address().port}`, `127.0.0.1:${b.address().port}`].sort());
  });
});
