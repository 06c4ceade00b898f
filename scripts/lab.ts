// What the end-to-end tests and the demo both need beside the namespaces (./netns.ts): the paths of the
// built programs, polling, a real `coord serve` process, and a small network helper program run inside
// namespaces. Tests import this from source and the demo from dist/, so paths are found, not assumed.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** The repository: the nearest folder above this file with a package.json (from scripts/ or dist/scripts/). */
export const root = ((): string => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the repository (no package.json above scripts/)');
    dir = up;
  }
  return dir;
})();

export const AGENT = join(root, 'dist/agent/main.js');
export const COORD = join(root, 'dist/coord/main.js');

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The median of `xs` (the mean of the middle two for an even count); NaN for none. */
export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

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
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

/** Runs the coord program to completion (`coord tailnet create …` and the like). */
export function coordCli(args: string[]) {
  return spawnSync(process.execPath, [COORD, ...args], { encoding: 'utf8' });
}

/**
 * A real `coord serve` with its SQLite database in `dir` (default: a new temporary directory).
 * Without `log`, coord is this process's child and its stderr is kept in `stderr`. With `log` (a file),
 * coord runs in its own process group with its output appended there, and outlives this process.
 */
export class Coord {
  url = '';
  proc: ChildProcess | undefined;
  stderr = '';
  /** Everything coord printed on stdout (its log lines, as JSON), when it runs as this process's child. */
  stdout = '';
  readonly dir: string;
  readonly db: string;
  private readonly log: string | undefined;

  constructor(opts: { dir?: string; log?: string } = {}) {
    this.dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'mw-coord-test-'));
    this.db = join(this.dir, 'coord.db');
    this.log = opts.log;
  }

  /**
   * A caller of the running coord's admin API with this API key: a string body is sent as HuJSON (a
   * policy), anything else as JSON; a non-2xx answer throws with the path, status and body.
   */
  adminApi(apiKey: string): (method: string, path: string, body?: string | object) => Promise<Record<string, unknown>> {
    return async (method, path, body) => {
      const r = await fetch(`${this.url}/api/v2${path}`, {
        method,
        headers: { authorization: `Bearer ${apiKey}`, 'content-type': typeof body === 'string' ? 'application/hujson' : 'application/json' },
        ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
      });
      if (!r.ok) throw new Error(`${path}: ${r.status} ${await r.text()}`);
      return r.json() as Promise<Record<string, unknown>>;
    };
  }

  /** Starts `coord serve` (on 127.0.0.1:0 unless `extra` says --listen); resolves once it listens. */
  async start(extra: string[] = []): Promise<this> {
    // STUN off unless asked (`extra` may say --stun-port N): two coords on one machine must not fight over 3478.
    const args = [COORD, 'serve', '--listen', '127.0.0.1:0', '--db', this.db, '--log-level', 'warn', '--stun-port', '0', ...extra];
    this.url = this.log === undefined ? await this.startChild(args) : await this.startDetached(args, this.log);
    return this;
  }

  private async startChild(args: string[]): Promise<string> {
    const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    proc.stderr!.on('data', (c: Buffer) => (this.stderr += c.toString()));
    proc.stdout!.on('data', (c: Buffer) => (this.stdout += c.toString()));
    const lines = createInterface({ input: proc.stdout! });
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`coord did not start: ${this.stderr}`)), 15_000);
      proc.once('exit', (code) => reject(new Error(`coord exited with ${code}: ${this.stderr}`)));
      lines.on('line', (line) => {
        const url = listeningIn(line);
        if (url) {
          clearTimeout(timer);
          resolve(url);
        }
      });
    });
  }

  private async startDetached(args: string[], log: string): Promise<string> {
    const from = existsSync(log) ? statSync(log).size : 0; // a restart appends: read only what this run writes
    const fd = openSync(log, 'a');
    const proc = spawn(process.execPath, args, { stdio: ['ignore', fd, fd], detached: true });
    closeSync(fd);
    proc.unref();
    this.proc = proc;
    return waitFor(`coord to listen (see ${log})`, () => {
      if (proc.exitCode !== null) throw new Error(`coord exited with ${proc.exitCode}`);
      return listeningIn(readFileSync(log, 'utf8').slice(from));
    }, 15_000);
  }

  /** SIGTERM and wait: graceful shutdown. */
  async stop(): Promise<number | null> {
    const p = this.proc;
    if (!p || p.exitCode !== null) return p?.exitCode ?? null;
    const exited = new Promise<number | null>((resolve) => p.once('exit', (code) => resolve(code)));
    p.kill('SIGTERM');
    const timer = setTimeout(() => p.kill('SIGKILL'), 10_000);
    const code = await exited;
    clearTimeout(timer);
    this.proc = undefined;
    return code;
  }

  /** SIGKILL and wait: a crash. */
  async kill(): Promise<void> {
    const p = this.proc;
    if (!p) return;
    if (p.exitCode === null && p.signalCode === null) {
      const exited = new Promise((resolve) => p.once('exit', resolve));
      p.kill('SIGKILL');
      await exited;
    }
    this.proc = undefined;
  }

  /** Creates a network with its owner (`coord tailnet create`); returns the owner's API key. */
  createTailnet(name: string, owner: string): string {
    return this.createTailnetWithLink(name, owner).apiKey;
  }

  /** `coord tailnet create`: the owner's API key, and the code of the one-time link to set the owner's console password. */
  createTailnetWithLink(name: string, owner: string): { apiKey: string; passwordCode: string } {
    const r = coordCli(['tailnet', 'create', name, '--owner', owner, '--db', this.db, '--json']);
    if (r.status !== 0) throw new Error(`tailnet create failed: ${r.stderr}`);
    const made = JSON.parse(r.stdout) as { apiKey: string; passwordUrl: string };
    return { apiKey: made.apiKey, passwordCode: made.passwordUrl.slice(made.passwordUrl.lastIndexOf('/') + 1) };
  }

  /** Stops coord and removes its directory. */
  async cleanup(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The URL in coord's `{"listening": URL}` line, if `text` has one. */
function listeningIn(text: string): string | undefined {
  return /"listening":"([^"]+)"/.exec(text)?.[1];
}

// The network helper, run inside namespaces by `node FILE MODE ARGS`:
//   listen PORT...                  TCP echo servers; prints "ready"
//   connect HOST PORT MS            one attempt; prints "ok" or "fail REASON"
//   try MS HOST:PORT...             one attempt to each, all at once; prints {"HOST:PORT": "ok" | REASON}
//   probe HOST PORT                 tries every 50 ms until a connection echoes; prints "still closed" after
//                                   each failed attempt, then "ok T" (when it did)
//   probe-closed HOST PORT MS WHAT  tries every MS ms until an attempt fails — WHAT "timeout": goes
//                                   unanswered, "any": fails in any way; prints "still open" after each
//                                   attempt that worked, then "ok T" (when the failing one began)
//   hold HOST PORT                  one connection kept busy: a write every 100 ms must be echoed within
//                                   400 ms; prints "up", then "dead T" with the time of the first write
//                                   that got no echo
//   udp HOST PORT                   sends one datagram
// REASON "timeout" means unanswered: what the filter's drop looks like from the other side.
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
  for (const p of a) net.createServer((s) => { s.on('error', () => {}); s.pipe(s); }).listen(Number(p), '::', () => { if (++n === a.length) console.log('ready'); });
} else if (mode === 'connect') once(a[0], a[1], Number(a[2]), (err) => { console.log(err ? 'fail ' + err : 'ok'); process.exit(err ? 1 : 0); });
else if (mode === 'try') {
  const results = {}; let left = a.length - 1;
  for (const t of a.slice(1)) { const i = t.lastIndexOf(':'); once(t.slice(0, i), t.slice(i + 1), Number(a[0]), (err) => { results[t] = err || 'ok'; if (--left === 0) console.log(JSON.stringify(results)); }); }
}
else if (mode === 'probe') { const loop = () => once(a[0], a[1], 250, (err) => err ? (console.log('still closed'), setTimeout(loop, 50)) : (console.log('ok ' + Date.now()), process.exit(0))); loop(); }
else if (mode === 'probe-closed') {
  const closed = (err) => (a[3] === 'any' ? Boolean(err) : err === 'timeout');
  const loop = (t) => once(a[0], a[1], 250, (err) => closed(err) ? (console.log('ok ' + t), process.exit(0)) : (console.log('still open'), setTimeout(() => loop(Date.now()), Number(a[2]))));
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

/** Writes the network helper into `dir`; returns its path. */
export function writeNetHelper(dir: string): string {
  const file = join(dir, 'net-helper.cjs');
  writeFileSync(file, NET_HELPER);
  return file;
}

/**
 * Watches a running "probe" of the network helper: `before` once it printed a line (it has seen the old
 * state), `at` with the time T of its "ok T" line; after `ms` without one it is killed and `at` rejects
 * with `timeoutMessage`.
 */
export function watchProbe(p: ChildProcess, ms: number, timeoutMessage: string): { before: Promise<void>; at: Promise<number> } {
  let seen!: () => void;
  const before = new Promise<void>((r) => (seen = r));
  const at = new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      p.kill();
      reject(new Error(timeoutMessage));
    }, ms);
    createInterface({ input: p.stdout! }).on('line', (line) => {
      seen();
      const m = /^ok (\d+)$/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
  });
  return { before, at };
}
