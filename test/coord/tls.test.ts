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
    const newAuthKey = async () => {
      const r = await request(`${coord.url}/api/v2/tailnet/-/keys`, {
        method: 'POST', dispatcher, body: '{}', headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      });
      expect(r.statusCode).toBe(200);
      return ((await r.body.json()) as { key: string }).key;
    };
    const authKey = await newAuthKey();
    const client = new ControlClient(coord.url, generateMachineKey(), { ca });
    const reg = await client.register({ nodeKey: Buffer.alloc(32, 3).toString('base64'), hostname: 'tls-device', authKey });
    expect(reg.name).toBe('tls-device.example-com.meshward.internal');

    // Without trusting the certificate, the client refuses to talk. The key is fresh (single-use keys
    // are spent by the first registration), so the only reason left to refuse is the certificate.
    const unusedKey = await newAuthKey();
    const untrusting = new ControlClient(coord.url, generateMachineKey());
    const err = await untrusting.register({ nodeKey: Buffer.alloc(32, 4).toString('base64'), hostname: 'x', authKey: unusedKey }).then(
      () => undefined,
      (e: Error & { code?: string }) => e,
    );
    expect(err, 'registration without trusting the certificate must fail').toBeInstanceOf(Error);
    expect(err!.code).toBe('DEPTH_ZERO_SELF_SIGNED_CERT');
    // and the same key is still good for a client that trusts the certificate
    const later = await new ControlClient(coord.url, generateMachineKey(), { ca }).register({
      nodeKey: Buffer.alloc(32, 5).toString('base64'), hostname: 'tls-device-2', authKey: unusedKey,
    });
    expect(later.name).toBe('tls-device-2.example-com.meshward.internal');
    await dispatcher.close();
  });
});
