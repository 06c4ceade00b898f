// A small virtual LAN of network namespaces for end-to-end tests and the demo: a bridge in the root
// namespace with one veth per host namespace, all on a /24 of 198.18.0.0/15 (the range set aside for
// network testing), so nothing here can reach or be reached from a real network. Everything made is
// recorded and removed by destroy(), which is safe to call more than once and after a partial setup.
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';

function ip(args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function tryIp(args: string[]): void {
  try {
    ip(args);
  } catch {
    // already gone
  }
}

/**
 * Makes a namespace with its loopback up and its own resolv.conf (/etc/netns/NS/resolv.conf, which
 * `ip netns exec` binds over /etc/resolv.conf), so that an agent configuring DNS in it never touches
 * the machine's own file. `resolvConf` is its text (default: a nameserver on the namespace's loopback,
 * where nothing answers unless a test starts one).
 */
export function addNamespace(ns: string, resolvConf = 'nameserver 127.0.0.1\n'): void {
  mkdirSync(`/etc/netns/${ns}`, { recursive: true });
  writeFileSync(`/etc/netns/${ns}/resolv.conf`, resolvConf);
  ip(['netns', 'add', ns]);
  ip(['-n', ns, 'link', 'set', 'lo', 'up']);
}

/** Ends every process inside a namespace (they would keep it alive), removes it and its /etc/netns folder. */
export function removeNamespace(ns: string): void {
  try {
    const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split(/\s+/).filter(Boolean);
    for (const pid of pids) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // already exited
      }
    }
  } catch {
    // namespace never made
  }
  tryIp(['netns', 'del', ns]);
  rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
}

export interface ExecOptions {
  timeoutMs?: number;
  input?: string;
  env?: NodeJS.ProcessEnv;
}

/** Runs a command inside a namespace and returns its stdout (throws with its stderr when it fails). */
export function execIn(ns: string, cmd: string, args: string[], opts: ExecOptions = {}): string {
  return execFileSync('ip', ['netns', 'exec', ns, cmd, ...args], {
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 30_000,
    input: opts.input,
    env: opts.env ?? process.env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

/** Starts a long-running process inside a namespace, remembered in `children` until it exits. */
export function spawnIn(children: Set<ChildProcess>, ns: string, cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
  const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: 'pipe', ...opts });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

export interface Host {
  name: string;
  /** The namespace name, for `ip netns exec`. */
  ns: string;
  /** The host's address on the LAN. */
  addr: string;
}

export class VirtualLan {
  readonly id: string;
  readonly bridge: string;
  /** The LAN's /24 prefix, e.g. "198.18.42". The bridge (root namespace) is .1. */
  readonly subnet: string;
  readonly hosts = new Map<string, Host>();
  private readonly children = new Set<ChildProcess>();
  private destroyed = false;

  private constructor(id: string, subnet: string) {
    this.id = id;
    this.subnet = subnet;
    this.bridge = `mwbr${id}`;
  }

  /** The root namespace's address on the LAN (where a test can run coord). */
  get gateway(): string {
    return `${this.subnet}.1`;
  }

  static create(): VirtualLan {
    const used = ip(['-o', '-4', 'addr', 'show']);
    for (let attempt = 0; attempt < 50; attempt++) {
      const third = 1 + Math.floor(Math.random() * 254);
      const subnet = `198.18.${third}`;
      if (used.includes(` ${subnet}.`)) continue;
      const id = `${process.pid % 10000}${third}`.slice(-7);
      const lan = new VirtualLan(id, subnet);
      try {
        ip(['link', 'add', lan.bridge, 'type', 'bridge']);
        ip(['addr', 'add', `${lan.gateway}/24`, 'dev', lan.bridge]);
        ip(['link', 'set', lan.bridge, 'up']);
        return lan;
      } catch (err) {
        lan.destroy();
        if (attempt === 49) throw err;
      }
    }
    throw new Error('no free test subnet in 198.18.0.0/16');
  }

  /**
   * Adds a host namespace with address .N on the LAN (N from 2 to 254). It gets its own resolv.conf
   * (/etc/netns/NS/resolv.conf, which `ip netns exec` binds over /etc/resolv.conf), so that an agent
   * configuring DNS there never touches the machine's own file. `resolvConf` is its text (default: a
   * nameserver on the namespace's loopback, where nothing answers unless a test starts one).
   */
  addHost(name: string, n: number, resolvConf = 'nameserver 127.0.0.1\n'): Host {
    if (this.destroyed) throw new Error('LAN already destroyed');
    const ns = `mw-${this.id}-${name}`;
    const host: Host = { name, ns, addr: `${this.subnet}.${n}` };
    this.hosts.set(name, host);
    addNamespace(ns, resolvConf);
    const outside = `mwv${this.id}h${n}`.slice(0, 15);
    ip(['link', 'add', outside, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    ip(['link', 'set', outside, 'master', this.bridge]);
    ip(['link', 'set', outside, 'up']);
    ip(['-n', ns, 'addr', 'add', `${host.addr}/24`, 'dev', 'eth0']);
    ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
    return host;
  }

  /**
   * Adds a host namespace that is not on the LAN: it hangs off host `via` on a veth of its own /24
   * (`subnet` like "198.19.7"), `via` holding .1 on interface `ifname` and the new host .2 on eth0, with
   * no default route. A network behind a subnet router, or an "internet" beyond an exit node. The
   * veth is made inside the two namespaces, so its names cannot clash with anyone's; destroy() removes it.
   */
  addHostBehind(name: string, via: string, subnet: string, ifname: string, resolvConf = 'nameserver 127.0.0.1\n'): Host {
    if (this.destroyed) throw new Error('LAN already destroyed');
    const gw = this.host(via);
    const ns = `mw-${this.id}-${name}`;
    const host: Host = { name, ns, addr: `${subnet}.2` };
    this.hosts.set(name, host);
    addNamespace(ns, resolvConf);
    ip(['-n', gw.ns, 'link', 'add', ifname, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    ip(['-n', gw.ns, 'addr', 'add', `${subnet}.1/24`, 'dev', ifname]);
    ip(['-n', gw.ns, 'link', 'set', ifname, 'up']);
    ip(['-n', ns, 'addr', 'add', `${host.addr}/24`, 'dev', 'eth0']);
    ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
    return host;
  }

  /**
   * A second network segment (`subnet` like "198.19.7"), a bridge in a namespace of its own, that the
   * given hosts join with .N each on interface `ifname`; hosts not made yet are made off the LAN (no
   * link to the bridge of this VirtualLan, no default route). Two subnet routers in front of one
   * network, for example. Everything is made inside namespaces; destroy() removes it.
   */
  addSegment(name: string, subnet: string, ifname: string, members: Array<[host: string, n: number]>): void {
    if (this.destroyed) throw new Error('LAN already destroyed');
    const sw = `mw-${this.id}-${name}`;
    this.hosts.set(name, { name, ns: sw, addr: '' });
    addNamespace(sw);
    ip(['-n', sw, 'link', 'add', 'br0', 'type', 'bridge']);
    ip(['-n', sw, 'link', 'set', 'br0', 'up']);
    for (const [hostName, n] of members) {
      let h = this.hosts.get(hostName);
      if (!h) {
        h = { name: hostName, ns: `mw-${this.id}-${hostName}`, addr: `${subnet}.${n}` };
        this.hosts.set(hostName, h);
        addNamespace(h.ns);
      }
      ip(['-n', sw, 'link', 'add', `p${n}`, 'type', 'veth', 'peer', 'name', ifname, 'netns', h.ns]);
      ip(['-n', sw, 'link', 'set', `p${n}`, 'master', 'br0']);
      ip(['-n', sw, 'link', 'set', `p${n}`, 'up']);
      ip(['-n', h.ns, 'addr', 'add', `${subnet}.${n}/24`, 'dev', ifname]);
      ip(['-n', h.ns, 'link', 'set', ifname, 'up']);
    }
  }

  static etcDir(ns: string): string {
    return `/etc/netns/${ns}`;
  }

  /** The file a host sees as /etc/resolv.conf. */
  static resolvConfPath(ns: string): string {
    return `${VirtualLan.etcDir(ns)}/resolv.conf`;
  }

  host(name: string): Host {
    const h = this.hosts.get(name);
    if (!h) throw new Error(`no host ${name} on this LAN`);
    return h;
  }

  /** Runs a command inside a host's namespace and returns its stdout. */
  exec(name: string, cmd: string, args: string[], opts: ExecOptions = {}): string {
    return execIn(this.host(name).ns, cmd, args, opts);
  }

  /** Starts a long-running process inside a host's namespace; destroy() kills it. */
  spawn(name: string, cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
    return spawnIn(this.children, this.host(name).ns, cmd, args, opts);
  }

  /** Kills every process started here, removes every namespace, veth and the bridge. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const child of this.children) child.kill('SIGKILL');
    for (const host of this.hosts.values()) removeNamespace(host.ns);
    tryIp(['link', 'del', this.bridge]);
  }
}
