// coord's admin subcommands against the real server, as a person would run them.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addUser, Coord, root } from './harness.js';
import { Store } from '../../coord/store/index.js';
import { TestDevice } from './devices.js';

const main = join(root, 'dist/coord/main.js');

describe('coord admin subcommands', () => {
  const coord = new Coord();
  let key = '';
  const run = (args: string[], env: Record<string, string> = {}, input?: string) =>
    new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      const p = spawn(process.execPath, [main, ...args], { env: { ...process.env, MESHWARD_COORD: coord.url, MESHWARD_API_KEY: key, ...env } });
      let stdout = '', stderr = '';
      p.stdout.on('data', (c) => (stdout += c));
      p.stderr.on('data', (c) => (stderr += c));
      p.on('close', (status) => resolve({ status, stdout, stderr }));
      if (input !== undefined) p.stdin.end(input);
      else p.stdin.end();
    });

  beforeAll(async () => {
    await coord.start();
    key = coord.createTailnet('example.com', 'alice@example.com');
  });
  afterAll(() => coord.cleanup());

  it('explains a missing key and a missing subcommand', async () => {
    const r = await run(['users', 'list'], { MESHWARD_API_KEY: '' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('MESHWARD_API_KEY');
    const s = await run(['keys']);
    expect(s.status).toBe(2);
    expect(s.stderr).toContain('coord keys create');
  });

  it('explains bad serve and tailnet flags', async () => {
    const listen = await run(['serve', '--listen', 'nonsense']);
    expect(listen.status).toBe(2);
    expect(listen.stderr).toContain('expected HOST:PORT');
    const tls = await run(['serve', '--tls-cert', '/nonexistent']);
    expect(tls.status).toBe(2);
    expect(tls.stderr).toContain('--tls-cert and --tls-key go together');
    const email = await run(['tailnet', 'create', 'x.example', '--owner', 'not-an-email', '--db', join(coord.dir, 'other.db')]);
    expect(email.status).toBe(2);
    expect(email.stderr).toContain('is not an email address');
  });

  it('manages users, keys, devices, the policy and shows the audit log', async () => {
    const inv = await run(['users', 'invite', 'bob@example.com', '--role', 'auditor']);
    expect(inv.status).toBe(0);
    expect(inv.stdout).toMatch(/mwkey-invite-/);
    const users = await run(['users', 'list']);
    expect(users.stdout).toContain('alice@example.com');

    const k = await run(['keys', 'create', '--reusable', '--expiry', '1h', '--description', 'ci', '--json']);
    expect(k.status).toBe(0);
    const created = JSON.parse(k.stdout);
    expect(created.key).toMatch(/^mwkey-auth-/);
    expect((await run(['keys', 'list'])).stdout).toContain(created.id);

    const d = new TestDevice(coord.url);
    await d.register(created.key, 'web1');
    const list = await run(['devices', 'list']);
    expect(list.stdout).toMatch(/web1\s+100\./);
    expect((await run(['devices', 'rename', 'web1', 'frontend'])).status).toBe(0);
    expect((await run(['devices', 'list', '--json'])).stdout).toContain('frontend.example-com.meshward.internal');
    const tag = await run(['devices', 'tag', 'frontend', 'tag:nope']);
    expect(tag.status).toBe(1);
    expect(tag.stderr).toContain('requested tags [tag:nope] are invalid or not permitted');

    const file = join(coord.dir, 'policy.hujson');
    writeFileSync(file, '// ssh only\n{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:22"]}]}\n');
    expect((await run(['acl', 'check', file])).status).toBe(0);
    expect((await run(['acl', 'set', file])).status).toBe(0);
    const got = await run(['acl', 'get']);
    expect(got.stdout).toContain('// ssh only');
    const bad = await run(['acl', 'set', '-'], {}, '{"acls": [{"action": "deny"}]}');
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/1:\d+: /);

    expect((await run(['keys', 'revoke', created.id])).status).toBe(0);
    // Still listed for a while, marked revoked.
    expect((await run(['keys', 'list'])).stdout).toMatch(new RegExp(`${created.id}.*\\brevoked,reusable`));
    expect((await run(['devices', 'delete', 'frontend'])).status).toBe(0);
    const audit = await run(['audit']);
    expect(audit.stdout).toContain('ACL');
    expect(audit.stdout).toContain('NODE');
  }, 120_000); // some twenty `coord` processes, one after the other: slow on a busy machine

  it('escapes control characters from the server in what it prints for people', async () => {
    const k = JSON.parse((await run(['keys', 'create', '--json'])).stdout);
    const d = new TestDevice(coord.url);
    await d.register(k.key, 'escapee');
    // A value stored before coord bounded its inputs (or by an older coord): the CLI must not pass it on.
    const store = new Store(coord.db);
    const row = store.listDevices(store.getTailnetByName('example.com')!.id).find((x) => x.hostname === 'escapee')!;
    store.updateDevice(row.id, { os: '\u001b]0;pwned\u0007\u001b[2J\u202eLinux', clientVersion: '\u009b31m' });
    store.close();
    const list = await run(['devices', 'list']);
    expect(list.status).toBe(0);
    expect(list.stdout).toContain('\\x1b]0;pwned\\x07\\x1b[2J\\u202eLinux');
    expect(list.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/);
    d.close();
  });

  it('shows, approves and unapproves a device\'s routes, with clear errors; an IT admin may not approve', async () => {
    const k = JSON.parse((await run(['keys', 'create', '--json'])).stdout);
    const d = new TestDevice(coord.url);
    await d.register(k.key, 'gateway');
    const none = await run(['devices', 'routes', 'gateway']);
    expect([none.status, none.stdout]).toEqual([0, 'gateway.example-com.meshward.internal advertises no routes\n']);
    await d.client.update({ advertisedRoutes: ['10.70.0.0/24', '10.71.0.0/24', '0.0.0.0/0', '::/0'] });
    const show = await run(['devices', 'routes', 'gateway']);
    expect(show.stdout.split('\n')[0]).toMatch(/^ROUTE\s+KIND\s+APPROVED$/);
    expect(show.stdout).toMatch(/10\.70\.0\.0\/24\s+subnet\s+no/);
    expect(show.stdout).toMatch(/0\.0\.0\.0\/0\s+exit node\s+no/);
    const approve = await run(['devices', 'routes', 'gateway', '--approve', '10.70.0.0/24,exit-node', '--json']);
    expect(approve.status, approve.stderr).toBe(0);
    expect(JSON.parse(approve.stdout).enabledRoutes).toEqual(['10.70.0.0/24', '0.0.0.0/0', '::/0']);
    const more = await run(['devices', 'routes', 'gateway', '--approve', '10.71.0.0/24', '--unapprove', 'exit-node', '--json']);
    expect(JSON.parse(more.stdout).enabledRoutes).toEqual(['10.70.0.0/24', '10.71.0.0/24']);
    expect(JSON.parse((await run(['devices', 'routes', 'gateway', '--enable', '', '--json'])).stdout).enabledRoutes).toEqual([]);

    const notOffered = await run(['devices', 'routes', 'gateway', '--approve', '10.99.0.0/24']);
    expect(notOffered.status).toBe(1);
    expect(notOffered.stderr).toContain('does not advertise 10.99.0.0/24; it advertises 10.70.0.0/24, 10.71.0.0/24, 0.0.0.0/0, ::/0');
    for (const [args, message] of [
      [['--approve', '10.70.0.1/24'], 'has host bits set; the prefix is 10.70.0.0/24'],
      [['--unapprove', 'lan'], '"lan" is not a CIDR prefix'],
      [['--enable', '10.70.0.0/24', '--approve', '10.71.0.0/24'], '--enable sets the whole list'],
      [['--approve', '10.70.0.0/24', '--unapprove', '10.70.0.0/24'], 'both in --approve and --unapprove'],
    ] as const) {
      const r = await run(['devices', 'routes', 'gateway', ...args]);
      expect([r.status, r.stderr], args.join(' ')).toEqual([2, expect.stringContaining(message)]);
    }
    // The role document: an IT admin manages devices but cannot accept subnet routes; a network admin can.
    const it = await addUser(coord.url, key, 'example.com', 'it@example.com', 'it-admin');
    const byIt = await run(['devices', 'routes', 'gateway', '--approve', '10.70.0.0/24'], { MESHWARD_API_KEY: it.token });
    expect(byIt.status).toBe(1);
    expect(byIt.stderr).toContain('approving routes takes the owner, admin or network-admin role (an IT admin manages devices but cannot accept subnet routes or exit nodes)');
    expect((await run(['devices', 'routes', 'gateway'], { MESHWARD_API_KEY: it.token })).status).toBe(0); // reading is fine
    const net = await addUser(coord.url, key, 'example.com', 'net@example.com', 'network-admin');
    const byNet = await run(['devices', 'routes', 'gateway', '--approve', '10.70.0.0/24'], { MESHWARD_API_KEY: net.token });
    expect(byNet.status, byNet.stderr).toBe(0);
    expect(byNet.stdout).toMatch(/10\.70\.0\.0\/24\s+subnet\s+yes/);
    d.close();
  }, 180_000); // a dozen CLI runs: minutes on a busy machine
});
