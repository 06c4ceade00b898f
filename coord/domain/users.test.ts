import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { TooManyRequests, Unauthenticated } from '../errors.js';
import { NetmapHub } from '../netmap-stream.js';
import { hashPassword } from '../secrets.js';
import { Store } from '../store/index.js';
import { createTailnet, Domain } from './index.js';

const log = pino({ level: 'silent' });

async function setup() {
  const store = new Store(':memory:');
  const { owner } = createTailnet(store, 'example.com', 'alice@example.com');
  store.setUserPassword(owner.id, await hashPassword('correct horse battery'));
  const bob = store.createUser(owner.tailnetId, 'bob@example.com', 'member', undefined);
  store.setUserPassword(bob.id, await hashPassword('bob battery staple'));
  const domain = () => new Domain({ store, hub: new NetmapHub(store, log, 0), log });
  return { store, owner, bob, domain };
}

describe('sign-in limiter', () => {
  it('pauses sign-ins after five failures, in its own server only', async () => {
    const { store, owner, domain } = await setup();
    const one = domain();
    const two = domain();
    const login = (d: Domain, password: string) => d.users.login('10.0.0.1', 'example.com', 'alice@example.com', password);
    for (let i = 0; i < 5; i++) await expect(login(one, 'wrong password')).rejects.toThrow(Unauthenticated);
    await expect(login(one, 'correct horse battery')).rejects.toThrow(TooManyRequests);
    // A second server in the same process keeps its own count.
    const session = await login(two, 'correct horse battery');
    expect(session.user.id).toBe(owner.id);
    store.close();
  });

  it('reserves each attempt before the password hash: 40 parallel sign-ins are not all evaluated', async () => {
    const { store, domain } = await setup();
    const d = domain();
    const tries = Array.from({ length: 40 }, (_, i) => d.users.login(`10.0.0.${i}`, 'example.com', 'alice@example.com', i === 39 ? 'correct horse battery' : 'wrong password'));
    const results = await Promise.allSettled(tries);
    const evaluated = results.filter((r) => r.status === 'fulfilled' || r.reason instanceof Unauthenticated);
    expect(evaluated.length).toBeLessThanOrEqual(5);
    expect(results.filter((r) => r.status === 'rejected' && r.reason instanceof TooManyRequests).length).toBeGreaterThanOrEqual(35);
    store.close();
  });

  it('limits per account whatever the address, and per address only generously', async () => {
    const { store, domain } = await setup();
    const d = domain();
    // Five wrong passwords for alice from five addresses: alice is paused everywhere.
    for (let i = 0; i < 5; i++) await expect(d.users.login(`10.0.1.${i}`, 'example.com', 'alice@example.com', 'wrong password')).rejects.toThrow(Unauthenticated);
    await expect(d.users.login('10.0.2.1', 'example.com', 'alice@example.com', 'correct horse battery')).rejects.toThrow(TooManyRequests);
    // Behind one proxy address, wrong passwords for other accounts do not lock bob out.
    for (let i = 0; i < 10; i++) await expect(d.users.login('10.0.9.9', 'example.com', `user${i}@example.com`, 'wrong password')).rejects.toThrow(Unauthenticated);
    expect((await d.users.login('10.0.9.9', 'example.com', 'bob@example.com', 'bob battery staple')).user.email).toBe('bob@example.com');
    store.close();
  });
});

describe('user approval', () => {
  it('with usersApprovalOn, a new user needs approval and cannot sign in until an admin approves', async () => {
    const { store, owner, domain } = await setup();
    const d = domain();
    const c = () => ({ user: store.getUser(owner.id)!, tailnet: store.getTailnet(owner.tailnetId)!, keyId: '' });
    d.tailnets.patchSettings(c(), c().tailnet, { usersApprovalOn: true });
    const [inv] = d.users.createInvites(c(), c().tailnet, [{ email: 'carol@example.com', role: 'member' }]);
    const carol = await d.users.acceptInvite('10.0.0.1', inv!.code, 'carol battery staple', undefined);
    expect(carol.status).toBe('needs-approval');
    expect(store.getUser(carol.id)!.status).toBe('needs-approval');
    await expect(d.users.login('10.0.0.1', 'example.com', 'carol@example.com', 'carol battery staple')).rejects.toThrow(/awaits approval/);
    d.users.changeStatus(c(), store.getUser(carol.id)!, 'approve');
    expect((await d.users.login('10.0.0.1', 'example.com', 'carol@example.com', 'carol battery staple')).user.id).toBe(carol.id);
    store.close();
  });

  it('without it, a new user is active at once', async () => {
    const { store, owner, domain } = await setup();
    const d = domain();
    const c = () => ({ user: store.getUser(owner.id)!, tailnet: store.getTailnet(owner.tailnetId)!, keyId: '' });
    const [inv] = d.users.createInvites(c(), c().tailnet, [{ email: 'carol@example.com', role: 'member' }]);
    expect((await d.users.acceptInvite('10.0.0.1', inv!.code, 'carol battery staple', undefined)).status).toBe('active');
    store.close();
  });
});
