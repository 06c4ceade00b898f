#!/usr/bin/env node
// The node agent's command line. Each subcommand lives in its own module; this table names them.
import { dispatch, type Command } from '../wire/cli.js';
import { dnsCommand, downCommand, logoutCommand, metricsCommand, netcheckCommand, pingCommand, statusCommand, upCommand, whoisCommand } from './cli/commands.js';
import { daemonCommand } from './daemon/command.js';
import { wireguardCommand } from './wireguard/command.js';

const commands: Record<string, Command> = {
  up: upCommand,
  down: downCommand,
  status: statusCommand,
  netcheck: netcheckCommand,
  whois: whoisCommand,
  ping: pingCommand,
  dns: dnsCommand,
  logout: logoutCommand,
  metrics: metricsCommand,
  daemon: daemonCommand,
  wireguard: wireguardCommand,
};

await dispatch('agent', commands, process.argv.slice(2));
