// Test harness: runs the real `coord` program from dist/ on loopback (port 0) with a temporary database.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('../..', import.meta.url));
const main = join(root, 'dist/coord/main.js');

export function coordCli(args: string[]) {
  return spawnSync(process.execPath, [main, ...args], { encoding: 'utf8' });
}

export class Coord {
  url = '';
  proc: ChildProcess | undefined;
  stderr = '';
  /** Everything coord printed on stdout (its log lines, as JSON). */
  stdout = '';
  readonly dir: string;
  readonly db: string;

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'mw-coord-test-'));
    this.db = join(this.dir, 'coord.db');
  }

  async start(extra: string[] = []): Promise<this> {
    const proc = spawn(process.execPath, [main, 'serve', '--listen', '127.0.0.1:0', '--db', this.db, '--log-level', 'warn', ...extra], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc = proc;
    proc.stderr!.on('data', (c: Buffer) => (this.stderr += c.toString()));
    proc.stdout!.on('data', (c: Buffer) => (this.stdout += c.toString()));
    const lines = createInterface({ input: proc.stdout! });
    this.url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`coord did not start: ${this.stderr}`)), 15_000);
      proc.once('exit', (code) => reject(new Error(`coord exited with ${code}: ${this.stderr}`)));
      lines.on('line', (line) => {
        try {
          const m = JSON.parse(line) as { listening?: string };
          if (m.listening) {
            clearTimeout(timer);
            resolve(m.listening);
          }
        } catch {
          /* a log line */
        }
      });
    });
    return this;
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

  createTailnet(name: string, owner: string): string {
    const r = coordCli(['tailnet', 'create', name, '--owner', owner, '--db', this.db, '--json']);
    if (r.status !== 0) throw new Error(`tailnet create failed: ${r.stderr}`);
    return (JSON.parse(r.stdout) as { apiKey: string }).apiKey;
  }

  async cleanup(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface Res {
  status: number;
  body: any;
  text: string;
  headers: Headers;
}

/** A small client of the admin API over real HTTP. */
export function api(base: string, key?: string) {
  const call = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Res> => {
    const h: Record<string, string> = { ...headers };
    if (key) h.authorization = `Bearer ${key}`;
    let payload: string | undefined;
    if (body !== undefined) {
      payload = typeof body === 'string' ? body : JSON.stringify(body);
      h['content-type'] ??= 'application/json';
    }
    const r = await fetch(base + '/api/v2' + path, { method, headers: h, body: payload });
    const text = await r.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    return { status: r.status, body: parsed, text, headers: r.headers };
  };
  return {
    get: (p: string, headers?: Record<string, string>) => call('GET', p, undefined, headers),
    post: (p: string, body?: unknown, headers?: Record<string, string>) => call('POST', p, body ?? {}, headers),
    patch: (p: string, body?: unknown) => call('PATCH', p, body ?? {}),
    del: (p: string) => call('DELETE', p),
    call,
  };
}

/** Invites a user with a role, accepts the invite with a password, signs in; returns id and session token. */
export async function addUser(base: string, ownerKey: string, tailnet: string, email: string, role: string) {
  const owner = api(base, ownerKey);
  const inv = await owner.post(`/tailnet/-/user-invites`, [{ email, role }]);
  if (inv.status !== 200) throw new Error(`invite failed: ${inv.status} ${inv.text}`);
  const pw = 'correct horse battery staple';
  const acc = await api(base).post('/user-invites/-/accept', { code: inv.body[0].code, password: pw });
  if (acc.status !== 200) throw new Error(`accept failed: ${acc.status} ${acc.text}`);
  const login = await api(base).post('/login', { tailnet, email, password: pw });
  if (login.status !== 200) throw new Error(`login failed: ${login.status} ${login.text}`);
  return { id: acc.body.id as string, token: login.body.token as string };
}
