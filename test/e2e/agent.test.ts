// The node agent end to end: coord in the root namespace on a virtual LAN, three agents (a, b, c)
// each in its own namespace with its own state directory and socket, real TUN devices, real UDP.
// Policy: a → b:22 only (and c → a:9, so that a also has c as a peer and can show it in status).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callDaemon } from '../../agent/localapi/client.js';
import type { AgentStatus, WhoisResponse } from '../../agent/localapi/types.js';
import { nativeAvailable } from '../../native/index.js';
import { VirtualLan } from '../../scripts/netns.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const AGENT = join(root, 'dist/agent/main.js');
const COORD = join(root, 'dist/coord/main.js');
const isRoot = process.getuid?.() === 0;
const NAMES = ['a', 'b', 'c'] as const;
type Name = (typeof NAMES)[number];

const policy = (aToB = ['tcp:22']) => `{
  // the e2e policy: a may reach b on port 22 only; c may reach a on port 9
  "tagOwners": {"tag:a": ["alice@example.com"], "tag:b": ["alice@example.com"], "tag:c": ["alice@example.com"]},
  "grants": [
    {"src": ["tag:a"], "dst": ["tag:b"], "ip": ${JSON.stringify(aToB)}},
    {"src": ["tag:c"], "dst": ["tag:a"], "ip": ["tcp:9"]},
    {"src": ["tag:a"], "dst": ["tag:b"], "app": {"example.com/cap/deploy": [{"role": "ops"}]}},
  ],
}`;

// A TCP helper run inside namespaces: "listen PORT..." echoes, "connect HOST PORT MS" tries once,
// "probe HOST PORT" tries every 50 ms until a connection echoes, printing the time it did;
// "probe-closed HOST PORT" until a connection attempt goes unanswered, printing when that attempt began.
const TCP_HELPER = `
const net = require('net');
const [mode, ...a] = process.argv.slice(2);
if (mode === 'listen') {
  let n = 0;
  for (const p of a) net.createServer((s) => s.pipe(s)).listen(Number(p), '::', () => { if (++n === a.length) console.log('ready'); });
} else {
  const once = (host, port, ms, done) => {
    const s = net.connect({ host, port: Number(port) });
    const t = setTimeout(() => { s.destroy(); done('timeout'); }, ms);
    s.on('connect', () => s.write('ping'));
    s.on('data', (d) => { clearTimeout(t); s.destroy(); done(d.toString() === 'ping' ? null : 'bad echo'); });
    s.on('error', (e) => { clearTimeout(t); done(e.code || e.message); });
  };
  if (mode === 'connect') once(a[0], a[1], Number(a[2]), (err) => { console.log(err ? 'fail ' + err : 'ok'); process.exit(err ? 1 : 0); });
  else if (mode === 'probe') { const loop = () => once(a[0], a[1], 250, (err) => err ? setTimeout(loop, 50) : (console.log('ok ' + Date.now()), process.exit(0))); loop(); }
  else { const loop = (t) => once(a[0], a[1], 250, (err) => err === 'timeout' ? (console.log('ok ' + t), process.exit(0)) : setTimeout(() => loop(Date.now()), 50)); loop(Date.now()); }
}`;

async function waitFor<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

describe.skipIf(!isRoot || !nativeAvailable())('agent daemon end to end (coord + three agents in namespaces)', () => {
  let lan: VirtualLan;
  let dir = '';
  let coord: ChildProcess | null = null;
  let coordUrl = '';
  let apiKey = '';
  const agents = new Map<Name, ChildProcess>();
  const addr: Partial<Record<Name, string>> = {};
  const addr6: Partial<Record<Name, string>> = {};
  const sock = (n: Name) => join(dir, n, 'agent.sock');
  const stateDir = (n: Name) => join(dir, n, 'state');
  const helper = () => join(dir, 'tcp.cjs');

  /** Runs `agent ARGS --socket S` inside a namespace; returns exit status, stdout, stderr. */
  function cli(n: Name, args: string[]): { status: number; stdout: string; stderr: string } {
    try {
      const stdout = lan.exec(n, process.execPath, [AGENT, ...args, '--socket', sock(n)], { timeoutMs: 30_000 });
      return { status: 0, stdout, stderr: '' };
    } catch (err) {
      const e = err as { status: number; stdout: string; stderr: string };
      return { status: e.status, stdout: String(e.stdout), stderr: String(e.stderr) };
    }
  }
  const status = (n: Name) => JSON.parse(cli(n, ['status', '--json']).stdout) as AgentStatus;

  function startAgent(n: Name): ChildProcess {
    rmSync(sock(n), { force: true });
    const p = lan.spawn(n, process.execPath, [AGENT, 'daemon', '--state-dir', stateDir(n), '--socket', sock(n), '--log-level', 'debug']);
    const log = createWriteStream(join(dir, `${n}.log`), { flags: 'a' });
    p.stdout!.pipe(log);
    p.stderr!.pipe(log);
    agents.set(n, p);
    return p;
  }

  async function stopAgent(n: Name): Promise<void> {
    const p = agents.get(n);
    if (!p || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    // A daemon that does not stop within 5 s is killed (and the test that needed a clean stop fails).
    const timer = setTimeout(() => p.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
    agents.delete(n);
    expect(p.signalCode, `agent ${n} did not stop on SIGTERM`).toBeNull();
  }

  function connect(from: Name, to: Name, port: number, ms = 1500, family: 4 | 6 = 4): string {
    try {
      const target = family === 4 ? addr[to]! : addr6[to]!;
      return lan.exec(from, process.execPath, [helper(), 'connect', target, String(port), String(ms)]).trim();
    } catch (err) {
      return String((err as { stdout: string }).stdout).trim();
    }
  }

  /** Starts a prober in `from` that reports when a connection to `to`:port first works (or first fails). */
  function probe(from: Name, to: Name, port: number, mode: 'probe' | 'probe-closed' = 'probe'): Promise<number> {
    const p = lan.spawn(from, process.execPath, [helper(), mode, addr[to]!, String(port)]);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        p.kill();
        reject(new Error(`no connection ${from} → ${to}:${port} within 15 s`));
      }, 15_000);
      createInterface({ input: p.stdout! }).on('line', (line) => {
        const m = /^ok (\d+)$/.exec(line);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
    });
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mw-agent-e2e-'));
    writeFileSync(join(dir, 'tcp.cjs'), TCP_HELPER);
    lan = VirtualLan.create();
    NAMES.forEach((n, i) => lan.addHost(n, i + 2));

    const db = join(dir, 'coord.db');
    const created = execFileSync(process.execPath, [COORD, 'tailnet', 'create', 'example.com', '--owner', 'alice@example.com', '--db', db, '--json'], {
      encoding: 'utf8',
    });
    apiKey = (JSON.parse(created) as { apiKey: string }).apiKey;
    coord = spawn(process.execPath, [COORD, 'serve', '--listen', `${lan.gateway}:0`, '--db', db, '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
    coord.stderr!.pipe(createWriteStream(join(dir, 'coord.log')));
    coordUrl = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('coord did not start')), 15_000);
      createInterface({ input: coord!.stdout! }).on('line', (line) => {
        if (line.includes('"listening"')) {
          clearTimeout(t);
          resolve((JSON.parse(line) as { listening: string }).listening);
        }
      });
    });
    const setPolicy = await admin('POST', '/tailnet/-/acl', policy());
    expect(setPolicy.status, JSON.stringify(setPolicy.body)).toBe(200);
    for (const n of NAMES) startAgent(n);
    await waitFor('agent sockets', () => NAMES.every((n) => existsSync(sock(n))));
  }, 60_000);

  async function admin(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
    const r = await fetch(`${coordUrl}/api/v2${path}`, {
      method,
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await r.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // the policy endpoint answers with the stored HuJSON text
    }
    return { status: r.status, body: parsed };
  }

  async function authKey(): Promise<string> {
    const r = await admin('POST', '/tailnet/-/keys', { capabilities: { devices: { create: { reusable: true, preauthorized: true } } }, expirySeconds: 3600 });
    expect(r.status).toBe(200);
    return r.body.key as string;
  }

  afterAll(async () => {
    for (const n of [...agents.keys()]) await stopAgent(n).catch(() => {});
    coord?.kill('SIGKILL');
    lan?.destroy();
    if (process.env.MW_KEEP_E2E_LOGS) process.stderr.write(`agent e2e logs kept in ${dir}\n`);
    else if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('says who refuses what: unknown tags, retagging without an auth key', async () => {
    const key = await authKey();
    const bad = cli('c', ['up', '--coord', coordUrl, '--authkey', key, '--hostname', 'c', '--advertise-tags', 'tag:x']);
    expect(bad.status).toBe(1);
    expect(bad.stderr.trim()).toBe('agent up: requested tags [tag:x] are invalid or not permitted');
    expect(status('c').backendState).toBe('NeedsLogin');
    const unregistered = cli('c', ['up', '--coord', coordUrl]);
    expect(unregistered.status).toBe(1);
    expect(unregistered.stderr).toMatch(/not registered yet; run: agent up --coord URL --authkey KEY/);
  });

  it('registers three devices with auth keys (used once, never stored)', async () => {
    const key = await authKey();
    for (const n of NAMES) {
      const r = cli(n, ['up', '--coord', coordUrl, '--authkey', key, '--hostname', n, '--advertise-tags', `tag:${n}`]);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`meshward is up: ${n} \\(100\\.`));
      const s = status(n);
      expect(s.backendState).toBe('Running');
      addr[n] = s.self!.addresses[0];
      addr6[n] = s.self!.addresses[1];
    }
    for (const n of NAMES) {
      const files = readdirSync(stateDir(n)).sort();
      expect(files).toEqual(['machine.json', 'netmap.json', 'node.json', 'prefs.json']);
      const prefs = readFileSync(join(stateDir(n), 'prefs.json'), 'utf8');
      expect(prefs).not.toContain('mwkey-auth');
      expect(readFileSync(join(dir, `${n}.log`), 'utf8')).not.toContain(key);
      expect(readFileSync(join(dir, `${n}.log`), 'utf8')).not.toContain(JSON.parse(readFileSync(join(stateDir(n), 'node.json'), 'utf8')).privateKey);
    }
    // a sees b (it may reach it) and c (c may reach it); c's netmap has only a.
    await waitFor('netmaps with peers', () => status('a').peers.length === 2 && status('b').peers.length === 1 && status('c').peers.length === 1);
  });

  it('refuses to retag a registered device without a fresh auth key', () => {
    const r = cli('a', ['up', '--advertise-tags', 'tag:b']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/changing the tags of a registered device needs a fresh authorization/);
    expect(status('a').self!.tags).toEqual(['tag:a']);
  });

  function listen(n: Name, ports: number[]): Promise<void> {
    const p = lan.spawn(n, process.execPath, [helper(), 'listen', ...ports.map(String)]);
    return new Promise((resolve) => createInterface({ input: p.stdout! }).once('line', () => resolve()));
  }

  it('enforces the policy: a → b:22 works, a → b:80 and b → a are dropped and counted', async () => {
    await listen('b', [22, 80]);
    await listen('a', [22, 9]);
    {
      expect(connect('a', 'b', 22)).toBe('ok');
      const bBefore = status('b').filter.dropped['no-rule'] ?? 0;
      expect(connect('a', 'b', 80)).toBe('fail timeout');
      expect(status('b').filter.dropped['no-rule']).toBeGreaterThan(bBefore);
      const aBefore = status('a').filter.dropped['no-rule'] ?? 0;
      expect(connect('b', 'a', 22)).toBe('fail timeout');
      const sa = status('a');
      expect(sa.filter.dropped['no-rule']).toBeGreaterThan(aBefore);
      expect(sa.filter.in!.dropped['no-rule']).toBeGreaterThan(0);
      // Replies from b got in on a (TCP non-SYN).
      expect(sa.filter.in!.accepted).toBeGreaterThan(0);
      expect(connect('c', 'b', 22)).toMatch(/^fail/); // b is not c's peer at all
    }
  }, 30_000);

  it('does the same over IPv6', () => {
    expect(addr6.b).toMatch(/^fd7a:115c:a1e0:/);
    expect(connect('a', 'b', 22, 1500, 6)).toBe('ok');
    expect(connect('a', 'b', 80, 1000, 6)).toBe('fail timeout');
    expect(connect('b', 'a', 22, 1000, 6)).toBe('fail timeout');
  });

  it('answers whois with device, tags and the capabilities granted towards this device', async () => {
    const r = cli('b', ['whois', `${addr.a}:22`]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Name: +a\.example-com/);
    expect(r.stdout).toMatch(/Tags: +tag:a/);
    expect(r.stdout).toContain('example.com/cap/deploy: [{"role":"ops"}]');
    const unknown = cli('b', ['whois', '100.127.255.254']);
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toMatch(/no device with address 100\.127\.255\.254/);
    // The local API itself (a unix socket: reachable by path from any namespace).
    const viaApi = await callDaemon<WhoisResponse>(sock('b'), 'GET', `/whois?ip=${addr.a}`);
    expect(viaApi.capabilities).toEqual({ 'example.com/cap/deploy': [{ role: 'ops' }] });
  });

  it('enforces a policy change made through the admin API within 1 s', async () => {
    const opened = probe('a', 'b', 80);
    await new Promise((r) => setTimeout(r, 300));
    const t0 = Date.now();
    const r = await admin('POST', '/tailnet/-/acl', policy(['tcp:22', 'tcp:80']));
    expect(r.status).toBe(200);
    const t1 = await opened;
    process.stderr.write(`policy change → a → b:80 works after ${t1 - t0} ms\n`);
    expect(t1 - t0).toBeLessThan(1000);
    // And back: closing port 80 again takes effect as fast for new connections.
    const closed = probe('a', 'b', 80, 'probe-closed');
    await new Promise((r) => setTimeout(r, 300));
    const t2 = Date.now();
    expect((await admin('POST', '/tailnet/-/acl', policy())).status).toBe(200);
    const t3 = await closed;
    process.stderr.write(`policy change → a → b:80 refused from ${t3 - t2} ms on\n`);
    expect(t3 - t2).toBeLessThan(1000);
  }, 30_000);

  it('`agent status` on a lists b (active, direct) and c (idle), with coord connected', () => {
    const r = cli('a', ['status']);
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(new RegExp(`^${addr.a!.replace(/\./g, '\\.')} +a +tagged-devices +linux +-$`));
    const b = lines.find((l) => l.startsWith(addr.b! + ' '));
    const c = lines.find((l) => l.startsWith(addr.c! + ' '));
    expect(b).toMatch(new RegExp(` b +tagged-devices +linux +active; direct ${lan.host('b').addr}:41641, tx \\d+ rx \\d+$`));
    expect(c).toMatch(/ c +tagged-devices +linux +idle(, tx \d+ rx \d+)?$/);
    const s = status('a');
    expect(s.coord.connected).toBe(true);
    expect(s.interface).toEqual({ name: 'mw0', listenPort: 41641 });
  });

  it('shows a stopped agent as offline, and `agent down` keeps the state', async () => {
    expect(cli('c', ['down']).status).toBe(0);
    expect(status('c').backendState).toBe('Stopped');
    expect(lan.exec('c', 'ip', ['-o', 'link'])).not.toContain('mw0');
    await waitFor('c offline on a', () => status('a').peers.find((p) => p.name === 'c')?.online === false, 5000);
    const line = cli('a', ['status']).stdout.split('\n').find((l) => l.startsWith(addr.c! + ' '));
    expect(line).toMatch(/offline, last seen \d+s ago/);
    expect(cli('c', ['up']).status).toBe(0); // no auth key needed: the registration was kept
    expect(status('c').self!.addresses[0]).toBe(addr.c);
    expect(connect('c', 'a', 9)).toBe('ok');
  }, 30_000);

  it('keeps a → b:22 working when coord dies, and after a restart of a’s agent within 2 s', async () => {
    coord!.kill('SIGKILL');
    await new Promise((r) => coord!.once('exit', r));
    expect(connect('a', 'b', 22)).toBe('ok');
    expect(connect('a', 'b', 80)).toBe('fail timeout');
    await waitFor('a notices coord is gone', () => status('a').coord.connected === false, 5000);
    expect(cli('a', ['status']).stdout).toMatch(/coord unreachable/);

    await stopAgent('a');
    expect(lan.exec('a', 'ip', ['-o', 'link'])).not.toContain('mw0');
    const t0 = Date.now();
    startAgent('a');
    const t1 = await probe('a', 'b', 22);
    process.stderr.write(`agent restart (coord down) → a → b:22 works after ${t1 - t0} ms\n`);
    expect(t1 - t0).toBeLessThan(2000);
    const s = status('a');
    expect(s.backendState).toBe('Running');
    expect(s.netmap!.fromDisk).toBe(true);
    expect(s.coord.connected).toBe(false);
    expect(connect('a', 'b', 80)).toBe('fail timeout');
    expect(connect('b', 'a', 22)).toBe('fail timeout');
  }, 40_000);
});
