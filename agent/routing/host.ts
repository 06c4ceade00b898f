// Makes the host's routing match a plan, and undoes it: the one place the agent changes the host's
// routing (as tailscaled does on Linux):
//
//   table 52                 the routes peers offer (and the exit node's default routes), through the TUN
//                            device; "throw" entries send this device's own LANs back to the main table
//   rule 5200  to ADDR       coord and the relays: always the main table (their TCP connections are not ours to mark)
//   rule 5210  fwmark BYPASS the agent's own UDP socket (SO_MARK): main table, then the default table,
//   rule 5230                then unreachable: the tunnel's packets never loop into the tunnel
//   rule 5250
//   rule 5270  table 52      everything else looks at meshward's routes first
//   nftables table inet meshward   source NAT for what this router forwards out of the tunnel
//   sysctl ip_forward / ipv6 forwarding   switched on for a router, restored afterwards
//
// What is installed is written to the state directory (routing.json) before it is installed, so that
// the next start undoes what a crash left behind. Commands run through `ip -batch` and `nft -f`.
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import type { StateDir } from '../state.js';

export const ROUTE_TABLE = 52;
/** SO_MARK of the agent's UDP socket (Tailscale's bypass mark, in the 0xff0000 byte). */
export const BYPASS_MARK = 0x80000;
const MARK_MASK = 0xff0000;
/** Set on packets forwarded from the tunnel, so that postrouting can masquerade them. */
const FORWARD_MARK = 0x40000;
export const NFT_TABLE = 'meshward';
export const STATE_FILE = 'routing.json';

const PRIO = { bypass: 5200, mark: 5210, markDefault: 5230, markUnreachable: 5250, table: 5270 } as const;
const markSel = `fwmark 0x${BYPASS_MARK.toString(16)}/0x${MARK_MASK.toString(16)}`;
/** The fixed rules, in the order they are added (removed in reverse). */
const FIXED_RULES = [
  `priority ${PRIO.mark} ${markSel} table main`,
  `priority ${PRIO.markDefault} ${markSel} table default`,
  `priority ${PRIO.markUnreachable} ${markSel} unreachable`,
  `priority ${PRIO.table} table ${ROUTE_TABLE}`,
];

const SYSCTL = { v4: '/proc/sys/net/ipv4/ip_forward', v6: '/proc/sys/net/ipv6/conf/all/forwarding' } as const;

/** What the host should have. */
export interface HostState {
  tun: string;
  forwarding: { v4: boolean; v6: boolean };
  snat: boolean;
  routes: string[];
  throws: string[];
  /** Addresses that always use the main table (coord, relays). */
  bypass: string[];
}

/** What was installed (routing.json). */
interface Installed {
  tun: string;
  /** sysctl file → the value it had before we changed it. */
  sysctls: Record<string, string>;
  nft: boolean;
  rules: boolean;
  routes: string[];
  throws: string[];
  bypass: string[];
}

const NOTHING: Installed = { tun: '', sysctls: {}, nft: false, rules: false, routes: [], throws: [], bypass: [] };

export interface CommandResult {
  ok: boolean;
  stderr: string;
}

/** Runs a program with `input` on stdin (tests pass their own). */
export type Runner = (cmd: string, args: string[], input: string) => Promise<CommandResult>;

export const runCommand: Runner = (cmd, args, input) =>
  new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: 10_000 }, (err, _stdout, stderr) => resolve({ ok: !err, stderr: String(stderr || (err ? err.message : '')) }));
    // A program that exits before reading its input closes the pipe: that EPIPE is no error of ours.
    child.stdin?.on('error', () => {});
    child.stdin?.end(input);
  });

const fam = (p: string) => (p.includes(':') ? 6 : 4);
const host = (a: string) => (a.includes('/') ? a : `${a}/${a.includes(':') ? 128 : 32}`);
const sameList = (a: string[], b: string[]) => a.length === b.length && a.every((x, i) => x === b[i]);

export interface HostOptions {
  state: StateDir;
  log: (level: 'info' | 'warn' | 'debug', msg: string, fields?: Record<string, unknown>) => void;
  run?: Runner;
  /** The sysctl files (tests point them elsewhere). */
  sysctl?: { v4: string; v6: string };
}

export class HostRouting {
  private installed: Installed;
  private readonly run: Runner;
  private readonly sysctl: { v4: string; v6: string };

  constructor(private readonly opts: HostOptions) {
    const run = opts.run ?? runCommand;
    this.run = async (cmd, args, input) => {
      opts.log('debug', `${cmd} ${args.join(' ')}`, { input });
      const r = await run(cmd, args, input);
      opts.log('debug', `${cmd} done`, { ok: r.ok, stderr: r.stderr });
      return r;
    };
    this.sysctl = opts.sysctl ?? SYSCTL;
    this.installed = { ...NOTHING, ...(opts.state.read<Installed>(STATE_FILE) ?? {}) };
  }

  /** Whether anything is installed (or was left behind by a previous process). */
  get active(): boolean {
    const i = this.installed;
    return i.nft || i.rules || i.routes.length + i.throws.length + i.bypass.length > 0 || Object.keys(i.sysctls).length > 0;
  }

  /** Problems of the last apply (commands that failed), as sentences. */
  errors: string[] = [];

  /** Makes the host match `want`; only what changed is touched. */
  async apply(want: HostState): Promise<void> {
    const had = this.installed;
    const errors: string[] = [];
    const wantRules = want.routes.length > 0 || want.throws.length > 0;
    // Record the union first: a crash in the middle leaves a record of everything that may be there.
    this.save({
      tun: want.tun,
      sysctls: had.sysctls,
      nft: had.nft || want.snat,
      rules: had.rules || wantRules,
      routes: [...new Set([...had.routes, ...want.routes])],
      throws: [...new Set([...had.throws, ...want.throws])],
      bypass: [...new Set([...had.bypass, ...want.bypass])],
    });
    const next: Installed = { ...had, tun: want.tun, sysctls: { ...had.sysctls } };
    await this.applySysctls(want, next, errors);

    if (want.snat && (!had.nft || had.tun !== want.tun)) {
      const r = await this.run('nft', ['-f', '-'], nftScript(want.tun));
      if (r.ok) next.nft = true;
      else errors.push(`nftables: could not add table inet ${NFT_TABLE} (${r.stderr.trim()})`);
    } else if (!want.snat && had.nft) {
      await this.run('nft', ['delete', 'table', 'inet', NFT_TABLE], '');
      next.nft = false;
    }

    for (const family of [4, 6] as const) {
      const of = (l: string[]) => l.filter((p) => fam(p) === family);
      const lines: string[] = [];
      const tunChanged = had.tun !== want.tun;
      // Additions in an order that never cuts coord off: the bypass rules, the routes, then the rules
      // that send traffic to them.
      for (const a of of(want.bypass)) if (!had.bypass.includes(a)) lines.push(`rule del priority ${PRIO.bypass} to ${host(a)} table main`, `rule add priority ${PRIO.bypass} to ${host(a)} table main`);
      for (const r of of(want.routes)) if (tunChanged || !had.routes.includes(r)) lines.push(`route replace ${r} dev ${want.tun} table ${ROUTE_TABLE}`);
      for (const t of of(want.throws)) if (!had.throws.includes(t)) lines.push(`route replace throw ${t} table ${ROUTE_TABLE}`);
      if (wantRules && !had.rules) for (const rule of FIXED_RULES) lines.push(`rule del ${rule}`, `rule add ${rule}`);
      // Removals: the rules first, then what they pointed at.
      if (!wantRules && had.rules) for (const rule of [...FIXED_RULES].reverse()) lines.push(`rule del ${rule}`);
      for (const r of of(had.routes)) if (!want.routes.includes(r)) lines.push(`route del ${r} table ${ROUTE_TABLE}`);
      for (const t of of(had.throws)) if (!want.throws.includes(t)) lines.push(`route del throw ${t} table ${ROUTE_TABLE}`);
      for (const a of of(had.bypass)) if (!want.bypass.includes(a)) lines.push(`rule del priority ${PRIO.bypass} to ${host(a)} table main`);
      if (lines.length === 0) continue;
      const r = await this.run('ip', [`-${family}`, '-force', '-batch', '-'], lines.join('\n') + '\n');
      // "rule del" of a rule that is not there fails by design (it makes "add" idempotent): report the rest.
      const real = r.stderr.split('\n').filter((l) => l.trim() && !/No such file|No such process|Cannot find device|^Command failed/.test(l));
      if (!r.ok && real.length) errors.push(`ip -${family}: ${real.join('; ')}`);
    }
    next.rules = wantRules;
    next.routes = [...want.routes];
    next.throws = [...want.throws];
    next.bypass = [...want.bypass];
    this.errors = errors;
    for (const e of errors) this.opts.log('warn', e);
    if (!sameList(had.routes, next.routes) || had.rules !== next.rules || had.nft !== next.nft) {
      this.opts.log('info', 'host routing changed', { routes: next.routes, throws: next.throws, bypass: next.bypass, snat: next.nft, sysctls: Object.keys(next.sysctls) });
    }
    this.save(next);
  }

  private async applySysctls(want: HostState, next: Installed, errors: string[]): Promise<void> {
    for (const family of ['v4', 'v6'] as const) {
      const file = this.sysctl[family];
      const changedByUs = Object.hasOwn(next.sysctls, file);
      try {
        if (want.forwarding[family] && !changedByUs) {
          const before = readFileSync(file, 'utf8').trim();
          if (before !== '1') {
            next.sysctls[file] = before;
            this.save({ ...this.installed, sysctls: next.sysctls });
            writeFileSync(file, '1\n');
            this.opts.log('info', `IP forwarding switched on (${file}); it is restored when the device stops routing`);
          }
        } else if (!want.forwarding[family] && changedByUs) {
          writeFileSync(file, `${next.sysctls[file]}\n`);
          delete next.sysctls[file];
        }
      } catch (err) {
        errors.push(`could not set ${file}: ${(err as Error).message}`);
      }
    }
  }

  /** Removes everything installed (or recorded by a previous process) and restores the sysctls. */
  async clear(): Promise<void> {
    if (!this.active) return;
    const had = this.installed;
    for (const family of [4, 6] as const) {
      const lines: string[] = [];
      if (had.rules) for (const rule of [...FIXED_RULES].reverse()) lines.push(`rule del ${rule}`);
      for (const a of had.bypass.filter((x) => fam(x) === family)) lines.push(`rule del priority ${PRIO.bypass} to ${host(a)} table main`);
      // The table is meshward's own: all of it goes.
      lines.push(`route flush table ${ROUTE_TABLE}`);
      await this.run('ip', [`-${family}`, '-force', '-batch', '-'], lines.join('\n') + '\n');
    }
    if (had.nft) await this.run('nft', ['delete', 'table', 'inet', NFT_TABLE], '');
    for (const [file, value] of Object.entries(had.sysctls)) {
      try {
        writeFileSync(file, `${value}\n`);
      } catch (err) {
        this.opts.log('warn', `could not restore ${file} to ${value}: ${(err as Error).message}`);
      }
    }
    this.opts.log('info', 'host routing removed (routes, rules, nftables table, sysctls restored)');
    this.installed = { ...NOTHING };
    this.opts.state.remove(STATE_FILE);
  }

  private save(i: Installed): void {
    this.installed = i;
    const empty = !i.nft && !i.rules && i.routes.length + i.throws.length + i.bypass.length === 0 && Object.keys(i.sysctls).length === 0;
    if (empty) this.opts.state.remove(STATE_FILE);
    else this.opts.state.write(STATE_FILE, i);
  }
}

/**
 * The nftables table: mark what arrives from the tunnel and is forwarded, masquerade it where it
 * leaves through another interface (so the LAN needs no route back to the tailnet). Defined whole:
 * the first line makes the delete succeed when the table is new.
 */
export function nftScript(tun: string): string {
  const mark = `0x${FORWARD_MARK.toString(16)}`;
  return [
    `table inet ${NFT_TABLE} {}`,
    `delete table inet ${NFT_TABLE}`,
    `table inet ${NFT_TABLE} {`,
    `  chain forward {`,
    `    type filter hook forward priority filter; policy accept;`,
    `    iifname "${tun}" meta mark set meta mark or ${mark}`,
    `  }`,
    `  chain postrouting {`,
    `    type nat hook postrouting priority srcnat; policy accept;`,
    `    oifname != "${tun}" meta mark and ${mark} == ${mark} masquerade`,
    `  }`,
    `}`,
    '',
  ].join('\n');
}
