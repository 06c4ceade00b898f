// coord's STUN server as a person meets it: `coord serve --stun-port N`, asked by Debian's standard
// STUN client (stun-client, RFC 3489) and by our RFC 5389 codec, on both ports.
import { execFile } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeStun, encodeBindingRequest, newTransactionId } from '../../wire/stun.js';
import { api, Coord, coordCli } from '../coord/harness.js';
import { TestDevice } from '../coord/devices.js';

const run = promisify(execFile);

/** Starts coord with STUN on a free pair of ports (retrying when another test took one). */
async function coordWithStun(): Promise<{ coord: Coord; port: number }> {
  for (let attempt = 0; ; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 40000);
    const coord = new Coord();
    try {
      await coord.start(['--stun-port', String(port)]);
      return { coord, port };
    } catch (err) {
      await coord.stop().catch(() => {});
      await coord.cleanup();
      if (attempt > 10 || !/EADDRINUSE/.test(String(err))) throw err;
    }
  }
}

describe('coord serve --stun-port', () => {
  let coord: Coord;
  let port: number;
  beforeAll(async () => ({ coord, port } = await coordWithStun()));
  afterAll(async () => {
    await coord?.stop();
    await coord?.cleanup();
  });

  it('answers the standard stun client with its mapped address, on both ports', async () => {
    for (const p of [port, port + 1]) {
      const src = 20000 + Math.floor(Math.random() * 40000);
      const { stdout, stderr } = await run('stun', [`127.0.0.1:${p}`, '1', '-v', '-p', String(src)], { timeout: 15_000 });
      expect(stdout + stderr).toContain(`MappedAddress = 127.0.0.1:${src}`);
    }
  });

  it('tells devices its STUN ports in every netmap', async () => {
    const owner = api(coord.url, coord.createTailnet('stun.example', 'alice@example.com'));
    const authKey = (await owner.post('/tailnet/-/keys', { capabilities: { devices: { create: { reusable: true, preauthorized: true } } } })).body.key as string;
    const dev = new TestDevice(coord.url);
    try {
      await dev.register(authKey, 'stunny');
      dev.connect();
      const n = await dev.waitFor(() => true);
      expect(n.stunPorts).toEqual([port, port + 1]);
    } finally {
      dev.close();
    }
  });

  it('answers an RFC 5389 Binding request with XOR-MAPPED-ADDRESS and FINGERPRINT', async () => {
    const sock = createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
    try {
      const id = newTransactionId();
      const answer = await new Promise<Buffer>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no answer')), 5000);
        sock.once('message', (b) => (clearTimeout(timer), resolve(b)));
        sock.send(encodeBindingRequest(id), port + 1, '127.0.0.1');
      });
      const r = decodeStun(answer);
      expect(r.ok).toBe(true);
      if (!r.ok) return;
      expect(r.message.transactionId.equals(id)).toBe(true);
      expect(r.message.fingerprint).toBe(true);
      expect(answer.readUInt16BE(20)).toBe(0x0020); // XOR-MAPPED-ADDRESS
      expect(r.message.mapped).toEqual({ address: '127.0.0.1', port: sock.address().port, family: 4 });
    } finally {
      sock.close();
    }
  });

  it('--stun-port 0 turns STUN off: no STUN ports in the netmap or in the relay map', async () => {
    const off = new Coord();
    let d: TestDevice | undefined;
    try {
      await off.start(['--stun-port', '0']);
      const owner = api(off.url, off.createTailnet('nostun.example', 'alice@example.com'));
      const authKey = (await owner.post('/tailnet/-/keys', { capabilities: { devices: { create: { reusable: true, preauthorized: true } } } })).body.key as string;
      d = new TestDevice(off.url);
      await d.register(authKey, 'nostun');
      d.connect();
      const n = await d.waitFor(() => true);
      expect(n.stunPorts).toBeUndefined();
      expect(n.relays).toEqual([{ name: 'coord', url: off.url.replace(/^http/, 'ws') + '/relay' }]);
    } finally {
      d?.close();
      await off.stop();
      await off.cleanup();
    }
  });

  it('warns when STUN would listen on loopback only while devices reach coord at a public URL', async () => {
    const behindProxy = new Coord();
    try {
      await behindProxy.start(['--stun-port', String(20000 + Math.floor(Math.random() * 40000)), '--public-url', 'https://coord.example.com']);
      await expect.poll(() => behindProxy.stdout, { timeout: 5000 }).toContain('STUN listens on loopback only, where no device can reach it: give --stun-listen');
    } finally {
      await behindProxy.stop();
      await behindProxy.cleanup();
    }
  });

  it('refuses a bad --stun-port', () => {
    const r = coordCli(['serve', '--stun-port', '65535']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--stun-port/);
  });

  it('refuses a --stun-listen that is not an IP address', () => {
    const r = coordCli(['serve', '--stun-listen', 'coord.example.com']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--stun-listen "coord\.example\.com": an IP address/);
  });
});
