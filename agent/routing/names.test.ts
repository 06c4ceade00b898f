// Coord's and the relays' addresses as the routing keeps them out of the tunnel, and the `lookup` that
// answers from them: a reconnection must not need DNS while the system resolver cannot answer.
import type { LookupAddress, LookupOptions } from 'node:dns';
import { describe, expect, it } from 'vitest';
import { addressesVia, BypassNames, type Resolver } from './names.js';

const failing = (): NodeJS.ErrnoException => Object.assign(new Error('getaddrinfo EAI_AGAIN'), { code: 'EAI_AGAIN' });

/** A resolver whose answers the test sets; `down` makes it fail as a blocked system resolver does. */
function fakeDns(initial: Record<string, string[]>) {
  const dns = { table: { ...initial }, down: false, calls: 0 };
  const resolve: Resolver = async (name) => {
    dns.calls++;
    if (dns.down) throw failing();
    const addrs = dns.table[name];
    if (!addrs) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
    return addrs;
  };
  return { dns, resolve };
}

const lookup = (names: BypassNames, host: string, options: LookupOptions) =>
  new Promise<{ err: NodeJS.ErrnoException | null; address: string | LookupAddress[]; family?: number }>((resolve) =>
    names.lookup(host, options, (err, address, family) => resolve({ err, address, ...(family ? { family } : {}) })),
  );

const settle = () => new Promise((r) => setTimeout(r, 0));

describe('BypassNames', () => {
  it('answers a name it resolved from its cache when the system resolver is down', async () => {
    const { dns, resolve } = fakeDns({ 'coord.example': ['192.0.2.10', '2001:db8::10'] });
    const names = new BypassNames({ ttlMs: 60_000, resolve });
    names.cacheFirst = true; // routes go through the tunnel
    expect(await names.resolve('coord.example')).toEqual(['192.0.2.10', '2001:db8::10']);
    dns.down = true;
    expect(await lookup(names, 'coord.example', { all: true })).toEqual({
      err: null,
      address: [{ address: '192.0.2.10', family: 4 }, { address: '2001:db8::10', family: 6 }],
    });
    expect(await lookup(names, 'coord.example', {})).toEqual({ err: null, address: '192.0.2.10', family: 4 });
    expect(await lookup(names, 'coord.example', { family: 6 })).toEqual({ err: null, address: '2001:db8::10', family: 6 });
    expect(await addressesVia(names.lookup, 'coord.example')).toEqual(['192.0.2.10', '2001:db8::10']); // STUN targets
    expect(dns.calls).toBe(1); // the cache answered: no DNS
    await expect(addressesVia(names.lookup, 'unknown.example')).rejects.toThrow('EAI_AGAIN');
  });

  it('asks DNS first while no route uses the tunnel, keeps what it answered, and answers from that when DNS fails', async () => {
    const { dns, resolve } = fakeDns({ 'coord.example': ['198.51.100.1'] });
    const names = new BypassNames({ ttlMs: 60_000, resolve });
    expect(await lookup(names, 'coord.example', {})).toEqual({ err: null, address: '198.51.100.1', family: 4 });
    dns.table['coord.example'] = ['198.51.100.2'];
    expect((await lookup(names, 'coord.example', {})).address).toBe('198.51.100.2'); // DNS, not the cache
    expect(dns.calls).toBe(2);
    expect((await lookup(names, 'nowhere.example', {})).err?.code).toBe('ENOTFOUND');
    // an exit node is chosen, and DNS goes into the tunnel: the name is known already
    dns.down = true;
    expect(await names.resolve('coord.example')).toEqual(['198.51.100.2']);
    expect((await lookup(names, 'coord.example', {})).address).toBe('198.51.100.2');
    expect((await lookup(names, 'other.example', {})).err?.code).toBe('EAI_AGAIN'); // never answered: nothing to fall back on
    const v4only = new BypassNames({ ttlMs: 60_000, resolve: fakeDns({ 'c.example': ['192.0.2.1'] }).resolve });
    await v4only.resolve('c.example');
    v4only.cacheFirst = true;
    expect((await lookup(v4only, 'c.example', { family: 6 })).err?.code).toBe('ENOTFOUND');
  });

  it('resolves a stale name again in the background, keeps the old addresses while DNS fails, and reports a move', async () => {
    let now = 0;
    const moved: string[] = [];
    const { dns, resolve } = fakeDns({ 'relay.example': ['192.0.2.20'] });
    const names = new BypassNames({ ttlMs: 1000, resolve, now: () => now, onChange: (n) => moved.push(n) });
    names.cacheFirst = true;
    await names.resolve('relay.example');

    now = 5000;
    dns.down = true;
    expect((await lookup(names, 'relay.example', {})).address).toBe('192.0.2.20'); // at once, not after DNS
    await settle();
    expect(dns.calls).toBe(2);
    expect(await names.resolve('relay.example')).toEqual(['192.0.2.20']); // DNS failed: the last answer stays

    dns.down = false;
    dns.table['relay.example'] = ['192.0.2.21'];
    expect((await lookup(names, 'relay.example', {})).address).toBe('192.0.2.20');
    await settle();
    expect(moved).toEqual(['relay.example']);
    expect((await lookup(names, 'relay.example', {})).address).toBe('192.0.2.21');
  });

  it('takes IP addresses as they are, and forgets names no longer kept out of the tunnel', async () => {
    const { dns, resolve } = fakeDns({ 'a.example': ['192.0.2.1'], 'b.example': ['192.0.2.2'] });
    const names = new BypassNames({ ttlMs: 60_000, resolve });
    expect(await names.resolve('[2001:db8::1]')).toEqual(['2001:db8::1']);
    expect(await names.resolve('192.0.2.9')).toEqual(['192.0.2.9']);
    expect(dns.calls).toBe(0);
    await names.resolve('a.example');
    await names.resolve('b.example');
    names.retain(['b.example']);
    dns.down = true;
    expect((await lookup(names, 'a.example', {})).err?.code).toBe('EAI_AGAIN');
    expect((await lookup(names, 'b.example', {})).address).toBe('192.0.2.2');
  });
});
