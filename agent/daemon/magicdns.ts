// MagicDNS in the daemon: the resolver's sockets live as long as the data path (its service addresses
// sit on the TUN device), each netmap refreshes its names and settings, and with `--accept-dns` the
// system's resolver configuration points at it. `agent dns status` and `agent dns query` read it here.
import type { Logger } from 'pino';
import { execFileSync } from 'node:child_process';
import { bareAddr, isAddr } from '../../wire/addr.js';
import type { Netmap } from '../../wire/protocol.js';
import { EXIT_DNS_PORT, isApprovedExitNode, isExitDnsClient } from '../routing/index.js';
import {
  buildQuery, describeAnswer, DnsServer, MagicResolver, OsDns, reverseName, settingsFromDns, SERVICE_IPV4, SERVICE_IPV6,
  type DnsCounters, type OsDnsStatus,
} from '../dns/index.js';

export interface DnsStatus {
  acceptDns: boolean;
  /** Is the resolver listening on the service addresses? */
  listening: string[];
  magicDNS: boolean;
  domain: string | null;
  searchDomains: string[];
  nameservers: string[];
  splitDns: Record<string, string[]>;
  /** The system's own resolvers (where other names go when the network sets no nameservers). */
  systemResolvers: string[];
  /** The exit node in use resolves the names no split-DNS route claims: its tailnet addresses ([]: none). */
  exitNodeResolvers: string[];
  /** This device is an exit node answering its users' queries on these addresses, port 53 ([]: it is not). */
  servingExitNodeUsers: string[];
  /** Domains answered here and never forwarded. */
  zones: string[];
  names: number;
  system: OsDnsStatus | null;
  counters: DnsCounters | null;
}

export interface DnsQueryResult {
  name: string;
  type: string;
  rcode: string;
  authoritative: boolean;
  answers: string[];
  /** "magicdns" (answered here), "upstream" (forwarded; `upstream` names it) or "error". */
  source: string;
  upstream: string | null;
}

export const SERVICE_ADDRESSES = [`${SERVICE_IPV4}/32`, `${SERVICE_IPV6}/128`] as const;

export class MagicDns {
  private readonly resolver = new MagicResolver();
  private readonly os: OsDns;
  private server: DnsServer | null = null;
  private listening: string[] = [];
  private osStatus: OsDnsStatus | null = null;
  private appliedPlan = '';
  private netmap: Netmap | null = null;
  /** An exit node's listener for the devices that use it (on its tailnet addresses), and where it listens. */
  private exitServer: DnsServer | null = null;
  private exitListening = '';
  private exitNodeResolvers: string[] = [];

  constructor(
    stateDir: string,
    tunName: string,
    private readonly log: Logger,
    resolvConf?: string,
  ) {
    this.os = new OsDns(stateDir, tunName, resolvConf);
  }

  /** Sources the resolver answers: loopback, the service addresses, this device's tailnet addresses. */
  private localAddresses(): string[] {
    return ['127.0.0.1', '::1', SERVICE_IPV4, SERVICE_IPV6, ...(this.netmap?.self.addresses.map(bareAddr) ?? [])];
  }

  /** After a crash, the system may still point at a resolver that is gone: put the original back. */
  recover(): void {
    try {
      this.os.restore();
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'dns: could not restore the system resolver configuration');
    }
  }

  /**
   * Puts the service addresses on the TUN device and starts answering on them. They get scope host:
   * the kernel delivers packets to them locally but never picks them as the source of a packet to a
   * peer (with global scope, 100.100.100.100 could become the device's source address in the tunnel).
   */
  async start(tunName: string): Promise<void> {
    if (this.server) return;
    for (const [family, cidr] of [['-4', SERVICE_ADDRESSES[0]], ['-6', SERVICE_ADDRESSES[1]]] as const) {
      try {
        execFileSync('ip', [family, 'addr', 'replace', cidr, 'dev', tunName, 'scope', 'host', ...(family === '-6' ? ['nodad'] : [])], { stdio: ['ignore', 'ignore', 'pipe'] });
      } catch (err) {
        this.log.warn({ addr: cidr, err: String((err as { stderr?: Buffer }).stderr ?? (err as Error).message).trim() }, 'dns: cannot put the service address on the TUN device');
      }
    }
    const server = new DnsServer(this.resolver, this.localAddresses(), this.log.child({ component: 'dns' }));
    this.server = server;
    for (const addr of [SERVICE_IPV4, SERVICE_IPV6]) {
      try {
        await server.listen([addr]);
        this.listening.push(addr);
      } catch (err) {
        this.log.warn({ addr, err: (err as Error).message }, 'dns: cannot listen on the service address');
      }
    }
    this.log.info({ listening: this.listening }, 'dns: resolver listening');
  }

  /**
   * New names and settings from a netmap; (re)configures the system when `acceptDns`. `exitNode`: the
   * tailnet addresses of the exit node in use (it resolves other names), [] for none.
   */
  apply(netmap: Netmap, acceptDns: boolean, exitNode: string[] = []): void {
    this.netmap = netmap;
    this.server?.setLocalAddresses(this.localAddresses());
    const settings = settingsFromDns(netmap.dns);
    this.resolver.setNetmap(netmap, settings);
    this.resolver.setSystemResolvers(this.os.systemResolvers());
    this.exitNodeResolvers = exitNode;
    this.resolver.setExitNodeResolvers(exitNode);
    void this.serveExitNodeUsers(netmap);
    // Never point the system at a resolver that is not listening.
    if (!acceptDns || this.listening.length === 0) {
      if (this.osStatus?.applied) this.unconfigure();
      return;
    }
    // With an exit node every name goes to the agent's resolver, and from there through the exit node.
    const plan = { searchDomains: settings.searchDomains, allNames: settings.nameservers.length > 0 || exitNode.length > 0 };
    const key = JSON.stringify(plan);
    if (key === this.appliedPlan && this.osStatus?.applied) return;
    try {
      this.osStatus = this.os.apply(plan);
      this.appliedPlan = this.osStatus.applied ? key : '';
      this.log[this.osStatus.applied ? 'info' : 'warn']({ mode: this.osStatus.mode, detail: this.osStatus.detail }, 'dns: system resolver configuration');
      // The kept original is now where the system's own resolvers are read from.
      this.resolver.setSystemResolvers(this.os.systemResolvers());
    } catch (err) {
      this.osStatus = { mode: this.os.detect().mode, detail: `could not configure: ${(err as Error).message}`, applied: false };
      this.log.warn({ err: (err as Error).message }, 'dns: could not configure the system resolver');
    }
  }

  private unconfigure(): void {
    try {
      this.os.restore();
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'dns: could not restore the system resolver configuration');
    }
    this.osStatus = null;
    this.appliedPlan = '';
  }

  /**
   * On an approved exit node (and only while the data path is up): port 53 on its tailnet addresses
   * forwards the queries of the devices using it (agent/routing/exit-dns.ts; the filter lets in those the
   * policy allows to the internet). MagicDNS names are not answered there.
   */
  private async serveExitNodeUsers(netmap: Netmap): Promise<void> {
    const want = this.server && isApprovedExitNode(netmap) ? netmap.self.addresses.map(bareAddr) : [];
    const key = want.join(',');
    if (key === this.exitListening) return;
    this.exitListening = key;
    this.exitServer?.close();
    this.exitServer = null;
    if (want.length === 0) return;
    const server = new DnsServer(this.resolver, [], this.log.child({ component: 'dns-exit' }), { acceptSource: isExitDnsClient, forwardOnly: true });
    this.exitServer = server;
    for (const addr of want) {
      try {
        await server.listen([addr], EXIT_DNS_PORT);
        if (this.exitServer !== server) return server.close(); // a later netmap replaced it meanwhile
      } catch (err) {
        this.log.warn({ addr, err: (err as Error).message }, `dns: cannot answer the exit node's users on ${addr} port ${EXIT_DNS_PORT}; their names will not resolve`);
      }
    }
    this.log.info({ listening: want }, 'dns: resolving names for the devices that use this exit node');
  }

  /** Stops answering and gives the system its own configuration back. */
  stop(): void {
    this.exitServer?.close();
    this.exitServer = null;
    this.exitListening = '';
    this.exitNodeResolvers = [];
    this.resolver.setExitNodeResolvers([]);
    this.server?.close();
    this.server = null;
    this.listening = [];
    this.unconfigure();
  }

  /** The resolver's query counters (null while it is not running). */
  counters(): DnsStatus['counters'] {
    return this.server ? { ...this.server.counters } : null;
  }

  status(acceptDns: boolean): DnsStatus {
    const cur = this.resolver.current;
    return {
      acceptDns,
      listening: this.listening,
      magicDNS: cur.settings.magicDNS,
      domain: this.netmap?.dns?.domain ?? null,
      searchDomains: cur.settings.searchDomains,
      nameservers: cur.settings.nameservers,
      splitDns: cur.settings.routes,
      systemResolvers: cur.systemResolvers,
      exitNodeResolvers: this.exitNodeResolvers,
      servingExitNodeUsers: this.exitListening ? this.exitListening.split(',') : [],
      zones: cur.zones,
      names: cur.names,
      system: this.osStatus,
      counters: this.server ? { ...this.server.counters } : null,
    };
  }

  /**
   * Asks as the system's stub resolver would: an address means its PTR name, and a name without a dot
   * is tried under each search domain in order (the first that is not NXDOMAIN answers).
   */
  async queryAsStub(name: string, type: string): Promise<DnsQueryResult> {
    if (isAddr(name)) return this.query(reverseName(name)!, 'PTR');
    const bare = name.replace(/\.$/, '');
    if (bare.includes('.') || name.endsWith('.')) return this.query(bare, type);
    let last: DnsQueryResult | null = null;
    for (const domain of this.resolver.current.settings.searchDomains) {
      last = await this.query(`${bare}.${domain}`, type);
      if (last.rcode !== 'NXDOMAIN') return last;
    }
    return last ?? this.query(bare, type);
  }

  /** Asks the resolver (in process: the same decision and forwarding as a query on port 53). */
  async query(name: string, type: string): Promise<DnsQueryResult> {
    if (!this.server) throw new Error('the resolver is not running (the device is down)');
    const out = await this.server.answer(buildQuery(name, type), false);
    if (!out) throw new Error('no answer');
    const d = describeAnswer(out.answer);
    return { name, type, rcode: d.rcode, authoritative: d.authoritative, answers: d.answers, source: out.source, upstream: out.upstream };
  }
}

/** A query type `agent dns query` accepts. */
export const QUERY_TYPES = ['A', 'AAAA', 'PTR', 'CNAME', 'MX', 'TXT', 'SRV', 'NS', 'SOA', 'CAA', 'ANY'] as const;
