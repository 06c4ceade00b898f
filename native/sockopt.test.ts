// TCP_USER_TIMEOUT through the addon on sockets Node owns: a server's plain and TLS connections (coord's
// netmap streams are either), read back from the kernel; clear errors for what cannot carry it.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { createServer, Socket, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { nativeAvailable, setTcpUserTimeout, tcpUserTimeout } from './index.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** Resolves with the server side of one connection made to `server` by `dial` (TLS: once secured). */
async function accepted(server: Server, dial: (port: number) => Socket, event = 'connection'): Promise<Socket> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const got = new Promise<Socket>((r) => server.once(event, r));
  const client = dial((server.address() as AddressInfo).port);
  client.on('error', () => {});
  const s = await got;
  cleanups.push(() => {
    client.destroy();
    s.destroy();
    server.close();
  });
  return s;
}

describe.skipIf(!nativeAvailable())('TCP_USER_TIMEOUT (setTcpUserTimeout)', () => {
  it('sets and reads back the timeout on a plain TCP connection; 0 turns it off', async () => {
    const s = await accepted(createServer(), (port) => new Socket().connect(port, '127.0.0.1'));
    expect(tcpUserTimeout(s)).toBe(0); // the kernel default
    expect(setTcpUserTimeout(s, 15_000)).toBe(true);
    expect(tcpUserTimeout(s)).toBe(15_000);
    setTcpUserTimeout(s, 0);
    expect(tcpUserTimeout(s)).toBe(0);
  });

  it('reaches the TCP socket under a TLS connection', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mw-sockopt-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=sockopt-test', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    const server = createHttpsServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) });
    const s = await accepted(server, (port) => tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false }), 'secureConnection');
    expect('encrypted' in s).toBe(true);
    expect(setTcpUserTimeout(s, 2500)).toBe(true);
    expect(tcpUserTimeout(s)).toBe(2500);
  });

  it('returns false for a socket with no descriptor, and refuses values the kernel does not take', async () => {
    const unconnected = new Socket();
    expect(setTcpUserTimeout(unconnected, 1000)).toBe(false);
    expect(tcpUserTimeout(unconnected)).toBeUndefined();
    const s = await accepted(createServer(), (port) => new Socket().connect(port, '127.0.0.1'));
    expect(() => setTcpUserTimeout(s, -1)).toThrow(expect.objectContaining({ code: 'EINVAL', name: 'RangeError' }));
    // above INT_MAX the kernel itself refuses it
    expect(() => setTcpUserTimeout(s, 2 ** 31)).toThrow(expect.objectContaining({ code: 'EINVAL', message: expect.stringContaining('setsockopt TCP_USER_TIMEOUT') }));
    expect(tcpUserTimeout(s)).toBe(0);
  });
});
