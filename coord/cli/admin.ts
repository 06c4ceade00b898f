// Admin subcommands for the daily tasks, over the admin API (so they work from any machine):
// `coord users|keys|devices|acl|audit …`. The server and key come from --coord/--api-key or the
// environment (MESHWARD_COORD, MESHWARD_API_KEY; prefer the environment or --api-key-file so the key
// does not show in `ps`).
import { readFileSync } from 'node:fs';
import { parseFlags, UsageError, type Command } from '../../wire/cli.js';
import { printable, printableText } from '../../wire/printable.js';
import { formatPrefix, parsePrefix } from '../../wire/addr.js';
import { AdminApiError, AdminClient, type CreateKeyRequest, type Device, type User, type UserAction } from '../client/index.js';
import { parseDuration } from './common.js';

const CONN_FLAGS = {
  coord: { type: 'string' },
  'api-key': { type: 'string' },
  'api-key-file': { type: 'string' },
  tailnet: { type: 'string' },
  json: { type: 'boolean' },
} as const;

type Flags = Record<string, { type: 'string' | 'boolean'; multiple?: boolean }>;

function connect(values: Record<string, unknown>): AdminClient {
  const base = String(values.coord ?? process.env.MESHWARD_COORD ?? 'http://127.0.0.1:8080');
  let key = (values['api-key'] as string | undefined) ?? process.env.MESHWARD_API_KEY;
  if (values['api-key-file']) key = readFileSync(values['api-key-file'] as string, 'utf8').trim();
  if (!key) throw new UsageError('no API key: set MESHWARD_API_KEY, or pass --api-key-file FILE (or --api-key KEY)');
  return new AdminClient(base, key, (values.tailnet as string | undefined) ?? '-');
}

/** JSON with --json; else lines for people, control characters escaped (names and OS strings come from others). */
function out(values: Record<string, unknown>, json: unknown, lines: () => string[]): void {
  process.stdout.write(values.json ? JSON.stringify(json, null, 2) + '\n' : lines().map((l) => printable(l) + '\n').join(''));
}

function table(cells: string[][]): string[] {
  const rows = cells.map((r) => r.map((c) => printable(c)));
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd());
}

interface Sub {
  usage: string;
  flags?: Flags;
  positionals?: number;
  run(api: AdminClient, values: Record<string, any>, args: string[]): Promise<void>;
}

/** A `list` subcommand: the items as a table, or with --json as {"<key>": [...]} (the API's own shape). */
function listing<T>(key: string, fetch: (api: AdminClient) => Promise<T[]>, header: string[], row: (item: T) => string[]): Sub {
  return {
    usage: 'list',
    async run(api, v) {
      const items = await fetch(api);
      out(v, { [key]: items }, () => table([header, ...items.map(row)]));
    },
  };
}

function group(name: string, summary: string, subs: Record<string, Sub>): Command {
  const usage = `${name} <${Object.keys(subs).join('|')}> … [--coord URL] [--api-key-file FILE] [--json]`;
  return {
    usage,
    summary,
    async run(argv) {
      const [sub, ...rest] = argv;
      const s = sub !== undefined && Object.hasOwn(subs, sub) ? subs[sub] : undefined;
      if (!s) {
        const list = Object.values(subs).map((x) => `  coord ${name} ${x.usage}`).join('\n');
        throw new UsageError(`${sub === undefined ? 'missing' : `unknown ${name} subcommand "${sub}";`} one of:\n${list}`);
      }
      const { values, positionals } = parseFlags(rest, { ...CONN_FLAGS, ...(s.flags ?? {}) } as typeof CONN_FLAGS, s.positionals ?? 0);
      await s.run(connect(values), values, positionals);
      return 0;
    },
  };
}

function need(args: string[], i: number, what: string): string {
  const v = args[i];
  if (v === undefined) throw new UsageError(`missing ${what}`);
  return v;
}

/** A user by id or email. */
async function findUser(api: AdminClient, ref: string): Promise<User> {
  const users = await api.users();
  const u = users.find((x) => x.id === ref || x.loginName.toLowerCase() === ref.toLowerCase());
  if (!u) throw new Error(`no user ${JSON.stringify(ref)} in this network (coord users list shows them)`);
  return u;
}

/** A device by id, DNS name or hostname. */
async function findDevice(api: AdminClient, ref: string): Promise<Device> {
  const devices = await api.devices();
  const hits = devices.filter((d) => d.id === ref || d.name === ref || d.name.split('.')[0] === ref || d.hostname === ref);
  if (hits.length === 0) throw new Error(`no device ${JSON.stringify(ref)} in this network (coord devices list shows them)`);
  if (hits.length > 1) throw new Error(`${JSON.stringify(ref)} matches ${hits.length} devices; use the id`);
  return hits[0]!;
}

/** A subcommand that acts on one device (its first argument) and says what it did. */
function onDevice(usage: string, positionals: number, act: (api: AdminClient, d: Device, args: string[]) => Promise<string>): Sub {
  return {
    usage,
    positionals,
    async run(api, v, args) {
      const d = await findDevice(api, need(args, 0, 'DEVICE'));
      const done = await act(api, d, args);
      out(v, {}, () => [`${d.name}: ${done}`]);
    },
  };
}

function splitList(s: string | undefined): string[] {
  return (s ?? '').split(',').map((x) => x.trim()).filter(Boolean);
}

const EXIT_ROUTES = ['0.0.0.0/0', '::/0'];

/** A flag's comma-separated routes, each checked to be a CIDR prefix as written ("exit-node": both default routes). */
function routeList(flag: string, value: string | undefined): string[] {
  if (value === undefined) return [];
  const out: string[] = [];
  for (const x of splitList(value)) {
    if (x === 'exit-node') {
      out.push(...EXIT_ROUTES);
      continue;
    }
    const p = x.includes('/') ? parsePrefix(x) : null;
    if (!p) throw new UsageError(`${flag}: ${JSON.stringify(x)} is not a CIDR prefix (e.g. 10.0.0.0/24, or exit-node)`);
    if (formatPrefix(p) !== x) throw new UsageError(`${flag}: ${x} has host bits set; the prefix is ${formatPrefix(p)}`);
    out.push(x);
  }
  return [...new Set(out)];
}

export const usersCommand = group('users', 'list users, invite them, change roles (admin API)', {
  list: listing('users', (api) => api.users(), ['ID', 'EMAIL', 'ROLE', 'STATUS', 'DEVICES'], (u) => [u.id, u.loginName, u.role, u.status, String(u.deviceCount)]),
  invite: {
    usage: 'invite EMAIL [--role ROLE]',
    flags: { role: { type: 'string' } },
    positionals: 1,
    async run(api, v, args) {
      const email = need(args, 0, 'EMAIL');
      const [inv] = await api.inviteUsers([{ email, role: v.role ?? 'member' }]);
      if (!inv) throw new Error('coord answered no invite');
      out(v, inv, () => [
        inv.lastEmailSentAt
          ? `invited ${inv.email} as ${inv.role} and mailed them the link; the one-time code (shown only now):`
          : `invited ${inv.email} as ${inv.role}; send them this one-time code (shown only now):`,
        inv.code,
        ...(inv.mailError ? [`the mail did not go out: ${inv.mailError}`] : []),
      ]);
    },
  },
  role: {
    usage: 'role USER ROLE',
    positionals: 2,
    async run(api, v, args) {
      const u = await findUser(api, need(args, 0, 'USER (id or email)'));
      const r = await api.setUserRole(u.id, need(args, 1, 'ROLE'));
      out(v, r, () => [`${r.loginName} is now ${r.role}`]);
    },
  },
  ...Object.fromEntries(
    (['approve', 'suspend', 'restore', 'delete'] satisfies UserAction[]).map((action) => [
      action,
      {
        usage: `${action} USER`,
        positionals: 1,
        async run(api: AdminClient, v: Record<string, unknown>, args: string[]) {
          const u = await findUser(api, need(args, 0, 'USER (id or email)'));
          await api.changeUser(u.id, action);
          out(v, {}, () => [`${u.loginName}: ${action.endsWith('e') ? action + 'd' : action + 'ed'}`]);
        },
      } satisfies Sub,
    ]),
  ),
});

export const keysCommand = group('keys', 'create, list and revoke auth keys and API tokens (admin API)', {
  list: listing('keys', (api) => api.keys(), ['ID', 'TYPE', 'DESCRIPTION', 'EXPIRES', 'FLAGS'], (k) => {
    const c = k.capabilities?.devices?.create;
    const flags = [k.revoked && 'revoked', ...(c ? [c.reusable && 'reusable', c.ephemeral && 'ephemeral', c.preauthorized && 'preauthorized', ...(c.tags ?? [])] : [])].filter(Boolean).join(',');
    return [k.id, k.keyType, k.description || '-', k.expires ?? 'never', flags];
  }),
  create: {
    usage: 'create [--reusable] [--ephemeral] [--preauthorized] [--tags tag:a,tag:b] [--user EMAIL] [--expiry 90d] [--description TEXT] [--api]',
    flags: {
      reusable: { type: 'boolean' }, ephemeral: { type: 'boolean' }, preauthorized: { type: 'boolean' }, tags: { type: 'string' },
      user: { type: 'string' }, expiry: { type: 'string' }, description: { type: 'string' }, api: { type: 'boolean' },
    },
    async run(api, v) {
      const body: CreateKeyRequest = { description: v.description ?? '' };
      if (v.expiry) body.expirySeconds = parseDuration(v.expiry);
      if (v.api) {
        if (v.reusable || v.ephemeral || v.preauthorized || v.tags || v.user) throw new UsageError('--api makes an API token; device flags do not apply');
        body.keyType = 'api';
      } else {
        body.capabilities = { devices: { create: { reusable: !!v.reusable, ephemeral: !!v.ephemeral, preauthorized: !!v.preauthorized, tags: splitList(v.tags) } } };
        if (v.user) body.user = v.user;
      }
      const k = await api.createKey(body);
      out(v, k, () => [`created ${k.keyType} key ${k.id}, expires ${k.expires}; the key (shown only now):`, k.key]);
    },
  },
  revoke: {
    usage: 'revoke ID',
    positionals: 1,
    async run(api, v, args) {
      const id = need(args, 0, 'key ID');
      await api.revokeKey(id);
      out(v, {}, () => [`revoked ${id}`]);
    },
  },
});

export const devicesCommand = group('devices', 'list, approve, rename, tag and remove devices (admin API)', {
  list: listing('devices', (api) => api.devices(), ['ID', 'NAME', 'ADDRESS', 'USER', 'TAGS', 'OS', 'STATE'], (d) => [
    d.id, d.name.split('.')[0]!, d.addresses[0] ?? '', d.user, d.tags.join(',') || '-', d.os || '-',
    !d.authorized ? 'needs approval' : d.connectedToControl ? 'online' : `offline${d.lastSeen ? `, last seen ${d.lastSeen}` : ''}`,
  ]),
  approve: onDevice('approve DEVICE', 1, async (api, d) => {
    await api.authorizeDevice(d.id);
    return 'approved';
  }),
  rename: onDevice('rename DEVICE NAME', 2, async (api, d, args) => {
    const name = need(args, 1, 'NAME');
    await api.renameDevice(d.id, name);
    return `renamed to ${name}`;
  }),
  tag: onDevice('tag DEVICE tag:a,tag:b   (empty string removes all tags)', 2, async (api, d, args) => {
    const tags = splitList(need(args, 1, 'TAGS'));
    await api.setDeviceTags(d.id, tags);
    return `tags ${tags.join(',') || '(none)'}`;
  }),
  routes: {
    usage: 'routes DEVICE [--approve CIDR,…] [--unapprove CIDR,…] | [--enable CIDR,…]   ("exit-node" stands for 0.0.0.0/0,::/0)',
    flags: { approve: { type: 'string' }, unapprove: { type: 'string' }, enable: { type: 'string' } },
    positionals: 1,
    async run(api, v, args) {
      const ref = need(args, 0, 'DEVICE');
      if (v.enable !== undefined && (v.approve !== undefined || v.unapprove !== undefined)) {
        throw new UsageError('--enable sets the whole list of approved routes: use it alone, or --approve/--unapprove to change some');
      }
      const approve = routeList('--approve', v.approve);
      const unapprove = routeList('--unapprove', v.unapprove);
      const enable = routeList('--enable', v.enable);
      const both = approve.filter((r) => unapprove.includes(r));
      if (both.length > 0) throw new UsageError(`${both.join(', ')} both in --approve and --unapprove`);
      const d = await findDevice(api, ref);
      let r = await api.deviceRoutes(d.id);
      if (v.approve !== undefined || v.unapprove !== undefined || v.enable !== undefined) {
        const notOffered = [...approve, ...enable].filter((x) => !r.advertisedRoutes.includes(x));
        if (notOffered.length > 0) {
          throw new Error(`${d.name} does not advertise ${notOffered.join(', ')}; it advertises ${r.advertisedRoutes.join(', ') || 'nothing'} (agent up --advertise-routes / --advertise-exit-node on the device)`);
        }
        const next = v.enable !== undefined ? enable : [...r.enabledRoutes.filter((x) => !unapprove.includes(x)), ...approve.filter((x) => !r.enabledRoutes.includes(x))];
        try {
          r = await api.setDeviceRoutes(d.id, next);
        } catch (err) {
          if (err instanceof AdminApiError && err.status === 403) {
            throw new Error(`${err.message}: approving routes takes the owner, admin or network-admin role (an IT admin manages devices but cannot accept subnet routes or exit nodes)`);
          }
          throw err;
        }
      }
      out(v, r, () =>
        r.advertisedRoutes.length === 0
          ? [`${d.name} advertises no routes`]
          : table([['ROUTE', 'KIND', 'APPROVED'], ...r.advertisedRoutes.map((x) => [x, EXIT_ROUTES.includes(x) ? 'exit node' : 'subnet', r.enabledRoutes.includes(x) ? 'yes' : 'no'])]),
      );
    },
  },
  expire: onDevice('expire DEVICE', 1, async (api, d) => {
    await api.expireDevice(d.id);
    return 'key expired; it must register again with an auth key';
  }),
  delete: onDevice('delete DEVICE', 1, async (api, d) => {
    await api.deleteDevice(d.id);
    return 'removed';
  }),
});

function readPolicyArg(file: string | undefined): string {
  if (file === undefined) return '';
  try {
    return readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${file}: ${(err as Error).message}`);
  }
}

export const aclCommand = group('acl', "get, set, check and preview the network's policy file (admin API)", {
  get: {
    usage: 'get   (prints the HuJSON file; --json: parsed JSON)',
    async run(api, v) {
      if (v.json) {
        const { policy, etag } = await api.policyJson();
        process.stderr.write(`etag: ${printable(etag)}\n`);
        process.stdout.write(JSON.stringify(policy, null, 2) + '\n');
      } else {
        const { text, etag } = await api.policy();
        process.stderr.write(`etag: ${printable(etag)}\n`);
        process.stdout.write(printableText(text.endsWith('\n') ? text : text + '\n'));
      }
    },
  },
  set: {
    usage: 'set FILE [--if-match ETAG]   (FILE "-" reads stdin)',
    flags: { 'if-match': { type: 'string' } },
    positionals: 1,
    async run(api, v, args) {
      const text = readPolicyArg(need(args, 0, 'FILE'));
      const { etag } = await api.setPolicy(text, v['if-match']);
      out(v, { etag }, () => [`policy updated (etag ${etag})`]);
    },
  },
  check: {
    usage: 'check [FILE]   (without FILE: the stored policy)',
    positionals: 1,
    async run(api, v, args) {
      const r = await api.validatePolicy(readPolicyArg(args[0]));
      if (r.message) {
        out(v, r, () => [r.message!, ...(r.data ?? []).flatMap((d) => d.errors.map((e) => `  ${d.user}: ${e}`))]);
        process.exitCode = 1;
        throw new Error('policy check failed');
      }
      out(v, r, () => ['policy is valid; its tests pass']);
    },
  },
  preview: {
    usage: 'preview (--user EMAIL | --ip-port IP:PORT) [FILE]',
    flags: { user: { type: 'string' }, 'ip-port': { type: 'string' } },
    positionals: 1,
    async run(api, v, args) {
      if (!!v.user === !!v['ip-port']) throw new UsageError('give exactly one of --user EMAIL or --ip-port IP:PORT');
      const r = await api.previewPolicy(v.user ? { user: v.user } : { ipPort: v['ip-port'] }, readPolicyArg(args[0]));
      out(v, r, () =>
        r.matches.length === 0
          ? ['nothing matches']
          : table([['LINE', 'USERS', 'PORTS'], ...r.matches.map((m) => [String(m.lineNumber), m.users.join(','), m.ports.join(',')])]),
      );
    },
  },
});

export const auditCommand: Command = {
  usage: 'audit [--since 24h] [--coord URL] [--api-key-file FILE] [--json]',
  summary: 'show the configuration audit log (admin API)',
  async run(argv) {
    const { values } = parseFlags(argv, { ...CONN_FLAGS, since: { type: 'string', default: '24h' } });
    const api = connect(values);
    const r = await api.auditLog(new Date(Date.now() - parseDuration(values.since!) * 1000));
    out(values, r, () =>
      r.logs.length === 0
        ? ['no configuration changes in that time']
        : table([
            ['TIME', 'ACTOR', 'ACTION', 'TARGET'],
            ...r.logs.map((e) => [e.eventTime, e.actor.loginName || e.actor.type, e.action, `${e.target.type} ${e.target.name ?? ''}${e.target.property ? ` (${e.target.property})` : ''}`]),
          ]),
    );
    return 0;
  },
};

export const dnsCommand = group('dns', 'DNS of the network: nameservers, search paths, MagicDNS, split DNS (admin API)', {
  show: {
    usage: 'show',
    async run(api, v) {
      const [nameservers, searchPaths, magicDNS, splitDns] = await Promise.all([api.nameservers(), api.searchPaths(), api.magicDNS(), api.splitDns()]);
      out(v, { magicDNS, nameservers, searchPaths, splitDns }, () => [
        `MagicDNS:     ${magicDNS ? 'on' : 'off'}`,
        `nameservers:  ${nameservers.join(' ') || '- (devices use their own resolvers for other names)'}`,
        `search paths: ${searchPaths.join(' ') || '-'}`,
        ...Object.entries(splitDns).map(([d, s]) => `split DNS:    ${d} → ${s.join(' ')}`),
      ]);
    },
  },
  nameservers: {
    usage: 'nameservers IP,… (an empty list "" removes them)',
    positionals: 1,
    async run(api, v, args) {
      const r = await api.setNameservers(splitList(need(args, 0, 'IP,… (or "")')));
      out(v, { dns: r }, () => [`nameservers: ${r.join(' ') || '-'}`]);
    },
  },
  searchpaths: {
    usage: 'searchpaths DOMAIN,… (an empty list "" removes them)',
    positionals: 1,
    async run(api, v, args) {
      const r = await api.setSearchPaths(splitList(need(args, 0, 'DOMAIN,… (or "")')));
      out(v, { searchPaths: r }, () => [`search paths: ${r.join(' ') || '-'}`]);
    },
  },
  magicdns: {
    usage: 'magicdns on|off',
    positionals: 1,
    async run(api, v, args) {
      const want = need(args, 0, 'on or off');
      if (want !== 'on' && want !== 'off') throw new UsageError(`magicdns takes on or off, not ${JSON.stringify(want)}`);
      const r = await api.setMagicDNS(want === 'on');
      out(v, { magicDNS: r }, () => [`MagicDNS is ${r ? 'on' : 'off'}`]);
    },
  },
  'split-dns': {
    usage: 'split-dns DOMAIN IP,… | split-dns DOMAIN --remove',
    flags: { remove: { type: 'boolean' } },
    positionals: 2,
    async run(api, v, args) {
      const domain = need(args, 0, 'DOMAIN');
      if (v.remove && args[1] !== undefined) throw new UsageError('give either nameservers or --remove, not both');
      const r = await api.patchSplitDns({ [domain]: v.remove ? null : splitList(need(args, 1, 'IP,… (or --remove)')) });
      out(v, r, () => (Object.keys(r).length ? Object.entries(r).map(([d, s]) => `${d} → ${s.join(' ')}`) : ['no split DNS']));
    },
  },
});
