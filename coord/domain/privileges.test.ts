// Privileges are checked at use, not only when a key or invite is made: a creator who has since lost
// the rights (demoted, suspended, deleted) no longer lends them.
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { Forbidden } from '../errors.js';
import { NetmapHub } from '../netmap-stream.js';
import { Store, type User } from '../store/index.js';
import { createTailnet, Domain } from './index.js';

const log = pino({ level: 'silent' });
const nodeKey = (n: number) => Buffer.alloc(32, n).toString('base64');

async function setup() {
  const store = new Store(':memory:');
  const { owner } = createTailnet(store, 'example.com', 'alice@example.com');
  const domain = new Domain({ store, hub: new NetmapHub(store, log, 0), log });
  const t = () => store.getTailnetByName('example.com')!;
  const as = (u: User) => ({ user: store.getUser(u.id)!, tailnet: t(), keyId: '' });
  const admin = store.createUser(owner.tailnetId, 'bob@example.com', 'admin', undefined);
  // tag:prod has no owners: only roles that may use any tag (owner, admin) may apply it.
  await domain.policy.set(as(owner), t(), '{"tagOwners": {"tag:prod": []}, "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}', undefined);
  return { store, domain, owner, admin, as, t };
}

describe('privileges at use', () => {
  it("an auth key's admin-only tags stop working once its creator is demoted", async () => {
    const { store, domain, owner, admin, as, t } = await setup();
    const key = domain.keys.create(as(admin), t(), { capabilities: { devices: { create: { reusable: true, tags: ['tag:prod'] } } } }).secret;
    expect(domain.machines.register('m1', { nodeKey: nodeKey(1), hostname: 'one', authKey: key }).tags).toEqual(['tag:prod']);
    domain.users.setRole(as(owner), store.getUser(admin.id)!, 'member');
    expect(() => domain.machines.register('m2', { nodeKey: nodeKey(2), hostname: 'two', authKey: key })).toThrow(Forbidden);
    store.close();
  });

  it.each(['suspend', 'delete', 'demote'] as const)('a user invite stops admitting once its inviter is gone or demoted (%s)', async (what) => {
    const { store, domain, owner, admin, as, t } = await setup();
    const [inv] = domain.users.createInvites(as(admin), t(), [{ email: 'carol@example.com', role: 'admin' }]);
    if (what === 'demote') domain.users.setRole(as(owner), store.getUser(admin.id)!, 'member');
    else domain.users.changeStatus(as(owner), store.getUser(admin.id)!, what);
    await expect(domain.users.acceptInvite('10.0.0.1', inv!.code, 'long enough password', undefined)).rejects.toThrow(Forbidden);
    expect(store.getUserByEmail(t().id, 'carol@example.com')).toBeUndefined();
    store.close();
  });

  it('a user invite from an inviter who keeps the rights still works', async () => {
    const { store, domain, admin, as, t } = await setup();
    const [inv] = domain.users.createInvites(as(admin), t(), [{ email: 'carol@example.com', role: 'admin' }]);
    expect((await domain.users.acceptInvite('10.0.0.1', inv!.code, 'long enough password', undefined)).role).toBe('admin');
    store.close();
  });
});
