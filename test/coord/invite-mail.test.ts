// Invites by mail against a real SMTP server (aiosmtpd, with AUTH) and the real coord: a new invite with
// an address is mailed, a resend mails a new code and the old one stops working, the mailed links
// work, a mail server that is down is reported and loses nothing, roles are checked, and a coord without
// a mail server says so. The server's password is never printed.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addUser, api, Coord, root } from './harness.js';
import { AdminClient } from '../../coord/client/index.js';
import { TestDevice } from './devices.js';
import { linkIn, SmtpSink, type SinkMail } from './smtp-sink.js';

const PASSWORD = 'correct horse battery staple';
const FROM = 'meshward <invites@example.com>';

/** Waits until the sink holds more than `before` mails; returns the new ones. */
async function newMails(sink: SmtpSink, before: number, count = 1): Promise<SinkMail[]> {
  await expect.poll(() => sink.mails().length, { timeout: 10_000 }).toBeGreaterThanOrEqual(before + count);
  return sink.mails().slice(before);
}

describe('invites by mail', () => {
  const sink = new SmtpSink();
  const coord = new Coord();
  const devices: TestDevice[] = [];
  let ownerKey = '';
  let owner: ReturnType<typeof api>;
  let partner: ReturnType<typeof api>;
  let anon: ReturnType<typeof api>;
  let deviceId = '';
  /** The console's page data for an invite link's code: 200 while the code is good, 404 once it is not. */
  const invitePage = async (code: string) => (await fetch(`${coord.url}/admin/api/invite/${encodeURIComponent(code)}`)).status;

  beforeAll(async () => {
    await sink.start();
    // From a file (mode 0600), as an operator keeps it out of `ps`.
    const urlFile = join(coord.dir, 'smtp-url');
    writeFileSync(urlFile, sink.url + '\n', { mode: 0o600 });
    await coord.start(['--smtp-url-file', urlFile, '--mail-from', FROM, '--log-level', 'info']);
    ownerKey = coord.createTailnet('example.com', 'alice@example.com');
    owner = api(coord.url, ownerKey);
    partner = api(coord.url, coord.createTailnet('partner.com', 'pat@partner.com'));
    anon = api(coord.url);
    const key = await owner.post('/tailnet/-/keys', { capabilities: { devices: { create: { reusable: true, preauthorized: true } } } });
    const d = new TestDevice(coord.url);
    devices.push(d);
    await d.register(key.body.key, 'server');
    deviceId = d.id;
  }, 60_000);
  afterAll(async () => {
    for (const d of devices) d.close();
    await coord.cleanup();
    await sink.cleanup();
  });

  it('mails a new user invite, and a resend mails a new code that replaces the old one', async () => {
    const before = sink.mails().length;
    const created = await owner.post('/tailnet/-/user-invites', [{ email: 'bob@example.com', role: 'admin' }]);
    expect(created.status, created.text).toBe(200);
    const inv = created.body[0];
    expect(inv.lastEmailSentAt).toEqual(expect.any(String));
    const [first] = await newMails(sink, before);
    expect(first).toMatchObject({ rcptTos: ['bob@example.com'], user: sink.user, mailFrom: 'invites@example.com', to: 'bob@example.com' });
    expect(first!.from).toContain('invites@example.com');
    expect(first!.subject).toContain('example.com');
    expect(first!.text).toContain('as admin');
    expect(linkIn(first!)).toEqual({ link: inv.inviteUrl, code: inv.code });
    expect(linkIn(first!).link.startsWith(`${coord.url}/admin/invite/`)).toBe(true);

    const r = await owner.post(`/user-invites/${inv.id}/resend`);
    expect(r.status, r.text).toBe(200);
    expect(r.body).toEqual({});
    const [second] = await newMails(sink, before + 1);
    expect(second!.rcptTos).toEqual(['bob@example.com']);
    const fresh = linkIn(second!).code;
    expect(fresh).not.toBe(inv.code);
    expect(fresh.startsWith(`mwkey-invite-${inv.id}-`)).toBe(true);
    const got = await owner.get(`/user-invites/${inv.id}`);
    expect(Date.parse(got.body.lastEmailSentAt)).toBeGreaterThanOrEqual(Date.parse(inv.lastEmailSentAt));

    // The audit log says who resent what.
    const log = (await owner.get('/tailnet/-/logging/configuration')).body.logs as any[];
    const resend = log.find((e) => e.action === 'RESEND' && e.target.id === inv.id);
    expect(resend).toMatchObject({ origin: 'CONFIG_API', actor: { loginName: 'alice@example.com' }, target: { type: 'INVITE', property: 'TAILNET_INVITE', name: 'bob@example.com' } });

    // The console's invite page knows the mailed link; the old code is dead, the mailed one admits bob.
    expect(await invitePage(fresh)).toBe(200);
    expect(await invitePage(inv.code)).toBe(404);
    const old = await anon.post('/user-invites/-/accept', { code: inv.code, password: PASSWORD });
    expect(old.status).toBe(401);
    const ok = await anon.post('/user-invites/-/accept', { code: fresh, password: PASSWORD });
    expect(ok.status, ok.text).toBe(200);
    expect(ok.body).toMatchObject({ loginName: 'bob@example.com', role: 'admin' });

    // Accepted: nothing to resend.
    const again = await owner.post(`/user-invites/${inv.id}/resend`);
    expect(again.status).toBe(409);
    expect(again.body.message).toMatch(/accepted already/);
  });

  it('mails a device invite to its "email"; a resend mails a new link and the old one stops working', async () => {
    const before = sink.mails().length;
    const created = await owner.post(`/device/${deviceId}/device-invites`, [{ email: 'pat@partner.com' }, {}]);
    expect(created.status, created.text).toBe(200);
    const [withMail, without] = created.body;
    expect(withMail).toMatchObject({ email: 'pat@partner.com', lastEmailSentAt: expect.any(String) });
    expect(without.email).toBeUndefined();
    expect(without.lastEmailSentAt).toBeUndefined();
    const [first] = await newMails(sink, before);
    expect(sink.mails()).toHaveLength(before + 1); // the invite without an address is not mailed
    expect(first!.rcptTos).toEqual(['pat@partner.com']);
    expect(first!.subject).toContain('alice@example.com');
    expect(first!.text).toContain('server.');
    expect(linkIn(first!).link).toBe(withMail.inviteUrl);

    // Through the typed client, as scripts call it.
    await new AdminClient(coord.url, ownerKey).resendDeviceInvite(withMail.id);
    const [second] = await newMails(sink, before + 1);
    expect(second!.rcptTos).toEqual(['pat@partner.com']);
    const { link } = linkIn(second!);
    expect(link).not.toBe(withMail.inviteUrl);
    const log = (await owner.get('/tailnet/-/logging/configuration')).body.logs as any[];
    expect(log.find((e) => e.action === 'RESEND' && e.target.id === withMail.id)).toMatchObject({ target: { type: 'INVITE', property: 'NODE_SHARE' } });

    const old = await partner.post('/device-invites/-/accept', { invite: withMail.inviteUrl });
    expect(old.status).toBe(404);
    const ok = await partner.post('/device-invites/-/accept', { invite: link });
    expect(ok.status, ok.text).toBe(200);
    expect(ok.body.acceptedBy.loginName).toBe('pat@partner.com');

    // No address: nothing to send it to. Accepted: nothing to resend.
    const noMail = await owner.post(`/device-invites/${without.id}/resend`);
    expect(noMail.status).toBe(400);
    expect(noMail.body.message).toMatch(/no "email"/);
    expect((await owner.post(`/device-invites/${withMail.id}/resend`)).status).toBe(409);
  });

  it('refuses callers whose role may not invite (403), and invites of other networks are not found', async () => {
    const userInv = (await owner.post('/tailnet/-/user-invites', [{ email: 'erin@example.com' }])).body[0];
    const devInv = (await owner.post(`/device/${deviceId}/device-invites`, [{ email: 'erin@partner.com' }])).body[0];
    const before = sink.mails().length;
    const auditor = api(coord.url, (await addUser(coord.url, ownerKey, 'example.com', 'audrey@example.com', 'auditor')).token);
    const netAdmin = api(coord.url, (await addUser(coord.url, ownerKey, 'example.com', 'nadia@example.com', 'network-admin')).token);
    const invitesMailed = 2; // addUser's own two invites
    for (const [who, path] of [[auditor, `/user-invites/${userInv.id}/resend`], [auditor, `/device-invites/${devInv.id}/resend`], [netAdmin, `/user-invites/${userInv.id}/resend`], [netAdmin, `/device-invites/${devInv.id}/resend`]] as const) {
      const r = await who.post(path);
      expect(r.status, `${path}: ${r.text}`).toBe(403);
    }
    for (const path of [`/user-invites/${userInv.id}/resend`, `/device-invites/${devInv.id}/resend`]) {
      expect((await partner.post(path)).status, path).toBe(404);
    }
    await new Promise((r) => setTimeout(r, 300));
    expect(sink.mails()).toHaveLength(before + invitesMailed);
  });

  it('does not mail a link that cannot work: the inviter may no longer invite', async () => {
    const ivan = await addUser(coord.url, ownerKey, 'example.com', 'ivan@example.com', 'admin');
    const inv = (await api(coord.url, ivan.token).post('/tailnet/-/user-invites', [{ email: 'henry@example.com' }])).body[0];
    expect((await owner.post(`/users/${ivan.id}/suspend`)).status).toBe(200);
    const before = sink.mails().length;
    const r = await owner.post(`/user-invites/${inv.id}/resend`);
    expect(r.status).toBe(409);
    expect(r.body.message).toMatch(/may no longer invite users/);
    await new Promise((res) => setTimeout(res, 300));
    expect(sink.mails()).toHaveLength(before);
    // The inviter back: the resend goes out.
    expect((await owner.post(`/users/${ivan.id}/restore`)).status).toBe(200);
    expect((await owner.post(`/user-invites/${inv.id}/resend`)).status).toBe(200);
    expect((await newMails(sink, before))[0]!.rcptTos).toEqual(['henry@example.com']);
  });

  it('a mail server that is down: the error says so and nothing is lost', async () => {
    const inv = (await owner.post('/tailnet/-/user-invites', [{ email: 'carol@example.com' }])).body[0];
    const devInv = (await owner.post(`/device/${deviceId}/device-invites`, [{ email: 'carol@partner.com' }])).body[0];
    const auditBefore = (await owner.get('/tailnet/-/logging/configuration')).body.logs.length;
    await sink.stop();

    for (const path of [`/user-invites/${inv.id}/resend`, `/device-invites/${devInv.id}/resend`]) {
      const r = await owner.post(path);
      expect(r.status, r.text).toBe(502);
      expect(r.body.message).toContain(`the mail server smtp://coord@127.0.0.1:${sink.port} did not take the mail`);
      expect(r.body.message).toMatch(/ECONNREFUSED/);
    }
    // A new invite is still made, its code in the answer, and the failed mail named.
    const made = await owner.post('/tailnet/-/user-invites', [{ email: 'dave@example.com' }]);
    expect(made.status, made.text).toBe(200);
    expect(made.body[0].code).toMatch(/^mwkey-invite-/);
    expect(made.body[0].lastEmailSentAt).toBeUndefined();
    expect(made.body[0].mailError).toMatch(/did not take the mail/);

    // Nothing changed: same mail times, no RESEND entry, and the codes given out before still work.
    expect((await owner.get(`/user-invites/${inv.id}`)).body.lastEmailSentAt).toBe(inv.lastEmailSentAt);
    expect((await owner.get(`/device-invites/${devInv.id}`)).body.lastEmailSentAt).toBe(devInv.lastEmailSentAt);
    expect(await invitePage(linkIn({ text: devInv.inviteUrl } as SinkMail).code)).toBe(200);
    const log = (await owner.get('/tailnet/-/logging/configuration')).body.logs as any[];
    expect(log.length).toBe(auditBefore + 1); // the new invite only
    expect(log.filter((e) => e.action === 'RESEND' && [inv.id, devInv.id].includes(e.target.id))).toEqual([]);
    expect((await anon.post('/user-invites/-/accept', { code: made.body[0].code, password: PASSWORD })).status).toBe(200);
    expect((await anon.post('/user-invites/-/accept', { code: inv.code, password: PASSWORD })).status).toBe(200);

    // Back up: a resend goes out again.
    await sink.start();
    const before = sink.mails().length;
    const r = await owner.post(`/device-invites/${devInv.id}/resend`);
    expect(r.status, r.text).toBe(200);
    const [mail] = await newMails(sink, before);
    expect(mail!.rcptTos).toEqual(['carol@partner.com']);
  });

  it('`coord users invite` says whether the invite was mailed', async () => {
    const cli = (email: string) => spawnSync(process.execPath, [join(root, 'dist/coord/main.js'), 'users', 'invite', email], {
      encoding: 'utf8', env: { ...process.env, MESHWARD_COORD: coord.url, MESHWARD_API_KEY: ownerKey }, timeout: 15_000,
    });
    const before = sink.mails().length;
    const r = cli('frank@example.com');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('invited frank@example.com as member and mailed them the link');
    const [mail] = await newMails(sink, before);
    expect(r.stdout).toContain(linkIn(mail!).code);

    await sink.stop();
    try {
      const down = cli('grace@example.com');
      expect(down.status, down.stderr).toBe(0);
      expect(down.stdout).toContain('invited grace@example.com as member; send them this one-time code');
      expect(down.stdout).toMatch(/the mail did not go out: the mail server .* did not take the mail/);
    } finally {
      await sink.start();
    }
  });

  it('never prints the mail server\'s password, nor shows it in the process list', () => {
    expect(coord.stdout + coord.stderr).toContain(`smtp://coord@127.0.0.1:`);
    for (const secret of [sink.password, encodeURIComponent(sink.password)]) {
      expect(coord.stdout + coord.stderr).not.toContain(secret);
      expect(execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' })).not.toContain(secret);
    }
  });
});

describe('a mail server that refuses coord\'s password', () => {
  const sink = new SmtpSink('coord', 'the right password');
  const coord = new Coord();

  afterAll(async () => {
    await coord.cleanup();
    await sink.cleanup();
  });

  it('the refusal reaches the caller and the log, the password (wrong as it is) none of them', async () => {
    await sink.start();
    const wrong = 'wrong-pass-8Qz1';
    const urlFile = join(coord.dir, 'smtp-url');
    writeFileSync(urlFile, sink.url.replace(encodeURIComponent(sink.password), wrong) + '\n', { mode: 0o600 });
    await coord.start(['--smtp-url-file', urlFile, '--mail-from', FROM, '--log-level', 'debug']);
    const owner = api(coord.url, coord.createTailnet('example.com', 'alice@example.com'));
    const made = await owner.post('/tailnet/-/user-invites', [{ email: 'bob@example.com' }]);
    expect(made.status).toBe(200);
    expect(made.body[0].mailError).toMatch(/did not take the mail: .*(auth|535)/i);
    const resend = await owner.post(`/user-invites/${made.body[0].id}/resend`);
    expect(resend.status).toBe(502);
    expect(resend.body.message).toMatch(/did not take the mail/);
    const audit = await owner.get('/tailnet/-/logging/configuration');
    const seen = made.text + resend.text + audit.text + coord.stdout + coord.stderr + execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' });
    expect(seen).toContain('smtp://coord@127.0.0.1:');
    for (const secret of [wrong, sink.password, Buffer.from(`\0coord\0${wrong}`).toString('base64'), Buffer.from(wrong).toString('base64')]) expect(seen).not.toContain(secret);
    expect(sink.mails()).toEqual([]);
  }, 60_000);
});

describe('a coord without a mail server', () => {
  const coord = new Coord();
  const device = { current: undefined as TestDevice | undefined };
  let owner: ReturnType<typeof api>;

  beforeAll(async () => {
    await coord.start();
    owner = api(coord.url, coord.createTailnet('example.com', 'alice@example.com'));
    const key = await owner.post('/tailnet/-/keys', { capabilities: { devices: { create: { reusable: true, preauthorized: true } } } });
    device.current = new TestDevice(coord.url);
    await device.current.register(key.body.key, 'server');
  });
  afterAll(async () => {
    device.current?.close();
    await coord.cleanup();
  });

  it('says so on a resend, and still makes invites (unmailed)', async () => {
    const made = await owner.post('/tailnet/-/user-invites', [{ email: 'bob@example.com' }]);
    expect(made.status).toBe(200);
    expect(made.body[0].lastEmailSentAt).toBeUndefined();
    expect(made.body[0].mailError).toBeUndefined();
    const shared = await owner.post(`/device/${device.current!.id}/device-invites`, [{ email: 'pat@partner.com' }]);
    expect(shared.status).toBe(200);
    expect(shared.body[0]).toMatchObject({ email: 'pat@partner.com' });
    expect(shared.body[0].lastEmailSentAt).toBeUndefined();
    for (const path of [`/user-invites/${made.body[0].id}/resend`, `/device-invites/${shared.body[0].id}/resend`]) {
      const r = await owner.post(path);
      expect(r.status, r.text).toBe(501);
      expect(r.body.message).toMatch(/^coord has no mail server: start it with --smtp-url/);
    }
    // A request that could not be carried out anyway says what is wrong with it first.
    expect((await owner.post('/device-invites/dNOSUCHINVITE/resend')).status).toBe(404);
    // The code shown at creation still works: the refused resend changed nothing.
    expect((await api(coord.url).post('/user-invites/-/accept', { code: made.body[0].code, password: PASSWORD })).status).toBe(200);
  });

  it('explains bad mail flags at start-up without printing the password', () => {
    const db = join(coord.dir, 'flags.db');
    const cases: [string[], Record<string, string>, RegExp][] = [
      [['--smtp-url', 'http://u:hunter2secret@mail.example.com'], {}, /--smtp-url: the SMTP URL must start with smtp:\/\/ or smtps:\/\//],
      [['--mail-from', 'x@example.com'], {}, /--mail-from needs a mail server/],
      [['--smtp-url', 'smtp://coord:hunter2secret@127.0.0.1:2525'], {}, /--mail-from ADDRESS is needed/],
      [['--smtp-url', 'smtp://a%40x.com:hunter2secret@127.0.0.1:2525', '--mail-from', 'bad\naddress'], {}, /--mail-from .*expected an address/],
      [['--smtp-url-file', join(coord.dir, 'missing')], {}, /--smtp-url-file .*missing: ENOENT/],
      [[], { MESHWARD_SMTP_URL: 'smtp://u:hunter2secret@mail.example.com/x' }, /MESHWARD_SMTP_URL: the SMTP URL has a path/],
    ];
    for (const [flags, env, why] of cases) {
      const r = spawnSync(process.execPath, [join(root, 'dist/coord/main.js'), 'serve', '--listen', '127.0.0.1:0', '--stun-port', '0', '--db', db, ...flags], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 15_000 });
      expect(r.status, `${flags.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(why);
      expect(r.stderr + r.stdout).not.toContain('hunter2secret');
    }
  });
});

describe('a mail server that speaks SMTPS', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mw-smtps-'));
  const tls = { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') };
  const sink = new SmtpSink('coord', 'another secret', tls);
  /** Trusts the sink's self-signed certificate (NODE_EXTRA_CA_CERTS, as an operator adds a private CA). */
  const trusting = new Coord();
  /** Does not: the system's CAs only. */
  const doubting = new Coord();

  beforeAll(async () => {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=smtp-sink-test', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', tls.key, '-out', tls.cert], { stdio: 'ignore' });
    await sink.start();
    expect(sink.url.startsWith('smtps://')).toBe(true);
    const flags = ['--smtp-url', sink.url, '--mail-from', 'coord@example.com'];
    process.env.NODE_EXTRA_CA_CERTS = tls.cert; // the child coord inherits it
    try {
      await trusting.start(flags);
    } finally {
      delete process.env.NODE_EXTRA_CA_CERTS;
    }
    await doubting.start(flags);
  }, 60_000);
  afterAll(async () => {
    await trusting.cleanup();
    await doubting.cleanup();
    await sink.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('mails over TLS when coord trusts the certificate, and refuses a server it cannot verify', async () => {
    const good = api(trusting.url, trusting.createTailnet('example.com', 'alice@example.com'));
    const made = await good.post('/tailnet/-/user-invites', [{ email: 'bob@example.com' }]);
    expect(made.status, made.text).toBe(200);
    expect(made.body[0].mailError).toBeUndefined();
    const [mail] = await newMails(sink, 0);
    expect(mail).toMatchObject({ rcptTos: ['bob@example.com'], user: 'coord' });
    expect(linkIn(mail!).code).toBe(made.body[0].code);

    const bad = api(doubting.url, doubting.createTailnet('example.com', 'alice@example.com'));
    const unverified = await bad.post('/tailnet/-/user-invites', [{ email: 'carol@example.com' }]);
    expect(unverified.status, unverified.text).toBe(200);
    expect(unverified.body[0].mailError).toMatch(/did not take the mail: .*certificate/);
    const r = await bad.post(`/user-invites/${unverified.body[0].id}/resend`);
    expect(r.status).toBe(502);
    expect(r.body.message).toMatch(/^the mail server smtps:\/\/coord@127\.0\.0\.1:\d+ did not take the mail: .*certificate/);
    await new Promise((res) => setTimeout(res, 300));
    expect(sink.mails()).toHaveLength(1);
  });
});
