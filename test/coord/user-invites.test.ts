// Accepting a user invite against the real server: the refusals (short password, wrong code, reused
// code) lose nothing, and failed codes are rate-limited per client address. Its own coord process:
// the rate limit blocks sign-ins from 127.0.0.1 for a while.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, Coord } from './harness.js';

const PASSWORD = 'correct horse battery staple';

describe('accepting a user invite', () => {
  const coord = new Coord();
  let owner: ReturnType<typeof api>;
  let anon: ReturnType<typeof api>;

  const invite = async (email: string, role = 'member') => {
    const r = await owner.post('/tailnet/-/user-invites', [{ email, role }]);
    expect(r.status, r.text).toBe(200);
    return r.body[0] as { id: string; code: string };
  };
  const userEmails = async () => ((await owner.get('/tailnet/-/users')).body.users as { loginName: string }[]).map((u) => u.loginName).sort();
  const accepted = async (id: string) => ((await owner.get('/tailnet/-/user-invites')).body as { id: string; accepted: boolean }[]).find((i) => i.id === id)!.accepted;

  beforeAll(async () => {
    await coord.start();
    owner = api(coord.url, coord.createTailnet('example.com', 'alice@example.com'));
    anon = api(coord.url);
  });
  afterAll(() => coord.cleanup());

  it('refuses a short password, a wrong code and a reused code, losing nothing', async () => {
    const inv = await invite('carol@example.com');

    const short = await anon.post('/user-invites/-/accept', { code: inv.code, password: '123456789' });
    expect(short.status).toBe(400);
    expect(short.body.message).toMatch(/at least 10 characters/);

    // the same id with another secret, and a code of no invite at all
    const wrongSecret = inv.code.replace(/.{6}$/, (s) => (s === 'AAAAAA' ? 'BBBBBB' : 'AAAAAA'));
    for (const code of [wrongSecret, 'mwkey-invite-NOSUCHINVITE1-AAAAAAAAAAAAAAAAAAAAAAAA', 'garbage']) {
      const r = await anon.post('/user-invites/-/accept', { code, password: PASSWORD });
      expect(r.status, code).toBe(401);
      expect(r.body.message).toMatch(/invalid or already used invite code/);
    }
    expect(await userEmails()).toEqual(['alice@example.com']);
    expect(await accepted(inv.id)).toBe(false);

    // the refusals spent nothing: the right code and a long password still work
    const ok = await anon.post('/user-invites/-/accept', { code: inv.code, password: PASSWORD });
    expect(ok.status, ok.text).toBe(200);
    expect(ok.body).toMatchObject({ loginName: 'carol@example.com', role: 'member' });
    expect(await accepted(inv.id)).toBe(true);
    expect((await anon.post('/login', { tailnet: 'example.com', email: 'carol@example.com', password: PASSWORD })).status).toBe(200);

    // used once: refused after, with another password too, and the user keeps the first one
    const again = await anon.post('/user-invites/-/accept', { code: inv.code, password: 'another long password' });
    expect(again.status).toBe(401);
    expect(again.body.message).toMatch(/invalid or already used invite code/);
    expect(await userEmails()).toEqual(['alice@example.com', 'carol@example.com']);
    expect((await anon.post('/login', { tailnet: 'example.com', email: 'carol@example.com', password: 'another long password' })).status).toBe(401);
    expect((await anon.post('/login', { tailnet: 'example.com', email: 'carol@example.com', password: PASSWORD })).status).toBe(200);
  });

  it('rate-limits wrong codes per client address, then refuses even a good code for a while', async () => {
    const good = await invite('dave@example.com');
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) {
      statuses.push((await anon.post('/user-invites/-/accept', { code: `mwkey-invite-NOSUCHINVITE${i}-AAAAAAAAAAAAAAAAAAAAAAAA`, password: PASSWORD })).status);
    }
    // Five wrong codes per address in all (the test above spent one: the reused code), then 429.
    expect(statuses).toEqual([401, 401, 401, 401, 429, 429, 429]);
    const limited = await anon.post('/user-invites/-/accept', { code: good.code, password: PASSWORD });
    expect(limited.status).toBe(429);
    expect(limited.body.message).toMatch(/too many failed/);
    expect(await accepted(good.id)).toBe(false);
    expect(await userEmails()).toEqual(['alice@example.com', 'carol@example.com']);
  });
});
