// The agent's user-facing subcommands. Each talks to the daemon over the local API.
import type { Command } from '../../wire/cli.js';
import type { LogoutResponse } from '../daemon/daemon.js';
import { callDaemon, callDaemonText } from '../localapi/client.js';
import type { AgentStatus, PingResponse, UpRequest, WhoisResponse } from '../localapi/types.js';
import type { DnsQueryResult, DnsStatus } from '../daemon/magicdns.js';
import { UsageError } from '../../wire/cli.js';
import { parseDnsQueryArgs, parsePingArgs, parseSocketOnly, parseStatusArgs, parseUpArgs, parseWhoisArgs } from './args.js';
import { formatNetcheck } from './netcheck-format.js';
import { formatPong, formatRouteSettings, formatStatus } from './status-format.js';
import type { NetcheckReport } from '../connectivity/netcheck.js';

const print = (text: string) => process.stdout.write(text.endsWith('\n') ? text : text + '\n');

export const upCommand: Command = {
  usage:
    'up [--coord URL] [--authkey KEY] [--hostname NAME] [--advertise-tags tag:a,tag:b] [--accept-dns=true|false] ' +
    '[--advertise-routes CIDR,...] [--advertise-exit-node] [--accept-routes [--accept-routes-over-lan]] [--exit-node IP|NAME] [--exit-node-allow-lan-access] ' +
    '[--snat-subnet-routes=true|false] [--socket PATH]',
  summary: 'connect this device to its network (registering it first if needed)',
  async run(argv) {
    const { socket, ...request } = parseUpArgs(argv);
    const status = await callDaemon<AgentStatus>(socket, 'POST', '/up', request satisfies UpRequest);
    const self = status.self;
    if (self) print(`meshward is up: ${self.name} (${self.addresses.join(', ')}) in network ${self.network}`);
    else print(`meshward is starting: no netmap from coord yet${status.coord.error ? ` (${status.coord.error})` : ''}; see: agent status`);
    const routes = formatRouteSettings(status.routing);
    if (routes) print(routes);
    for (const h of status.health ?? []) print(`note: ${h}`);
    return 0;
  },
};

export const downCommand: Command = {
  usage: 'down [--socket PATH]',
  summary: 'disconnect: bring the interface down, keep the registration',
  async run(argv) {
    const { socket } = parseSocketOnly(argv);
    await callDaemon(socket, 'POST', '/down');
    print('meshward is down; `agent up` reconnects');
    return 0;
  },
};

export const logoutCommand: Command = {
  usage: 'logout [--socket PATH]',
  summary: 'remove this device from its network and forget it here (it must be registered again with an auth key)',
  async run(argv) {
    const { socket } = parseSocketOnly(argv);
    const r = await callDaemon<LogoutResponse>(socket, 'POST', '/logout');
    if (r.coordRemoved === false) {
      print(`coord could not be told; an admin can remove the device (${r.coordLogoutError ?? 'no answer'})`);
    }
    print('logged out; `agent up --authkey KEY` registers this device again');
    return 0;
  },
};

export const statusCommand: Command = {
  usage: 'status [--json] [--socket PATH]',
  summary: 'show this device and its peers',
  async run(argv) {
    const { socket, json } = parseStatusArgs(argv);
    const status = await callDaemon<AgentStatus>(socket, 'GET', '/status');
    print(json ? JSON.stringify(status, null, 2) : formatStatus(status));
    return 0;
  },
};

export const metricsCommand: Command = {
  usage: 'metrics [--socket PATH]',
  summary: 'print the agent’s metrics in the Prometheus text format',
  async run(argv) {
    const { socket } = parseSocketOnly(argv);
    process.stdout.write(await callDaemonText(socket, '/metrics'));
    return 0;
  },
};

export const netcheckCommand: Command = {
  usage: 'netcheck [--json] [--socket PATH]',
  summary: 'what this network allows: UDP, public endpoints, NAT type, latency to each relay',
  async run(argv) {
    const { socket, json } = parseStatusArgs(argv);
    const report = await callDaemon<NetcheckReport>(socket, 'GET', '/netcheck');
    print(json ? JSON.stringify(report, null, 2) : formatNetcheck(report));
    return 0;
  },
};

export const whoisCommand: Command = {
  usage: 'whois IP[:PORT] [--socket PATH]',
  summary: 'who is behind a network address: device, user, tags and its capabilities here',
  async run(argv) {
    const { socket, ip, port } = parseWhoisArgs(argv);
    const query = new URLSearchParams({ ip, ...(port ? { port: String(port) } : {}) });
    const who = await callDaemon<WhoisResponse>(socket, 'GET', `/whois?${query}`);
    const lines = [
      `Machine:`,
      `  Name:      ${who.device.dnsName}`,
      `  ID:        ${who.device.id}`,
      `  Addresses: ${who.device.addresses.join(', ')}`,
      `  OS:        ${who.device.os}`,
    ];
    if (who.device.tags.length) lines.push(`  Tags:      ${who.device.tags.join(', ')}`);
    if (who.device.shared) lines.push(`  Shared:    yes (quarantined)`);
    if (who.user) lines.push(`User:`, `  Name:      ${who.user.loginName}`, `  Display:   ${who.user.displayName}`);
    const caps = Object.entries(who.capabilities);
    if (caps.length) {
      lines.push('Capabilities:');
      for (const [name, values] of caps) lines.push(`  ${name}: ${JSON.stringify(values)}`);
    }
    print(lines.join('\n'));
    return 0;
  },
};

function formatDnsStatus(s: DnsStatus): string {
  const lines = [
    `MagicDNS:        ${s.magicDNS ? 'on' : 'off'}${s.domain ? ` (network domain ${s.domain})` : ''}`,
    `Resolver:        ${s.listening.length ? s.listening.join(', ') + ' port 53 (UDP and TCP)' : 'not running (the device is down)'}`,
    `System DNS:      ${!s.acceptDns ? 'not managed (--accept-dns=false)' : s.system ? `${s.system.mode}: ${s.system.detail}` : 'not configured yet'}`,
    `Search domains:  ${s.searchDomains.join(' ') || '(none)'}`,
    `Nameservers:     ${s.nameservers.join(' ') || `(none set; other names go to the system's: ${s.systemResolvers.join(' ') || 'none known'})`}`,
  ];
  if (s.exitNodeResolvers?.length) lines.push(`Exit node:       other names are resolved by the exit node in use (${s.exitNodeResolvers.join(' ')})`);
  if (s.servingExitNodeUsers?.length) lines.push(`As exit node:    resolving for the devices that use it, on ${s.servingExitNodeUsers.join(', ')} port 53`);
  const split = Object.entries(s.splitDns);
  if (split.length) {
    lines.push('Split DNS:');
    for (const [domain, servers] of split) lines.push(`  ${domain} → ${servers.join(' ')}`);
  }
  lines.push(`Names:           ${s.names} devices in ${s.zones.join(', ') || 'no domain'}`);
  if (s.counters) lines.push(`Queries:         ${s.counters.queries} (${s.counters.local} answered here, ${s.counters.forwarded} forwarded, ${s.counters.servfail} failed, ${s.counters.dropped} dropped)`);
  return lines.join('\n');
}

export const dnsCommand: Command = {
  usage: 'dns status [--json] [--socket PATH] | dns query NAME [TYPE] [--socket PATH]',
  summary: 'MagicDNS: what the resolver and the system are configured with; ask the resolver a name',
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub === 'status') {
      const { socket, json } = parseStatusArgs(rest);
      const s = await callDaemon<DnsStatus>(socket, 'GET', '/dns/status');
      print(json ? JSON.stringify(s, null, 2) : formatDnsStatus(s));
      return 0;
    }
    if (sub === 'query') {
      const { socket, name, type } = parseDnsQueryArgs(rest);
      const r = await callDaemon<DnsQueryResult>(socket, 'POST', '/dns/query', { name, type });
      const from = r.source === 'magicdns' ? 'answered by MagicDNS' : r.source === 'upstream' ? `forwarded to ${r.upstream}` : 'no upstream answered';
      print([`${r.name} ${r.type}: ${r.rcode}, ${from}`, ...r.answers.map((a) => `  ${a}`)].join('\n'));
      return r.rcode === 'NOERROR' ? 0 : 1;
    }
    throw new UsageError(sub === undefined ? 'which dns command? status or query' : `unknown dns command ${JSON.stringify(sub)}: status or query`);
  },
};

/** Pings without -c: at most this many, stopping at the first direct pong (as `tailscale ping`). */
const PING_DEFAULT_COUNT = 10;
const PING_INTERVAL_MS = 1000;

export const pingCommand: Command = {
  usage: 'ping PEER [-c N] [--json] [--socket PATH]',
  summary: 'ping a peer with path-discovery probes: which path each answer came over (direct or relay) and its latency',
  async run(argv) {
    const { socket, peer, count, json } = parsePingArgs(argv);
    const untilDirect = count === undefined;
    const rounds = count ?? PING_DEFAULT_COUNT;
    const results: PingResponse[] = [];
    let direct = false;
    for (let i = 0; i < rounds; i++) {
      const started = Date.now();
      const r = await callDaemon<PingResponse>(socket, 'POST', '/ping', { peer });
      results.push(r);
      if (!json) print(formatPong(r));
      if (r.pong?.path === 'direct') {
        direct = true;
        if (untilDirect) break;
      }
      if (i + 1 < rounds) await new Promise((res) => setTimeout(res, Math.max(0, PING_INTERVAL_MS - (Date.now() - started))));
    }
    if (json) print(JSON.stringify(results.map((r) => ({ peer: r.peer.name, address: r.peer.address, ...(r.pong ?? { path: null, endpoint: null, relay: null, latencyMs: null }) })), null, 2));
    if (untilDirect && !direct) {
      process.stderr.write('direct connection not established\n');
      return 1;
    }
    return results.some((r) => r.pong) ? 0 : 1;
  },
};
