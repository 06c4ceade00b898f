#!/usr/bin/env node
// The coordination server's command line. Each subcommand lives in its own module; this table names them.
import { dispatch, type Command } from '../wire/cli.js';
import { policyCommand } from './policy/cli.js';
import { aclCommand, auditCommand, devicesCommand, dnsCommand, keysCommand, usersCommand } from './cli/admin.js';
import { relayCommand, relaysCommand } from './cli/relay.js';
import { serveCommand } from './cli/serve.js';
import { tailnetCommand } from './cli/tailnet.js';

const commands: Record<string, Command> = {
  policy: policyCommand,
  serve: serveCommand,
  tailnet: tailnetCommand,
  users: usersCommand,
  keys: keysCommand,
  devices: devicesCommand,
  acl: aclCommand,
  audit: auditCommand,
  dns: dnsCommand,
  relay: relayCommand,
  relays: relaysCommand,
};

await dispatch('coord', commands, process.argv.slice(2));
