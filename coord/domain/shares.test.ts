import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { Conflict, NotFound } from '../errors.js';
import { NetmapHub } from '../netmap-stream.js';
import { Store } from '../store/index.js';
import { createTailnet, Domain } from './index.js';
import { MAX_INVITE_USES } from './shares.js';

const log = pino({ level: 'silent' });
const nodeKey = (n: number) => Buffer.alloc(32, n).toString('base64');

describe('a shared device whose owner is suspended', () => {
  it("leaves the recipient's device list and netmaps with its own network's, and comes back on restore", () => {
    const store = new Store(':memory:');
    const hub = new NetmapHub(store, log, 0);
    const domain = new Domain({ store, hub, log });
    const a = createTailnet(store, 'one.example', 'a@one.example');
    const b = createTailnet(store, 'two.example', 'b@two.example');
    const as = (u: { id: string; tailnetId: number }) => ({ user: store.getUser(u.id)!, tailnet: store.getTailnet(u.tailnetId)!, keyId: '' });
    const member = store.createUser(a.owner.tailnetId, 'm@one.example', 'member', undefined);
    const keyA = domain.keys.create(as(a.owner), as(a.owner).tailnet, { user: 'm@one.example' }).secret;
    const keyB = domain.keys.create(as(b.owner), as(b.owner).tailnet, {}).secret;
    const shared = domain.machines.register('ma', { nodeKey: nodeKey(1), hostname: 'shared', authKey: keyA });
    const viewer = domain.machines.register('mb', { nodeKey: nodeKey(2), hostname: 'viewer', authKey: keyB });
    const [inv] = domain.shares.createInvites(as(a.owner), store.getDevice(shared.deviceId)!, [{}]);
    domain.shares.accept(as(b.owner), inv!.code);

    const peersOfViewer = (): string[] => {
      const lines: string[] = [];
      const close = hub.subscribe(store.getDevice(viewer.deviceId)!, { write: (l) => lines.push(l), end: () => {} });
      close();
      return (JSON.parse(lines[0]!).netmap.peers as { id: string }[]).map((p) => p.id);
    };
    const listed = () => domain.devices.list(as(b.owner).tailnet).map((v) => v.device.id);
    expect(peersOfViewer()).toContain(shared.deviceId);
    expect(listed()).toContain(shared.deviceId);

    domain.users.changeStatus(as(a.owner), store.getUser(member.id)!, 'suspend');
    expect(peersOfViewer()).not.toContain(shared.deviceId);
    expect(listed()).not.toContain(shared.deviceId);
    expect(() => domain.devices.get(as(b.owner), shared.deviceId)).toThrow(NotFound);

    domain.users.changeStatus(as(a.owner), store.getUser(member.id)!, 'restore');
    expect(peersOfViewer()).toContain(shared.deviceId);
    expect(listed()).toContain(shared.deviceId);
    store.close();
  });
});

describe('a multi-use device invite', () => {
  const setup = () => {
    const store = new Store(':memory:');
    const hub = new NetmapHub(store, log, 0);
    const domain = new Domain({ store, hub, log });
    const as = (u: { id: string; tailnetId: number }) => ({ user: store.getUser(u.id)!, tailnet: store.getTailnet(u.tailnetId)!, keyId: '' });
    const a = as(createTailnet(store, 'one.example', 'a@one.example').owner);
    const b = as(createTailnet(store, 'two.example', 'b@two.example').owner);
    const c = as(createTailnet(store, 'three.example', 'c@three.example').owner);
    const keyA = domain.keys.create(a, a.tailnet, {}).secret;
    const shared = store.getDevice(domain.machines.register('ma', { nodeKey: nodeKey(1), hostname: 'shared', authKey: keyA }).deviceId)!;
    const [made] = domain.shares.createInvites(a, shared, [{ label: 'anyone', multiUse: true }]);
    return { store, hub, domain, a, b, c, shared, invite: made!.invite, code: made!.code };
  };

  it('gives each accepting user a share of their own and stays valid; the same user twice gets the same share', () => {
    const { store, domain, b, c, shared, invite, code } = setup();
    expect(invite.multiUse).toBe(true);
    const forB = domain.shares.accept(b, code).share;
    const forC = domain.shares.accept(c, code).share;
    expect(forB.recipientTailnetId).toBe(b.tailnet.id);
    expect(forC.recipientTailnetId).toBe(c.tailnet.id);
    expect(forB.id).not.toBe(forC.id);
    expect(domain.shares.accept(b, code).share).toEqual(forB);
    expect(store.sharesFrom(shared.tailnetId)).toHaveLength(2);
    expect(domain.shares.acceptances(store.getDeviceInvite(invite.id)!).map((x) => [x.userId, x.shared])).toEqual([[b.user.id, true], [c.user.id, true]]);
    // each network sees the device as its own external device
    expect(domain.shares.sharedIn(b, shared.id)).toEqual([forB]);
    expect(domain.shares.sharedIn(c, shared.id)).toEqual([forC]);
    store.close();
  });

  it("lets a recipient's network end its own share only, which the same link does not bring back", () => {
    const { store, domain, b, c, invite, code } = setup();
    domain.shares.accept(b, code);
    domain.shares.accept(c, code);
    domain.shares.deleteInvite(c, invite.id);
    expect(store.getDeviceInvite(invite.id)).toBeDefined();
    expect(store.sharesOfInvite(invite.id).map((sh) => sh.recipientId)).toEqual([b.user.id]);
    expect(domain.shares.inviteStillShared(invite)).toBe(true);
    expect(() => domain.shares.accept(c, code)).toThrow(Conflict);
    expect(() => domain.shares.deleteInvite(c, invite.id)).toThrow(NotFound);
    store.close();
  });

  it("ends every share it made when the sharer deletes it", () => {
    const { store, domain, a, b, c, shared, invite, code } = setup();
    domain.shares.accept(b, code);
    domain.shares.accept(c, code);
    domain.shares.deleteInvite(a, invite.id);
    expect(store.getDeviceInvite(invite.id)).toBeUndefined();
    expect(store.sharesFrom(shared.tailnetId)).toEqual([]);
    expect(() => domain.shares.accept(b, code)).toThrow(NotFound);
    store.close();
  });

  it('also ends, when deleted, the share a recipient had from an earlier invite', () => {
    const { store, domain, a, b, shared, invite, code } = setup();
    const [once] = domain.shares.createInvites(a, shared, [{}]);
    const earlier = domain.shares.accept(b, once!.code).share;
    expect(domain.shares.accept(b, code).share).toEqual(earlier);
    expect(domain.shares.acceptances(store.getDeviceInvite(invite.id)!).map((x) => x.shared)).toEqual([true]);
    domain.shares.deleteInvite(a, invite.id);
    expect(store.sharesFrom(shared.tailnetId)).toEqual([]);
    store.close();
  });

  it(`is used up after ${MAX_INVITE_USES} acceptances`, () => {
    const { store, domain, b, invite, code } = setup();
    const add = store.db.prepare("INSERT INTO device_invite_acceptances (invite_id, user_id, accepted_at) VALUES (?, ?, '2026-01-01T00:00:00.000Z')");
    for (let i = 0; i < MAX_INVITE_USES; i++) add.run(invite.id, `gone${i}`);
    expect(() => domain.shares.accept(b, code)).toThrow(/accepted 1000 times/);
    store.close();
  });

  it('leaves one-time invites one-time', () => {
    const { store, domain, a, b, c, shared } = setup();
    const [once] = domain.shares.createInvites(a, shared, [{}]);
    expect(once!.invite.multiUse).toBe(false);
    domain.shares.accept(b, once!.code);
    expect(() => domain.shares.accept(c, once!.code)).toThrow(Conflict);
    expect(() => domain.shares.accept(b, once!.code)).toThrow(Conflict);
    store.close();
  });
});
