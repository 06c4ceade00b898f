// `coord relay`: runs a standalone relay that verifies devices with coord. `coord relays …`: manages the
// relay map's extra relays in coord's database (on the server, like `coord tailnet`); a running coord
// reads the change within a second and sends the new map to every device.
import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import { parseFlags, UsageError, type Command } from '../../wire/cli.js';
import { printable, printableText } from '../../wire/printable.js';
import { Conflict, InvalidInput, NotFound } from '../errors.js';
import { checkRelay, checkRelayName, checkRelayUrl, checkStunPort } from '../relay/relay-map.js';
import { startStandaloneRelay } from '../relay/standalone.js';
import { Store } from '../store/index.js';
import { DEFAULT_DB, parseListen } from './common.js';

function stunPortOf(v: string, flag = '--stun-port'): number {
  if (!/^\d+$/.test(v)) throw new UsageError(`${flag} must be a UDP port below 65535 (0: no STUN)`);
  try {
    return checkStunPort(Number(v));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** A bad name, URL or port is a usage error. */
function asUsage<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof InvalidInput) throw new UsageError(err.message);
    throw err;
  }
}

function onStore<T>(db: string, fn: (store: Store) => T): T {
  const store = new Store(db);
  try {
    return fn(store);
  } finally {
    store.close();
  }
}

const RELAYS_USAGE =
  'relays add NAME --url wss://HOST/relay [--stun-port 3478] | relays list | relays update NAME [--url URL] [--stun-port N] | ' +
  'relays rotate-secret NAME | relays remove NAME   (each with [--db FILE] [--json])';

export const relaysCommand: Command = {
  usage: RELAYS_USAGE,
  summary: "manage the relay map's extra relays (on the server, against its database)",
  async run(argv) {
    const [sub, ...rest] = argv;
    const { values, positionals } = parseFlags(rest, {
      db: { type: 'string', default: DEFAULT_DB }, json: { type: 'boolean' }, url: { type: 'string' }, 'stun-port': { type: 'string' },
    }, 1);
    const db = values.db!;
    const name = positionals[0];
    const needName = (): string => {
      if (!name) throw new UsageError(`missing relay NAME (coord relays ${sub} NAME)`);
      try {
        return checkRelayName(name);
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
    };
    const write = (json: unknown, text: string) => process.stdout.write(values.json ? JSON.stringify(json) + '\n' : printableText(text));
    const fail = (err: unknown): number => {
      if (err instanceof Conflict || err instanceof NotFound) {
        process.stderr.write(`coord relays ${sub}: ${printable(err.message)}\n`);
        return 1;
      }
      throw err;
    };
    try {
      switch (sub) {
        case 'add': {
          const n = needName();
          if (!values.url) throw new UsageError('missing --url wss://HOST/relay: where devices reach the relay');
          const stunPort = stunPortOf(values['stun-port'] ?? '3478');
          const checked = asUsage(() => checkRelay({ name: n, url: values.url!, stunPort }));
          const { relay, secret } = onStore(db, (store) => store.addRelay(checked));
          write({ name: relay.name, url: relay.url, stunPort: relay.stunPort, secret },
            `added relay ${relay.name} (${relay.url}${relay.stunPort ? `, STUN on UDP ${relay.stunPort} and ${relay.stunPort + 1}` : ', no STUN'})\n` +
            `its secret (shown only now; give it to the relay in a 0600 file: coord relay --secret-file FILE): ${secret}\n`);
          return 0;
        }
        case 'list': {
          if (name) throw new UsageError(`unexpected argument ${JSON.stringify(name)}`);
          const list = onStore(db, (store) => store.listRelays()).map((r) => ({ name: r.name, url: r.url, stunPort: r.stunPort, created: r.created }));
          write({ relays: list },
            "coord's own relay (coord serve --relay-name, on coord's listener) comes first in every relay map; then:\n" +
              (list.length ? list.map((r) => `${r.name}\t${r.url}\t${r.stunPort ? `stun ${r.stunPort}` : 'no stun'}\n`).join('') : '(no extra relays)\n'));
          return 0;
        }
        case 'update': {
          const n = needName();
          if (values.url === undefined && values['stun-port'] === undefined) throw new UsageError('nothing to change: give --url and/or --stun-port');
          const patch = {
            ...(values.url !== undefined ? { url: asUsage(() => checkRelayUrl(values.url!)) } : {}),
            ...(values['stun-port'] !== undefined ? { stunPort: stunPortOf(values['stun-port']) } : {}),
          };
          const r = onStore(db, (store) => store.updateRelay(n, patch));
          write({ name: r.name, url: r.url, stunPort: r.stunPort }, `relay ${r.name}: ${r.url}, ${r.stunPort ? `STUN ${r.stunPort}` : 'no STUN'}\n`);
          return 0;
        }
        case 'rotate-secret': {
          const n = needName();
          const secret = onStore(db, (store) => store.rotateRelaySecret(n));
          write({ name: n, secret }, `new secret for relay ${n} (the old one no longer works; shown only now): ${secret}\n`);
          return 0;
        }
        case 'remove': {
          const n = needName();
          onStore(db, (store) => store.removeRelay(n));
          write({ removed: n }, `removed relay ${n}: devices drop it from their relay map, and coord no longer answers its checks\n`);
          return 0;
        }
        default:
          throw new UsageError(sub ? `unknown relays subcommand "${sub}"` : 'missing subcommand: add, list, update, rotate-secret or remove');
      }
    } catch (err) {
      return fail(err);
    }
  },
};

export const relayCommand: Command = {
  usage: 'relay --coord URL --secret-file FILE [--listen 0.0.0.0:443] [--tls-cert FILE --tls-key FILE] [--stun-port 3478] [--stun-listen ADDR] [--coord-ca FILE] [--refresh 2s] [--log-level LEVEL]',
  summary: 'run a standalone relay that verifies devices with coord (coord relays add NAME gives its secret)',
  async run(argv) {
    const { values } = parseFlags(argv, {
      coord: { type: 'string' },
      'secret-file': { type: 'string' },
      listen: { type: 'string', default: '0.0.0.0:443' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'stun-port': { type: 'string', default: '3478' },
      'stun-listen': { type: 'string' },
      'coord-ca': { type: 'string' },
      'log-level': { type: 'string', default: 'info' },
      refresh: { type: 'string', default: '2s' },
    });
    const m = /^(\d+)(ms|s)$/.exec(values.refresh!);
    const refreshMs = m ? Number(m[1]) * (m[2] === 's' ? 1000 : 1) : NaN;
    if (!(refreshMs >= 100 && refreshMs <= 60_000)) throw new UsageError('--refresh: how often connected devices are checked with coord, 100ms to 60s (e.g. 2s, 500ms)');
    const coordUrl = values.coord ?? process.env.MESHWARD_COORD;
    if (!coordUrl) throw new UsageError('missing --coord URL: the coordination server this relay verifies devices with');
    if (!/^https?:\/\/[^/]/.test(coordUrl)) throw new UsageError(`--coord ${JSON.stringify(coordUrl)}: expected http(s)://HOST[:PORT]`);
    let secret = process.env.MESHWARD_RELAY_SECRET ?? '';
    if (values['secret-file']) secret = readFileSync(values['secret-file'], 'utf8').trim();
    if (!secret) throw new UsageError('no relay secret: pass --secret-file FILE (or set MESHWARD_RELAY_SECRET); `coord relays add NAME --url …` prints it');
    const { host, port } = parseListen(values.listen!);
    const stunPort = stunPortOf(values['stun-port']!);
    const stunHost = values['stun-listen'];
    if (stunHost !== undefined && !/^[0-9a-fA-F:.]+$/.test(stunHost)) throw new UsageError(`--stun-listen ${JSON.stringify(stunHost)}: an IP address (0.0.0.0 or :: for all)`);
    if (!!values['tls-cert'] !== !!values['tls-key']) throw new UsageError('--tls-cert and --tls-key go together');
    const levels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
    if (!levels.includes(values['log-level']!)) throw new UsageError(`--log-level must be one of ${levels.join(', ')}`);
    const log = pino({ level: values['log-level']!, base: { program: 'coord-relay' } });
    const tls = values['tls-cert'] ? { cert: readFileSync(values['tls-cert']), key: readFileSync(values['tls-key']!) } : undefined;
    const coordCa = values['coord-ca'] ? readFileSync(values['coord-ca']) : undefined;
    const relay = await startStandaloneRelay({ host, port, tls, stunPort, stunHost, coordUrl, secret, coordCa, refreshMs, log });
    log.info({ url: relay.url, relay: relay.name, coord: coordUrl, stun: relay.stun?.ports ?? null }, 'relay listening');
    process.stdout.write(JSON.stringify({ listening: relay.url, relay: relay.name, stun: relay.stun?.ports ?? null }) + '\n');
    await new Promise<void>((resolve) => {
      process.once('SIGTERM', resolve);
      process.once('SIGINT', resolve);
    });
    await relay.close();
    log.info('stopped');
    return 0;
  },
};
