// `coord policy compile|check|preview`: the policy engine on files, without a server.
import { readFileSync } from 'node:fs';
import { parseFlags, UsageError, type Command } from '../../wire/cli.js';
import { compileFilters } from './index.js';
import { PolicyError } from './errors.js';
import { parsePolicy, type Policy } from './parse.js';
import { preview } from './preview.js';
import { checkPolicy, runPolicyTests } from './tests.js';
import type { Topology } from './types.js';

const USAGE = [
  'policy compile --policy FILE --topology FILE         print {"nodes": {name: [FilterRule...]}}',
  '       coord policy check FILE [--topology FILE]          parse, validate and run the tests',
  '       coord policy preview --policy FILE --topology FILE (--user EMAIL | --ip-port IP:PORT) [--json]',
].join('\n');

/** A failure the user must fix in a file: "error: <why>" on stderr, exit status 1. */
class FileError extends Error {}

function read(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new FileError(`cannot read ${what} ${file}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
}

function located(file: string, err: PolicyError): string {
  return err.line !== undefined ? `${file}:${err.line}:${err.column}: ${err.reason}` : `${file}: ${err.reason}`;
}

function loadPolicy(file: string): { text: string; policy: Policy } {
  const text = read(file, 'policy');
  try {
    return { text, policy: parsePolicy(text) };
  } catch (err) {
    if (err instanceof PolicyError) throw new FileError(located(file, err));
    throw err;
  }
}

function loadTopology(file: string): Topology {
  const text = read(file, 'topology');
  let t: unknown;
  try {
    t = JSON.parse(text);
  } catch (err) {
    throw new FileError(`topology ${file} is not valid JSON: ${(err as Error).message}`);
  }
  const o = t as Partial<Topology> | null;
  if (!o || typeof o !== 'object' || typeof o.nodes !== 'object' || o.nodes === null || Array.isArray(o.nodes)) {
    throw new FileError(`topology ${file} must be an object with "nodes" ({name: {hostname, tags, ipv4, ipv6, user}}) and "users"`);
  }
  const users = Array.isArray(o.users) ? o.users : [];
  for (const [name, n] of Object.entries(o.nodes)) {
    if (!n || typeof n !== 'object') throw new FileError(`topology ${file}: node ${JSON.stringify(name)} must be an object`);
    if (!Array.isArray(n.tags)) n.tags = [];
    if (n.user === undefined) n.user = null;
  }
  return { users, nodes: o.nodes, ...(Array.isArray(o.sharedUsers) ? { sharedUsers: o.sharedUsers } : {}) };
}

function testsFailed(policy: Policy, topo: Topology | undefined, file: string): void {
  let failures;
  try {
    failures = runPolicyTests(policy, topo);
  } catch (err) {
    // The tests ask for more work than any policy may (PolicyError): the documented "error: <why>" (docs/policy.md).
    if (err instanceof PolicyError) throw new FileError(`${file}: ${err.message}`);
    throw err;
  }
  if (failures.length > 0) throw new FileError(`${file}: test(s) failed:\n  ${failures.map((f) => f.message).join('\n  ')}`);
}

async function compile(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, { policy: { type: 'string' }, topology: { type: 'string' } });
  if (!values.policy || !values.topology) throw new UsageError('compile needs --policy FILE and --topology FILE');
  const { policy } = loadPolicy(values.policy);
  const topo = loadTopology(values.topology);
  testsFailed(policy, topo, values.policy);
  process.stdout.write(JSON.stringify({ nodes: compileFilters(policy, topo) }) + '\n');
  return 0;
}

async function check(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(argv, { topology: { type: 'string' } }, 1);
  const file = positionals[0];
  if (!file) throw new UsageError('check needs the policy FILE');
  const text = read(file, 'policy');
  const topo = values.topology ? loadTopology(values.topology) : undefined;
  try {
    const policy = checkPolicy(text, topo);
    if (topo) compileFilters(policy, topo);
    const n = (x: number, w: string): string => `${x} ${w}${x === 1 ? '' : 's'}`;
    process.stdout.write(`ok: ${file}: ${n(policy.acls.length, 'acl')}, ${n(policy.grants.length, 'grant')}, ${n(policy.tests.length, 'test')} passed\n`);
    return 0;
  } catch (err) {
    if (err instanceof PolicyError) {
      if (err.failures) throw new FileError(`${file}: test(s) failed:\n  ${err.failures.map((f) => f.message).join('\n  ')}`);
      throw new FileError(located(file, err));
    }
    throw err;
  }
}

async function previewCmd(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, {
    policy: { type: 'string' }, topology: { type: 'string' }, user: { type: 'string' }, 'ip-port': { type: 'string' }, json: { type: 'boolean' },
  });
  if (!values.policy || !values.topology) throw new UsageError('preview needs --policy FILE and --topology FILE');
  if ((values.user === undefined) === (values['ip-port'] === undefined)) throw new UsageError('preview needs exactly one of --user EMAIL or --ip-port IP:PORT');
  const { policy } = loadPolicy(values.policy);
  const topo = loadTopology(values.topology);
  let result;
  try {
    result = preview(policy, topo, values.user !== undefined ? { user: values.user } : { ipPort: values['ip-port']! });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.json) {
    process.stdout.write(JSON.stringify(result) + '\n');
    return 0;
  }
  if (result.matches.length === 0) {
    process.stdout.write(result.type === 'user' ? `${result.previewFor} may reach nothing\n` : `nothing may reach ${result.previewFor}\n`);
    return 0;
  }
  for (const m of result.matches) {
    process.stdout.write(`line ${m.lineNumber}: ${m.users.join(', ')} -> ${m.ports.join(', ')}\n`);
  }
  return 0;
}

const SUB: Record<string, (argv: string[]) => Promise<number>> = { compile, check, preview: previewCmd };

export const policyCommand: Command = {
  usage: USAGE,
  summary: 'compile, check or preview a policy file (Tailscale syntax) without a server',
  async run(args: string[]): Promise<number> {
    const [sub, ...rest] = args;
    const fn = sub !== undefined && Object.hasOwn(SUB, sub) ? SUB[sub]! : undefined;
    if (!fn) throw new UsageError(sub === undefined ? 'which one: compile, check or preview?' : `unknown subcommand ${JSON.stringify(sub)} (compile, check or preview)`);
    try {
      return await fn(rest);
    } catch (err) {
      if (err instanceof FileError) {
        process.stderr.write(`error: ${err.message}\n`);
        return 1;
      }
      throw err;
    }
  },
};
