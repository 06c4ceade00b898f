// The newcomer's demo end to end: runs `scripts/demo.ts` (what `npm run demo` runs after bootstrap)
// non-interactively as root, reads its --json summary, and checks every cell of its who-can-reach-what
// table against the table the seed's policy means, written here by hand, so a wrong "expected" in the
// demo (or a policy engine that misreads the file) fails too. Also: the live change, and
// that nothing the demo made survives its exit (normal, Ctrl-C, and --keep then --down).
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { AdminClient } from '../../coord/client/index.js';
import { nativeAvailable } from '../../native/index.js';
import { DEVICES, LIVE_CHANGE, SERVICES } from '../../scripts/demo-company.js';
import { waitFor } from '../../scripts/lab.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const DEMO = join(root, 'dist/scripts/demo.js');
const isRoot = process.getuid?.() === 0;

interface Cell {
  from: string;
  service: string;
  expected: 'allowed' | 'blocked';
  observed: 'allowed' | 'blocked';
  detail: string;
}
interface Summary {
  schema: number;
  devices: { name: string; ipv4: string; ipv6: string; user: string | null; tags: string[] }[];
  tables: { phase: string; cells: Cell[]; mismatches: number }[];
  liveChange: { from: string; service: string; before: string; after: string; ms: number | null };
  sharing: { available: boolean; message: string; cells?: Cell[] };
  coord: string;
  made: { dir: string; bridge: string; namespaces: string[] };
  ok: boolean;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the demo; `onStderr` sees the story as it comes (and may signal the process). */
function runDemo(args: string[], onStderr?: (text: string, kill: (sig: NodeJS.Signals) => void) => void): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [DEMO, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      p.kill('SIGINT');
      reject(new Error(`demo did not finish within 90 s:\n${stderr}`));
    }, 90_000);
    p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    p.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
      onStderr?.(stderr, (sig) => p.kill(sig));
    });
    p.on('exit', (code) => {
      clearTimeout(timer);
      // Let the pipes drain before resolving.
      setImmediate(() => resolve({ code, stdout, stderr }));
    });
  });
}

function summaryOf(r: Run): Summary {
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as Summary;
  } catch {
    throw new Error(`no JSON summary on stdout (exit ${r.code}):\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
}

/** Whether anything the demo made is still there: namespaces, the bridge, the working directory. */
function leftovers(made: { dir: string; bridge: string; namespaces: string[] }): string[] {
  const namespaces = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  const links = execFileSync('ip', ['-o', 'link'], { encoding: 'utf8' });
  return [
    ...made.namespaces.filter((ns) => namespaces.split('\n').some((l) => l.split(' ')[0] === ns)),
    ...(links.includes(`${made.bridge}:`) ? [made.bridge] : []),
    ...(existsSync(made.dir) ? [made.dir] : []),
  ];
}

/**
 * The table the seed's policy file (scripts/demo-company.ts) means, read by hand: for each device, the
 * services it may reach; every other cell is blocked. Literal, so that neither the demo nor the policy
 * engine can agree with itself by mistake.
 *   dave-laptop (group:engineering): git ssh and web, the CI web interface
 *   bob-laptop (group:accounting): the books' web interface only
 *   pat-laptop (owner): every web interface, through the grant on "company" (tcp:80, tcp:443)
 *   ci (tag:ci): git ssh, to fetch code
 *   git, accounting: nothing (no rule has them as a source)
 * The live change gives group:accounting the CI web interface.
 */
const ALLOWED_BEFORE: Record<string, string[]> = {
  'dave-laptop': ['git:22', 'git:80', 'ci:443'],
  'bob-laptop': ['accounting:443'],
  'pat-laptop': ['git:80', 'ci:443', 'accounting:443'],
  git: [],
  ci: ['git:22'],
  accounting: [],
};
const ALLOWED_AFTER: Record<string, string[]> = { ...ALLOWED_BEFORE, 'bob-laptop': ['accounting:443', 'ci:443'] };

function expectedTable(allowed: Record<string, string[]>): Map<string, 'allowed' | 'blocked'> {
  const out = new Map<string, 'allowed' | 'blocked'>();
  for (const d of DEVICES) {
    for (const svc of SERVICES) {
      if (svc.device === d.name) continue;
      out.set(`${d.name} ${svc.id}`, allowed[d.name]!.includes(svc.id) ? 'allowed' : 'blocked');
    }
  }
  return out;
}

describe.skipIf(!isRoot || !nativeAvailable())('npm run demo (non-interactive, as root)', () => {
  it('builds the company network; every cell of its table matches the policy, before and after a live change', async () => {
    const r = await runDemo(['--yes', '--json']);
    const s = summaryOf(r);
    expect(r.code, r.stderr).toBe(0);
    expect(s.schema).toBe(1);
    expect(s.ok).toBe(true);
    expect(s.devices.map((d) => d.name)).toEqual(DEVICES.map((d) => d.name));
    for (const d of s.devices) expect(d.ipv4).toMatch(/^100\./);

    const [before, after] = s.tables;
    expect(before!.phase).toBe('before');
    expect(after!.phase).toBe('after');
    for (const [i, table] of [before!, after!].entries()) {
      const want = expectedTable([ALLOWED_BEFORE, ALLOWED_AFTER][i]!);
      expect(want.size).toBe(25);
      expect(table.cells).toHaveLength(want.size); // every device × every service on another device
      for (const c of table.cells) {
        expect(c.expected, `${table.phase}: ${c.from} → ${c.service} (demo's expected)`).toBe(want.get(`${c.from} ${c.service}`));
        expect(c.observed, `${table.phase}: ${c.from} → ${c.service} (${c.detail})`).toBe(c.expected);
        // Blocked means dropped by the filter (the SYN unanswered), not refused or unreachable.
        expect(c.detail).toBe(c.observed === 'allowed' ? 'ok' : 'timeout');
      }
      expect(table.mismatches).toBe(0);
      // A table that is all one verdict would show nothing about the policy.
      expect(table.cells.filter((c) => c.observed === 'allowed').length).toBeGreaterThanOrEqual(6);
      expect(table.cells.filter((c) => c.observed === 'blocked').length).toBeGreaterThanOrEqual(6);
    }

    // The live change: exactly the edited cell flipped, promptly. How fast is the benchmarks' business
    // (bench:policy, the demo's own printed figure); a test under CI load only bounds it generously.
    const changed = after!.cells.filter((c) => before!.cells.find((b) => b.from === c.from && b.service === c.service)!.observed !== c.observed);
    expect(changed.map((c) => `${c.from} ${c.service}`)).toEqual([`${LIVE_CHANGE.from} ${LIVE_CHANGE.service}`]);
    expect(s.liveChange).toMatchObject({ from: LIVE_CHANGE.from, service: LIVE_CHANGE.service, before: 'blocked', after: 'allowed' });
    expect(s.liveChange.ms).not.toBeNull();
    expect(s.liveChange.ms!).toBeLessThan(10_000);

    // Sharing: the git server shared with the partner network, checked both ways.
    expect(s.sharing.available, s.sharing.message).toBe(true);
    expect(s.sharing.cells!.map((c) => `${c.from} ${c.service}`)).toEqual(['erin-laptop git:22', 'erin-laptop git:80', 'git erin-laptop:22']);
    for (const c of s.sharing.cells!) expect(c.observed, `shared: ${c.from} → ${c.service}`).toBe(c.expected);
    expect(s.sharing.cells![0]!.observed).toBe('allowed'); // the company allows shared users on git:22
    expect(s.sharing.cells![2]!.observed).toBe('blocked'); // quarantine
    expect(r.stderr).toMatch(/ git\.\S+ .*shared.*quarantined|quarantined.*shared/);

    // The story a person reads.
    expect(r.stderr).toContain('$ agent status    # on dave-laptop');
    expect(r.stderr).toMatch(/all 25 connections agree with the policy/);
    expect(leftovers(s.made)).toEqual([]);
  }, 100_000);

  it('cleans up everything when interrupted (Ctrl-C)', async () => {
    let made: Summary['made'] | undefined;
    let sent = false;
    const r = await runDemo(['--yes', '--json'], (text, kill) => {
      const dir = /working directory \(logs, databases, sockets\): (\S+)/.exec(text)?.[1];
      if (!sent && dir && text.includes('what two devices see')) {
        sent = true;
        made = JSON.parse(readFileSync(join(dir, 'demo.json'), 'utf8')) as Summary['made'];
        kill('SIGINT');
      }
    });
    expect(sent, r.stderr).toBe(true);
    expect(r.code).toBe(130);
    expect(r.stderr).toContain('SIGINT: cleaning up');
    // One namespace per company device, and the partner's laptop (the share happens before this step).
    expect(made!.namespaces).toHaveLength(DEVICES.length + 1);
    expect(leftovers(made!)).toEqual([]);
  }, 100_000);

  it('--keep leaves the network running, survives a restart of coord (--restart-coord), and --down removes it', async () => {
    const r = await runDemo(['--yes', '--json', '--keep']);
    const s = summaryOf(r);
    try {
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain(`npm run demo -- --down ${s.made.dir}`);
      const statusCmd = /^ {2}(ip netns exec \S+ node \S+ status --socket \S+)$/m.exec(r.stderr)?.[1];
      expect(statusCmd).toBeDefined();
      const [cmd, ...args] = statusCmd!.split(' ');
      const out = execFileSync(cmd!, args, { encoding: 'utf8' });
      expect(out).toMatch(/dave-laptop +dave@example\.com +linux/);
      expect(out).toMatch(/ git +tagged-devices +linux +active; direct/);
      expect(leftovers(s.made)).toHaveLength(s.made.namespaces.length + 2);

      // The console's address and both owners' sign-ins are printed, and they work.
      expect(r.stderr).toContain(`${s.coord}/admin`);
      for (const [email, network] of [['pat@example.com', 'example.com'], ['erin@partner.example', 'partner.example']]) {
        const password = new RegExp(`${email.replace(/\./g, '\\.')} \\(${network.replace(/\./g, '\\.')}\\), password (\\S+)`).exec(r.stderr)?.[1];
        expect(password, `sign-in for ${email}`).toBeDefined();
        const signIn = await fetch(`${s.coord}/admin/api/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password }) });
        expect(signIn.status, email).toBe(200);
      }

      // coord killed and started again with the printed command: same URL, every agent back on it.
      expect(r.stderr).toContain(`npm run demo -- --restart-coord ${s.made.dir}`);
      const admin = new AdminClient(s.coord, readFileSync(join(s.made.dir, 'owner.key'), 'utf8').trim());
      const partner = new AdminClient(s.coord, readFileSync(join(s.made.dir, 'partner.key'), 'utf8').trim());
      expect((await partner.devices()).map((d) => d.hostname).sort()).toEqual(['erin-laptop', 'git']);
      const kept = JSON.parse(readFileSync(join(s.made.dir, 'demo.json'), 'utf8')) as { coord: { pid: number } };
      process.kill(kept.coord.pid, 'SIGKILL');
      await expect(admin.devices()).rejects.toThrow(/cannot reach coord/);
      const again = execFileSync(process.execPath, [DEMO, '--restart-coord', s.made.dir], { encoding: 'utf8' });
      expect(again).toContain(`coord is listening on ${s.coord} again`);
      await waitFor('every device back on coord', async () => (await admin.devices()).every((d) => d.connectedToControl), 20_000);
    } finally {
      const down = execFileSync(process.execPath, [DEMO, '--down', s.made.dir], { encoding: 'utf8' });
      expect(down).toMatch(new RegExp(`removed ${s.made.namespaces.length} namespaces`));
    }
    expect(leftovers(s.made)).toEqual([]);
  }, 150_000);
});
