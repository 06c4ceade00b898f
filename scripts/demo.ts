// `npm run demo`: a company network in network namespaces, in one command. coord runs on a virtual LAN
// with SQLite in a temporary directory; every device is a real agent in its own namespace (TUN device,
// WireGuard, the per-packet filter). It shows `agent status`, then a table of who can reach what, each
// cell a real TCP connection compared with what coord's policy engine says, then edits the policy
// through the admin API and shows the table change. scripts/demo (bash) bootstraps and runs this as root.
import { execFile, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { request } from 'undici';
import { callDaemon } from '../agent/localapi/client.js';
import type { AgentStatus } from '../agent/localapi/types.js';
import { AdminClient } from '../coord/client/index.js';
import { PeerIndex } from '../coord/peers.js';
import { compileFilters, filterAccepts, parsePolicy, type Topology } from '../coord/policy/index.js';
import { DEVICES, LIVE_CHANGE, NETWORK, OWNER, PARTNER, PEOPLE, SERVICES, companyPolicy, type DemoDevice } from './demo-company.js';
import { AGENT, COORD, Coord, sleep, waitFor, writeNetHelper } from './lab.js';
import { removeNamespace, VirtualLan } from './netns.js';

const PASSWORD = 'demo password, not a secret';
const CONNECT_MS = 1500;

const USAGE = `usage: npm run demo [-- OPTIONS]   (as root)

Builds a company network in network namespaces (coord + one agent per device), shows who can reach
what, changes the policy live, and cleans everything up on exit.

  --keep        leave the network running and print how to explore it
  --yes, -y     do not pause (also when stdin is not a terminal)
  --json        print a machine-readable summary on stdout (the story goes to stderr)
  --down DIR    stop and remove a network left running by --keep (DIR as printed)
  --restart-coord DIR
                start coord of a kept network again (stopping it first if it runs), on the
                address and port it had: the agents reconnect by themselves
  --help        this text`;

// ---------- output ----------

interface Options {
  keep: boolean;
  yes: boolean;
  json: boolean;
  down?: string;
  restartCoord?: string;
}

function parseArgs(argv: string[]): Options | 'help' {
  const o: Options = { keep: false, yes: false, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--keep') o.keep = true;
    else if (a === '--yes' || a === '-y') o.yes = true;
    else if (a === '--json') o.json = true;
    else if (a === '--help' || a === '-h') return 'help';
    else if (a === '--down') {
      const dir = argv[++i];
      if (!dir) throw new Error('--down needs the directory the demo printed (e.g. --down /tmp/mw-demo-AbC123)');
      o.down = dir;
    } else if (a === '--restart-coord') {
      const dir = argv[++i];
      if (!dir) throw new Error('--restart-coord needs the directory the demo printed');
      o.restartCoord = dir;
    } else throw new Error(`unknown option ${JSON.stringify(a)} (try: npm run demo -- --help)`);
  }
  return o;
}

let human: NodeJS.WriteStream = process.stdout;
const color = (code: number) => (s: string) => (human.isTTY && !process.env.NO_COLOR ? `\x1b[${code}m${s}\x1b[0m` : s);
const bold = color(1);
const dim = color(2);
const red = color(31);
const green = color(32);
const yellow = color(33);
const say = (s = '') => human.write(s + '\n');
const step = (s: string) => say('\n' + bold('▶ ' + s));

// ---------- processes and cleanup ----------

/** Everything a later `--down DIR` needs to remove a kept network, and `--restart-coord DIR` to restart coord. */
interface Made {
  dir: string;
  pids: number[];
  namespaces: string[];
  bridge: string;
  /** Where coord listens (HOST:PORT, the port chosen at the first start and kept), and its process. */
  coord?: { listen: string; pid: number };
}

function saveMade(m: Made): void {
  writeFileSync(join(m.dir, 'demo.json'), JSON.stringify(m, null, 2) + '\n');
}

/** Whether `pid` is still a process of this demo: its command line names the demo's directory (a pid from an old --keep may belong to someone else by now). */
function ours(m: Made, pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(m.dir);
  } catch {
    return false; // gone
  }
}

function killOurs(m: Made, pid: number): void {
  if (!ours(m, pid)) return;
  try {
    process.kill(-pid, 'SIGKILL'); // each was started as its own process group
  } catch {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** Removes what a demo made: its processes, namespaces, bridge and directory. Safe to repeat. */
function teardown(m: Made): void {
  for (const pid of m.pids) killOurs(m, pid);
  for (const ns of m.namespaces) removeNamespace(ns);
  try {
    execFileSync('ip', ['link', 'del', m.bridge], { stdio: 'ignore' });
  } catch {
    // already removed
  }
  rmSync(m.dir, { recursive: true, force: true });
}

/** What a kept demo recorded in DIR/demo.json, or undefined (and a message) when DIR is not one. */
function kept(dir: string): Made | undefined {
  const file = join(dir, 'demo.json');
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as Made;
  process.stderr.write(`demo: ${file} not found: is ${dir} a directory printed by "npm run demo -- --keep"?\n`);
  return undefined;
}

function down(dir: string): number {
  const m = kept(dir);
  if (!m) return 1;
  teardown(m);
  process.stdout.write(`demo: stopped ${m.pids.length} processes, removed ${m.namespaces.length} namespaces, bridge ${m.bridge} and ${dir}\n`);
  return 0;
}

/** Starts coord of a kept network again where it listened before (stopping it first if it still runs). */
async function restartCoord(dir: string): Promise<number> {
  const m = kept(dir);
  if (!m) return 1;
  if (!m.coord) {
    process.stderr.write(`demo: ${join(dir, 'demo.json')} records no coord to restart\n`);
    return 1;
  }
  const old = m.coord.pid;
  killOurs(m, old);
  await waitFor('the old coord to exit', () => !ours(m, old), 5000);
  const coord = await new Coord({ dir, log: join(dir, 'coord.log') }).start(['--listen', m.coord.listen]);
  m.pids = m.pids.filter((p) => p !== old);
  m.coord = { listen: m.coord.listen, pid: coord.proc!.pid! };
  m.pids.push(m.coord.pid);
  saveMade(m);
  process.stdout.write(`demo: coord is listening on ${coord.url} again; the agents reconnect by themselves\n`);
  return 0;
}

/** Runs a command to completion without blocking the event loop; rejects with its stderr. */
function run(cmd: string, args: string[], timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 1 << 22 }, (err, stdout, stderr) => {
      if (err) reject(new Error((stderr || stdout || err.message).trim()));
      else resolve(stdout);
    });
  });
}

// ---------- the demo ----------

type Verdict = 'allowed' | 'blocked';

interface Cell {
  from: string;
  service: string;
  expected: Verdict;
  observed: Verdict;
  /** "ok", or why the connection failed (timeout = dropped by the filter). */
  detail: string;
}

interface Table {
  phase: 'before' | 'after';
  cells: Cell[];
  mismatches: number;
}

interface Summary {
  schema: 1;
  network: string;
  coord: string;
  devices: { name: string; ipv4: string; ipv6: string; user: string | null; tags: string[] }[];
  services: { id: string; device: string; port: number; label: string }[];
  tables: Table[];
  liveChange: { story: string; from: string; service: string; before: Verdict; after: Verdict; ms: number | null };
  /** The share of the git server with a second network; `cells` only when available. */
  sharing: { available: boolean; message: string; cells?: Cell[] };
  /** MagicDNS: names looked up and connections made by name, as the sharing document says they work. */
  names: NameCheck[];
  /** What the demo made (all removed on exit unless --keep). */
  made: { dir: string; bridge: string; namespaces: string[] };
  ok: boolean;
}

interface NameCheck {
  on: string;
  /** "lookup NAME" or "connect NAME:PORT". */
  what: string;
  expected: string;
  observed: string;
  why: string;
}

interface Registered {
  def: DemoDevice;
  ns: string;
  socket: string;
  id: string;
  ipv4: string;
  ipv6: string;
}

class Demo {
  readonly dir: string;
  /** The network helper program (scripts/lab.ts), run inside namespaces. */
  readonly helper: string;
  readonly lan: VirtualLan;
  readonly made: Made;
  coordUrl = '';
  /** The admin API as the company network's owner, and as the partner network's. */
  owner!: AdminClient;
  partner!: AdminClient;
  readonly devices = new Map<string, Registered>();
  /** Who can sign in to the admin console at <coord>/admin (the two owners, passwords made here). */
  readonly consoleLogins: { email: string; network: string; password: string }[] = [];
  /** Erin's laptop in the partner network, once sharing() made it. */
  partnerLaptop: { ns: string; socket: string } | null = null;

  constructor(readonly opts: Options) {
    this.dir = mkdtempSync(join(tmpdir(), 'mw-demo-'));
    this.helper = writeNetHelper(this.dir);
    this.lan = VirtualLan.create();
    this.made = { dir: this.dir, pids: [], namespaces: [], bridge: this.lan.bridge };
    saveMade(this.made);
  }

  /** Starts a long-running process in a namespace, logging to DIR/NAME.log, in its own process group. */
  private start(logName: string, host: string, cmd: string, args: string[]): ChildProcess {
    const log = openSync(join(this.dir, `${logName}.log`), 'a');
    const child = this.lan.spawn(host, cmd, args, { stdio: ['ignore', log, log], detached: true });
    closeSync(log);
    child.unref();
    if (child.pid) this.made.pids.push(child.pid);
    saveMade(this.made);
    return child;
  }

  private async waitForLog(logName: string, re: RegExp, ms = 15_000): Promise<RegExpExecArray> {
    const file = join(this.dir, `${logName}.log`);
    return waitFor(`${logName} (see ${file})`, () => (existsSync(file) ? re.exec(readFileSync(file, 'utf8')) ?? undefined : undefined), ms);
  }

  addHost(name: string, n: number): string {
    const host = this.lan.addHost(name, n);
    this.made.namespaces.push(host.ns);
    saveMade(this.made);
    return host.ns;
  }

  /**
   * Creates both networks (their owners' API keys go to DIR/owner.key and DIR/partner.key) and starts
   * coord on the LAN's gateway. The port it picks is recorded, so a restart (--restart-coord) reuses it.
   */
  async startCoord(): Promise<void> {
    const coord = new Coord({ dir: this.dir, log: join(this.dir, 'coord.log') });
    const company = coord.createTailnetWithLink(NETWORK, OWNER);
    const partner = coord.createTailnetWithLink(PARTNER.network, PARTNER.owner);
    const [ownerKey, partnerKey] = [company.apiKey, partner.apiKey];
    writeFileSync(join(this.dir, 'owner.key'), ownerKey + '\n', { mode: 0o600 });
    writeFileSync(join(this.dir, 'partner.key'), partnerKey + '\n', { mode: 0o600 });
    await coord.start(['--listen', `${this.lan.gateway}:0`]);
    const pid = coord.proc!.pid!;
    this.made.pids.push(pid);
    this.made.coord = { listen: new URL(coord.url).host, pid };
    saveMade(this.made);
    this.coordUrl = coord.url;
    this.owner = new AdminClient(coord.url, ownerKey);
    this.partner = new AdminClient(coord.url, partnerKey);
    // Both owners get a console password through their one-time links, so a person can sign in to the
    // admin console of either network and click through the share the demo makes.
    for (const [email, network, code] of [[OWNER, NETWORK, company.passwordCode], [PARTNER.owner, PARTNER.network, partner.passwordCode]] as const) {
      const password = `demo-${randomBytes(6).toString('hex')}`;
      const r = await request(`${coord.url}/admin/api/password`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ code, password }) });
      const text = await r.body.text();
      if (r.statusCode !== 200) throw new Error(`setting ${email}'s console password failed: ${r.statusCode} ${text}`);
      this.consoleLogins.push({ email, network, password });
    }
  }

  async addPeople(): Promise<void> {
    const members = PEOPLE.filter((p) => p.email !== OWNER);
    const invites = await this.owner.inviteUsers(members.map((p) => ({ email: p.email, role: 'member' })));
    const anyone = new AdminClient(this.coordUrl);
    for (const inv of invites) await anyone.acceptUserInvite(inv.code, PASSWORD);
  }

  /** Starts the daemon of every device, makes an auth key for each, and runs `agent up` in parallel. */
  async startDevices(): Promise<void> {
    for (const d of DEVICES) {
      const ns = this.addHost(d.name, d.lanHost);
      const socket = join(this.dir, d.name, 'agent.sock');
      this.start(d.name, d.name, process.execPath, [AGENT, 'daemon', '--state-dir', join(this.dir, d.name, 'state'), '--socket', socket, '--log-level', 'info']);
      this.devices.set(d.name, { def: d, ns, socket, id: '', ipv4: '', ipv6: '' });
    }
    await waitFor('agent daemons', () => [...this.devices.values()].every((r) => existsSync(r.socket)));
    await Promise.all(
      DEVICES.map(async (d) => {
        const create = d.tags ? { reusable: false, preauthorized: true, tags: d.tags } : { reusable: false, preauthorized: true };
        const key = await this.owner.createKey({
          capabilities: { devices: { create } },
          expirySeconds: 3600,
          description: `demo: ${d.name}`,
          ...(d.user && d.user !== OWNER ? { user: d.user } : {}),
        });
        const reg = this.devices.get(d.name)!;
        const args = ['up', '--coord', this.coordUrl, '--authkey', key.key, '--hostname', d.name, '--socket', reg.socket];
        if (d.tags) args.push('--advertise-tags', d.tags.join(','));
        await run('ip', ['netns', 'exec', reg.ns, process.execPath, AGENT, ...args]);
        const s = await callDaemon<AgentStatus>(reg.socket, 'GET', '/status');
        reg.ipv4 = s.self!.addresses[0]!;
        reg.ipv6 = s.self!.addresses[1] ?? '';
      }),
    );
    for (const d of await this.owner.devices()) {
      const reg = this.devices.get(d.hostname);
      if (reg) reg.id = d.id;
    }
  }

  async startServices(): Promise<void> {
    const byDevice = new Map<string, number[]>();
    for (const s of SERVICES) byDevice.set(s.device, [...(byDevice.get(s.device) ?? []), s.port]);
    for (const [device, ports] of byDevice) this.start(`listen-${device}`, device, process.execPath, [this.helper, 'listen', ...ports.map(String)]);
    await Promise.all([...byDevice.keys()].map((d) => this.waitForLog(`listen-${d}`, /ready/)));
  }

  /** The network as the policy engine sees it, from coord's own API (as coord builds it from its store). */
  async topology(): Promise<Topology> {
    const users = await this.owner.users();
    const idOf = new Map(users.map((u) => [u.loginName, u.id]));
    const topo: Topology = { users: users.map((u) => ({ id: u.id, name: u.id, email: u.loginName, role: u.role })), nodes: {} };
    for (const d of await this.owner.devices()) {
      if (d.isExternal) continue;
      const tags = d.tags;
      topo.nodes[d.id] = { hostname: d.hostname, tags, ipv4: d.addresses[0]!, ipv6: d.addresses[1] ?? '', user: tags.length > 0 ? null : (idOf.get(d.user) ?? d.user) };
    }
    return topo;
  }

  /** What the stored policy says, per cell: compiled by the policy engine for the current network. */
  async expected(): Promise<{ verdict: (from: string, service: string) => Verdict; peers: PeerIndex }> {
    const policy = parsePolicy((await this.owner.policy()).text);
    const topo = await this.topology();
    const filters = compileFilters(policy, topo);
    const verdict = (from: string, service: string): Verdict => {
      const s = SERVICES.find((x) => x.id === service)!;
      const src = this.devices.get(from)!;
      const dst = this.devices.get(s.device)!;
      return filterAccepts(filters[dst.id] ?? [], src.ipv4, dst.ipv4, s.port, 6) ? 'allowed' : 'blocked';
    };
    return { verdict, peers: PeerIndex.of(topo.nodes, filters) };
  }

  /** Waits until every agent's netmap lists exactly the peers the policy gives it. */
  async waitForNetmaps(peers: PeerIndex): Promise<void> {
    await waitFor('every device to receive its netmap', async () => {
      for (const reg of this.devices.values()) {
        const want = new Set(peers.peersOf(reg.id).map((id) => [...this.devices.values()].find((r) => r.id === id)?.ipv4 ?? id));
        const s = await callDaemon<AgentStatus>(reg.socket, 'GET', '/status');
        const have = new Set(s.peers.filter((p) => !p.shared).map((p) => p.addresses[0] ?? p.id));
        if (s.backendState !== 'Running' || have.size !== want.size || [...want].some((a) => !have.has(a))) return false;
      }
      return true;
    }, 20_000);
  }

  /** Tries every cell with a real TCP connection, all sources in parallel. */
  async table(phase: Table['phase']): Promise<Table> {
    const { verdict } = await this.expected();
    const cells: Cell[] = [];
    await Promise.all(
      DEVICES.map(async (d) => {
        const targets = SERVICES.filter((s) => s.device !== d.name);
        const addrs = targets.map((s) => `${this.devices.get(s.device)!.ipv4}:${s.port}`);
        const out = await run('ip', ['netns', 'exec', this.devices.get(d.name)!.ns, process.execPath, this.helper, 'try', String(CONNECT_MS), ...addrs]);
        const results = JSON.parse(out) as Record<string, string>;
        targets.forEach((s, i) => {
          const detail = results[addrs[i]!]!;
          cells.push({ from: d.name, service: s.id, expected: verdict(d.name, s.id), observed: detail === 'ok' ? 'allowed' : 'blocked', detail });
        });
      }),
    );
    const order = (c: Cell) => DEVICES.findIndex((d) => d.name === c.from) * 100 + SERVICES.findIndex((s) => s.id === c.service);
    cells.sort((a, b) => order(a) - order(b));
    return { phase, cells, mismatches: cells.filter((c) => c.expected !== c.observed).length };
  }

  showTable(t: Table, previous?: Table): void {
    const rowW = Math.max(...DEVICES.map((d) => d.name.length)) + 2;
    const colW = 13;
    const pad = (s: string, w: number, shown = s.length) => s + ' '.repeat(Math.max(1, w - shown));
    say(dim('  ' + ' '.repeat(rowW) + SERVICES.map((s) => pad(s.label, colW)).join('').trimEnd()));
    say(dim('  ' + ' '.repeat(rowW) + SERVICES.map((s) => pad(s.id.replace('accounting', 'acct'), colW)).join('').trimEnd()));
    for (const d of DEVICES) {
      let line = pad(d.name, rowW);
      for (const s of SERVICES) {
        const c = t.cells.find((x) => x.from === d.name && x.service === s.id);
        if (!c) {
          line += pad(dim('·'), colW, 1);
          continue;
        }
        const before = previous?.cells.find((x) => x.from === c.from && x.service === c.service);
        const changed = before !== undefined && before.observed !== c.observed;
        const mark = c.observed === c.expected ? '✓' : '✗';
        const text = `${c.observed} ${mark}${changed ? ' *' : ''}`;
        const painted = c.observed !== c.expected ? red(bold(text.toUpperCase())) : c.observed === 'allowed' ? green(text) : dim(text);
        line += pad(painted, colW, text.length);
      }
      say('  ' + line.trimEnd());
    }
    say(dim(`  every cell is a real TCP connection; ✓ = as the policy says (coord's policy engine on the stored policy), ✗ = not${previous ? '; * = changed' : ''}`));
    if (t.mismatches === 0) say(green(`  all ${t.cells.length} connections agree with the policy`));
    for (const c of t.cells.filter((x) => x.observed !== x.expected)) {
      say(red(bold(`  !! MISMATCH ${c.from} → ${c.service}: the connection was ${c.observed} (${c.detail}), the policy says ${c.expected}`)));
    }
  }

  async showStatus(name: string): Promise<void> {
    const reg = this.devices.get(name)!;
    const out = await run('ip', ['netns', 'exec', reg.ns, process.execPath, AGENT, 'status', '--socket', reg.socket]);
    say(dim(`  $ agent status    # on ${name}, ${reg.def.what}`));
    for (const line of out.trimEnd().split('\n')) say('  ' + line);
  }

  /** Edits the policy through the admin API while bob-laptop keeps trying ci:443; returns how long it took. */
  async liveChange(): Promise<number | null> {
    const svc = SERVICES.find((s) => s.id === LIVE_CHANGE.service)!;
    const probe = this.lan.spawn(LIVE_CHANGE.from, process.execPath, [this.helper, 'probe', this.devices.get(svc.device)!.ipv4, String(svc.port)]);
    // The probe prints "still closed" after each failed attempt, then "ok T" with when one worked.
    const opened = new Promise<number>((resolve) =>
      createInterface({ input: probe.stdout! }).on('line', (l) => {
        const m = /^ok (\d+)$/.exec(l);
        if (m) resolve(Number(m[1]));
      }),
    );
    await sleep(300);
    const t0 = Date.now();
    await this.owner.setPolicy(companyPolicy({ comment: LIVE_CHANGE.comment, rule: LIVE_CHANGE.rule }));
    let timer: NodeJS.Timeout | undefined;
    const t1 = await Promise.race([opened, new Promise<null>((r) => (timer = setTimeout(() => r(null), 10_000)))]);
    clearTimeout(timer);
    probe.kill('SIGKILL');
    return t1 === null ? null : t1 - t0;
  }

  /** The second network and its share of the git server: invite, accept, and what crosses. */
  async sharing(): Promise<Summary['sharing']> {
    const git = this.devices.get(PARTNER.sharedDevice)!;
    const [invite] = await this.owner.createDeviceInvites(git.id, [{ label: `for ${PARTNER.owner}` }]);
    await this.partner.acceptDeviceInvite(invite!.inviteUrl!);
    // Erin's laptop joins the partner network and should see the git server, shared in and quarantined.
    const d = PARTNER.device;
    const ns = this.addHost(d.name, d.lanHost);
    const socket = join(this.dir, d.name, 'agent.sock');
    this.start(d.name, d.name, process.execPath, [AGENT, 'daemon', '--state-dir', join(this.dir, d.name, 'state'), '--socket', socket, '--log-level', 'info']);
    await waitFor(`${d.name} daemon`, () => existsSync(socket));
    const key = await this.partner.createKey({ capabilities: { devices: { create: { reusable: false, preauthorized: true } } }, expirySeconds: 3600 });
    await run('ip', ['netns', 'exec', ns, process.execPath, AGENT, 'up', '--coord', this.coordUrl, '--authkey', key.key, '--hostname', d.name, '--socket', socket]);
    this.partnerLaptop = { ns, socket };
    await waitFor(`the shared git server on ${d.name}`, async () => (await callDaemon<AgentStatus>(socket, 'GET', '/status')).peers.some((p) => p.shared && p.addresses[0] === git.ipv4));
    const out = await run('ip', ['netns', 'exec', ns, process.execPath, AGENT, 'status', '--socket', socket]);
    say(`  git is shared with ${PARTNER.owner}, who accepted it in ${PARTNER.network} (whose policy is the default: everyone reaches everything)`);
    say(dim(`  $ agent status    # on ${d.name}, in ${PARTNER.network}`));
    for (const line of out.trimEnd().split('\n')) say('  ' + line);

    // Real connections both ways. Expected: what the company's policy gives the shared-in user (the
    // policy engine, with Erin as a shared user of git); git itself is quarantined on Erin's side, so
    // it may answer but never start a connection, whatever either policy says.
    const self = (await callDaemon<AgentStatus>(socket, 'GET', '/status')).self!;
    this.start(`listen-${d.name}`, d.name, process.execPath, [this.helper, 'listen', '22']);
    await this.waitForLog(`listen-${d.name}`, /ready/);
    const topo = await this.topology();
    topo.sharedUsers = [{ email: PARTNER.owner, addrs: self.addresses, sharedNodes: [git.id] }];
    const filters = compileFilters(parsePolicy((await this.owner.policy()).text), topo);
    const tryFrom = async (nsName: string, target: string): Promise<string> =>
      (JSON.parse(await run('ip', ['netns', 'exec', nsName, process.execPath, this.helper, 'try', String(CONNECT_MS), target])) as Record<string, string>)[target]!;
    const cells: Cell[] = [];
    for (const port of [22, 80]) {
      const detail = await tryFrom(ns, `${git.ipv4}:${port}`);
      const expected: Verdict = filterAccepts(filters[git.id] ?? [], self.addresses[0]!, git.ipv4, port, 6) ? 'allowed' : 'blocked';
      cells.push({ from: d.name, service: `git:${port}`, expected, observed: detail === 'ok' ? 'allowed' : 'blocked', detail });
    }
    const back = await tryFrom(git.ns, `${self.addresses[0]}:22`);
    cells.push({ from: 'git', service: `${d.name}:22`, expected: 'blocked', observed: back === 'ok' ? 'allowed' : 'blocked', detail: back });
    for (const c of cells) {
      const why = c.from === 'git' ? 'quarantine: a shared device never starts a connection' : 'the company policy for shared users';
      const line = `  ${c.from} → ${c.service}: ${c.observed} ${c.observed === c.expected ? '✓' : '✗'} ${dim(`(${why})`)}`;
      say(c.observed === c.expected ? line : red(bold(`${line}  !! MISMATCH: expected ${c.expected}`)));
    }
    return { available: true, message: `sharing: git shared with ${PARTNER.owner} (${PARTNER.network})`, cells };
  }

  /**
   * MagicDNS: on Dave's laptop `git` is the git server (the search domain is the company's); on Erin's
   * laptop, in the partner network, the shared git server answers only to its full name.
   */
  async names(): Promise<NameCheck[]> {
    const git = this.devices.get('git')!;
    const dave = this.devices.get('dave-laptop')!;
    const fqdn = (await callDaemon<AgentStatus>(git.socket, 'GET', '/status')).self!.dnsName;
    const lookup = async (ns: string, name: string): Promise<string> => {
      try {
        return (await run('ip', ['netns', 'exec', ns, 'getent', 'ahostsv4', name])).split(/\s+/)[0] || 'not found';
      } catch {
        return 'not found';
      }
    };
    const connect = async (ns: string, target: string): Promise<string> => {
      const r = (JSON.parse(await run('ip', ['netns', 'exec', ns, process.execPath, this.helper, 'try', String(CONNECT_MS), target])) as Record<string, string>)[target]!;
      return r === 'ok' ? 'allowed' : `blocked (${r})`;
    };
    const checks: NameCheck[] = [];
    const check = async (on: string, ns: string, what: string, expected: string, why: string) => {
      const [verb, arg] = what.split(' ') as [string, string];
      const observed = verb === 'lookup' ? await lookup(ns, arg) : await connect(ns, arg);
      checks.push({ on, what, expected, observed, why });
    };
    // The agents pointed their namespace's resolv.conf at the resolver when their first netmap came.
    await waitFor('names on dave-laptop', async () => (await lookup(dave.ns, 'git')) === git.ipv4);
    await check('dave-laptop', dave.ns, 'lookup git', git.ipv4, 'the short name, through the company domain in the search list');
    await check('dave-laptop', dave.ns, 'connect git:22', 'allowed', 'ssh to git by name');
    if (this.partnerLaptop) {
      const ns = this.partnerLaptop.ns;
      await waitFor('names on erin-laptop', async () => (await lookup(ns, fqdn)) === git.ipv4);
      await check(PARTNER.device.name, ns, `lookup ${fqdn}`, git.ipv4, 'a shared device, by its full name in the sharer\'s domain');
      await check(PARTNER.device.name, ns, 'lookup git', 'not found', 'never by its short name in the recipient\'s network');
      await check(PARTNER.device.name, ns, `connect ${fqdn}:22`, 'allowed', 'ssh to the shared git server by its full name');
    }
    for (const c of checks) {
      const ok = c.observed === c.expected;
      const line = `  ${pad(c.on, 12)} ${pad(c.what, 48)} → ${c.observed} ${ok ? '✓' : '✗'} ${dim(`(${c.why})`)}`;
      say(ok ? line : red(bold(`${line}  !! expected ${c.expected}`)));
    }
    return checks;
  }

  async pause(what: string): Promise<void> {
    if (this.opts.yes || !process.stdin.isTTY) return;
    human.write(yellow(`\n  press Enter to ${what} (Ctrl-C ends the demo and cleans up) `));
    await new Promise<void>((resolve) => {
      // terminal: false leaves Ctrl-C to the terminal, which sends SIGINT (and the handler cleans up).
      const rl = createInterface({ input: process.stdin, terminal: false });
      rl.once('line', () => {
        rl.close();
        resolve();
      });
    });
  }

  stopAll(): void {
    teardown(this.made);
  }
}

async function main(argv: string[]): Promise<number> {
  let opts: Options | 'help';
  try {
    opts = parseArgs(argv);
  } catch (err) {
    process.stderr.write(`demo: ${(err as Error).message}\n`);
    return 2;
  }
  if (opts === 'help') {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('demo: run as root: it creates network namespaces and TUN devices (sudo npm run demo)\n');
    return 1;
  }
  if (opts.down) return down(opts.down);
  if (opts.restartCoord) {
    try {
      return await restartCoord(opts.restartCoord);
    } catch (err) {
      process.stderr.write(`demo: ${(err as Error).message}\n`);
      return 1;
    }
  }
  if (opts.json) human = process.stderr;

  const began = Date.now();
  let demo: Demo | undefined;
  let cleaned = false;
  const cleanup = () => {
    if (cleaned || !demo || opts.keep) return;
    cleaned = true;
    demo.stopAll();
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      if (demo && !cleaned) {
        human.write(`\n${sig}: cleaning up…\n`);
        cleaned = true;
        demo.stopAll();
      }
      process.exit(130);
    });
  }

  try {
    say(bold('meshward demo') + dim(' — a company network in network namespaces, every device a real agent'));
    demo = new Demo(opts);
    say(dim(`  working directory (logs, databases, sockets): ${demo.dir}`));

    step(`coord, the coordination server, on the virtual LAN (${demo.lan.gateway}), SQLite in the working directory`);
    await demo.startCoord();
    say(`  coord is listening on ${demo.coordUrl}; network ${NETWORK} is owned by ${OWNER} (the president)`);

    step('people and the policy file');
    await demo.addPeople();
    for (const p of PEOPLE) say(`  ${pad(p.email, 22)} ${p.job}${p.email === OWNER ? ', owner of the network' : ', member'}`);
    const policyText = companyPolicy();
    await demo.owner.setPolicy(policyText);
    const parsed = parsePolicy(policyText);
    const n = (x: number, w: string) => `${x} ${w}${x === 1 ? '' : 's'}`;
    say(`  policy uploaded through the admin API (POST /api/v2/tailnet/-/acl): ${n(parsed.groups.size, 'group')}, ${n(parsed.hosts.size, 'host')}, ${n(parsed.tagOwners.size, 'tag')}, ${n(parsed.acls.length, 'ACL')}, ${n(parsed.grants.length, 'grant')}; its ${n(parsed.tests.length, 'test')} passed`);
    say(dim(`  (the file: ${join(demo.dir, 'policy.hujson')})`));
    writeFileSync(join(demo.dir, 'policy.hujson'), policyText);

    step('devices: one agent per device, each in its own network namespace');
    await demo.startDevices();
    await demo.startServices();
    for (const d of DEVICES) {
      const r = demo.devices.get(d.name)!;
      const owner = d.tags ? d.tags.join(',') : d.user!;
      const svcs = SERVICES.filter((s) => s.device === d.name).map((s) => `:${s.port}`).join(' ');
      say(`  ${pad(d.name, 13)} ${pad(r.ipv4, 16)} ${pad(owner, 18)} ${d.what}${svcs ? dim(` — listening on ${svcs}`) : ''}`);
    }
    const first = await demo.expected();
    await demo.waitForNetmaps(first.peers);

    step('sharing the git server with another network');
    const sharing = await demo.sharing().catch((err: Error): Summary['sharing'] => ({ available: false, message: `sharing: failed: ${err.message}` }));
    say(sharing.available ? `  ${sharing.message}` : yellow(`  ${sharing.message}`));

    step('names (MagicDNS): every device answers to its name');
    const names = await demo.names().catch((err: Error): NameCheck[] => [{ on: '-', what: 'names', expected: 'answers', observed: `failed: ${err.message}`, why: '' }]);

    step('what two devices see');
    await demo.showStatus('dave-laptop');
    say();
    await demo.showStatus('git');

    step('who can reach what');
    const before = await demo.table('before');
    demo.showTable(before);

    await demo.pause('change the policy live');
    step(`a live change: ${LIVE_CHANGE.story}`);
    say(dim(`  + ${LIVE_CHANGE.rule}`));
    const ms = await demo.liveChange();
    if (ms === null) say(red(bold(`  !! ${LIVE_CHANGE.from} → ${LIVE_CHANGE.service} did not open within 10 s of the policy change`)));
    else say(`  ${LIVE_CHANGE.from} → ${LIVE_CHANGE.service} answered ${bold(`${ms} ms`)} after coord accepted the new policy`);
    const after = await demo.table('after');
    demo.showTable(after, before);

    const cell = (t: Table) => t.cells.find((c) => c.from === LIVE_CHANGE.from && c.service === LIVE_CHANGE.service)!;
    const summary: Summary = {
      schema: 1,
      network: NETWORK,
      coord: demo.coordUrl,
      devices: DEVICES.map((d) => {
        const r = demo!.devices.get(d.name)!;
        return { name: d.name, ipv4: r.ipv4, ipv6: r.ipv6, user: d.user ?? null, tags: d.tags ?? [] };
      }),
      services: SERVICES.map((s) => ({ ...s })),
      tables: [before, after],
      liveChange: { story: LIVE_CHANGE.story, from: LIVE_CHANGE.from, service: LIVE_CHANGE.service, before: cell(before).observed, after: cell(after).observed, ms },
      sharing,
      names,
      made: { dir: demo.dir, bridge: demo.made.bridge, namespaces: [...demo.made.namespaces] },
      ok: false,
    };
    const problems: string[] = [];
    const mismatches = before.mismatches + after.mismatches + (sharing.cells ?? []).filter((c) => c.observed !== c.expected).length;
    if (mismatches > 0) problems.push(`${mismatches} connection${mismatches === 1 ? '' : 's'} did not do what the policy says`);
    if (summary.liveChange.before !== 'blocked' || summary.liveChange.after !== 'allowed') problems.push(`the live change did not show (${LIVE_CHANGE.from} → ${LIVE_CHANGE.service}: ${summary.liveChange.before}, then ${summary.liveChange.after})`);
    // How fast is the benchmarks' business (bench:coord, bench:routes); here only that the change shows.
    else if (ms === null) problems.push('the live change took more than 10 s');
    if (!sharing.available) problems.push(sharing.message);
    const badNames = names.filter((c) => c.observed !== c.expected);
    if (badNames.length > 0) problems.push(`${badNames.length} name check${badNames.length === 1 ? '' : 's'} did not do what MagicDNS should: ${badNames.map((c) => `${c.on} ${c.what} → ${c.observed}`).join('; ')}`);
    summary.ok = problems.length === 0;

    say();
    const secs = ((Date.now() - began) / 1000).toFixed(1);
    if (summary.ok) say(green(bold(`✔ every connection matched the policy, and the change took effect in ${ms} ms`)) + dim(` (demo ran ${secs} s)`));
    if (summary.ok && ms !== null && ms >= 1000) say(dim('  (a change usually takes effect in a fraction of a second; this machine may be busy)'));
    for (const p of problems) say(red(bold(`✘ ${p}`)));
    if (!summary.ok) say(dim(`  (demo ran ${secs} s)`));

    if (opts.keep) {
      const ns = (n: string) => demo!.devices.get(n)!.ns;
      const keyFile = join(demo.dir, 'owner.key');
      say(`
${bold('The network is still running.')} Explore it (as root):
  ${dim("# what Dave's laptop sees")}
  ip netns exec ${ns('dave-laptop')} node ${AGENT} status --socket ${demo.devices.get('dave-laptop')!.socket}
  ${dim('# try a connection from Bob\'s laptop to the git server\'s ssh port (the policy blocks it)')}
  ip netns exec ${ns('bob-laptop')} node ${demo.helper} try 1000 ${demo.devices.get('git')!.ipv4}:22
  ${dim('# the TUN device of the git server')}
  ip netns exec ${ns('git')} ip addr show mw0
  ${dim(`# the admin side: devices, the policy (edit it with: acl set FILE); the partner's key is in ${join(demo.dir, 'partner.key')}`)}
  node ${COORD} devices list --coord ${demo.coordUrl} --api-key-file ${keyFile}
  node ${COORD} acl get --coord ${demo.coordUrl} --api-key-file ${keyFile}
  ${dim(`# coord stopped or killed? start it again on ${demo.coordUrl} (the agents keep working meanwhile and reconnect)`)}
  npm run demo -- --restart-coord ${demo.dir}
  ${dim('# the admin console, in a browser on this machine: the share of the git server is under Machines')}
  ${demo.coordUrl}/admin
${demo.consoleLogins.map((l) => `    ${l.email} (${l.network}), password ${l.password}`).join('\n')}
  ${dim(`# logs: ${demo.dir}/*.log; namespaces: ip netns list | grep mw-${demo.lan.id}-`)}
Stop it and remove everything:
  npm run demo -- --down ${demo.dir}`);
    }
    if (opts.json) process.stdout.write(JSON.stringify(summary) + '\n');
    return summary.ok ? 0 : 1;
  } catch (err) {
    say(red(bold(`\ndemo failed: ${(err as Error).message}`)));
    if (demo) say(dim(`  logs: ${demo.dir}/*.log${opts.keep ? '' : ' (removed on exit; run with --keep to keep them)'}`));
    return 1;
  } finally {
    cleanup();
  }
}

function pad(s: string, w: number): string {
  return s.length >= w ? s + ' ' : s + ' '.repeat(w - s.length);
}

process.exitCode = await main(process.argv.slice(2));
