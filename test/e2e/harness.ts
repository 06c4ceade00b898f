// End-to-end harness for agent tests: the real coord (test/coord/harness.ts) on the gateway of a
// VirtualLan (scripts/netns.ts), and real agent daemons, each in its own namespace with its own state
// directory, socket and log. Connections are made by a small helper program run inside namespaces.
import type { ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { expect } from 'vitest';
import type { AgentStatus } from '../../agent/localapi/types.js';
import { nativeAvailable } from '../../native/index.js';
import { VirtualLan } from '../../scripts/netns.js';
import { type api, Coord, root } from '../coord/harness.js';

export const AGENT = join(root, 'dist/agent/main.js');

/** These tests need root (namespaces, TUN devices) and the native module. */
export const canRunE2e = process.getuid?.() === 0 && nativeAvailable();

/** Polls `fn` every 50 ms until it returns something truthy; throws after `ms` with the last error. */
export async function waitFor<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, ms = 10_000): Promise<T> {
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

/** Creates a preauthorized auth key through the admin API; `extra` adds fields to the request. */
export async function createAuthKey(admin: ReturnType<typeof api>, reusable: boolean, extra: Record<string, unknown> = {}): Promise<string> {
  const r = await admin.post('/tailnet/-/keys', { capabilities: { devices: { create: { reusable, preauthorized: true } } }, expirySeconds: 3600, ...extra });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return r.body.key as string;
}

// Run inside namespaces:
//   listen PORT...                  TCP echo servers; prints "ready"
//   connect HOST PORT MS            one attempt; prints "ok" or "fail REASON"
//   probe HOST PORT                 tries every 50 ms until a connection echoes; prints "ok T" (when it did)
//   probe-closed HOST PORT MS WHAT  tries every MS ms until an attempt fails — WHAT "timeout": goes
//                                   unanswered, "any": fails in any way; prints "ok T" (when it began)
//   hold HOST PORT                  one connection kept busy: a write every 100 ms must be echoed within
//                                   400 ms; prints "up", then "dead T" with the time of the first write
//                                   that got no echo
//   udp HOST PORT                   sends one datagram
const NET_HELPER = `
const net = require('net');
const [mode, ...a] = process.argv.slice(2);
const once = (host, port, ms, done) => {
  const s = net.connect({ host, port: Number(port) });
  const t = setTimeout(() => { s.destroy(); done('timeout'); }, ms);
  s.on('connect', () => s.write('ping'));
  s.on('data', (d) => { clearTimeout(t); s.destroy(); done(d.toString() === 'ping' ? null : 'bad echo'); });
  s.on('error', (e) => { clearTimeout(t); done(e.code || e.message); });
};
if (mode === 'listen') {
  let n = 0;
  for (const p of a) net.createServer((s) => s.pipe(s)).listen(Number(p), '::', () => { if (++n === a.length) console.log('ready'); });
} else if (mode === 'connect') once(a[0], a[1], Number(a[2]), (err) => { console.log(err ? 'fail ' + err : 'ok'); process.exit(err ? 1 : 0); });
else if (mode === 'probe') { const loop = () => once(a[0], a[1], 250, (err) => err ? setTimeout(loop, 50) : (console.log('ok ' + Date.now()), process.exit(0))); loop(); }
else if (mode === 'probe-closed') {
  const closed = (err) => (a[3] === 'any' ? Boolean(err) : err === 'timeout');
  const loop = (t) => once(a[0], a[1], 250, (err) => closed(err) ? (console.log('ok ' + t), process.exit(0)) : setTimeout(() => loop(Date.now()), Number(a[2])));
  loop(Date.now());
} else if (mode === 'hold') {
  const s = net.connect({ host: a[0], port: Number(a[1]) });
  let sent = 0, timer = null, said = false;
  const tick = () => { sent = Date.now(); s.write('ping'); timer = setTimeout(() => { console.log('dead ' + sent); process.exit(0); }, 400); };
  s.on('connect', tick);
  s.on('data', () => { clearTimeout(timer); if (!said) { said = true; console.log('up'); } setTimeout(tick, 100); });
  s.on('error', () => { console.log('dead ' + sent); process.exit(0); });
}
else if (mode === 'udp') { const s = require('dgram').createSocket(a[0].includes(':') ? 'udp6' : 'udp4'); s.send('hello', Number(a[1]), a[0], () => setTimeout(() => process.exit(0), 50)); }
`;

export interface CliResult {
  status: number;
  stdout: string;
  stderr: string;
}

/**
 * One coord and one agent per name on a virtual LAN. Constructing it does nothing; setUp() makes the
 * directories and the namespaces (host i of `names` is .i+2), destroy() removes all of it. Tests fill in
 * `addr`/`addr6` (each device's mesh addresses) once the devices are up; the connection helpers take
 * names and look the addresses up there.
 */
export class AgentLan<N extends string> {
  dir = '';
  lan!: VirtualLan;
  coord!: Coord;
  readonly addr: Partial<Record<N, string>> = {};
  readonly addr6: Partial<Record<N, string>> = {};
  private readonly agents = new Map<N, ChildProcess>();

  /** `label` names the temporary directory (mw-LABEL-e2e-…) and the "logs kept" message. */
  constructor(
    readonly label: string,
    readonly names: readonly N[],
  ) {}

  setUp(): void {
    this.dir = mkdtempSync(join(tmpdir(), `mw-${this.label}-e2e-`));
    this.coord = new Coord();
    writeFileSync(this.helper, NET_HELPER);
    this.lan = VirtualLan.create();
    this.names.forEach((n, i) => this.lan.addHost(n, i + 2));
  }

  /** Starts coord on the LAN's gateway (create networks before, with coord.createTailnet); returns its URL. */
  async startCoord(): Promise<string> {
    await this.coord.start(['--listen', `${this.lan.gateway}:0`]);
    return this.coord.url;
  }

  sock(n: N): string {
    return join(this.dir, n, 'agent.sock');
  }

  stateDir(n: N): string {
    return join(this.dir, n, 'state');
  }

  logOf(n: N): string {
    return join(this.dir, `${n}.log`);
  }

  private get helper(): string {
    return join(this.dir, 'net-helper.cjs');
  }

  /** Starts `agent daemon` in n's namespace, its output appended to n's log. */
  startAgent(n: N): ChildProcess {
    rmSync(this.sock(n), { force: true });
    const p = this.lan.spawn(n, process.execPath, [AGENT, 'daemon', '--state-dir', this.stateDir(n), '--socket', this.sock(n), '--log-level', 'debug']);
    const log = createWriteStream(this.logOf(n), { flags: 'a' });
    p.stdout!.pipe(log);
    p.stderr!.pipe(log);
    this.agents.set(n, p);
    return p;
  }

  /** Starts every agent and waits until all of them listen on their sockets. */
  async startAgents(): Promise<void> {
    for (const n of this.names) this.startAgent(n);
    await waitFor('agent sockets', () => this.names.every((n) => existsSync(this.sock(n))));
  }

  /**
   * SIGTERM, and SIGKILL if the daemon has not stopped within 5 s. Resolves with the signal that ended
   * it: null when it stopped by itself (or was not running).
   */
  async stopAgent(n: N): Promise<NodeJS.Signals | null> {
    const p = this.agents.get(n);
    if (!p || p.exitCode !== null) return null;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    const timer = setTimeout(() => p.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
    this.agents.delete(n);
    return p.signalCode;
  }

  /** SIGKILL (a crash: no cleanup); resolves once the process is gone. */
  async killAgent(n: N): Promise<void> {
    const p = this.agents.get(n);
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await exited;
    this.agents.delete(n);
  }

  /** Runs `agent ARGS --socket S` inside n's namespace; returns exit status, stdout, stderr. */
  cli(n: N, args: string[]): CliResult {
    try {
      const stdout = this.lan.exec(n, process.execPath, [AGENT, ...args, '--socket', this.sock(n)], { timeoutMs: 30_000 });
      return { status: 0, stdout, stderr: '' };
    } catch (err) {
      const e = err as { status: number; stdout: string; stderr: string };
      return { status: e.status, stdout: String(e.stdout), stderr: String(e.stderr) };
    }
  }

  /** `agent status --json` in n's namespace. */
  status(n: N): AgentStatus {
    return JSON.parse(this.cli(n, ['status', '--json']).stdout) as AgentStatus;
  }

  private target(to: N, family: 4 | 6 = 4): string {
    return (family === 4 ? this.addr[to] : this.addr6[to])!;
  }

  /** One TCP connection attempt from → to:port; "ok" (echoed) or "fail REASON". */
  connect(from: N, to: N, port: number, ms = 1500, family: 4 | 6 = 4): string {
    try {
      return this.lan.exec(from, process.execPath, [this.helper, 'connect', this.target(to, family), String(port), String(ms)]).trim();
    } catch (err) {
      return String((err as { stdout: string }).stdout).trim();
    }
  }

  /** Whether one ICMP echo from → to is answered within 1 s. */
  ping(from: N, to: N): boolean {
    try {
      this.lan.exec(from, 'ping', ['-c', '1', '-W', '1', this.target(to)]);
      return true;
    } catch {
      return false;
    }
  }

  /** Sends one UDP datagram from → to:port. */
  udp(from: N, to: N, port: number): void {
    this.lan.exec(from, process.execPath, [this.helper, 'udp', this.target(to), String(port)]);
  }

  /** Starts TCP echo servers on `ports` in n's namespace; resolves once they listen. */
  listen(n: N, ports: number[]): Promise<void> {
    const p = this.lan.spawn(n, process.execPath, [this.helper, 'listen', ...ports.map(String)]);
    return new Promise((resolve) => createInterface({ input: p.stdout! }).once('line', () => resolve()));
  }

  /** Resolves with the time a connection from → to:port first works (tried every 50 ms; 15 s at most). */
  probeOpen(from: N, to: N, port: number): Promise<number> {
    return this.probe(from, ['probe', this.target(to), String(port)], `no connection ${from} → ${to}:${port} within 15 s`);
  }

  /**
   * Resolves with when the first attempt from → to:port that fails began, tried every `retryMs`:
   * `fails` "timeout" counts only attempts that go unanswered, "any" counts any failure (15 s at most).
   */
  probeClosed(from: N, to: N, port: number, fails: 'timeout' | 'any', retryMs: number): Promise<number> {
    return this.probe(from, ['probe-closed', this.target(to), String(port), String(retryMs), fails], `${from} → ${to}:${port} still open after 15 s`);
  }

  private probe(from: N, args: string[], timeoutMessage: string): Promise<number> {
    const p = this.lan.spawn(from, process.execPath, [this.helper, ...args]);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        p.kill();
        reject(new Error(timeoutMessage));
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

  /** Keeps one TCP connection busy; resolves `up` once it works, `dead` with when it stopped working. */
  hold(from: N, to: N, port: number): { up: Promise<void>; dead: Promise<number> } {
    const p = this.lan.spawn(from, process.execPath, [this.helper, 'hold', this.target(to), String(port)]);
    let up!: () => void, dead!: (t: number) => void;
    const r = { up: new Promise<void>((res) => (up = res)), dead: new Promise<number>((res) => (dead = res)) };
    const timer = setTimeout(() => p.kill(), 20_000);
    createInterface({ input: p.stdout! }).on('line', (line) => {
      if (line === 'up') up();
      const m = /^dead (\d+)$/.exec(line);
      if (m) {
        clearTimeout(timer);
        dead(Number(m[1]));
      }
    });
    return r;
  }

  /** Stops the agents and coord, removes the namespaces, and the directory unless MW_KEEP_E2E_LOGS is set. */
  async destroy(): Promise<void> {
    for (const n of [...this.agents.keys()]) await this.stopAgent(n);
    await this.coord?.kill();
    this.lan?.destroy();
    if (process.env.MW_KEEP_E2E_LOGS && this.dir) {
      writeFileSync(join(this.dir, 'coord.log'), this.coord?.stderr ?? '');
      process.stderr.write(`${this.label} e2e logs kept in ${this.dir}\n`);
    } else if (this.dir) {
      rmSync(this.dir, { recursive: true, force: true });
    }
    await this.coord?.cleanup();
  }
}
