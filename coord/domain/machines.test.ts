import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { NetmapHub } from '../netmap-stream.js';
import { Store } from '../store/index.js';
import { createTailnet, Domain } from './index.js';

const log = pino({ level: 'silent' });
const NODE_KEY = Buffer.alloc(32, 9).toString('base64');

describe('a device moving to another network', () => {
  it('leaves its old network with a DELETE audit entry and a nodeDeleted event', () => {
    const store = new Store(':memory:');
    const events: [number, string, Record<string, unknown>][] = [];
    const domain = new Domain({ store, hub: new NetmapHub(store, log, 0), log, onEvent: (t, type, data) => events.push([t, type, data]) });
    const callerOf = (name: string) => {
      const t = store.getTailnetByName(name)!;
      return { user: store.listUsers(t.id)[0]!, tailnet: t, keyId: '' };
    };
    createTailnet(store, 'one.example', 'a@one.example');
    createTailnet(store, 'two.example', 'b@two.example');
    const one = callerOf('one.example');
    const two = callerOf('two.example');
    const keyOne = domain.keys.create(one, one.tailnet, {}).secret;
    const keyTwo = domain.keys.create(two, two.tailnet, {}).secret;
    const first = domain.machines.register('machine-1', { nodeKey: NODE_KEY, hostname: 'mover', authKey: keyOne });
    events.length = 0;
    const second = domain.machines.register('machine-1', { nodeKey: NODE_KEY, hostname: 'mover', authKey: keyTwo });
    expect(second.network).toBe('two.example');
    expect(store.getDevice(first.deviceId)).toBeUndefined();
    const deletes = store.listAudit(one.tailnet.id, '0', '9999').filter((e) => e.action === 'DELETE');
    expect(deletes).toMatchObject([{ target: { id: first.deviceId, type: 'NODE' } }]);
    expect(events).toContainEqual([one.tailnet.id, 'nodeDeleted', expect.objectContaining({ nodeID: first.deviceId })]);
    expect(events).toContainEqual([two.tailnet.id, 'nodeCreated', expect.objectContaining({ nodeID: second.deviceId })]);
    store.close();
  });
});
