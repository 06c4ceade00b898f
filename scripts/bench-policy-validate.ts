// bench:policy-validate — how responsive coord stays while one caller has it check an expensive policy.
// Starts the real `coord serve` on loopback with a fresh database, posts a policy to
// POST /api/v2/tailnet/-/acl/validate, and meanwhile asks GET /healthz back to back; prints the worst
// /healthz latency seen while the validation ran, and the validation's own time.
//
//   npm run -s bench:policy-validate -- [--json] [--policy heaviest|issue] [--coord DIR]
//
// --policy heaviest (default): the largest policy coord accepts for its tests (scripts/heavy-policy.ts).
// --policy issue: a policy with one test of 3,000 destinations (the shape that once froze coord).
// --coord DIR: run the coord of another build (DIR/dist/coord/main.js), e.g. an older commit, to compare.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { heaviestAcceptedPolicy, issuePolicy } from './heavy-policy.js';

const { values } = parseArgs({
  options: { json: { type: 'boolean' }, policy: { type: 'string', default: 'heaviest' }, coord: { type: 'string' } },
  allowPositionals: false,
});
if (values.policy !== 'heaviest' && values.policy !== 'issue') {
  process.stderr.write('bench-policy-validate: --policy must be "heaviest" or "issue"\n');
  process.exit(2);
}
const root = values.coord ?? fileURLToPath(new URL('../..', import.meta.url));
const main = join(root, 'dist/coord/main.js');
const policy = values.policy === 'issue' ? issuePolicy() : heaviestAcceptedPolicy();

const dir = mkdtempSync(join(tmpdir(), 'mw-bench-validate-'));
const db = join(dir, 'coord.db');
const created = spawnSync(process.execPath, [main, 'tailnet', 'create', 'bench.example', '--owner', 'alice@example.com', '--db', db, '--json'], { encoding: 'utf8' });
if (created.status !== 0) throw new Error(`tailnet create failed: ${created.stderr}`);
const key = (JSON.parse(created.stdout) as { apiKey: string }).apiKey;

const proc = spawn(process.execPath, [main, 'serve', '--listen', '127.0.0.1:0', '--db', db, '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'inherit'] });
try {
  const url = await new Promise<string>((resolve, reject) => {
    proc.once('exit', (code) => reject(new Error(`coord exited with ${code}`)));
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      try {
        const m = JSON.parse(line) as { listening?: string };
        if (m.listening) resolve(m.listening);
      } catch {
        /* a log line */
      }
    });
  });
  const health = async (): Promise<number> => {
    const t = performance.now();
    const r = await fetch(`${url}/healthz`);
    await r.arrayBuffer();
    if (r.status !== 200) throw new Error(`/healthz answered ${r.status}`);
    return performance.now() - t;
  };
  // Warm up the connection and the server's code paths.
  for (let i = 0; i < 50; i++) await health();
  const idle: number[] = [];
  for (let i = 0; i < 50; i++) idle.push(await health());

  let running = true;
  const t0 = performance.now();
  const validation = fetch(`${url}/api/v2/tailnet/-/acl/validate`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/hujson' },
    body: policy,
  }).then(async (r) => {
    const text = await r.text();
    running = false;
    return { status: r.status, text, ms: performance.now() - t0 };
  });
  const during: number[] = [];
  while (running) during.push(await health());
  const v = await validation;
  if (v.status !== 200) throw new Error(`validate answered ${v.status}: ${v.text.slice(0, 300)}`);

  const round = (x: number) => Math.round(x * 10) / 10;
  const result = {
    policy: values.policy,
    policyBytes: Buffer.byteLength(policy),
    validateMs: round(v.ms),
    healthzDuringValidation: during.length,
    healthzWorstMs: round(Math.max(...during)),
    healthzIdleWorstMs: round(Math.max(...idle)),
  };
  if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else {
    process.stdout.write(`policy ${result.policy} (${result.policyBytes} bytes): validated in ${result.validateMs} ms\n`);
    process.stdout.write(`/healthz while validating: ${result.healthzDuringValidation} answers, worst ${result.healthzWorstMs} ms (idle worst ${result.healthzIdleWorstMs} ms)\n`);
  }
} finally {
  proc.kill('SIGTERM');
  await new Promise((r) => proc.once('exit', r));
  rmSync(dir, { recursive: true, force: true });
}
