import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FakeClock } from './clock.js';
import { PrivateKey } from './crypto.js';
import { Device } from './device.js';
import { MemNetwork, MemTun } from './memnet.js';
import { UapiServer, uapiGet, uapiSet } from './uapi.js';

const priv = new PrivateKey(Buffer.alloc(32, 0x61));
const peer1 = new PrivateKey(Buffer.alloc(32, 0x62)).publicKey.hex;
const peer2 = new PrivateKey(Buffer.alloc(32, 0x63)).publicKey.hex;

function device(): Device {
  const net = new MemNetwork();
  const dev = new Device({ bindUdp: (p, cb) => net.bind(p, cb), tun: new MemTun(), clock: new FakeClock() });
  dev.up();
  return dev;
}

function lines(text: string): string[] {
  return text.trim().split('\n');
}

describe('UAPI set/get', () => {
  it('applies what `wg setconf` sends and reports it back like wireguard-go', () => {
    const dev = device();
    const res = uapiSet(
      dev,
      lines(`
private_key=${priv.raw.toString('hex')}
listen_port=51999
replace_peers=true
public_key=${peer1}
preshared_key=${'07'.repeat(32)}
endpoint=192.0.2.1:51820
persistent_keepalive_interval=0
replace_allowed_ips=true
allowed_ip=10.0.0.0/24
allowed_ip=fd00::1/128
public_key=${peer2}
endpoint=[2001:db8::1]:4500
allowed_ip=10.0.1.7/32
protocol_version=1`),
    );
    expect(res).toEqual({ errno: 0 });
    const got = uapiGet(dev);
    expect(got).toBe(
      [
        `private_key=${priv.raw.toString('hex')}`,
        'listen_port=51999',
        `public_key=${peer1}`,
        `preshared_key=${'07'.repeat(32)}`,
        'protocol_version=1',
        'endpoint=192.0.2.1:51820',
        'last_handshake_time_sec=0',
        'last_handshake_time_nsec=0',
        'tx_bytes=0',
        'rx_bytes=0',
        'persistent_keepalive_interval=0',
        'allowed_ip=10.0.0.0/24',
        'allowed_ip=fd00::1/128',
        `public_key=${peer2}`,
        `preshared_key=${'00'.repeat(32)}`,
        'protocol_version=1',
        'endpoint=[2001:db8::1]:4500',
        'last_handshake_time_sec=0',
        'last_handshake_time_nsec=0',
        'tx_bytes=0',
        'rx_bytes=0',
        'persistent_keepalive_interval=0',
        'allowed_ip=10.0.1.7/32',
        '',
      ].join('\n'),
    );
  });

  it('removes peers, honours update_only, and ignores our own key as a peer', () => {
    const dev = device();
    uapiSet(dev, [`private_key=${priv.raw.toString('hex')}`, `public_key=${peer1}`, 'allowed_ip=10.0.0.1/32']);
    expect(uapiSet(dev, [`public_key=${peer2}`, 'update_only=true', 'allowed_ip=10.0.0.2/32'])).toEqual({ errno: 0 });
    expect(dev.listPeers()).toHaveLength(1);
    expect(uapiSet(dev, [`public_key=${priv.publicKey.hex}`, 'allowed_ip=10.0.0.3/32'])).toEqual({ errno: 0 });
    expect(dev.listPeers()).toHaveLength(1);
    expect(uapiSet(dev, [`public_key=${peer1}`, 'allowed_ip=-10.0.0.1/32'])).toEqual({ errno: 0 });
    expect(dev.peerStatus(dev.listPeers()[0]).allowedIPs).toEqual([]);
    expect(uapiSet(dev, [`public_key=${peer1}`, 'remove=true'])).toEqual({ errno: 0 });
    expect(dev.listPeers()).toHaveLength(0);
    // A zero private key removes it.
    uapiSet(dev, [`private_key=${'00'.repeat(32)}`]);
    expect(uapiGet(dev)).not.toContain('private_key');
  });

  it('refuses bad input with EINVAL/EPROTO, naming what was wrong', () => {
    const dev = device();
    expect(uapiSet(dev, ['private_key=abc'])).toMatchObject({ errno: -22, error: expect.stringMatching(/private key/) });
    expect(uapiSet(dev, ['listen_port=70000'])).toMatchObject({ errno: -22 });
    expect(uapiSet(dev, ['bogus'])).toMatchObject({ errno: -71 });
    expect(uapiSet(dev, ['wat=1'])).toMatchObject({ errno: -22, error: expect.stringMatching(/device key: wat/) });
    expect(uapiSet(dev, [`public_key=${peer1}`, 'endpoint=nohost'])).toMatchObject({ errno: -22 });
    expect(uapiSet(dev, [`public_key=${peer1}`, 'allowed_ip=10.0.0.0/40'])).toMatchObject({ errno: -22 });
    expect(uapiSet(dev, [`public_key=${peer1}`, 'protocol_version=2'])).toMatchObject({ errno: -22 });
    expect(uapiSet(dev, [`public_key=${peer1}`, 'remove=yes'])).toMatchObject({ errno: -22 });
  });
});

describe('UAPI socket', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mw-uapi-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function talk(path: string, request: string, answers: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const c = createConnection(path);
      let got = '';
      c.setEncoding('utf8');
      c.on('data', (d: string) => {
        got += d;
        if (got.split(/errno=-?\d+\n\n/).length - 1 >= answers) {
          c.end();
          resolve(got);
        }
      });
      c.on('error', reject);
      c.write(request);
    });
  }

  it('serves get and set on one connection, mode 0600, and removes the socket on close', async () => {
    const dev = device();
    const path = join(dir, 'mwtest0.sock');
    const srv = await UapiServer.listen(dev, path);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const out = await talk(path, `set=1\nprivate_key=${priv.raw.toString('hex')}\n\nget=1\n\nset=1\nnope=1\n\n`, 3);
    const [set, get, bad] = out.split(/(?<=errno=-?\d+\n\n)/);
    expect(set).toBe('errno=0\n\n');
    expect(get).toContain(`private_key=${priv.raw.toString('hex')}\n`);
    expect(get.endsWith('errno=0\n\n')).toBe(true);
    expect(bad).toBe('errno=-22\n\n');
    await expect(UapiServer.listen(dev, path)).rejects.toThrow(/in use/);
    await srv.close();
    expect(() => statSync(path)).toThrow();
  });
});
