// bench:routes — how fast a subnet route follows its approval (issue 14: "revoking approval cuts it
// within a second"). coord on a virtual LAN (scripts/netns.ts), a client (--accept-routes) and a subnet
// router (dist/agent) in namespaces, a LAN host behind the router. Each round revokes the route
// through the admin API and times until the client's next connection attempt fails, then approves it
// again and times until one works. Prints the medians and worst cases; `--json` only the JSON line:
// {"revokeMs": {"median", "max"}, "approveMs": {"median", "max"}, "rounds", "targetMs": 1000, "met": bool}
// Options: --rounds N (default 10). Needs root.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { AGENT, Coord, median, waitFor, watchProbe, writeNetHelper } from './lab.js';
import { VirtualLan } from './netns.js';

const TARGET_MS = 1000;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { json: { type: 'boolean' }, rounds: { type: 'string' } } });
  const rounds = Math.max(1, Number(values.rounds ?? 10));
  const log = values.json ? () => {} : (m: string) => process.stderr.write(m + '\n');
  if (process.getuid?.() !== 0) throw new Error('bench:routes needs root (network namespaces and TUN devices)');
  const dir = mkdtempSync(join(tmpdir(), 'mw-bench-routes-'));
  const lan = VirtualLan.create();
  const coord = new Coord();
  try {
    const helper = writeNetHelper(dir);
    const sub = '198.19.77';
    lan.addHost('client', 2);
    lan.addHost('router', 3);
    lan.addHostBehind('lanhost', 'router', sub, 'sub0');
    const apiKey = coord.createTailnet('bench.example', 'bench@example.com');
    await coord.start(['--listen', `${lan.gateway}:0`]);
    const call = coord.adminApi(apiKey);
    await call('POST', '/tailnet/-/acl', `{"tagOwners": {"tag:c": ["bench@example.com"], "tag:r": ["bench@example.com"]}, "grants": [{"src": ["tag:c"], "dst": ["${sub}.0/24"], "ip": ["tcp:8080"]}]}`);
    const key = (await call('POST', '/tailnet/-/keys', { capabilities: { devices: { create: { reusable: true, preauthorized: true } } }, expirySeconds: 3600 })).key as string;
    const sock = (n: string) => join(dir, n, 'agent.sock');
    for (const n of ['client', 'router']) lan.spawn(n, process.execPath, [AGENT, 'daemon', '--state-dir', join(dir, n, 'state'), '--socket', sock(n), '--log-level', 'warn']);
    await waitFor('agent sockets', () => existsSync(sock('client')) && existsSync(sock('router')), 15_000);
    const cli = (n: string, args: string[]) => lan.exec(n, process.execPath, [AGENT, ...args, '--socket', sock(n)]);
    cli('router', ['up', '--coord', coord.url, '--authkey', key, '--hostname', 'router', '--advertise-tags', 'tag:r', '--advertise-routes', `${sub}.0/24`]);
    cli('client', ['up', '--coord', coord.url, '--authkey', key, '--hostname', 'client', '--advertise-tags', 'tag:c', '--accept-routes']);
    const devices = (await call('GET', '/tailnet/-/devices')).devices as Array<{ id: string; hostname: string }>;
    const routerId = devices.find((d) => d.hostname === 'router')!.id;
    const srv = lan.spawn('lanhost', process.execPath, [helper, 'listen', '8080']);
    await new Promise<void>((resolve) => createInterface({ input: srv.stdout! }).once('line', () => resolve()));

    /** Starts a probe in the client; resolves `at` with the time of its "ok T" line (after `before`: it has seen the old state). */
    const probe = (args: string[]) =>
      watchProbe(lan.spawn('client', process.execPath, [helper, ...args, `${sub}.2`, '8080', ...(args[0] === 'probe-closed' ? ['20', 'any'] : [])]), 20_000, `${args[0]}: no change within 20 s`);
    const setRoutes = (routes: string[]) => call('POST', `/device/${routerId}/routes`, { routes });

    await setRoutes([`${sub}.0/24`]);
    await probe(['probe']).at;
    const revoke: number[] = [];
    const approve: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const closed = probe(['probe-closed']);
      await closed.before;
      let t0 = Date.now();
      await setRoutes([]);
      revoke.push(Math.max(0, (await closed.at) - t0));
      const open = probe(['probe']);
      await open.before;
      t0 = Date.now();
      await setRoutes([`${sub}.0/24`]);
      approve.push(Math.max(0, (await open.at) - t0));
      log(`round ${i + 1}: revoked → cut in ${revoke.at(-1)} ms, approved → open in ${approve.at(-1)} ms`);
    }
    const stats = (xs: number[]) => ({ median: median(xs), max: Math.max(...xs) });
    const report = { revokeMs: stats(revoke), approveMs: stats(approve), rounds, targetMs: TARGET_MS, met: Math.max(...revoke) <= TARGET_MS };
    process.stdout.write(JSON.stringify(report) + '\n');
  } finally {
    await coord.kill();
    lan.destroy();
    await coord.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:routes: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
