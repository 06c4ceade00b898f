import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { NotFound } from '../errors.js';
import { NetmapHub } from '../netmap-stream.js';
import { Store } from '../store/index.js';
import { createTailnet, Domain } from './index.js';

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
