// The agent's user-facing subcommands. Each talks to the daemon over the local API.
import type { Command } from '../../wire/cli.js';
import type { LogoutResponse } from '../daemon/daemon.js';
import { callDaemon } from '../localapi/client.js';
import type { AgentStatus, UpRequest, WhoisResponse } from '../localapi/types.js';
import { parseSocketOnly, parseStatusArgs, parseUpArgs, parseWhoisArgs } from './args.js';
import { formatStatus } from './status-format.js';

const print = (text: string) => process.stdout.write(text.endsWith('\n') ? text : text + '\n');

export const upCommand: Command = {
  usage: 'up [--coord URL] [--authkey KEY] [--hostname NAME] [--advertise-tags tag:a,tag:b] [--socket PATH]',
  summary: 'connect this device to its network (registering it first if needed)',
  async run(argv) {
    const { socket, ...request } = parseUpArgs(argv);
    const status = await callDaemon<AgentStatus>(socket, 'POST', '/up', request satisfies UpRequest);
    const self = status.self;
    if (self) print(`meshward is up: ${self.name} (${self.addresses.join(', ')}) in network ${self.network}`);
    else print(`meshward is starting: no netmap from coord yet${status.coord.error ? ` (${status.coord.error})` : ''}; see: agent status`);
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
