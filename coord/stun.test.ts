import { createSocket, type Socket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { CHANGE_IP, CHANGE_PORT, decodeStun, encodeBindingRequest, encodeBindingSuccess, newTransactionId, type StunMessage } from '../wire/stun.js';
import { StunServer } from './stun.js';

function ask(sock: Socket, port: number, req: Buffer, host = '127.0.0.1'): Promise<{ msg: StunMessage; fromPort: number }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no STUN answer')), 5000);
    sock.once('message', (b, rinfo) => {
      clearTimeout(timer);
      const r = decodeStun(b);
      if (!r.ok) reject(new Error(r.reason));
      else resolve({ msg: r.message, fromPort: rinfo.port });
    });
    sock.send(req, port, host);
  });
}

async function clientSocket(type: 'udp4' | 'udp6' = 'udp4', host = '127.0.0.1'): Promise<Socket> {
  const s = createSocket(type);
  await new Promise<void>((r) => s.bind(0, host, r));
  return s;
}

describe('StunServer', () => {
  const cleanup: (() => void)[] = [];
  afterEach(() => cleanup.splice(0).forEach((f) => f()));

  it('answers Binding requests on both ports with the source address, and drops what is not a request', async () => {
    const server = await StunServer.start({ host: '127.0.0.1', port: 0 });
    const client = await clientSocket();
    cleanup.push(() => server.close(), () => client.close());
    const [p1, p2] = server.ports;
    expect(p1).not.toBe(p2);
    for (const port of [p1, p2]) {
      const id = newTransactionId();
      const { msg, fromPort } = await ask(client, port, encodeBindingRequest(id));
      expect(fromPort).toBe(port);
      expect(msg.transactionId.equals(id)).toBe(true);
      expect(msg.mapped).toEqual({ address: '127.0.0.1', port: client.address().port, family: 4 });
      expect(msg.fingerprint).toBe(true);
    }
    // Garbage, a WireGuard-looking packet and a response are dropped and counted; the server still answers.
    client.send(Buffer.from('hello'), p1, '127.0.0.1');
    client.send(Buffer.concat([Buffer.from([1, 0, 0, 0]), Buffer.alloc(144)]), p1, '127.0.0.1');
    const resp = await ask(client, p1, encodeBindingRequest(newTransactionId()));
    client.send(encodeBindingSuccess(newTransactionId(), { address: '192.0.2.1', port: 1 }), p1, '127.0.0.1');
    expect(resp.msg.mapped?.port).toBe(client.address().port);
    await ask(client, p1, encodeBindingRequest(newTransactionId()));
    const dropped = Object.values(server.counters.dropped).reduce((a, b) => a + b, 0);
    expect(dropped).toBe(3);
    expect(server.counters.answered).toBe(4);
  });

  it('honours CHANGE-REQUEST for the port and refuses a change of IP with 420', async () => {
    const server = await StunServer.start({ host: '127.0.0.1', port: 0 });
    const client = await clientSocket();
    cleanup.push(() => server.close(), () => client.close());
    const [p1, p2] = server.ports;
    const changed = await ask(client, p1, encodeBindingRequest(newTransactionId(), { changeRequest: CHANGE_PORT }));
    expect(changed.fromPort).toBe(p2);
    const refused = await ask(client, p1, encodeBindingRequest(newTransactionId(), { changeRequest: CHANGE_IP | CHANGE_PORT }));
    expect(refused.msg.error?.code).toBe(420);
  });

  it('answers over IPv6 with the IPv6 source address', async () => {
    let server: StunServer;
    try {
      server = await StunServer.start({ host: '::1', port: 0 });
    } catch {
      return; // no IPv6 loopback on this machine
    }
    const client = await clientSocket('udp6', '::1');
    cleanup.push(() => server.close(), () => client.close());
    const { msg } = await ask(client, server.ports[1], encodeBindingRequest(newTransactionId()), '::1');
    expect(msg.mapped).toEqual({ address: '::1', port: client.address().port, family: 6 });
  });

  it('on a dual-stack "::" socket, tells an IPv4 client its plain IPv4 address', async () => {
    let server: StunServer;
    try {
      server = await StunServer.start({ host: '::', port: 0 });
    } catch {
      return; // no IPv6 on this machine
    }
    const client = await clientSocket();
    cleanup.push(() => server.close(), () => client.close());
    const { msg } = await ask(client, server.ports[0], encodeBindingRequest(newTransactionId()));
    expect(msg.mapped).toEqual({ address: '127.0.0.1', port: client.address().port, family: 4 });
  });

  it('refuses to start when a port is taken, leaving nothing bound', async () => {
    const server = await StunServer.start({ host: '127.0.0.1', port: 0 });
    cleanup.push(() => server.close());
    await expect(StunServer.start({ host: '127.0.0.1', port: server.ports[1] - 1, altPort: server.ports[1] })).rejects.toThrow(/EADDRINUSE/);
  });
});
