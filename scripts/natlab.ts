// A NAT lab of network namespaces for connectivity tests: a "WAN" bridge in the root namespace (the root
// namespace is .1 on it, where a test runs coord, STUN or a relay), and home routers, each a namespace
// with a WAN address and a LAN behind it, doing NAT with nftables:
//
//   - 'endpoint-independent': plain masquerade. Linux keeps the source port when it can and reuses one
//     mapping for every destination (RFC 4787 endpoint-independent mapping): hole punching works.
//   - 'symmetric': masquerade random. Each new destination gets its own randomized port (address- and
//     port-dependent mapping): hole punching cannot work, only a relay helps.
//
// Like home routers, the routers drop unsolicited packets from the WAN side, both to themselves and
// forwarded (otherwise conntrack confirms an entry for a stray packet to the router, which then steals the
// port of a later mapping and breaks hole punching). Everything is on 198.18.0.0/15 (set aside for
// network testing): the WAN on 198.18.W.0/24, each LAN on 198.19.L.0/24. destroy() removes it all and is
// safe to call more than once and after a partial setup.
import { execFileSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { addNamespace, execIn, removeNamespace, spawnIn, type ExecOptions } from './netns.js';

export type NatMode = 'endpoint-independent' | 'symmetric';

export interface LabHost {
  name: string;
  ns: string;
  /** The host's address on its own network (the WAN for routers and WAN hosts, else its LAN). */
  addr: string;
}

export interface NatRouter extends LabHost {
  mode: NatMode;
  /** The LAN's /24 prefix, e.g. "198.19.7"; the router is .1 on it. */
  lanSubnet: string;
  lanBridge: string;
}

function run(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
}

function quietly(f: () => unknown): void {
  try {
    f();
  } catch {
    // already gone
  }
}

export class NatLab {
  readonly id: string;
  readonly wanBridge: string;
  /** The WAN's /24 prefix, e.g. "198.18.42". The root namespace is .1. */
  readonly wanSubnet: string;
  private readonly hosts = new Map<string, LabHost>();
  private readonly namespaces: string[] = [];
  private readonly links: string[] = [];
  private readonly children = new Set<ChildProcess>();
  private nextWan = 2;
  private nextLinkId = 0;
  private destroyed = false;

  private constructor(id: string, wanSubnet: string) {
    this.id = id;
    this.wanSubnet = wanSubnet;
    this.wanBridge = `mwnat${id}`.slice(0, 15);
  }

  /** The root namespace's address on the WAN. */
  get wanGateway(): string {
    return `${this.wanSubnet}.1`;
  }

  static create(): NatLab {
    const used = run('ip', ['-o', '-4', 'addr', 'show']);
    for (let attempt = 0; attempt < 50; attempt++) {
      const third = 1 + Math.floor(Math.random() * 254);
      const subnet = `198.18.${third}`;
      if (used.includes(` ${subnet}.`)) continue;
      const lab = new NatLab(`${process.pid % 1000}${third}`.slice(-6), subnet);
      try {
        run('ip', ['link', 'add', lab.wanBridge, 'type', 'bridge']);
        lab.links.push(lab.wanBridge);
        run('ip', ['addr', 'add', `${lab.wanGateway}/24`, 'dev', lab.wanBridge]);
        run('ip', ['link', 'set', lab.wanBridge, 'up']);
        return lab;
      } catch (err) {
        lab.destroy();
        if (attempt === 49) throw err;
      }
    }
    throw new Error('no free WAN subnet in 198.18.0.0/16');
  }

  host(name: string): LabHost {
    const h = this.hosts.get(name);
    if (!h) throw new Error(`no host ${name} in this lab`);
    return h;
  }

  private newNamespace(name: string): string {
    if (this.destroyed) throw new Error('lab already destroyed');
    if (this.hosts.has(name)) throw new Error(`${name} already exists`);
    const ns = `mwn-${this.id}-${name}`;
    addNamespace(ns);
    this.namespaces.push(ns);
    return ns;
  }

  /** A veth from the root namespace's bridge into `ns` (named `dev` there). */
  private plugIntoWan(ns: string, dev: string, addr: string): void {
    const outside = `mwnv${this.id}${this.nextLinkId++}`.slice(0, 15);
    run('ip', ['link', 'add', outside, 'type', 'veth', 'peer', 'name', dev, 'netns', ns]);
    this.links.push(outside);
    run('ip', ['link', 'set', outside, 'master', this.wanBridge]);
    run('ip', ['link', 'set', outside, 'up']);
    run('ip', ['-n', ns, 'addr', 'add', `${addr}/24`, 'dev', dev]);
    run('ip', ['-n', ns, 'link', 'set', dev, 'up']);
  }

  /** A host with a public address straight on the WAN. */
  addWanHost(name: string): LabHost {
    const ns = this.newNamespace(name);
    const host = { name, ns, addr: `${this.wanSubnet}.${this.nextWan++}` };
    this.hosts.set(name, host);
    this.plugIntoWan(ns, 'wan0', host.addr);
    run('ip', ['-n', ns, 'route', 'add', 'default', 'via', this.wanGateway]);
    return host;
  }

  /** A NAT router with a WAN address and an empty LAN (add hosts with addLanHost). */
  addRouter(name: string, mode: NatMode): NatRouter {
    const ns = this.newNamespace(name);
    const lanThird = 1 + Math.floor(Math.random() * 254);
    const router: NatRouter = { name, ns, addr: `${this.wanSubnet}.${this.nextWan++}`, mode, lanSubnet: `198.19.${lanThird}`, lanBridge: 'lan0' };
    this.hosts.set(name, router);
    this.plugIntoWan(ns, 'wan0', router.addr);
    run('ip', ['-n', ns, 'link', 'add', 'lan0', 'type', 'bridge']);
    run('ip', ['-n', ns, 'addr', 'add', `${router.lanSubnet}.1/24`, 'dev', 'lan0']);
    run('ip', ['-n', ns, 'link', 'set', 'lan0', 'up']);
    run('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    const masquerade = mode === 'symmetric' ? 'masquerade random' : 'masquerade';
    const rules = `
table ip nat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan0" ${masquerade}
  }
}
table inet home {
  chain input {
    type filter hook input priority filter; policy accept;
    iifname "wan0" ct state established,related accept
    iifname "wan0" drop
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname "wan0" ct state established,related accept
    iifname "wan0" drop
  }
}
`;
    run('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], rules);
    return router;
  }

  /** A host on a router's LAN, .N of the LAN (N from 2 to 254), with the router as its default route. */
  addLanHost(routerName: string, name: string, n: number): LabHost {
    const router = this.host(routerName) as NatRouter;
    if (!router.lanSubnet) throw new Error(`${routerName} is not a router`);
    const ns = this.newNamespace(name);
    const host = { name, ns, addr: `${router.lanSubnet}.${n}` };
    this.hosts.set(name, host);
    const inRouter = `l${n}`;
    run('ip', ['-n', router.ns, 'link', 'add', inRouter, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    run('ip', ['-n', router.ns, 'link', 'set', inRouter, 'master', 'lan0']);
    run('ip', ['-n', router.ns, 'link', 'set', inRouter, 'up']);
    run('ip', ['-n', ns, 'addr', 'add', `${host.addr}/24`, 'dev', 'eth0']);
    run('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    run('ip', ['-n', ns, 'route', 'add', 'default', 'via', `${router.lanSubnet}.1`]);
    return host;
  }

  /** Runs a command in a host's namespace and returns its stdout. */
  exec(name: string, cmd: string, args: string[], opts: ExecOptions = {}): string {
    return execIn(this.host(name).ns, cmd, args, opts);
  }

  /** Whether one ping from a host to `to` is answered within a second. */
  pingsOnce(from: string, to: string): boolean {
    try {
      this.exec(from, 'ping', ['-c', '1', '-W', '1', to]);
      return true;
    } catch {
      return false;
    }
  }

  /** Starts a long-running process in a host's namespace; destroy() kills it. */
  spawn(name: string, cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
    return spawnIn(this.children, this.host(name).ns, cmd, args, opts);
  }

  /** Kills what was started here, removes every namespace (and with them their links) and the bridge. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const child of this.children) child.kill('SIGKILL');
    for (const ns of this.namespaces) removeNamespace(ns);
    for (const link of this.links.reverse()) quietly(() => run('ip', ['link', 'del', link]));
  }
}
