// The relay core over real WebSocket connections on loopback: RelayServer on an HTTP server, RelayClient
// and hand-driven WebSockets for the misbehaving cases.
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { RelayClient } from '../../agent/connectivity/relay-client.js';
import { Registry } from 'prom-client';
import { registerRelayMetrics } from '../../coord/metrics.js';
import { RelayServer, type RelayAuthorizer } from '../../coord/relay/server.js';
import { promtoolProblems, sample } from '../prometheus.js';
import { batchFrame, clientHello, FRAME, parseServerHello, relayProof, UNDELIVERABLE } from '../../wire/relay.js';
import { X25519Key } from '../../wire/x25519.js';

const id = (k: X25519Key) => k.publicKey.toString('base64');

/** Who may connect, and which pairs are peers (both directions). */
class TableAuthorizer implements RelayAuthorizer {
  readonly allowed = new Set<string>();
  readonly peers = new Set<string>();
  allow(...keys: X25519Key[]) {
    for (const k of keys) this.allowed.add(id(k));
    return this;
  }
  pair(a: X25519Key, b: X25519Key) {
    this.peers.add(`${id(a)} ${id(b)}`).add(`${id(b)} ${id(a)}`);
    return this;
  }
  mayConnect(key: string) {
    return this.allowed.has(key);
  }
  maySend(from: string, to: string) {
    return this.peers.has(`${from} ${to}`);
  }
}

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('relay over WebSocket', () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });

  async function startRelay(auth: RelayAuthorizer, opts: Partial<ConstructorParameters<typeof RelayServer>[0]> = {}, port = 0) {
    const http: Server = createServer((_req, res) => res.writeHead(404).end());
    const relay = new RelayServer({ authorizer: auth, ...opts });
    relay.attach(http);
    await new Promise<void>((r) => http.listen(port, '127.0.0.1', r));
    const stop = async () => {
      relay.close();
      http.closeAllConnections();
      await new Promise((r) => http.close(r));
    };
    cleanup.push(stop);
    return { relay, http, url: `ws://127.0.0.1:${(http.address() as AddressInfo).port}/relay`, stop };
  }

  function client(url: string, key: X25519Key, got: { src: string; data: Buffer }[] = [], extra: Partial<ConstructorParameters<typeof RelayClient>[0]> = {}) {
    const c = new RelayClient({
      url, key, minBackoffMs: 50, maxBackoffMs: 200,
      onPacket: (src, packet) => got.push({ src: src.toString('base64'), data: Buffer.from(packet) }),
      ...extra,
    }).start();
    cleanup.push(() => c.close());
    return c;
  }

  it('forwards packets both ways between two authorized peers, and answers pings', async () => {
    const [a, b] = [X25519Key.generate(), X25519Key.generate()];
    const { relay, url } = await startRelay(new TableAuthorizer().allow(a, b).pair(a, b));
    const gotA: { src: string; data: Buffer }[] = [];
    const gotB: { src: string; data: Buffer }[] = [];
    const ca = client(url, a, gotA);
    const cb = client(url, b, gotB);
    await Promise.all([ca.waitConnected(), cb.waitConnected()]);
    const packets = Array.from({ length: 50 }, (_, i) => randomBytes(1 + i * 29));
    for (const p of packets) expect(ca.send(b.publicKey, p)).toBe(true);
    expect(cb.send(a.publicKey, Buffer.from('pong'))).toBe(true);
    await until(() => gotB.length === 50 && gotA.length === 1, 'packets');
    expect(gotB.map((g) => g.data)).toEqual(packets);
    expect(gotB.every((g) => g.src === id(a))).toBe(true);
    expect(gotA[0]).toEqual({ src: id(b), data: Buffer.from('pong') });
    expect(relay.counters.forwardedPackets).toBe(51);
    // A batch arrives as its packets, in order; a malformed batch closes the sender's connection.
    const batch = [Buffer.from('one'), randomBytes(1400), Buffer.from('three')];
    expect(ca.sendBatch(b.publicKey, batch)).toBe(true);
    await until(() => gotB.length === 53, 'the batch');
    expect(gotB.slice(50).map((g) => g.data)).toEqual(batch);
    expect(relay.counters.forwardedPackets).toBe(54);
    const rtt = await ca.ping();
    expect(rtt).toBeGreaterThan(0);
    expect(rtt).toBeLessThan(5000);
  });

  it('refuses a key the authorizer does not know, and a client that cannot prove its key', async () => {
    const [a, stranger] = [X25519Key.generate(), X25519Key.generate()];
    const { relay, url } = await startRelay(new TableAuthorizer().allow(a));
    const cs = client(url, stranger);
    await until(() => cs.lastError.includes('not authorized'), 'the refusal');
    expect(cs.connected).toBe(false);
    // Claiming a's (authorized) key without its private half: the proof cannot match.
    const ws = new WebSocket(url);
    cleanup.push(() => ws.terminate());
    const frames: Buffer[] = [];
    ws.on('message', (d: Buffer) => {
      frames.push(d);
      if (d[0] === FRAME.serverHello) ws.send(clientHello(a.publicKey, randomBytes(32)));
    });
    const code = await new Promise<number>((r) => ws.on('close', (c) => r(c)));
    expect(code).toBe(4003);
    expect(frames.some((f) => f[0] === FRAME.refused && f.subarray(1).toString() === 'bad client hello')).toBe(true);
    expect(frames.some((f) => f[0] === FRAME.ready)).toBe(false);
    expect(relay.counters.accepted).toBe(0);
    // An authorized device that sends a batch whose lengths do not add up is disconnected.
    const gotA: { src: string; data: Buffer }[] = [];
    const ca = client(url, a, gotA);
    await ca.waitConnected();
    const bad = batchFrame(FRAME.sendBatch, a.publicKey, [Buffer.from('x')]);
    bad.writeUInt16BE(5, 33);
    (ca as unknown as { ws: WebSocket }).ws.send(bad);
    await until(() => ca.lastError.includes('malformed batch'), 'the malformed batch to close the connection');
    expect(gotA).toEqual([]);
    expect(relay.counters.refused).toBeGreaterThanOrEqual(2);
  });

  it('does not forward between devices that are not peers, and tells the sender', async () => {
    const [a, b, c] = [X25519Key.generate(), X25519Key.generate(), X25519Key.generate()];
    const { relay, url } = await startRelay(new TableAuthorizer().allow(a, b, c).pair(a, b));
    const gotC: { src: string; data: Buffer }[] = [];
    const gotB: { src: string; data: Buffer }[] = [];
    const notices: number[] = [];
    const ca = client(url, a, [], { onUndeliverable: (_dst, reason) => notices.push(reason) });
    const cb = client(url, b, gotB);
    const cc = client(url, c, gotC);
    await Promise.all([ca.waitConnected(), cb.waitConnected(), cc.waitConnected()]);
    for (let i = 0; i < 20; i++) ca.send(c.publicKey, Buffer.from('let me in'));
    cc.send(b.publicKey, Buffer.from('me neither'));
    ca.send(X25519Key.generate().publicKey, Buffer.from('nobody'));
    ca.send(b.publicKey, Buffer.from('marker'));
    await until(() => gotB.length === 1 && notices.length === 2, 'marker and notices');
    expect(gotC).toEqual([]);
    expect(gotB[0]!.data.toString()).toBe('marker');
    expect(notices.sort()).toEqual([UNDELIVERABLE.notHere, UNDELIVERABLE.notAllowed]);
    expect(relay.counters.dropped.notAllowed).toBe(21);
  });

  it('drops a slow reader without stalling the others', async () => {
    const [a, slow, fast] = [X25519Key.generate(), X25519Key.generate(), X25519Key.generate()];
    const auth = new TableAuthorizer().allow(a, slow, fast).pair(a, slow).pair(a, fast);
    const { relay, url } = await startRelay(auth, { maxQueueBytes: 256 * 1024, slowReaderMs: 300 });
    const gotFast: { src: string; data: Buffer }[] = [];
    const ca = client(url, a);
    const cf = client(url, fast, gotFast);
    // The slow reader: completes the handshake by hand, then stops reading from its socket.
    const ws = new WebSocket(url, { perMessageDeflate: false });
    cleanup.push(() => ws.terminate());
    let slowReady = false;
    ws.on('message', (d: Buffer) => {
      if (d[0] === FRAME.serverHello) {
        const h = parseServerHello(d)!;
        ws.send(clientHello(slow.publicKey, relayProof(slow.shared(h.ephemeral)!, h.challenge, slow.publicKey)));
      } else if (d[0] === FRAME.ready) {
        slowReady = true;
        (ws as unknown as { _socket: { pause(): void } })._socket.pause(); // ws keeps its net.Socket here
      }
    });
    await Promise.all([ca.waitConnected(), cf.waitConnected(), until(() => slowReady, 'slow reader handshake')]);
    const packet = randomBytes(1400);
    let sentFast = 0;
    const deadline = Date.now() + 20_000;
    while (relay.counters.slowReadersDropped === 0 && Date.now() < deadline) {
      // Keep the sender's own queue short so it does not stall itself, then give the loop a turn.
      for (let i = 0; i < 64 && ca.queuedBytes < 512 * 1024; i++) {
        ca.send(slow.publicKey, packet);
        if (ca.send(fast.publicKey, packet)) sentFast++;
      }
      await new Promise((r) => setImmediate(r));
    }
    expect(relay.counters.slowReadersDropped).toBe(1);
    expect(relay.counters.dropped.queueFull).toBeGreaterThan(0);
    // The fast reader got everything sent to it while the slow one was filling up.
    await until(() => gotFast.length === sentFast, `all ${sentFast} packets at the fast reader`);
    expect(relay.size).toBe(2);
    // The metrics say the same (coord/metrics.ts), in a format promtool accepts.
    const registry = new Registry();
    registerRelayMetrics(registry, relay);
    const text = await registry.metrics();
    expect(promtoolProblems(text)).toBe('');
    expect(sample(text, 'meshward_relay_slow_clients_dropped_total')).toBe(1);
    expect(sample(text, 'meshward_relay_dropped_packets_total', { reason: 'queue_full' })).toBe(relay.counters.dropped.queueFull);
    expect(sample(text, 'meshward_relay_clients')).toBe(2);
    expect(sample(text, 'meshward_relay_forwarded_packets_total')).toBe(relay.counters.forwardedPackets);
    expect(relay.counters.forwardedPackets).toBeGreaterThanOrEqual(sentFast);
  });

  it('reconnects after the relay restarts, and revalidation disconnects a device no longer allowed', async () => {
    const [a, b] = [X25519Key.generate(), X25519Key.generate()];
    const auth = new TableAuthorizer().allow(a, b).pair(a, b);
    const first = await startRelay(auth);
    const port = Number(new URL(first.url).port);
    const gotB: { src: string; data: Buffer }[] = [];
    const ca = client(first.url, a);
    const cb = client(first.url, b, gotB);
    await Promise.all([ca.waitConnected(), cb.waitConnected()]);
    await first.stop();
    await until(() => !ca.connected && !cb.connected, 'both to notice');
    const second = await startRelay(auth, {}, port);
    await Promise.all([ca.waitConnected(), cb.waitConnected()]);
    ca.send(b.publicKey, Buffer.from('again'));
    await until(() => gotB.length === 1, 'a packet after the restart');

    auth.allowed.delete(id(b));
    await second.relay.revalidate();
    await until(() => !cb.connected && cb.lastError.includes('no longer authorized'), 'b to be disconnected');
    expect(ca.connected).toBe(true);
    await new Promise((r) => setTimeout(r, 300)); // b keeps trying, and keeps being refused
    expect(cb.connected).toBe(false);
    expect(ca.send(b.publicKey, Buffer.from('gone'))).toBe(true);
    await until(() => second.relay.counters.dropped.notHere === 1, 'the packet to b to be dropped');
  });

  it('a client refused mid-connection stops counting itself connected at the refusal, before the close arrives', async () => {
    // A hand-driven relay: ready, then refused, and the close held back (as a slow network may deliver it).
    const http: Server = createServer((_q, res) => res.writeHead(404).end());
    const wss = new WebSocketServer({ server: http });
    let refuse = () => {};
    wss.on('connection', (ws) => {
      ws.send(Buffer.from([FRAME.ready]));
      refuse = () => ws.send(Buffer.concat([Buffer.from([FRAME.refused]), Buffer.from('no longer authorized')]));
    });
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    cleanup.push(async () => {
      wss.close();
      http.closeAllConnections();
      await new Promise((r) => http.close(r));
    });
    const c = client(`ws://127.0.0.1:${(http.address() as AddressInfo).port}/`, X25519Key.generate());
    await c.waitConnected();
    refuse();
    await until(() => c.lastError.startsWith('refused'), 'the refusal');
    expect(c.connected).toBe(false);
    expect(c.send(X25519Key.generate().publicKey, Buffer.from('x'))).toBe(false);
  });

  it('a second connection with the same key replaces the first', async () => {
    const a = X25519Key.generate();
    const { relay, url } = await startRelay(new TableAuthorizer().allow(a));
    const one = client(url, a);
    await one.waitConnected();
    const ws = new WebSocket(url);
    cleanup.push(() => ws.terminate());
    ws.on('message', (d: Buffer) => {
      if (d[0] === FRAME.serverHello) {
        const h = parseServerHello(d)!;
        ws.send(clientHello(a.publicKey, relayProof(a.shared(h.ephemeral)!, h.challenge, a.publicKey)));
      }
    });
    await until(() => one.lastError.includes('replaced'), 'the first to be replaced');
    expect(relay.size).toBe(1);
    one.close();
  });

  it('survives random frames from an authorized device (fuzz) and keeps serving the others', async () => {
    const [a, b, fuzzer] = [X25519Key.generate(), X25519Key.generate(), X25519Key.generate()];
    const { relay, url } = await startRelay(new TableAuthorizer().allow(a, b, fuzzer).pair(a, b).pair(fuzzer, b));
    const gotB: { src: string; data: Buffer }[] = [];
    const ca = client(url, a);
    client(url, b, gotB);
    const connect = () =>
      new Promise<WebSocket>((resolve, reject) => {
        const ws = new WebSocket(url, { perMessageDeflate: false });
        cleanup.push(() => ws.terminate());
        ws.on('error', reject);
        ws.on('message', (d: Buffer) => {
          if (d[0] === FRAME.serverHello) {
            const h = parseServerHello(d)!;
            ws.send(clientHello(fuzzer.publicKey, relayProof(fuzzer.shared(h.ephemeral)!, h.challenge, fuzzer.publicKey)));
          } else if (d[0] === FRAME.ready) resolve(ws);
        });
      });
    const frame = fc.oneof(
      fc.uint8Array({ maxLength: 80 }),
      fc.tuple(fc.constantFrom(0x10, 0x13, 0x20, 0x21, 0x02, 0x11), fc.uint8Array({ maxLength: 80 })).map(([t, rest]) => Uint8Array.from([t, ...rest])),
      fc.tuple(fc.constantFrom(0x10, 0x13), fc.uint8Array({ maxLength: 40 })).map(([t, rest]) => Uint8Array.from([t, ...b.publicKey, ...rest])),
    );
    const frames = fc.sample(frame, { numRuns: 300, seed: 42 });
    let ws = await connect();
    for (const f of frames) {
      if (ws.readyState !== WebSocket.OPEN) ws = await connect();
      ws.send(f.length ? f : Uint8Array.from([0]));
      await new Promise((r) => setImmediate(r));
    }
    const before = gotB.length;
    await ca.waitConnected();
    ca.send(b.publicKey, Buffer.from('still here'));
    await until(() => gotB.some((g, i) => i >= before && g.data.toString() === 'still here'), 'a packet after the fuzzing');
    expect(relay.size).toBeGreaterThanOrEqual(2);
  });
});
