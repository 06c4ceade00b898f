// The small command dispatcher both programs share: a table of subcommands, usage on mistakes.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { printable } from './printable.js';

type FlagSpec = NonNullable<ParseArgsConfig['options']>;

export interface Command {
  /** One line for the usage text, e.g. "up [--coord URL] ...". */
  usage: string;
  summary: string;
  run(args: string[]): Promise<number>;
}

/** A mistake on the command line: says what was wrong; dispatch adds the command's usage and exits 2. */
export class UsageError extends Error {}

/**
 * Parses flags with node:util's parseArgs, turning its errors into UsageErrors that name the flag.
 * `maxPositionals` bounds the plain arguments.
 */
export function parseFlags<T extends FlagSpec>(
  argv: string[],
  options: T,
  maxPositionals = 0,
): { values: ReturnType<typeof parseArgs<{ options: T; allowPositionals: true; args: string[] }>>['values']; positionals: string[] } {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new UsageError(message.replace(/\. To specify a positional argument.*$/s, ''));
  }
  if (parsed.positionals.length > maxPositionals) {
    const extra = parsed.positionals.slice(maxPositionals).join(' ');
    throw new UsageError(`unexpected argument ${JSON.stringify(extra)}`);
  }
  return parsed as never;
}

export function usageText(program: string, commands: Record<string, Command>): string {
  const lines = [`usage: ${program} <command> [arguments]`, '', 'commands:'];
  const width = Math.max(...Object.keys(commands).map((name) => name.length));
  for (const [name, cmd] of Object.entries(commands)) {
    lines.push(`  ${name.padEnd(width)}  ${cmd.summary}`);
  }
  lines.push('', `Run '${program} <command> --help' for a command's arguments.`);
  return lines.join('\n');
}

/** Runs the subcommand named by argv[0]; an unknown or missing one prints usage and exits 2. */
export async function dispatch(program: string, commands: Record<string, Command>, argv: string[]): Promise<never> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    const out = name === undefined ? process.stderr : process.stdout;
    out.write(usageText(program, commands) + '\n');
    process.exit(name === undefined ? 2 : 0);
  }
  const cmd = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (!cmd) {
    process.stderr.write(`${program}: unknown command "${name}"\n\n${usageText(program, commands)}\n`);
    process.exit(2);
  }
  if (rest[0] === '--help' || rest[0] === '-h') {
    process.stdout.write(`usage: ${program} ${cmd.usage}\n${cmd.summary}\n`);
    process.exit(0);
  }
  try {
    process.exitCode = await cmd.run(rest);
  } catch (err) {
    process.stderr.write(`${program} ${name}: ${printable(err instanceof Error ? err.message : String(err))}\n`);
    if (err instanceof UsageError) process.stderr.write(`usage: ${program} ${cmd.usage}\n`);
    process.exitCode = err instanceof UsageError ? 2 : 1;
  }
  // Commands that keep the process alive (daemons) never return; the others end here.
  process.exit(process.exitCode ?? 0);
}
