import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { InvalidInput } from '../errors.js';
import { NetmapHub } from '../netmap-stream.js';
import { Store } from '../store/index.js';
import { createTailnet, Domain, settingsOf } from './index.js';

const log = pino({ level: 'silent' });

function setup() {
  const store = new Store(':memory:');
  const { owner } = createTailnet(store, 'example.com', 'alice@example.com');
  const domain = new Domain({ store, hub: new NetmapHub(store, log, 0), log });
  const c = () => ({ user: store.getUser(owner.id)!, tailnet: store.getTailnetByName('example.com')!, keyId: '' });
  return { store, domain, c };
}

describe('PATCH /settings', () => {
  it('refuses keys outside the fixed list, prototype names included, and stores nothing', () => {
    const { store, domain, c } = setup();
    for (const k of ['toString', '__proto__', 'hasOwnProperty', 'valueOf', 'constructor', 'billing']) {
      expect(() => domain.tailnets.patchSettings(c(), c().tailnet, JSON.parse(`{"${k}": "x"}`)), k).toThrow(InvalidInput);
    }
    expect(Object.keys(store.getTailnetByName('example.com')!.settings)).toEqual([]);
    expect(domain.tailnets.patchSettings(c(), c().tailnet, { usersApprovalOn: true })).toEqual({ ...settingsOf(c().tailnet), usersApprovalOn: true });
    store.close();
  });
});
