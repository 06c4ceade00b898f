// Parsing and local validation of the agent's command-line arguments. Everything here is pure so that
// the messages a person sees can be tested without a daemon.
import { isAddr } from '../../wire/addr.js';
import { parseFlags, UsageError } from '../../wire/cli.js';
import { isDnsLabel, isTag } from '../../wire/names.js';
import type { UpRequest } from '../localapi/types.js';
import { parseExitNode, parseRouteList, RouteError } from '../routing/prefixes.js';

export const DEFAULT_SOCKET = '/run/meshward/agent.sock';

const socketFlag = { socket: { type: 'string' } } as const;

/** What `agent up` sends the daemon (undefined fields: keep what the device has), and where. */
export interface UpArgs extends UpRequest {
  socket: string;
}

const ROUTE_BOOL_FLAGS = [
  'advertise-exit-node',
  'accept-routes',
  'accept-routes-over-lan',
  'exit-node-allow-lan-access',
  'snat-subnet-routes',
] as const;

/**
 * Boolean flags written as Tailscale writes them: `--flag`, `--flag=true|false` or `--flag true|false`.
 * Rewrites them to `--flag=VALUE` for parseArgs (declared as strings), so that each spelling works.
 */
export function normalizeBoolFlags(argv: string[], names: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const name = a.startsWith('--') ? a.slice(2) : '';
    if (names.includes(name)) {
      const next = argv[i + 1];
      if (next === 'true' || next === 'false') {
        out.push(`${a}=${next}`);
        i++;
      } else out.push(`${a}=true`);
    } else out.push(a);
  }
  return out;
}

export function parseBool(flag: string, raw: string): boolean {
  if (raw === 'true') return true;
  if (raw === 'false') return false;
  throw new UsageError(`--${flag} takes true or false, not ${JSON.stringify(raw)} (e.g. --${flag}=false)`);
}


/** Splits and checks a comma-separated tag list, naming the first bad tag. */
export function parseTags(list: string): string[] {
  const tags = list.split(',').map((t) => t.trim()).filter((t) => t !== '');
  for (const tag of tags) {
    if (!isTag(tag)) {
      const fix = tag.startsWith('tag:') ? '' : ` (did you mean "tag:${tag}"?)`;
      throw new UsageError(
        `invalid tag ${JSON.stringify(tag)}: a tag is "tag:" followed by a letter, then letters, digits or dashes${fix}`,
      );
    }
  }
  return [...new Set(tags)];
}

export function parseCoordUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`--coord ${JSON.stringify(raw)} is not a URL; try --coord https://coord.example.com`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`--coord must be an http:// or https:// URL, not ${JSON.stringify(raw)}`);
  }
  return url.origin + url.pathname.replace(/\/+$/, '');
}

export function parseHostname(raw: string): string {
  if (!isDnsLabel(raw)) {
    throw new UsageError(
      `invalid --hostname ${JSON.stringify(raw)}: use 1 to 63 letters, digits or dashes, not starting or ending with a dash`,
    );
  }
  return raw.toLowerCase();
}

export function parseUpArgs(argv: string[]): UpArgs {
  const { values } = parseFlags(normalizeBoolFlags(argv, ['accept-dns', ...ROUTE_BOOL_FLAGS]), {
    ...socketFlag,
    'accept-dns': { type: 'string' },
    'advertise-routes': { type: 'string' },
    'advertise-exit-node': { type: 'string' },
    'accept-routes': { type: 'string' },
    'accept-routes-over-lan': { type: 'string' },
    'exit-node': { type: 'string' },
    'exit-node-allow-lan-access': { type: 'string' },
    'snat-subnet-routes': { type: 'string' },
    coord: { type: 'string' },
    authkey: { type: 'string' },
    hostname: { type: 'string' },
    'advertise-tags': { type: 'string' },
  });
  const up: UpArgs = { socket: values.socket ?? DEFAULT_SOCKET };
  if (values.coord !== undefined) up.coord = parseCoordUrl(values.coord);
  if (values.authkey !== undefined) {
    if (values.authkey.trim() === '') throw new UsageError('--authkey is empty');
    up.authkey = values.authkey.trim();
  }
  if (values.hostname !== undefined) up.hostname = parseHostname(values.hostname);
  if (values['advertise-tags'] !== undefined) up.advertiseTags = parseTags(values['advertise-tags']);
  if (values['accept-dns'] !== undefined) up.acceptDns = parseBool('accept-dns', values['accept-dns']);
  try {
    if (values['advertise-routes'] !== undefined) up.advertiseRoutes = parseRouteList(values['advertise-routes']);
    if (values['exit-node'] !== undefined) up.exitNode = parseExitNode(values['exit-node']);
  } catch (err) {
    if (err instanceof RouteError) throw new UsageError(err.message);
    throw err;
  }
  const bool = (flag: (typeof ROUTE_BOOL_FLAGS)[number]) => (values[flag] === undefined ? undefined : parseBool(flag, values[flag]));
  const routeBools = {
    advertiseExitNode: bool('advertise-exit-node'),
    acceptRoutes: bool('accept-routes'),
    acceptRoutesOverLan: bool('accept-routes-over-lan'),
    exitNodeAllowLanAccess: bool('exit-node-allow-lan-access'),
    snatSubnetRoutes: bool('snat-subnet-routes'),
  };
  for (const [k, v] of Object.entries(routeBools)) if (v !== undefined) (up as unknown as Record<string, boolean>)[k] = v;
  if (up.acceptRoutesOverLan && up.acceptRoutes === false) {
    throw new UsageError('--accept-routes-over-lan needs --accept-routes: drop --accept-routes=false, or --accept-routes-over-lan');
  }
  if (up.advertiseExitNode && up.exitNode) {
    throw new UsageError('a device cannot offer an exit node and use one at once: drop --advertise-exit-node or --exit-node');
  }
  return up;
}

export function parseSocketOnly(argv: string[]): { socket: string } {
  const { values } = parseFlags(argv, socketFlag);
  return { socket: values.socket ?? DEFAULT_SOCKET };
}

export function parseStatusArgs(argv: string[]): { socket: string; json: boolean } {
  const { values } = parseFlags(argv, { ...socketFlag, json: { type: 'boolean' } });
  return { socket: values.socket ?? DEFAULT_SOCKET, json: values.json ?? false };
}

export interface WhoisArgs {
  socket: string;
  ip: string;
  port?: number;
}

/** IP, IP:PORT, or [IPv6]:PORT. */
export function parseWhoisArgs(argv: string[]): WhoisArgs {
  const { values, positionals } = parseFlags(argv, { ...socketFlag }, 1);
  const target = positionals[0];
  if (target === undefined) throw new UsageError('which address? try: agent whois 100.64.0.1');
  const socket = values.socket ?? DEFAULT_SOCKET;
  if (isAddr(target)) return { socket, ip: target };
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(target) ?? /^([^:]+):(\d+)$/.exec(target);
  if (m && isAddr(m[1]!)) {
    const port = Number(m[2]);
    if (port >= 1 && port <= 65535) return { socket, ip: m[1]!, port };
  }
  throw new UsageError(`${JSON.stringify(target)} is not an IP address, IP:PORT or [IPv6]:PORT`);
}

export interface DnsQueryArgs {
  socket: string;
  name: string;
  type: string;
}

/** `agent dns query NAME [TYPE]`; an IP address as NAME asks for its PTR. */
export function parseDnsQueryArgs(argv: string[]): DnsQueryArgs {
  const { values, positionals } = parseFlags(argv, { ...socketFlag }, 2);
  const name = positionals[0];
  if (name === undefined) throw new UsageError('which name? try: agent dns query git   (or: agent dns query git.example-com.meshward.internal AAAA)');
  const type = (positionals[1] ?? (isAddr(name) ? 'PTR' : 'A')).toUpperCase();
  if (!/^[A-Z0-9]{1,10}$/.test(type)) throw new UsageError(`${JSON.stringify(positionals[1])} is not a record type; try A, AAAA, PTR, TXT, MX`);
  return { socket: values.socket ?? DEFAULT_SOCKET, name, type };
}

export interface PingArgs {
  socket: string;
  peer: string;
  /** -c N: exactly N pings, not stopping at the first direct pong; undefined: up to 10, stop at direct. */
  count?: number;
  json: boolean;
}

/** `agent ping PEER [-c N] [--json]`. */
export function parsePingArgs(argv: string[]): PingArgs {
  const { values, positionals } = parseFlags(argv, { ...socketFlag, c: { type: 'string', short: 'c' }, json: { type: 'boolean' } }, 1);
  const peer = positionals[0];
  if (peer === undefined) throw new UsageError('which peer? try: agent ping web   (a name, DNS name or tailnet address)');
  const out: PingArgs = { socket: values.socket ?? DEFAULT_SOCKET, peer, json: values.json ?? false };
  if (values.c !== undefined) {
    const n = /^\d+$/.test(values.c) ? Number(values.c) : NaN;
    if (!(n >= 1 && n <= 100_000)) throw new UsageError(`-c takes a number of pings from 1 up, not ${JSON.stringify(values.c)}`);
    out.count = n;
  }
  return out;
}
