#!/usr/bin/env node
// The node agent's command line. Each subcommand lives in its own module; this table names them.
import { dispatch, type Command } from '../wire/cli.js';

const commands: Record<string, Command> = {
};

await dispatch('agent', commands, process.argv.slice(2));
