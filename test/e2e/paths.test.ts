// Path discovery end to end in a NAT lab (scripts/natlab.ts): real coord (relay and STUN) on the lab's
// WAN, real agent daemons each behind its own home router doing NAT with nftables.
//
//   - endpoint-independent NAT on both sides: STUN through the WireGuard socket finds each public
//     endpoint, disco pings punch both NATs at once, and the peers go direct within seconds; cut UDP
//     between the routers in the middle of a TCP transfer and the transfer goes on through the relay,
//     then returns to direct when the path heals.
//   - symmetric NAT (fully random ports) on both sides: no direct path can work; relayed, and working.
import { createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentStatus } from '../../agent/localapi/types.js';
import { AGENT, Coord, waitFor, writeNetHelper } from '../../scripts/lab.js';
import { NatLab, type NatMode } from '../../scripts/natlab.js';
import { api } from '../coord/harness.js';
import { canRunE2e, createAuthKey } from './harness.js';

const POLICY = `{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}`;
const NAMES = ['a', 'b'] as const;
type Name = (typeof NAMES)[number];

// A TCP stream that must survive: writes 8 KiB every 20 ms to an echo server for SECONDS, checks every
// byte comes back in order, and prints {"ok", "bytes", "maxStallMs"} (ok false on any error or reset).
const STREAM = `
const net = require('net');
const [host, port, seconds] = process.argv.slice(2);
const s = net.connect({ host, port: Number(port) });
const chunk = Buffer.alloc(8192);
let sent = 0, echoed = 0, last = Date.now(), maxStall = 0, writing = null, failed = null;
const done = () => { clearInterval(writing); console.log(JSON.stringify({ ok: !failed && echoed === sent, bytes: echoed, maxStallMs: maxStall, error: failed })); process.exit(0); };
s.on('connect', () => {
  const end = Date.now() + Number(seconds) * 1000;
  writing = setInterval(() => {
    if (Date.now() >= end) { clearInterval(writing); const wait = setInterval(() => { if (echoed === sent || Date.now() > end + 20000) { clearInterval(wait); done(); } }, 50); return; }
    for (let i = 0; i < chunk.length; i++) chunk[i] = (sent + i) & 0xff;
    s.write(Buffer.from(chunk)); sent += chunk.length;
  }, 20);
});
s.on('data', (d) => {
  for (let i = 0; i < d.length; i++) if (d[i] !== ((echoed + i) & 0xff)) { failed = 'corrupt'; return done(); }
  echoed += d.length; const now = Date.now(); maxStall = Math.max(maxStall, now - last); last = now;
});
s.on('error', (e) => { failed = e.code || e.message; done(); });
s.on('close', () => { if (!failed && echoed !== sent) { failed = 'closed'; done(); } });
`;

function natLab(mode: NatMode) {
  const ctx = {
    lab: null as unknown as NatLab,
    dir: '',
    helper: '',
    stream: '',
    coord: new Coord(),
    addr: {} as Partial<Record<Name, string>>,
    sock: (n: Name) => join(ctx.dir, n, 'agent.sock'),
    cli: (n: Name, args: string[]) => ctx.lab.exec(n, process.execPath, [AGENT, ...args, '--socket', ctx.sock(n)]),
    status: (n: Name) => JSON.parse(ctx.cli(n, ['status', '--json'])) as AgentStatus,
    path: (n: Name) => ctx.status(n).peers[0] ?? null,
    /** The peer's endpoints as `n`'s netmap lists them. */
    peerEndpoints: (n: Name) => (JSON.parse(readFileSync(join(ctx.dir, n, 'state', 'netmap.json'), 'utf8')) as { peers: { endpoints: string[] }[] }).peers[0]!.endpoints,
    /** Starts an echo server on `n` and resolves once it listens. */
    listen: async (n: Name, port: number) => {
      const l = ctx.lab.spawn(n, process.execPath, [ctx.helper, 'listen', String(port)]);
      await new Promise<void>((resolve) => createInterface({ input: l.stdout! }).once('line', () => resolve()));
    },
  };
  beforeAll(async () => {
    ctx.dir = mkdtempSync(join(tmpdir(), 'mw-paths-e2e-'));
    ctx.helper = writeNetHelper(ctx.dir);
    ctx.stream = join(ctx.dir, 'stream.cjs');
    writeFileSync(ctx.stream, STREAM);
    const lab = (ctx.lab = NatLab.create());
    lab.addRouter('ra', mode);
    lab.addRouter('rb', mode);
    lab.addLanHost('ra', 'a', 10);
    lab.addLanHost('rb', 'b', 10);
    const apiKey = ctx.coord.createTailnet('example.com', 'alice@example.com');
    const stunPort = 20_000 + Math.floor(Math.random() * 40_000);
    await ctx.coord.start(['--listen', `${lab.wanGateway}:0`, '--stun-port', String(stunPort)]);
    const admin = api(ctx.coord.url, apiKey);
    expect((await admin.post('/tailnet/-/acl', POLICY)).status).toBe(200);
    const key = await createAuthKey(admin, true);
    for (const n of NAMES) {
      const d = lab.spawn(n, process.execPath, [AGENT, 'daemon', '--state-dir', join(ctx.dir, n, 'state'), '--socket', ctx.sock(n), '--log-level', 'debug']);
      const log = createWriteStream(join(ctx.dir, `${n}.log`));
      d.stdout!.pipe(log);
      d.stderr!.pipe(log);
    }
    await waitFor('agent sockets', () => NAMES.every((n) => existsSync(ctx.sock(n))));
    for (const n of NAMES) {
      ctx.cli(n, ['up', '--coord', ctx.coord.url, '--authkey', key, '--hostname', n]);
      ctx.addr[n] = ctx.status(n).self!.addresses[0];
    }
    // Each side's netmap lists the other with its disco key and (behind an endpoint-independent NAT)
    // its public endpoint, from STUN through its WireGuard socket. Behind a symmetric NAT the public
    // endpoints are not reported (no peer could use them): wait for the netcheck that found that.
    const router = (n: Name) => lab.host(n === 'a' ? 'ra' : 'rb').addr;
    const netmapOf = (n: Name) => JSON.parse(readFileSync(join(ctx.dir, n, 'state', 'netmap.json'), 'utf8')) as { peers: { discoKey?: string; endpoints: string[] }[] };
    await waitFor(
      'netmaps with peers, their disco keys and public endpoints',
      () =>
        NAMES.every((n) => {
          const p = netmapOf(n).peers[0];
          const other = n === 'a' ? 'b' : 'a';
          if (mode === 'symmetric') return p?.discoKey !== undefined && /"msg":"netcheck"/.test(readFileSync(join(ctx.dir, `${other}.log`), 'utf8'));
          return p?.discoKey !== undefined && p.endpoints.some((e) => e.startsWith(`${router(other)}:`));
        }),
      30_000,
    );
  }, 120_000);

  afterAll(async () => {
    ctx.lab?.destroy();
    await ctx.coord.kill();
    await ctx.coord.cleanup();
    if (ctx.dir) rmSync(ctx.dir, { recursive: true, force: true });
  });
  return ctx;
}

describe.skipIf(!canRunE2e)('path discovery behind endpoint-independent NATs', () => {
  const ctx = natLab('endpoint-independent');

  it('goes direct within seconds, through both NATs, and packets flow', async () => {
    await waitFor('a first ping a → b', () => ctx.lab.pingsOnce('a', ctx.addr.b!), 30_000);
    const started = Date.now();
    const rb = ctx.lab.host('rb').addr;
    const ra = ctx.lab.host('ra').addr;
    await waitFor(
      'the direct path on both sides',
      () => {
        ctx.lab.pingsOnce('a', ctx.addr.b!);
        const pa = ctx.path('a');
        const pb = ctx.path('b');
        return pa?.path === 'direct' && pb?.path === 'direct';
      },
      30_000,
    );
    expect(Date.now() - started).toBeLessThan(30_000);
    const pa = ctx.path('a')!;
    expect(pa).toMatchObject({ path: 'direct', relay: null });
    // Through both NATs: b's public (router) endpoint, found by STUN, hole-punched.
    expect(pa.endpoint).toMatch(new RegExp(`^${rb.replaceAll('.', '\\.')}:\\d+$`));
    expect(ctx.path('b')!.endpoint).toMatch(new RegExp(`^${ra.replaceAll('.', '\\.')}:\\d+$`));
    expect(ctx.cli('a', ['status'])).toContain(`active; direct ${pa.endpoint}`);
    expect(ctx.lab.exec('a', 'ping', ['-c', '3', '-i', '0.2', '-W', '2', ctx.addr.b!])).toMatch(/3 received/);
  }, 90_000);

  it('`agent ping` answers over the direct path and stops there', () => {
    const out = ctx.cli('a', ['ping', 'b']);
    const rb = ctx.lab.host('rb').addr;
    expect(out.trim().split('\n').at(-1)).toMatch(new RegExp(`^pong from b \\(${ctx.addr.b!.replaceAll('.', '\\.')}\\) via ${rb.replaceAll('.', '\\.')}:\\d+ in [\\d.]+ms$`));
    const json = JSON.parse(ctx.cli('a', ['ping', ctx.addr.b!, '-c', '2', '--json'])) as { path: string; endpoint: string; latencyMs: number }[];
    expect(json).toHaveLength(2);
    expect(json.every((r) => r.path === 'direct' && r.endpoint.startsWith(`${rb}:`) && r.latencyMs >= 0)).toBe(true);
    let err = '';
    try {
      ctx.cli('a', ['ping', 'nosuchpeer']);
    } catch (e) {
      err = String((e as { stderr?: string }).stderr ?? e);
    }
    expect(err).toMatch(/no peer "nosuchpeer"/);
  }, 30_000);

  it('a TCP transfer survives the direct path being cut (relay) and healed (direct again)', async () => {
    await ctx.listen('b', 7100);
    const stream = ctx.lab.spawn('a', process.execPath, [ctx.stream, ctx.addr.b!, '7100', '30']);
    let result = '';
    createInterface({ input: stream.stdout! }).on('line', (l) => (result = l));
    const exited = new Promise<void>((resolve) => stream.once('exit', () => resolve()));
    await waitFor('the stream on the direct path', () => ctx.path('a')?.path === 'direct' && ctx.path('a')!.rxBytes > 100_000, 15_000);
    // Cut: the routers drop every UDP datagram between them (WireGuard and disco alike). TCP to coord
    // (the relay) still works.
    const ra = ctx.lab.host('ra').addr;
    const rb = ctx.lab.host('rb').addr;
    ctx.lab.exec('ra', 'nft', ['-f', '-'], {
      input: `table inet cut {
  chain c {
    type filter hook forward priority -10; policy accept;
    ip daddr ${rb} meta l4proto udp drop
    ip saddr ${rb} meta l4proto udp drop
  }
}
`,
    });
    await waitFor('both sides on the relay', () => ctx.path('a')?.path === 'relay' && ctx.path('b')?.path === 'relay', 15_000);
    expect(ctx.path('a')).toMatchObject({ relay: 'coord', endpoint: null });
    const relayedAt = ctx.path('a')!.rxBytes;
    await waitFor('the stream to go on through the relay', () => ctx.path('a')!.rxBytes > relayedAt + 200_000, 15_000);
    // Heal: direct again (probes keep trying while relayed), and the same connection goes on.
    ctx.lab.exec('ra', 'nft', ['delete', 'table', 'inet', 'cut']);
    await waitFor('both sides direct again', () => ctx.path('a')?.path === 'direct' && ctx.path('b')?.path === 'direct', 20_000);
    expect(ctx.path('a')!.endpoint).toMatch(new RegExp(`^${rb.replaceAll('.', '\\.')}:`));
    expect(ctx.path('b')!.endpoint).toMatch(new RegExp(`^${ra.replaceAll('.', '\\.')}:`));
    await exited;
    const r = JSON.parse(result) as { ok: boolean; bytes: number; error: string | null };
    expect(r, result).toMatchObject({ ok: true, error: null });
    expect(r.bytes).toBeGreaterThan(1_000_000);
  }, 90_000);
});

describe.skipIf(!canRunE2e)('path discovery behind symmetric NATs', () => {
  const ctx = natLab('symmetric');

  it('stays on the relay (no direct path can work), and everything flows', async () => {
    await waitFor('a first ping a → b', () => ctx.lab.pingsOnce('a', ctx.addr.b!), 30_000);
    await ctx.listen('b', 7200);
    // Long enough for several rounds of probes and call-me-maybe (every 5 s).
    const out = ctx.lab.exec('a', 'ping', ['-c', '40', '-i', '0.3', '-W', '2', ctx.addr.b!], { timeoutMs: 60_000 });
    expect(out).toMatch(/40 received/);
    expect(ctx.lab.exec('a', process.execPath, [ctx.helper, 'connect', ctx.addr.b!, '7200', '5000']).trim()).toBe('ok');
    for (const n of NAMES) {
      expect(ctx.path(n)).toMatchObject({ path: 'relay', relay: 'coord', endpoint: null });
      expect(ctx.cli(n, ['status'])).toContain('active; relay "coord"');
    }
    // `agent ping -c 1` reports the relay.
    const line = ctx.cli('a', ['ping', 'b', '-c', '1']).trim();
    expect(line).toMatch(/^pong from b \(.*\) via relay "coord" in [\d.]+ms$/);
    // The public endpoints of a NAT that maps per destination are of no use to a peer: not reported.
    expect(ctx.peerEndpoints('a').some((e) => e.startsWith(`${ctx.lab.host('rb').addr}:`))).toBe(false);
    expect(ctx.peerEndpoints('b').some((e) => e.startsWith(`${ctx.lab.host('ra').addr}:`))).toBe(false);
  }, 120_000);
});
