// coord serving HTTPS itself (--tls-cert/--tls-key), with a self-signed certificate made by openssl.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControlClient, generateMachineKey } from '../../agent/control/index.js';
import { Coord } from './harness.js';

let haveOpenssl = true;
try {
  execFileSync('openssl', ['version'], { stdio: 'ignore' });
} catch {
  haveOpenssl = false;
}

describe.skipIf(!haveOpenssl)('coord over TLS', () => {
  const coord = new Coord();
  let ca = '';

  beforeAll(async () => {
    const cert = join(coord.dir, 'cert.pem');
    const key = join(coord.dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=coord-test', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
    ca = readFileSync(cert, 'utf8');
    await coord.start(['--tls-cert', cert, '--tls-key', key]);
  });
  afterAll(() => coord.cleanup());

  it('serves the admin and machine APIs over HTTPS', async () => {
    expect(coord.url.startsWith('https://127.0.0.1:')).toBe(true);
    const apiKey = coord.createTailnet('example.com', 'alice@example.com');
    const dispatcher = new Agent({ connect: { ca } });
    const r = await request(`${coord.url}/api/v2/tailnet/-/keys`, {
      method: 'POST', dispatcher, body: '{}', headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
    });
    expect(r.statusCode).toBe(200);
    const authKey = ((await r.body.json()) as { key: string }).key;
    const client = new ControlClient(coord.url, generateMachineKey(), { ca });
    const reg = await client.register({ nodeKey: Buffer.alloc(32, 3).toString('base64'), hostname: 'tls-device', authKey });
    expect(reg.name).toBe('tls-device.example-com.meshward.internal');
    // without trusting the certificate, the client refuses to talk
    await expect(new ControlClient(coord.url, generateMachineKey()).register({ nodeKey: Buffer.alloc(32, 4).toString('base64'), hostname: 'x', authKey })).rejects.toThrow();
    await dispatcher.close();
  });
});
