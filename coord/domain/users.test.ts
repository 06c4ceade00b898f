import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { TooManyRequests, Unauthenticated } from '../errors.js';
import { NetmapHub } from '../netmap-stream.js';
import { hashPassword } from '../secrets.js';
import { Store } from '../store/index.js';
import { createTailnet, Domain } from './index.js';

const log = pino({ level: 'silent' });

describe('sign-in limiter', () => {
  it('pauses sign-ins after five failures, in its own server only', async () => {
    const store = new Store(':memory:');
    const { owner } = createTailnet(store, 'example.com', 'alice@example.com');
    store.setUserPassword(owner.id, await hashPassword('correct horse battery'));
    const one = new Domain({ store, hub: new NetmapHub(store, log, 0), log });
    const two = new Domain({ store, hub: new NetmapHub(store, log, 0), log });
    const login = (d: Domain, password: string) => d.users.login('10.0.0.1', 'example.com', 'alice@example.com', password);
    for (let i = 0; i < 5; i++) await expect(login(one, 'wrong password')).rejects.toThrow(Unauthenticated);
    await expect(login(one, 'correct horse battery')).rejects.toThrow(TooManyRequests);
    // A second server in the same process keeps its own count.
    const session = await login(two, 'correct horse battery');
    expect(session.user.id).toBe(owner.id);
    store.close();
  });
});
