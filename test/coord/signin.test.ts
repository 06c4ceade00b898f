// Sign-in throttling behind a reverse proxy: with `--trusted-proxy`, the forwarded client address is
// what the per-address limit counts; without it, a forged X-Forwarded-For changes nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addUser, api, Coord } from './harness.js';

const PASSWORD = 'correct horse battery staple';
/** ADDRESS_LIMITS.freeFailures in coord/domain/limiter.ts. */
const ADDRESS_FREE = 50;

async function login(coord: Coord, email: string, password: string, xff: string): Promise<number> {
  const res = await api(coord.url).post('/login', { tailnet: 'proxy.example', email, password }, { 'x-forwarded-for': xff });
  return res.status;
}

describe.each([true, false])('sign-in behind a proxy (--trusted-proxy given: %s)', (trusted) => {
  const coord = new Coord();

  beforeAll(async () => {
    await coord.start(trusted ? ['--trusted-proxy', '127.0.0.1,::1'] : []);
    const owner = coord.createTailnet('proxy.example', 'owner@proxy.example');
    await addUser(coord.url, owner, 'proxy.example', 'bob@proxy.example', 'member');
  }, 60_000);
  afterAll(() => coord.cleanup());

  it('pauses one client address after many failures; others go on only when the proxy is trusted', async () => {
    for (let i = 0; i < ADDRESS_FREE; i++) expect(await login(coord, `nobody${i}@proxy.example`, 'wrong password', '198.51.100.1')).toBe(401);
    expect(await login(coord, 'bob@proxy.example', PASSWORD, '198.51.100.1')).toBe(429);
    expect(await login(coord, 'bob@proxy.example', PASSWORD, '198.51.100.2')).toBe(trusted ? 200 : 429);
  }, 120_000);
});
