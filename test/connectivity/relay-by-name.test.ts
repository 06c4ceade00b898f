// A device reaches its relays by a host name that DNS cannot resolve at the moment (an exit node chosen
// and unavailable blocks the system resolver): the address comes from what the routing keeps out of the
// tunnel, handed to the relay links as their `lookup`.
import { afterEach, describe, expect, it } from 'vitest';
import { httpRoundTrip, RelayLinks } from '../../agent/connectivity/relay-links.js';
import { BypassNames } from '../../agent/routing/index.js';
import { relayFor, twoKeys, until } from './relay-helpers.js';

describe('relays by host name', () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });

  it('connect, and measure latency, with addresses the routing resolved before DNS was blocked', async () => {
    const { keys, ids } = twoKeys();
    const relay = await relayFor(ids, cleanup);
    const byName = relay.url.replace('127.0.0.1', 'relay.meshward.test');
    let dnsUp = true;
    const names = new BypassNames({
      ttlMs: 60_000,
      resolve: async (name) => {
        if (!dnsUp) throw Object.assign(new Error(`getaddrinfo EAI_AGAIN ${name}`), { code: 'EAI_AGAIN' });
        return ['127.0.0.1'];
      },
    });
    expect(await names.resolve('relay.meshward.test')).toEqual(['127.0.0.1']);
    dnsUp = false;

    const links = new RelayLinks({ key: keys[0]!, onPackets: () => {}, onReady: () => {}, log: () => {}, wsOptions: { lookup: names.lookup } });
    cleanup.push(() => links.close());
    links.setMap([{ name: 'home', url: byName }]);
    links.setHome('home');
    await until(() => links.home!.client.connected, 'the relay link to connect by name');

    expect(await httpRoundTrip(byName, 5000, { lookup: names.lookup })).not.toBeNull();
    // Without those addresses the name needs DNS, and the system resolver does not know it.
    expect(await httpRoundTrip(byName, 5000)).toBeNull();
  });
});
