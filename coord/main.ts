#!/usr/bin/env node
// The coordination server's command line. Each subcommand lives in its own module; this table names them.
import { dispatch, type Command } from '../wire/cli.js';
import { policyCommand } from './policy/cli.js';

const commands: Record<string, Command> = {
  policy: policyCommand,
};

await dispatch('coord', commands, process.argv.slice(2));
