// End-to-end harness for agent tests: the real coord on the gateway of a VirtualLan (scripts/lab.ts,
// scripts/netns.ts), and real agent daemons, each in its own namespace with its own state directory,
// socket and log. Connections are made by the network helper program of scripts/lab.ts.
import type { ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { expect } from 'vitest';
import type { AgentStatus } from '../../agent/localapi/types.js';
import { nativeAvailable } from '../../native/index.js';
import { AGENT, Coord, waitFor, writeNetHelper } from '../../scripts/lab.js';
import { VirtualLan } from '../../scripts/netns.js';
import type { api } from '../coord/harness.js';

export { AGENT, waitFor };

/** These tests need root (namespaces, TUN devices) and the native module. */
export const canRunE2e = process.getuid?.() === 0 && nativeAvailable();

/** Creates a preauthorized auth key through the admin API; `extra` adds fields to the request. */
export async function createAuthKey(admin: ReturnType<typeof api>, reusable: boolean, extra: Record<string, unknown> = {}): Promise<string> {
  const r = await admin.post('/tailnet/-/keys', { capabilities: { devices: { create: { reusable, preauthorized: true } } }, expirySeconds: 3600, ...extra });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return r.body.key as string;
}

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
  /** The network helper program (scripts/lab.ts) in `dir`. */
  /** The network helper program (scripts/lab.ts), once setUp() wrote it. */
  helper = '';

  /** `label` names the temporary directory (mw-LABEL-e2e-…) and the "logs kept" message. */
  constructor(
    readonly label: string,
    readonly names: readonly N[],
  ) {}

  setUp(): void {
    this.dir = mkdtempSync(join(tmpdir(), `mw-${this.label}-e2e-`));
    this.coord = new Coord();
    this.helper = writeNetHelper(this.dir);
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

  /** Starts `agent daemon` in n's namespace (with `extra` flags), its output appended to n's log. */
  startAgent(n: N, extra: string[] = []): ChildProcess {
    rmSync(this.sock(n), { force: true });
    const p = this.lan.spawn(n, process.execPath, [AGENT, 'daemon', '--state-dir', this.stateDir(n), '--socket', this.sock(n), '--log-level', 'debug', ...extra]);
    const log = createWriteStream(this.logOf(n), { flags: 'a' });
    // Neither stream may end the file alone: a crash's stack trace on stderr can come after stdout's end.
    p.stdout!.pipe(log, { end: false });
    p.stderr!.pipe(log, { end: false });
    p.once('close', (code, signal) => log.end(`harness: the daemon exited (code ${code}, signal ${signal})\n`));
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

  /**
   * probeOpen and probeClosed for timing a change: `before` resolves once an attempt has seen the old
   * state (the probe is running and the port still closed, or still open), so that a change made after
   * it is timed from a known state; `at` is probeOpen's or probeClosed's answer.
   */
  watchOpen(from: N, to: N, port: number): { before: Promise<void>; at: Promise<number> } {
    return this.watch(from, ['probe', this.target(to), String(port)], 'still closed', `${from} → ${to}:${port} was open before the change`, `no connection ${from} → ${to}:${port} within 15 s`);
  }

  watchClosed(from: N, to: N, port: number, fails: 'timeout' | 'any', retryMs: number): { before: Promise<void>; at: Promise<number> } {
    const args = ['probe-closed', this.target(to), String(port), String(retryMs), fails];
    return this.watch(from, args, 'still open', `${from} → ${to}:${port} was closed before the change`, `${from} → ${to}:${port} still open after 15 s`);
  }

  private watch(from: N, args: string[], oldState: string, tooEarly: string, timeoutMessage: string): { before: Promise<void>; at: Promise<number> } {
    let seen = false;
    let settle!: (err?: Error) => void;
    const before = new Promise<void>((resolve, reject) => (settle = (err) => (err ? reject(err) : resolve())));
    const at = this.probe(from, args, timeoutMessage, (line) => {
      if (seen) return;
      seen = true;
      settle(line === oldState ? undefined : new Error(tooEarly));
    });
    // the caller awaits `at` after `before`: a failure before then is reported through `before`
    at.catch((err: Error) => {
      if (!seen) {
        seen = true;
        settle(err);
      }
    });
    return { before, at };
  }

  private probe(from: N, args: string[], timeoutMessage: string, onLine?: (line: string) => void): Promise<number> {
    const p = this.lan.spawn(from, process.execPath, [this.helper, ...args]);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        p.kill();
        reject(new Error(timeoutMessage));
      }, 15_000);
      createInterface({ input: p.stdout! }).on('line', (line) => {
        onLine?.(line);
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

/**
 * For a lab of its own (not AgentLan): starts `agent daemon` in each named namespace (state in DIR/N/state,
 * socket at sock(n)), brings each up with coord and `authKey` (its hostname its name), records each one's
 * mesh address in `addr`, and waits until every one has `peers` peers in its netmap.
 */
export async function upAgentsIn<N extends string>(o: {
  lab: { spawn(name: string, cmd: string, args: string[]): ChildProcess };
  dir: string;
  names: readonly N[];
  sock: (n: N) => string;
  cli: (n: N, args: string[]) => string;
  status: (n: N) => AgentStatus;
  coordUrl: string;
  authKey: string;
  addr: Partial<Record<N, string>>;
  peers: number;
}): Promise<void> {
  for (const n of o.names) {
    o.lab.spawn(n, process.execPath, [AGENT, 'daemon', '--state-dir', join(o.dir, n, 'state'), '--socket', o.sock(n), '--log-level', 'debug']);
  }
  await waitFor('agent sockets', () => o.names.every((n) => existsSync(o.sock(n))));
  for (const n of o.names) {
    o.cli(n, ['up', '--coord', o.coordUrl, '--authkey', o.authKey, '--hostname', n]);
    o.addr[n] = o.status(n).self!.addresses[0];
  }
  await waitFor('netmaps with peers', () => o.names.every((n) => o.status(n).peers.length === o.peers), 20_000);
}
