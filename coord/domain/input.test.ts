// Every string field of the admin and machine APIs has a length bound and a format check, every list
// a size bound: each case below is refused with InvalidInput, and nothing is stored.
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { InvalidInput } from '../errors.js';
import { NetmapHub } from '../netmap-stream.js';
import { Store } from '../store/index.js';
import { createTailnet, Domain } from './index.js';

const log = pino({ level: 'silent' });
const HUGE = 'x'.repeat(900_000);
const ESC = 'ok\u001b[2J\u001b]0;pwned\u0007';
const NODE_KEY = Buffer.alloc(32, 7).toString('base64');

function setup() {
  const store = new Store(':memory:');
  const { owner } = createTailnet(store, 'example.com', 'alice@example.com');
  const domain = new Domain({ store, hub: new NetmapHub(store, log, 0), log, allowPrivateWebhooks: true });
  const c = () => ({ user: store.getUser(owner.id)!, tailnet: store.getTailnetByName('example.com')!, keyId: '' });
  return { store, domain, c };
}

describe('input bounds', () => {
  const { store, domain, c } = setup();
  const [invite] = domain.users.createInvites(c(), c().tailnet, [{ email: 'bob@example.com', role: 'member' }]);
  const authKey = domain.keys.create(c(), c().tailnet, { capabilities: { devices: { create: { reusable: true } } } }).secret;
  const reg = (r: Record<string, unknown>) => domain.machines.register('machine-x', { nodeKey: NODE_KEY, hostname: 'host', authKey, ...r } as never);
  const dev = reg({});
  const device = () => store.getDevice(dev.deviceId)!;

  const cases: [string, () => unknown][] = [
    ['billing plan, huge', () => domain.tailnets.setBilling(c(), c().tailnet, 'plan', { plan: HUGE })],
    ['billing plan, newline', () => domain.tailnets.setBilling(c(), c().tailnet, 'plan', { plan: 'pro\nx' })],
    ['billing contact name, escape', () => domain.tailnets.setBilling(c(), c().tailnet, 'contact', { email: 'a@b.c', name: ESC })],
    ['billing contact email, huge', () => domain.tailnets.setBilling(c(), c().tailnet, 'contact', { email: `a@${HUGE}` })],
    ['user invite email, huge', () => domain.users.createInvites(c(), c().tailnet, [{ email: `a@${HUGE}` }])],
    ['user invites, too many', () => domain.users.createInvites(c(), c().tailnet, Array.from({ length: 1000 }, (_, i) => ({ email: `u${i}@example.com` })))],
    ['key description, escape', () => domain.keys.create(c(), c().tailnet, { description: ESC })],
    ['key tags, too many', () => domain.keys.create(c(), c().tailnet, { capabilities: { devices: { create: { tags: Array.from({ length: 1000 }, (_, i) => `tag:t${i}`) } } } })],
    ['key tags, not a tag', () => domain.keys.create(c(), c().tailnet, { capabilities: { devices: { create: { tags: ['tag:ok', `tag:${ESC}`] } } } })],
    ['device invite label, escape', () => domain.shares.createInvites(c(), device(), [{ label: ESC }])],
    ['device invites, too many', () => domain.shares.createInvites(c(), device(), Array.from({ length: 1000 }, () => ({})))],
    ['device tags, too many', () => domain.devices.setTags(c(), device(), Array.from({ length: 1000 }, (_, i) => `tag:t${i}`))],
    ['device name, huge', () => domain.devices.rename(c(), device(), HUGE)],
    ['device routes, too many', () => domain.devices.setRoutes(c(), device(), Array.from({ length: 1000 }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`))],
    ['register hostname, escape', () => reg({ hostname: ESC })],
    ['register os, escape', () => reg({ os: ESC })],
    ['register version, newline', () => reg({ version: '1.0\n2.0' })],
    ['register tags, not tags', () => reg({ tags: [ESC] })],
    ['register auth key, huge', () => reg({ authKey: HUGE })],
    ['split DNS, too many domains', () => domain.tailnets.setSplitDns(c(), c().tailnet, Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`d${i}.example`, ['10.0.0.1']])), true)],
    ['update os, escape', () => domain.machines.update('machine-x', { os: ESC })],
    ['webhook provider type, huge', () => domain.webhooks.create(c(), c().tailnet, { endpointUrl: 'http://127.0.0.1:9/', providerType: HUGE })],
    ['webhook provider type, unknown', () => domain.webhooks.create(c(), c().tailnet, { endpointUrl: 'http://127.0.0.1:9/', providerType: 'bogus' })],
    ['webhook URL, huge', () => domain.webhooks.create(c(), c().tailnet, { endpointUrl: `http://127.0.0.1:9/${HUGE}` })],
    ['webhook subscriptions, too many', () => domain.webhooks.create(c(), c().tailnet, { endpointUrl: 'http://127.0.0.1:9/', subscriptions: Array.from({ length: 1000 }, () => 'nodeCreated') })],
    ['invite display name, huge', () => domain.users.acceptInvite('10.0.0.1', invite!.code, 'long enough password', HUGE)],
    ['invite display name, escape', () => domain.users.acceptInvite('10.0.0.1', invite!.code, 'long enough password', ESC)],
    ['sign-in email, huge', () => domain.users.login('10.0.0.2', 'example.com', `a@${HUGE}`, 'long enough password')],
    ['sign-in password, huge', () => domain.users.login('10.0.0.3', 'example.com', 'alice@example.com', HUGE)],
  ];

  it.each(cases)('refuses %s', async (_, f) => {
    await expect((async () => f())()).rejects.toThrow(InvalidInput);
  });

  it('stored none of it', () => {
    const d = device();
    expect([d.hostname, d.os, d.clientVersion, d.tags]).toEqual(['host', '', '', []]);
    expect(store.getUserByEmail(c().tailnet.id, 'bob@example.com')).toBeUndefined();
    expect(JSON.stringify(c().tailnet.settings)).not.toContain('xxxx');
  });
});
