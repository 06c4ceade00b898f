// Helpers the relay tests share: waiting for a condition, a RelayServer on loopback for a fixed set of
// devices, and relay clients of devices registered with a real coord.
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { RelayClient } from '../../agent/connectivity/relay-client.js';
import { RelayServer } from '../../coord/relay/server.js';
import { expect } from 'vitest';
import { X25519Key } from '../../wire/x25519.js';
import { TestDevice } from '../coord/devices.js';

export const b64 = (k: X25519Key) => k.publicKey.toString('base64');

/** Waits for `cond`, calling `tick` (if any) before each look; rejects naming `what` after `ms`. */
export async function until(cond: () => boolean, what: string, ms = 10_000, o: { tick?: () => void; pollMs?: number } = {}): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    o.tick?.();
    await new Promise((r) => setTimeout(r, o.pollMs ?? 10));
  }
}

/** `until` for an in-memory network: `tick` delivers its datagrams. */
export function untilTicking(cond: () => boolean, what: string, tick: () => void, ms = 10_000): Promise<void> {
  return until(cond, what, ms, { tick, pollMs: 5 });
}

/** Two device keys (raw private keys, keys, base64 public keys). */
export function twoKeys(): { raws: Buffer[]; keys: X25519Key[]; ids: string[] } {
  const raws = [randomBytes(32), randomBytes(32)];
  const keys = raws.map((r) => new X25519Key(r));
  return { raws, keys, ids: keys.map((k) => k.publicKey.toString('base64')) };
}

/** A RelayServer on a loopback HTTP listener that lets exactly `ids` connect and send to each other; closed by `cleanup`. */
export async function relayFor(ids: string[], cleanup: (() => unknown)[]): Promise<{ server: RelayServer; url: string }> {
  const server = new RelayServer({ authorizer: { mayConnect: (k) => ids.includes(k), maySend: (f, t) => ids.includes(f) && ids.includes(t) } });
  const http: Server = createServer((_q, res) => res.writeHead(404).end());
  server.attach(http);
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  cleanup.push(async () => {
    server.close();
    http.closeAllConnections();
    await new Promise((r) => http.close(r));
  });
  return { server, url: `ws://127.0.0.1:${(http.address() as AddressInfo).port}/relay` };
}

/** A device registered with coord, its netmap stream open, and what its relay client received. */
export interface RelayPeer {
  key: X25519Key;
  dev: TestDevice;
  relay: RelayClient;
  got: { src: string; data: string }[];
  undeliverable: { dst: string; reason: number }[];
}

/** A relay client (not started) that records what it receives and what the relay could not deliver. */
export function recordingRelayClient(url: string, key: X25519Key, got: RelayPeer['got'] = [], undeliverable: RelayPeer['undeliverable'] = []): RelayClient {
  return new RelayClient({
    url,
    key,
    onPacket: (src, p) => got.push({ src: src.toString('base64'), data: p.toString() }),
    onUndeliverable: (dst, reason) => undeliverable.push({ dst: dst.toString('base64'), reason }),
    minBackoffMs: 50,
    maxBackoffMs: 200,
  });
}

/** Registers a new device (added to `devices`, to be closed) and waits for its first netmap. */
export async function streamingDevice(
  coordUrl: string,
  authKey: string,
  devices: TestDevice[],
  name: string,
  tag: string,
  extra: { discoKey?: string; homeRelay?: string } = {},
): Promise<{ key: X25519Key; dev: TestDevice }> {
  const key = X25519Key.generate();
  const dev = new TestDevice(coordUrl, b64(key));
  devices.push(dev);
  await dev.register(authKey, name, [tag], extra);
  dev.connect();
  await dev.waitFor(() => true);
  return { key, dev };
}

/** a and b, peers of each other, exchange a packet through the relay each way, with the sender named. */
export async function expectForwardsBothWays(a: RelayPeer, b: RelayPeer): Promise<void> {
  expect(a.relay.send(b.key.publicKey, Buffer.from('a to b'))).toBe(true);
  await until(() => b.got.length > 0, 'b to receive');
  expect(b.got[0]).toEqual({ src: b64(a.key), data: 'a to b' });
  b.relay.send(a.key.publicKey, Buffer.from('b to a'));
  await until(() => a.got.length > 0, 'a to receive');
  expect(a.got[0]).toEqual({ src: b64(b.key), data: 'b to a' });
}
