// Interoperability of `agent wireguard` with wireguard-go, in two network namespaces joined by a
// veth pair: ours in one, wireguard-go in the other, both configured only with `wg` and `ip`.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
const AGENT = join(root, 'dist/agent/main.js');
const isRoot = process.getuid?.() === 0;
const P = `mwwg${process.pid % 100000}`;
const NS_OURS = `${P}-ours`;
const NS_GO = `${P}-go`;
const IF_OURS = `${P}o`;
const IF_GO = `${P}g`;
const UNDER_IP = { ours: '192.168.237.1', go: '192.168.237.2' };
const UNDER_IP6 = { ours: 'fd36::1', go: 'fd36::2' };
const TUN_IP = { ours: '10.237.0.1', go: '10.237.0.2' };
const TUN_IP6 = { ours: 'fd37::1', go: 'fd37::2' };
const PORT = { ours: 51901, go: 51902 };

function sh(cmd: string, opts: { input?: string; timeout?: number } = {}): string {
  return execFileSync('bash', ['-c', cmd], { encoding: 'utf8', timeout: opts.timeout ?? 30_000, input: opts.input });
}
const inNs = (ns: string, cmd: string) => `ip netns exec ${ns} bash -c '${cmd.replace(/'/g, `'\\''`)}'`;

async function waitFor(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

// A TCP sink/source in node: the receiver prints "<bytes> <sha256>" when the sender closes.
const RECEIVER = `
const net = require('net'), crypto = require('crypto');
const srv = net.createServer((s) => { const h = crypto.createHash('sha256'); let n = 0;
  s.on('data', (d) => { n += d.length; h.update(d); });
  s.on('end', () => { console.log(n + ' ' + h.digest('hex')); srv.close(); }); });
srv.listen(Number(process.argv[2]), process.argv[3], () => console.log('ready'));`;
const SENDER = `
const net = require('net'), crypto = require('crypto');
const total = Number(process.argv[4]); const h = crypto.createHash('sha256'); let sent = 0;
const s = net.connect(Number(process.argv[3]), process.argv[2], () => {
  const pump = () => { while (sent < total) { const c = crypto.randomBytes(Math.min(65536, total - sent));
    h.update(c); sent += c.length; if (!s.write(c)) return s.once('drain', pump); } s.end(() => console.log(sent + ' ' + h.digest('hex'))); };
  pump(); });`;

async function transfer(fromNs: string, toNs: string, toIp: string, bytes: number): Promise<{ sent: string; got: string }> {
  const recv = spawn('ip', ['netns', 'exec', toNs, process.execPath, join(dir, 'receiver.cjs'), '5299', toIp], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  recv.stdout!.on('data', (d) => (out += d));
  try {
    await waitFor('receiver', () => out.includes('ready'));
    const sent = sh(inNs(fromNs, `${process.execPath} ${join(dir, 'sender.cjs')} ${toIp} 5299 ${bytes}`), { timeout: 120_000 }).trim();
    await waitFor('receiver digest', () => /\n\d+ [0-9a-f]{64}/.test(out), 30_000);
    return { sent, got: out.split('\n')[1].trim() };
  } finally {
    recv.kill();
  }
}

let dir = '';

describe.skipIf(!isRoot)('agent wireguard ⇄ wireguard-go', () => {
  let goProc: ChildProcess | null = null;
  let goLog = '';
  const keys = { ours: '', go: '', oursPub: '', goPub: '', psk: '' };

  beforeAll(async () => {
    for (const tool of ['wg', 'wireguard-go', 'ip']) sh(`command -v ${tool}`);
    expect(existsSync(AGENT)).toBe(true);
    dir = mkdtempSync(join(tmpdir(), 'mw-wg-e2e-'));
    writeFileSync(join(dir, 'receiver.cjs'), RECEIVER);
    writeFileSync(join(dir, 'sender.cjs'), SENDER);
    sh(`ip netns add ${NS_OURS} && ip netns add ${NS_GO}`);
    sh(`ip link add ${P}a type veth peer name ${P}b`);
    sh(`ip link set ${P}a netns ${NS_OURS} && ip link set ${P}b netns ${NS_GO}`);
    sh(inNs(NS_OURS, `ip addr add ${UNDER_IP.ours}/24 dev ${P}a && ip -6 addr add ${UNDER_IP6.ours}/64 dev ${P}a nodad`));
    sh(inNs(NS_GO, `ip addr add ${UNDER_IP.go}/24 dev ${P}b && ip -6 addr add ${UNDER_IP6.go}/64 dev ${P}b nodad`));
    for (const [ns, dev] of [[NS_OURS, `${P}a`], [NS_GO, `${P}b`]]) sh(inNs(ns, `ip link set lo up && ip link set ${dev} up`));

    // Ours detaches like wireguard-go does once its UAPI socket exists.
    sh(inNs(NS_OURS, `${process.execPath} ${AGENT} wireguard ${IF_OURS}`));
    // Verbose, so a test can see which handshake messages wireguard-go took or dropped.
    goProc = spawn('ip', ['netns', 'exec', NS_GO, 'wireguard-go', '-f', IF_GO], {
      stdio: ['ignore', 'pipe', 'ignore'],
      env: { ...process.env, LOG_LEVEL: 'verbose' },
    });
    goProc.stdout!.on('data', (d) => (goLog += d));
    await waitFor('UAPI sockets', () => existsSync(`/var/run/wireguard/${IF_OURS}.sock`) && existsSync(`/var/run/wireguard/${IF_GO}.sock`));

    keys.ours = sh('wg genkey').trim();
    keys.go = sh('wg genkey').trim();
    keys.oursPub = sh('wg pubkey', { input: keys.ours }).trim();
    keys.goPub = sh('wg pubkey', { input: keys.go }).trim();
    keys.psk = sh('wg genpsk').trim();
    for (const k of ['ours', 'go', 'psk'] as const) writeFileSync(join(dir, k), keys[k] + '\n', { mode: 0o600 });
    sh(inNs(NS_OURS, `wg set ${IF_OURS} private-key ${dir}/ours listen-port ${PORT.ours}`));
    sh(inNs(NS_GO, `wg set ${IF_GO} private-key ${dir}/go listen-port ${PORT.go}`));
    addPeers();
    sh(inNs(NS_OURS, `ip addr add ${TUN_IP.ours}/24 dev ${IF_OURS} && ip -6 addr add ${TUN_IP6.ours}/64 dev ${IF_OURS} nodad`));
    sh(inNs(NS_GO, `ip addr add ${TUN_IP.go}/24 dev ${IF_GO} && ip -6 addr add ${TUN_IP6.go}/64 dev ${IF_GO} nodad`));
    sh(inNs(NS_OURS, `ip link set ${IF_OURS} up`));
    sh(inNs(NS_GO, `ip link set ${IF_GO} up`));
  }, 60_000);

  function addPeers(): void {
    sh(inNs(NS_OURS, `wg set ${IF_OURS} peer ${keys.goPub} preshared-key ${dir}/psk endpoint ${UNDER_IP.go}:${PORT.go} allowed-ips ${TUN_IP.go}/32,${TUN_IP6.go}/128`));
    sh(inNs(NS_GO, `wg set ${IF_GO} peer ${keys.oursPub} preshared-key ${dir}/psk endpoint ${UNDER_IP.ours}:${PORT.ours} allowed-ips ${TUN_IP.ours}/32,${TUN_IP6.ours}/128`));
  }

  afterAll(() => {
    // Everything in our namespaces is ours: end it, then remove the namespaces (and so the veth).
    for (const ns of [NS_OURS, NS_GO]) {
      try {
        sh(`ip netns pids ${ns} | xargs -r kill`);
      } catch {
        // namespace never made
      }
    }
    goProc?.kill();
    try {
      execFileSync('sleep', ['0.5']);
    } catch {
      // ignore
    }
    for (const ns of [NS_OURS, NS_GO]) {
      try {
        sh(`ip netns pids ${ns} | xargs -r kill -9; ip netns del ${ns}`);
      } catch {
        // already gone
      }
    }
    for (const f of [IF_OURS, IF_GO]) rmSync(`/var/run/wireguard/${f}.sock`, { force: true });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('completes a handshake we initiate and pings both ways', () => {
    sh(inNs(NS_OURS, `ping -c 3 -i 0.2 -W 2 ${TUN_IP.go}`));
    sh(inNs(NS_GO, `ping -c 3 -i 0.2 -W 2 ${TUN_IP.ours}`));
    sh(inNs(NS_OURS, `ping -6 -c 2 -i 0.2 -W 2 ${TUN_IP6.go}`));
    sh(inNs(NS_GO, `ping -6 -c 2 -i 0.2 -W 2 ${TUN_IP6.ours}`));
    const hs = Number(sh(inNs(NS_OURS, `wg show ${IF_OURS} latest-handshakes`)).trim().split(/\s+/)[1]);
    expect(Math.abs(hs - Date.now() / 1000)).toBeLessThan(30);
  });

  it('completes a handshake wireguard-go initiates', () => {
    // Forget the sessions on both sides; then wireguard-go speaks first.
    sh(inNs(NS_OURS, `wg set ${IF_OURS} peer ${keys.goPub} remove`));
    sh(inNs(NS_GO, `wg set ${IF_GO} peer ${keys.oursPub} remove`));
    addPeers();
    expect(sh(inNs(NS_OURS, `wg show ${IF_OURS} latest-handshakes`)).trim().split(/\s+/)[1]).toBe('0');
    sh(inNs(NS_GO, `ping -c 3 -i 0.2 -W 2 ${TUN_IP.ours}`));
    sh(inNs(NS_OURS, `ping -c 2 -i 0.2 -W 2 ${TUN_IP.go}`));
    expect(Number(sh(inNs(NS_OURS, `wg show ${IF_OURS} latest-handshakes`)).trim().split(/\s+/)[1])).toBeGreaterThan(0);
  });

  it('carries 50 MB over TCP intact in each direction', async () => {
    const MB50 = 50 * 1024 * 1024;
    const there = await transfer(NS_OURS, NS_GO, TUN_IP.go, MB50);
    expect(there.got).toBe(there.sent);
    expect(there.got.startsWith(`${MB50} `)).toBe(true);
    const back = await transfer(NS_GO, NS_OURS, TUN_IP.ours, MB50);
    expect(back.got).toBe(back.sent);
  }, 180_000);

  it('`wg show` on ours reports the handshake and the transfer counters', () => {
    const dump = sh(inNs(NS_OURS, `wg show ${IF_OURS} dump`)).trim().split('\n');
    // interface line: private public port fwmark; peer line: public psk endpoint allowed hs rx tx keepalive
    const iface = dump[0].split('\t');
    expect(iface[1]).toBe(keys.oursPub);
    expect(iface[2]).toBe(String(PORT.ours));
    const peer = dump[1].split('\t');
    expect(peer[0]).toBe(keys.goPub);
    expect(peer[2]).toBe(`${UNDER_IP.go}:${PORT.go}`);
    expect(peer[3].split(',').sort()).toEqual([`${TUN_IP.go}/32`, `${TUN_IP6.go}/128`]);
    expect(Number(peer[4])).toBeGreaterThan(Date.now() / 1000 - 120);
    expect(Number(peer[5])).toBeGreaterThan(50 * 1024 * 1024);
    expect(Number(peer[6])).toBeGreaterThan(50 * 1024 * 1024);
    const human = sh(inNs(NS_OURS, `wg show ${IF_OURS}`));
    expect(human).toMatch(/latest handshake: .*ago/);
    expect(human).toMatch(/transfer: [\d.]+ MiB received, [\d.]+ MiB sent/);
  });

  it('works over an IPv6 underlay, and wireguard-go roams to it', () => {
    sh(inNs(NS_OURS, `wg set ${IF_OURS} peer ${keys.goPub} endpoint [${UNDER_IP6.go}]:${PORT.go}`));
    sh(inNs(NS_OURS, `ping -c 2 -i 0.2 -W 2 ${TUN_IP.go}`));
    expect(sh(inNs(NS_OURS, `wg show ${IF_OURS} endpoints`))).toContain(`[${UNDER_IP6.go}]:${PORT.go}`);
    expect(sh(inNs(NS_GO, `wg show ${IF_GO} endpoints`))).toContain(`[${UNDER_IP6.ours}]:${PORT.ours}`);
    sh(inNs(NS_GO, `ping -c 2 -i 0.2 -W 2 ${TUN_IP.ours}`));
    // Back to IPv4 for the rest.
    sh(inNs(NS_OURS, `wg set ${IF_OURS} peer ${keys.goPub} endpoint ${UNDER_IP.go}:${PORT.go}`));
    sh(inNs(NS_OURS, `ping -c 1 -W 2 ${TUN_IP.go}`));
  });

  it('round-trips `wg showconf` through `wg setconf`, and keeps working', () => {
    const conf = sh(inNs(NS_OURS, `wg showconf ${IF_OURS}`));
    expect(conf).toContain(`PublicKey = ${keys.goPub}`);
    writeFileSync(join(dir, 'ours.conf'), conf, { mode: 0o600 });
    sh(inNs(NS_OURS, `wg setconf ${IF_OURS} ${dir}/ours.conf`));
    expect(sh(inNs(NS_OURS, `wg showconf ${IF_OURS}`))).toBe(conf);
    sh(inNs(NS_OURS, `ping -c 2 -i 0.2 -W 2 ${TUN_IP.go}`));
  });

  /** Both sides forget each other and get fresh static keys, ours larger (bytewise) or smaller. */
  function freshKeys(oursLarger: boolean): void {
    sh(inNs(NS_OURS, `wg set ${IF_OURS} peer ${keys.goPub} remove`));
    sh(inNs(NS_GO, `wg set ${IF_GO} peer ${keys.oursPub} remove`));
    do {
      keys.ours = sh('wg genkey').trim();
      keys.go = sh('wg genkey').trim();
      keys.oursPub = sh('wg pubkey', { input: keys.ours }).trim();
      keys.goPub = sh('wg pubkey', { input: keys.go }).trim();
    } while (Buffer.compare(Buffer.from(keys.oursPub, 'base64'), Buffer.from(keys.goPub, 'base64')) > 0 !== oursLarger);
    for (const k of ['ours', 'go'] as const) writeFileSync(join(dir, k), keys[k] + '\n', { mode: 0o600 });
    sh(inNs(NS_OURS, `wg set ${IF_OURS} private-key ${dir}/ours`));
    sh(inNs(NS_GO, `wg set ${IF_GO} private-key ${dir}/go`));
    addPeers();
  }

  const nsPids = (ns: string) => sh(`ip netns pids ${ns}`).trim().split(/\s+/).filter(Boolean).map(Number);
  // A ping that has sent its request is asleep waiting for the reply.
  const asleepInPing = (pid: number) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat.includes('(ping)') && stat.slice(stat.lastIndexOf(')') + 2).startsWith('S');
    } catch {
      return false;
    }
  };

  /**
   * With both WireGuard processes stopped, a ping starts in each namespace towards the other's tunnel
   * address; then both resume at the same instant, read their ping from the TUN and initiate, so the
   * two initiations cross. Returns the ms from resuming to each ping's reply.
   */
  async function simultaneousFirstPings(): Promise<{ oursToGo: number; goToOurs: number; collided: boolean }> {
    const daemons = [...nsPids(NS_OURS), ...nsPids(NS_GO)];
    expect(daemons.length).toBeGreaterThanOrEqual(2);
    const pings: ChildProcess[] = [];
    for (const pid of daemons) process.kill(pid, 'SIGSTOP');
    try {
      let resumed = Infinity;
      const replies = [
        [NS_OURS, TUN_IP.go],
        [NS_GO, TUN_IP.ours],
      ].map(([ns, to]) => {
        const p = spawn('ip', ['netns', 'exec', ns, 'ping', '-n', '-c', '1', '-W', '8', to], { stdio: 'ignore' });
        pings.push(p);
        return new Promise<number>((resolve, reject) => {
          p.on('exit', (code) => (code === 0 ? resolve(performance.now() - resumed) : reject(new Error(`ping ${ns} → ${to} got no reply`))));
        });
      });
      for (const r of replies) r.catch(() => {}); // reported through Promise.all below
      await waitFor('both pings sent', () => pings.every((p) => asleepInPing(p.pid!)));
      await new Promise((r) => setTimeout(r, 100));
      const logFrom = goLog.length;
      resumed = performance.now();
      for (const pid of daemons) process.kill(pid, 'SIGCONT');
      const [oursToGo, goToOurs] = (await Promise.all(replies)).map(Math.round);
      // wireguard-go drops our response to its initiation only if it consumed our initiation first.
      return { oursToGo, goToOurs, collided: goLog.slice(logFrom).includes('Received invalid response message') };
    } finally {
      for (const pid of daemons) {
        try {
          process.kill(pid, 'SIGCONT');
        } catch {
          // already gone
        }
      }
      for (const p of pings) p.kill();
    }
  }

  // When both initiate at once, each consumes the other's initiation and drops the other's response;
  // ours then re-initiates early (sooner when its static key is the larger) instead of both waiting
  // for the 5 s retransmit, as wireguard-go alone would. The race does not always end in a collision
  // (one side may read the other's initiation before its own ping), so try again until it does.
  for (const oursLarger of [true, false]) {
    it(`recovers from simultaneous initiation well under 5 s (our static key ${oursLarger ? 'larger' : 'smaller'})`, async () => {
      const order = `our key ${oursLarger ? 'larger' : 'smaller'}`;
      for (let attempt = 1; attempt <= 6; attempt++) {
        freshKeys(oursLarger);
        expect(sh(inNs(NS_OURS, `wg show ${IF_OURS} latest-handshakes`)).trim().split(/\s+/)[1]).toBe('0');
        expect(sh(inNs(NS_GO, `wg show ${IF_GO} latest-handshakes`)).trim().split(/\s+/)[1]).toBe('0');
        const t = await simultaneousFirstPings();
        console.log(`${order}, attempt ${attempt}: ${t.collided ? 'collided' : 'no collision'}; first reply ours→go ${t.oursToGo} ms, go→ours ${t.goToOurs} ms`);
        expect(t.oursToGo).toBeLessThan(1500);
        expect(t.goToOurs).toBeLessThan(1500);
        if (t.collided) return;
      }
      expect.fail(`no collision in 6 attempts (${order})`);
    }, 60_000);
  }

  it('removes its socket and device on SIGTERM', async () => {
    sh(`ip netns pids ${NS_OURS} | xargs -r kill -TERM`);
    await waitFor('socket removal', () => !existsSync(`/var/run/wireguard/${IF_OURS}.sock`));
    await waitFor('device removal', () => !sh(inNs(NS_OURS, 'ip -o link')).includes(IF_OURS));
  });
});

// Ours demanding cookies on every handshake (as under load): wireguard-go must take our cookie
// reply and come back with a valid mac2, and our mac2 check must accept it.
describe.skipIf(!isRoot)('agent wireguard under load ⇄ wireguard-go: cookie replies', () => {
  const Q = `mwwc${process.pid % 100000}`;
  const ns = { ours: `${Q}-ours`, go: `${Q}-go` };
  const ifn = { ours: `${Q}o`, go: `${Q}g` };
  let tmp = '';

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'mw-wg-e2e-cookie-'));
    sh(`ip netns add ${ns.ours} && ip netns add ${ns.go}`);
    sh(`ip link add ${Q}a type veth peer name ${Q}b && ip link set ${Q}a netns ${ns.ours} && ip link set ${Q}b netns ${ns.go}`);
    sh(inNs(ns.ours, `ip addr add 192.168.236.1/24 dev ${Q}a && ip link set ${Q}a up && ip link set lo up`));
    sh(inNs(ns.go, `ip addr add 192.168.236.2/24 dev ${Q}b && ip link set ${Q}b up && ip link set lo up`));
    sh(inNs(ns.ours, `MESHWARD_WG_UNDER_LOAD=0 ${process.execPath} ${AGENT} wireguard ${ifn.ours}`));
    spawn('ip', ['netns', 'exec', ns.go, 'wireguard-go', '-f', ifn.go], { stdio: 'ignore' });
    await waitFor('UAPI sockets', () => existsSync(`/var/run/wireguard/${ifn.ours}.sock`) && existsSync(`/var/run/wireguard/${ifn.go}.sock`));
    const ko = sh('wg genkey').trim();
    const kg = sh('wg genkey').trim();
    writeFileSync(join(tmp, 'o'), ko, { mode: 0o600 });
    writeFileSync(join(tmp, 'g'), kg, { mode: 0o600 });
    const po = sh('wg pubkey', { input: ko }).trim();
    const pg = sh('wg pubkey', { input: kg }).trim();
    sh(inNs(ns.ours, `wg set ${ifn.ours} private-key ${tmp}/o listen-port 51903 peer ${pg} endpoint 192.168.236.2:51904 allowed-ips 10.236.0.2/32`));
    sh(inNs(ns.go, `wg set ${ifn.go} private-key ${tmp}/g listen-port 51904 peer ${po} endpoint 192.168.236.1:51903 allowed-ips 10.236.0.1/32`));
    sh(inNs(ns.ours, `ip addr add 10.236.0.1/24 dev ${ifn.ours} && ip link set ${ifn.ours} up`));
    sh(inNs(ns.go, `ip addr add 10.236.0.2/24 dev ${ifn.go} && ip link set ${ifn.go} up`));
  }, 60_000);

  afterAll(() => {
    for (const n of [ns.ours, ns.go]) {
      try {
        sh(`ip netns pids ${n} | xargs -r kill; sleep 0.3; ip netns pids ${n} | xargs -r kill -9; ip netns del ${n}`);
      } catch {
        // never made
      }
    }
    for (const f of [ifn.ours, ifn.go]) rmSync(`/var/run/wireguard/${f}.sock`, { force: true });
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('completes the handshake wireguard-go starts after one cookie round trip', () => {
    // The first initiation is answered with a cookie; wireguard-go retries ~5 s later with mac2.
    const t0 = Date.now();
    sh(inNs(ns.go, 'ping -c 1 -w 15 10.236.0.1'), { timeout: 20_000 });
    expect(Date.now() - t0).toBeGreaterThan(4000);
    sh(inNs(ns.ours, 'ping -c 2 -i 0.2 -W 2 10.236.0.2'));
    expect(Number(sh(inNs(ns.ours, `wg show ${ifn.ours} latest-handshakes`)).trim().split(/\s+/)[1])).toBeGreaterThan(0);
  }, 30_000);
});
