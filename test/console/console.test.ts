// The admin console in a real browser (Debian's chromium, driven by playwright-core) against the real
// coord: the sharing story through the pages alone, role gating, and session security.
import { existsSync, mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FORBIDDEN_MESSAGE } from '../../coord/roles.js';
import { addUser, api, Coord, coordCli, root } from '../coord/harness.js';
import { TestDevice } from '../coord/devices.js';

const PASSWORD = 'correct horse battery staple';
const SHOTS = process.env.MESHWARD_SCREENSHOTS === '1' ? join(root, 'docs/images') : undefined;
const keyBody = { capabilities: { devices: { create: { reusable: true, preauthorized: true } } } };

const CHROMIUM = '/usr/bin/chromium';
if (!existsSync(CHROMIUM)) console.warn(`skipping the console's browser tests: ${CHROMIUM} is missing (bash scripts/bootstrap installs it)`);

describe.skipIf(!existsSync(CHROMIUM))('admin console in a browser', () => {
  const coord = new Coord();
  let browser: Browser;
  let ownerA: ReturnType<typeof api>;
  const devices: TestDevice[] = [];
  const contexts: BrowserContext[] = [];
  let evil: Server;
  let ownerLink = '';

  const shot = async (page: Page, name: string) => {
    if (!SHOTS) return;
    mkdirSync(SHOTS, { recursive: true });
    await page.screenshot({ path: join(SHOTS, `console-${name}.png`) });
  };

  const newPage = async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 760 } });
    ctx.setDefaultTimeout(10_000);
    contexts.push(ctx);
    return ctx.newPage();
  };

  const signIn = async (page: Page, email: string, path = '/admin') => {
    await page.goto(coord.url + path);
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
  };

  const row = (page: Page, machine: string) => page.getByRole('row').filter({ has: page.getByRole('rowheader').filter({ hasText: machine }) });

  beforeAll(async () => {
    await coord.start();
    // The first owner gets a one-time link to set a password from `coord tailnet create`.
    const created = coordCli(['tailnet', 'create', 'a.example', '--owner', 'alice@a.example', '--db', coord.db, '--json', '--public-url', coord.url]);
    expect(created.status, created.stderr).toBe(0);
    const { apiKey: aKey, passwordUrl } = JSON.parse(created.stdout) as { apiKey: string; passwordUrl: string };
    ownerLink = passwordUrl;
    const bKey = coord.createTailnet('b.example', 'boss@b.example');
    ownerA = api(coord.url, aKey);
    for (const [key, t, email, role] of [
      [aKey, 'a.example', 'sam@a.example', 'admin'], [aKey, 'a.example', 'mem@a.example', 'member'],
      [aKey, 'a.example', 'audrey@a.example', 'auditor'], [bKey, 'b.example', 'bob@b.example', 'admin'],
      [bKey, 'b.example', 'nina@b.example', 'network-admin'], [aKey, 'a.example', 'nate@a.example', 'network-admin'],
      [aKey, 'a.example', 'ivy@a.example', 'it-admin'], [aKey, 'a.example', 'bill@a.example', 'billing-admin'],
    ] as const) await addUser(coord.url, key, t, email, role);
    for (const [key, host] of [[aKey, 'git'], [aKey, 'web'], [bKey, 'bobdev']] as const) {
      const authKey = (await api(coord.url, key).post('/tailnet/-/keys', keyBody)).body.key;
      const d = new TestDevice(coord.url);
      await d.register(authKey, host);
      d.connect();
      devices.push(d);
    }
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      // playwright-core gives every launch a fresh, temporary profile (user data dir) of its own.
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    // A page of another site (localhost is not 127.0.0.1) that tries to change a device by posting a form.
    evil = createServer((req, res) => {
      const id = new URL(req.url!, 'http://x').searchParams.get('id');
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(`<form method="POST" enctype="text/plain" action="${coord.url}/api/v2/device/${id}/name"><input name='{"name":"pwned","x":"' value='"}'></form>
        <script>document.forms[0].submit()</script>`);
    });
    await new Promise<void>((r) => evil.listen(0, '127.0.0.1', r));
  }, 90_000);

  afterAll(async () => {
    for (const c of contexts) await c.close().catch(() => {});
    await browser?.close();
    for (const d of devices) d.close();
    evil?.close();
    await coord.cleanup();
  });

  it('serves the console with a strict CSP, hashed assets and the sign-in form', async () => {
    const r = await fetch(coord.url + '/admin');
    expect(r.status).toBe(200);
    const csp = r.headers.get('content-security-policy')!;
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    const page = await r.text();
    expect(page).not.toMatch(/<script>|<script [^>]*>[^<]/); // no inline script
    const js = /src="(\/admin\/assets\/app-[0-9a-f]{12}\.js)"/.exec(page)![1]!;
    const asset = await fetch(coord.url + js);
    expect(asset.headers.get('cache-control')).toContain('immutable');
    const p = await newPage();
    await p.goto(coord.url + '/admin/machines');
    await p.getByRole('button', { name: 'Sign in' }).waitFor();
    await shot(p, 'sign-in');
  });

  it("the owner's one-time link from coord tailnet create sets a password and lands in the console", async () => {
    expect(ownerLink).toMatch(new RegExp(`^${coord.url}/admin/invite/mwkey-invite-`));
    const p = await newPage();
    await p.goto(ownerLink);
    await p.getByRole('heading', { name: 'Set your password' }).waitFor();
    await p.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await p.getByLabel('Repeat password').fill(PASSWORD);
    await p.getByRole('button', { name: 'Set password' }).click();
    await row(p, 'git').waitFor();
    await p.getByText('alice@a.example · owner').waitFor();
    // Used once: the link is dead, and the API can do nothing with it either.
    const again = await newPage();
    await again.goto(ownerLink);
    await again.getByRole('heading', { name: 'This link cannot be used' }).waitFor();
    const code = ownerLink.split('/').pop();
    expect((await fetch(`${coord.url}/admin/api/password`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ code, password: 'another password 123' }) })).status).toBe(401);
    expect((await api(coord.url).post('/login', { tailnet: 'a.example', email: 'alice@a.example', password: PASSWORD })).status).toBe(200);
  });

  it('shares a device through the pages alone: create and copy a link, accept in another network, remove', async () => {
    const a = await newPage();
    await a.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: coord.url });
    await signIn(a, 'alice@a.example');
    await a.getByRole('heading', { name: 'Machines' }).waitFor();
    await row(a, 'git').getByText('Connected').waitFor();
    await a.getByRole('button', { name: 'Actions for git' }).click();
    await a.getByRole('menuitem', { name: 'Share…' }).click();
    await a.getByLabel('Label').fill('for Bob at B');
    await a.getByRole('button', { name: 'Create link' }).click();
    const link = await a.getByLabel('Invite link').inputValue();
    expect(link).toMatch(new RegExp(`^${coord.url}/admin/invite/mwkey-invite-`));
    await a.getByRole('button', { name: 'Copy link' }).click();
    await a.getByText('Copied').waitFor();
    expect(await a.evaluate(() => navigator.clipboard.readText())).toBe(link);
    await a.getByText('Not accepted yet').waitFor();
    await shot(a, 'share-panel');

    // The admin of the second network opens the link: the review page says what, by whom, from where.
    const b = await newPage();
    await b.goto(link);
    await b.getByRole('heading', { name: 'alice@a.example shared a device with you' }).waitFor();
    const review = await b.locator('dl').textContent();
    expect(review).toContain('git.');
    expect(review).toContain('a.example');
    await b.getByLabel('Email').fill('bob@b.example');
    await b.getByLabel('Password').fill(PASSWORD);
    await b.getByRole('button', { name: 'Sign in' }).click();
    await b.getByRole('button', { name: 'Accept' }).waitFor();
    await shot(b, 'invite');
    await b.getByRole('button', { name: 'Accept' }).click();
    await b.getByRole('status').filter({ hasText: 'Accepted' }).waitFor();
    await b.getByRole('link', { name: 'Go to Machines' }).click();
    await row(b, 'git').getByText('External').waitFor();
    await row(b, 'bobdev').waitFor();
    expect(await row(b, 'bobdev').getByText('External').count()).toBe(0);
    await shot(b, 'external');

    // The sharer's panel (still open) shows who took the link; the machine list shows it is shared.
    const taken = a.getByRole('list', { name: 'Share links' }).getByRole('listitem').filter({ hasText: 'for Bob at B' });
    await taken.getByText('bob@b.example').waitFor({ timeout: 10_000 });
    expect(await taken.locator('.avatar').textContent()).toBe('BO');
    await a.getByRole('button', { name: 'Close' }).click();
    await row(a, 'git').getByText('Shared out').waitFor({ timeout: 10_000 });
    await shot(a, 'machines');

    // The recipient removes it: gone from B's list, and the sharer's panel says so.
    await row(b, 'git').getByRole('button', { name: 'Actions for git' }).click();
    await b.getByRole('menuitem', { name: 'Remove' }).click();
    await b.getByRole('dialog').getByRole('button', { name: 'Remove' }).click();
    await row(b, 'git').waitFor({ state: 'detached' });
    await a.getByRole('button', { name: 'Actions for git' }).click();
    await a.getByRole('menuitem', { name: 'Share…' }).click();
    await taken.getByText('Removed by recipient').waitFor({ timeout: 10_000 });
    await a.getByRole('button', { name: 'Close' }).click();
    await row(a, 'git').getByText('Shared out').waitFor({ state: 'detached', timeout: 10_000 });
  });

  it('shows a multi-use link with each network that took it, and keeps it revocable', async () => {
    const a = await newPage();
    await signIn(a, 'alice@a.example');
    await row(a, 'web').waitFor();
    await a.getByRole('button', { name: 'Actions for web' }).click();
    await a.getByRole('menuitem', { name: 'Share…' }).click();
    await a.getByLabel('Label').fill('for the course');
    await a.getByLabel('Can be used by several people').check();
    await a.getByRole('button', { name: 'Create link' }).click();
    const link = await a.getByLabel('Invite link').inputValue();
    const made = (await ownerA.get(`/device/${devices[1]!.id}/device-invites`)).body.find((i: any) => i.label === 'for the course');
    expect(made).toMatchObject({ multiUse: true, accepted: false });
    const cat = api(coord.url, coord.createTailnet('c.example', 'cat@c.example'));
    const dan = api(coord.url, coord.createTailnet('d.example', 'dan@d.example'));
    for (const who of [cat, dan]) expect((await who.post('/device-invites/-/accept', { invite: link })).status).toBe(200);
    expect((await dan.del(`/device-invites/${made.id}`)).status).toBe(200);

    const item = a.getByRole('list', { name: 'Share links' }).getByRole('listitem').filter({ hasText: 'for the course' }).first();
    const took = item.getByRole('list', { name: 'Accepted for the course' });
    await took.getByRole('listitem').filter({ hasText: 'cat@c.example' }).getByText('Shared').waitFor({ timeout: 10_000 });
    await took.getByRole('listitem').filter({ hasText: 'dan@d.example' }).getByText('Removed by recipient').waitFor({ timeout: 10_000 });
    await item.getByText('Several people').waitFor();
    await shot(a, 'share-panel-multi-use');
    // Revoking the link ends cat's share too.
    await item.getByRole('button', { name: 'Revoke for the course' }).click();
    await item.waitFor({ state: 'detached', timeout: 10_000 });
    expect((await cat.get('/tailnet/-/devices')).body.devices.some((d: any) => d.isExternal)).toBe(false);
  });

  it("refuses Accept with the API's reason for a role that may not accept", async () => {
    const gitId = devices[0]!.id;
    const inv = await ownerA.post(`/device/${gitId}/device-invites`, [{ label: 'for nina' }]);
    const p = await newPage();
    await p.goto(inv.body[0].inviteUrl);
    await p.getByLabel('Email').fill('nina@b.example');
    await p.getByLabel('Password').fill(PASSWORD);
    await p.getByRole('button', { name: 'Sign in' }).click();
    await p.getByRole('button', { name: 'Accept' }).click();
    await p.getByRole('alert').filter({ hasText: FORBIDDEN_MESSAGE }).waitFor();
    expect((await ownerA.get(`/device/${gitId}/device-invites`)).body.find((i: any) => i.label === 'for nina').accepted).toBe(false);
  });

  it('a member is refused the console (and the API refuses the member too)', async () => {
    const p = await newPage();
    await signIn(p, 'mem@a.example');
    await p.getByRole('heading', { name: "You don't have access to the admin console" }).waitFor();
    expect(await p.getByRole('link', { name: 'Machines' }).count()).toBe(0);
    expect(await p.evaluate(async () => (await fetch('/api/v2/tailnet/-/devices')).status)).toBe(403);
  });

  it('an auditor sees the pages without write controls', async () => {
    const p = await newPage();
    await signIn(p, 'audrey@a.example');
    await row(p, 'git').waitFor();
    expect(await p.getByRole('button', { name: /^Actions for/ }).count()).toBe(0);
    await p.getByRole('link', { name: 'Users' }).click();
    await p.getByRole('rowheader').filter({ hasText: 'sam@a.example' }).waitFor();
    expect(await p.getByRole('button', { name: 'Invite user' }).count()).toBe(0);
    expect(await p.getByRole('combobox', { name: /^Role of/ }).count()).toBe(0);
    await p.getByRole('link', { name: 'Access controls' }).click();
    expect(await p.getByRole('textbox', { name: 'Policy file' }).getAttribute('readonly')).not.toBeNull();
    expect(await p.getByRole('button', { name: 'Save' }).count()).toBe(0);
    await p.getByRole('link', { name: 'Logs' }).click();
    await p.getByRole('heading', { name: 'Logs' }).waitFor();
  });

  // What each role finds in the console, as roles.md says (the API refuses the rest anyway).
  const ALL_PAGES = ['Machines', 'Users', 'Access controls', 'DNS', 'Logs', 'Settings'];
  const ROLE_VIEW = [
    // email, role, [Share…, Remove machine, Save policy, Invite user, Generate key, Add webhook, Billing, MagicDNS toggle]
    ['alice@a.example', 'owner', [true, true, true, true, true, true, true, true]],
    ['sam@a.example', 'admin', [true, true, true, true, true, true, true, true]],
    ['nate@a.example', 'network-admin', [false, false, true, false, true, true, false, true]],
    ['ivy@a.example', 'it-admin', [true, true, false, true, true, true, false, false]],
    ['bill@a.example', 'billing-admin', [false, false, false, false, false, false, true, false]],
    ['audrey@a.example', 'auditor', [false, false, false, false, false, false, false, false]],
  ] as const;
  for (const [email, role, want] of ROLE_VIEW) {
    it(`role ${role}: the pages it may read, and only the write controls it may use`, async () => {
      const p = await newPage();
      await signIn(p, email);
      await row(p, 'git').waitFor();
      expect(await p.getByRole('navigation', { name: 'Main' }).getByRole('link').allTextContents()).toEqual(ALL_PAGES);
      const has = async (name: string) => (await p.getByRole('button', { name, exact: true }).count()) > 0;
      const menu = p.getByRole('button', { name: 'Actions for git' });
      const items = (await menu.count()) > 0 ? (await menu.click(), await p.getByRole('menuitem').allTextContents()) : [];
      const got: boolean[] = [items.includes('Share…'), items.includes('Remove')];
      await p.getByRole('link', { name: 'Access controls' }).click();
      await p.getByRole('textbox', { name: 'Policy file' }).waitFor();
      got.push(await has('Save'));
      await p.getByRole('link', { name: 'Users' }).click();
      await p.getByRole('rowheader').filter({ hasText: 'sam@a.example' }).waitFor();
      got.push(await has('Invite user'));
      await p.getByRole('link', { name: 'Settings' }).click();
      await p.getByRole('heading', { name: 'Network', exact: true }).waitFor();
      got.push(await has('Generate key'), await has('Add webhook'), (await p.getByRole('heading', { name: 'Billing' }).count()) > 0);
      await p.getByRole('link', { name: 'DNS' }).click();
      await p.getByRole('heading', { name: 'MagicDNS' }).waitFor();
      got.push(await has('Disable MagicDNS'));
      expect(got).toEqual(want);
    });
  }

  it('settings: a new key is shown once, and works as an API key', async () => {
    const p = await newPage();
    await signIn(p, 'sam@a.example');
    await p.getByRole('link', { name: 'Settings' }).click();
    await p.getByLabel('Kind').selectOption('api');
    await p.getByLabel('Description').fill('ci');
    await p.getByRole('button', { name: 'Generate key' }).click();
    const secret = await p.getByLabel(/New API access token/).inputValue();
    expect(secret).toMatch(/^mwkey-api-/);
    expect((await api(coord.url, secret).get('/tailnet/-/devices')).status).toBe(200);
    await shot(p, 'settings');
    await p.reload();
    await p.getByRole('button', { name: 'Generate key' }).waitFor();
    expect(await p.getByLabel(/New API access token/).count()).toBe(0);
    expect(await p.content()).not.toContain(secret);
  });

  it('keeps the session out of reach of scripts and other sites, and signing out ends it', async () => {
    const p = await newPage();
    await signIn(p, 'sam@a.example');
    await row(p, 'git').waitFor();
    expect(await p.evaluate(() => document.cookie)).toBe('');
    const [cookie] = await p.context().cookies();
    expect(cookie).toMatchObject({ name: 'mw_session', httpOnly: true, sameSite: 'Strict' });

    // Same origin, but without the CSRF header: refused.
    const noCsrf = await p.evaluate(async () => {
      const r = await fetch('/api/v2/tailnet/-/keys', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"capabilities":{"devices":{"create":{}}}}' });
      return { status: r.status, body: await r.json() };
    });
    expect(noCsrf.status).toBe(403);
    expect(noCsrf.body.message).toContain('CSRF');

    // A page of another site posts a form at the API with the browser's cookies: nothing changes.
    const gitId = devices[0]!.id;
    const posted = p.waitForEvent('response', (r) => r.url().includes(`/device/${gitId}/name`));
    await p.goto(`http://localhost:${(evil.address() as AddressInfo).port}/?id=${gitId}`);
    expect([401, 403]).toContain((await posted).status());
    expect((await ownerA.get(`/device/${gitId}`)).body.name).toMatch(/^git\./);

    // Signing out ends the session on the server, not just in this browser.
    await p.goto(coord.url + '/admin/machines');
    await p.getByRole('button', { name: 'Sign out' }).click();
    await p.getByRole('button', { name: 'Sign in' }).waitFor();
    const replay = await fetch(coord.url + '/api/v2/tailnet/-/devices', { headers: { cookie: `mw_session=${cookie!.value}` } });
    expect(replay.status).toBe(401);
    expect(await p.context().cookies()).toEqual([]);
  });

  it('policy editor: errors at their line, failing tests block the save, a concurrent edit is detected, preview shows rule lines', async () => {
    const gitIp = (await ownerA.get(`/device/${devices[0]!.id}`)).body.addresses[0];
    const good = '{\n  // admins reach SSH everywhere\n  "acls": [\n    {"action": "accept", "src": ["sam@a.example"], "dst": ["*:22"]},\n  ],\n}\n';
    const p = await newPage();
    await signIn(p, 'sam@a.example');
    await p.getByRole('link', { name: 'Access controls' }).click();
    const editor = p.getByRole('textbox', { name: 'Policy file' });
    await editor.waitFor();
    const before = (await ownerA.get('/tailnet/-/acl', { accept: 'application/hujson' })).text;
    expect(await editor.inputValue()).toBe(before);

    // A syntax error: shown at its line and column, nothing stored.
    await editor.fill(good.replace('"], "dst"', '"] "dst"'));
    await p.getByRole('button', { name: 'Save' }).click();
    await p.getByRole('alert').getByText(/^Line 4, column \d+/).waitFor();
    expect(await p.locator('.gutter .bad').textContent()).toBe('4');
    await shot(p, 'acls-error');

    // A failing test in the file: the save is refused with the failure, and the stored policy stays.
    const failing = good.replace('  ],\n}', `  ],\n  "tests": [{"src": "sam@a.example", "accept": ["${gitIp}:80"]}],\n}`);
    await editor.fill(failing);
    await p.getByRole('button', { name: 'Save' }).click();
    await p.getByRole('alert').getByText('The policy was not saved.').waitFor();
    expect(await p.getByRole('alert').textContent()).toContain(`${gitIp}:80`);
    expect((await ownerA.get('/tailnet/-/acl', { accept: 'application/hujson' })).text).toBe(before);

    // A good file saves; then someone else changes the policy and this editor's save is refused.
    await editor.fill(good);
    await p.getByRole('button', { name: 'Save' }).click();
    await p.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
    const theirs = good.replace('*:22', '*:22,443');
    expect((await ownerA.post('/tailnet/-/acl', theirs)).status).toBe(200);
    await editor.fill(good.replace('*:22', '*:*'));
    await p.getByRole('button', { name: 'Save' }).click();
    await p.getByRole('alert').getByText('Someone changed the policy since you opened it', { exact: false }).waitFor();
    expect((await ownerA.get('/tailnet/-/acl', { accept: 'application/hujson' })).text).toBe(theirs);
    await p.getByRole('button', { name: 'Load their version' }).click();
    await p.waitForFunction((t) => (document.querySelector('textarea') as HTMLTextAreaElement).value === t, theirs);

    // Preview: the rules that apply to a user, with the policy's line numbers.
    await p.getByLabel('User email').fill('sam@a.example');
    await p.getByRole('button', { name: 'Preview rules' }).click();
    const rules = p.getByRole('table', { name: 'Matching rules' });
    await rules.getByRole('button', { name: 'line 4' }).waitFor();
    expect(await rules.textContent()).toContain('*:22,443');
    await shot(p, 'acls');
  });

  it("users and machines: change a role, suspend and restore, rename; a refused write shows the API's message", async () => {
    const p = await newPage();
    await signIn(p, 'sam@a.example');
    await p.getByRole('link', { name: 'Users' }).click();
    const memRow = p.getByRole('row').filter({ has: p.getByRole('rowheader').filter({ hasText: 'mem@a.example' }) });
    const changed = p.waitForResponse((r) => r.url().endsWith('/role'));
    await p.getByRole('combobox', { name: 'Role of mem@a.example' }).selectOption('auditor');
    expect((await changed).status()).toBe(200);
    const mem = () => ownerA.get('/tailnet/-/users').then((r) => r.body.users.find((u: any) => u.loginName === 'mem@a.example'));
    expect((await mem()).role).toBe('auditor');
    await p.getByRole('button', { name: 'Suspend mem@a.example' }).click();
    await memRow.getByRole('cell', { name: 'suspended' }).waitFor();
    expect((await mem()).status).toBe('suspended');
    await p.getByRole('button', { name: 'Restore mem@a.example' }).click();
    await memRow.getByRole('cell', { name: 'active' }).waitFor();
    expect((await ownerA.post(`/users/${(await mem()).id}/role`, { role: 'member' })).status).toBe(200);
    // The console offers the control; the API refuses, and the page says why in the API's words.
    await p.getByRole('combobox', { name: 'Role of sam@a.example' }).selectOption('member');
    await p.getByRole('alert').filter({ hasText: 'users cannot change their own role' }).waitFor();
    expect(await p.getByRole('combobox', { name: 'Role of sam@a.example' }).inputValue()).toBe('admin');

    await p.getByRole('link', { name: 'Machines' }).click();
    await p.getByRole('button', { name: 'Actions for web' }).click();
    await p.getByRole('menuitem', { name: 'Rename…' }).click();
    await p.getByLabel('Machine name').fill('www');
    await p.getByRole('dialog').getByRole('button', { name: 'Save' }).click();
    await row(p, 'www').waitFor();
    expect((await ownerA.get(`/device/${devices[1]!.id}`)).body.name).toMatch(/^www\./);
  });

  it('works at phone width and from the keyboard', async () => {
    const p = await newPage();
    await p.setViewportSize({ width: 390, height: 800 });
    await signIn(p, 'sam@a.example');
    await row(p, 'git').waitFor();
    // Nothing but the table scrolls sideways: the page itself fits the screen.
    expect(await p.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await p.getByRole('button', { name: 'Actions for git' }).focus();
    await p.keyboard.press('Enter');
    await p.getByRole('menuitem', { name: 'Share…' }).focus();
    await p.keyboard.press('Enter');
    await p.getByRole('dialog', { name: 'Share git' }).waitFor();
    expect(await p.evaluate(() => document.activeElement?.getAttribute('name'))).toBe('label');
    await p.keyboard.type('keyboard');
    await p.keyboard.press('Enter');
    await p.getByRole('button', { name: 'Copy link' }).waitFor();
    await shot(p, 'phone');
    await p.keyboard.press('Escape');
    await p.getByRole('dialog').waitFor({ state: 'detached' });
  });

  it('a user invite link sets a password and lands in the console', async () => {
    const inv = await ownerA.post('/tailnet/-/user-invites', [{ email: 'newbie@a.example', role: 'it-admin' }]);
    const p = await newPage();
    await p.goto(inv.body[0].inviteUrl);
    await p.getByRole('heading', { name: 'Join a.example' }).waitFor();
    await p.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await p.getByLabel('Repeat password').fill(PASSWORD);
    await p.getByRole('button', { name: 'Create account' }).click();
    await row(p, 'git').waitFor();
    await p.getByText('newbie@a.example · it-admin').waitFor();
    await p.getByRole('link', { name: 'Users' }).click();
    await p.getByRole('button', { name: 'Invite user' }).waitFor();
    await shot(p, 'users');
  });
});
