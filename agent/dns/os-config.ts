// Pointing the system's resolver at the agent's (`agent up --accept-dns`), and undoing it.
//
// - systemd-resolved (resolv.conf links into /run/systemd/resolve): per-link DNS on the TUN device with
//   `resolvectl`: the service address as the link's server, the network domain and search paths as
//   search domains, `~.` (all names) only when the network has global nameservers.
// - resolvconf (resolv.conf links into /run/resolvconf): an interface record `<tun>.meshward`.
// - a plain file: rewritten in place (a bind mount, as `ip netns exec` makes, cannot be renamed over),
//   the original kept in the agent's state directory and written back byte for byte on `agent down`, on
//   exit, and on the next start after a crash.
// - anything else (a link elsewhere): left alone, and the reason is shown in `agent dns status`.
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isAddr, SERVICE_IPV4, SERVICE_IPV6 } from '../../wire/addr.js';

export { SERVICE_IPV4, SERVICE_IPV6 };

const MARKER = '# meshward agent: this file points at the device\'s own resolver (MagicDNS).';
const BACKUP = 'resolv.conf.orig';

export type DnsMode = 'resolved' | 'resolvconf' | 'file' | 'unmanaged';

export interface OsDnsStatus {
  mode: DnsMode;
  /** What the agent did, or why it left the system alone. */
  detail: string;
  applied: boolean;
}

export interface OsDnsPlan {
  searchDomains: string[];
  /** The network has global nameservers: send every name to the agent's resolver. */
  allNames: boolean;
}

/** The nameserver addresses a resolv.conf names (the system's own resolvers). */
export function nameserversOf(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m && isAddr(m[1]!.replace(/%.*$/, '')) && m[1] !== SERVICE_IPV4 && m[1] !== SERVICE_IPV6) out.push(m[1]!);
  }
  return out;
}

/** The resolv.conf the agent writes. */
export function renderResolvConf(plan: OsDnsPlan, backupPath: string): string {
  const lines = [MARKER, `# The original is ${backupPath}; \`agent down\` puts it back.`, `nameserver ${SERVICE_IPV4}`];
  if (plan.searchDomains.length > 0) lines.push(`search ${plan.searchDomains.join(' ')}`);
  return `${lines.join('\n')}\n`;
}

function run(cmd: string, args: string[], input?: string): void {
  execFileSync(cmd, args, { stdio: ['pipe', 'ignore', 'pipe'], input, timeout: 10_000 });
}

function commandExists(cmd: string): boolean {
  return ['/usr/bin', '/bin', '/usr/sbin', '/sbin'].some((d) => existsSync(join(d, cmd)));
}

/** The system's resolver configuration and this agent's changes to it. */
export class OsDns {
  private applied: DnsMode | null = null;

  constructor(
    private readonly stateDir: string,
    private readonly tunName: string,
    private readonly resolvConf = '/etc/resolv.conf',
  ) {}

  private get backupPath(): string {
    return join(this.stateDir, BACKUP);
  }

  detect(): { mode: DnsMode; detail: string } {
    let st;
    try {
      st = lstatSync(this.resolvConf);
    } catch {
      return { mode: 'file', detail: `${this.resolvConf} does not exist yet` };
    }
    if (!st.isSymbolicLink()) return { mode: 'file', detail: `${this.resolvConf} is a plain file` };
    const target = readlinkSync(this.resolvConf);
    if (target.includes('/run/systemd/resolve/') && commandExists('resolvectl') && existsSync('/run/systemd/resolve/io.systemd.Resolve')) {
      return { mode: 'resolved', detail: `${this.resolvConf} is managed by systemd-resolved` };
    }
    if (target.includes('/run/resolvconf/') && commandExists('resolvconf')) {
      return { mode: 'resolvconf', detail: `${this.resolvConf} is managed by resolvconf` };
    }
    return { mode: 'unmanaged', detail: `${this.resolvConf} is a link to ${target}, managed by something meshward does not know: left alone` };
  }

  /** The resolvers the system used before the agent took over (from the kept original, else the file). */
  systemResolvers(): string[] {
    for (const path of [this.backupPath, this.resolvConf]) {
      try {
        const text = readFileSync(path, 'utf8');
        if (path === this.resolvConf && text.startsWith(MARKER)) continue;
        return nameserversOf(text);
      } catch {
        // not there
      }
    }
    return [];
  }

  /** Points the system at the agent's resolver (again, if the plan changed). */
  apply(plan: OsDnsPlan): OsDnsStatus {
    const { mode, detail } = this.detect();
    if (mode === 'unmanaged') return { mode, detail, applied: false };
    if (mode === 'resolved') {
      run('resolvectl', ['dns', this.tunName, SERVICE_IPV4, SERVICE_IPV6]);
      const domains = plan.searchDomains.slice();
      if (plan.allNames) domains.push('~.');
      run('resolvectl', ['domain', this.tunName, ...domains]);
      run('resolvectl', ['default-route', this.tunName, plan.allNames ? 'yes' : 'no']);
    } else if (mode === 'resolvconf') {
      run('resolvconf', ['-a', `${this.tunName}.meshward`], renderResolvConf(plan, 'resolvconf').split('\n').filter((l) => !l.startsWith('#')).join('\n'));
    } else {
      let current: Buffer | null = null;
      try {
        current = readFileSync(this.resolvConf);
      } catch {
        // none yet
      }
      const ours = current?.toString('utf8').startsWith(MARKER) ?? false;
      if (!ours) writeFileSync(this.backupPath, current ?? Buffer.alloc(0), { mode: 0o600 });
      // In place: the path may be a bind mount (ip netns exec), which cannot be replaced by rename.
      writeFileSync(this.resolvConf, renderResolvConf(plan, this.backupPath), { mode: 0o644 });
    }
    this.applied = mode;
    return { mode, detail: mode === 'file' ? `${this.resolvConf} points at ${SERVICE_IPV4}; the original is kept in ${this.backupPath}` : detail, applied: true };
  }

  /**
   * Undoes what apply() did. Also called at start, so a crash never leaves the system pointing at a
   * resolver that is no longer there: a file still carrying our marker gets its original back.
   */
  restore(): void {
    const mode = this.applied ?? this.detect().mode;
    if (mode === 'resolved' && this.applied) {
      try {
        run('resolvectl', ['revert', this.tunName]);
      } catch {
        // the link is gone with the TUN device, and so is its configuration
      }
    } else if (mode === 'resolvconf' && this.applied) {
      try {
        run('resolvconf', ['-d', `${this.tunName}.meshward`]);
      } catch {
        // nothing recorded
      }
    } else if (existsSync(this.backupPath)) {
      let current = '';
      try {
        current = readFileSync(this.resolvConf, 'utf8');
      } catch {
        // gone: put the original back all the same
      }
      if (current === '' || current.startsWith(MARKER)) writeFileSync(this.resolvConf, readFileSync(this.backupPath), { mode: 0o644 });
      rmSync(this.backupPath, { force: true });
    }
    this.applied = null;
  }
}
