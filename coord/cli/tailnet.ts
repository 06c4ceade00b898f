// `coord tailnet create NAME --owner EMAIL`: creates a network in the database and prints the owner's
// first API key (once). `coord tailnet list`. These work on the database directly (on the server).
import { parseFlags, UsageError, type Command } from '../../wire/cli.js';
import { DEFAULT_POLICY, etagOf } from '../policy-service.js';
import { Conflict, Store } from '../store/index.js';
import { checkEmail, DEFAULT_DB } from './common.js';

const NAME = /^[A-Za-z0-9][A-Za-z0-9.@_-]{0,99}$/;

export const tailnetCommand: Command = {
  usage: 'tailnet create NAME --owner EMAIL [--db FILE] | tailnet list [--db FILE] [--json]',
  summary: 'create or list networks (on the server, against its database)',
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub === 'create') {
      const { values, positionals } = parseFlags(rest, { owner: { type: 'string' }, db: { type: 'string', default: DEFAULT_DB }, json: { type: 'boolean' } }, 1);
      const name = positionals[0];
      if (!name) throw new UsageError('missing network NAME (e.g. coord tailnet create example.com --owner alice@example.com)');
      if (!NAME.test(name)) throw new UsageError(`network name ${JSON.stringify(name)}: use letters, digits and . @ _ - (at most 100 characters)`);
      if (!values.owner) throw new UsageError('missing --owner EMAIL: every network has exactly one owner');
      const owner = checkEmail('--owner', values.owner);
      const store = new Store(values.db!);
      try {
        const { tailnet, apiKey, apiKeyExpires } = store.createTailnet(name, owner, DEFAULT_POLICY, etagOf(DEFAULT_POLICY));
        if (values.json) {
          process.stdout.write(JSON.stringify({ tailnet: tailnet.name, domain: tailnet.domain, owner, apiKey: apiKey.secret, apiKeyExpires }) + '\n');
        } else {
          process.stdout.write(
            `created network ${tailnet.name} (domain ${tailnet.domain}) owned by ${owner}\n` +
              `owner's API key (shown only now; keep it secret; expires ${apiKeyExpires}): ${apiKey.secret}\n`,
          );
        }
        return 0;
      } catch (err) {
        if (err instanceof Conflict) {
          process.stderr.write(`coord tailnet create: ${err.message}\n`);
          return 1;
        }
        throw err;
      } finally {
        store.close();
      }
    }
    if (sub === 'list') {
      const { values } = parseFlags(rest, { db: { type: 'string', default: DEFAULT_DB }, json: { type: 'boolean' } });
      const store = new Store(values.db!);
      try {
        const list = store.listTailnets().map((t) => ({ name: t.name, domain: t.domain, created: t.created, devices: store.listDevices(t.id).length, users: store.listUsers(t.id).length }));
        if (values.json) process.stdout.write(JSON.stringify({ tailnets: list }) + '\n');
        else for (const t of list) process.stdout.write(`${t.name}\t${t.domain}\t${t.users} users\t${t.devices} devices\n`);
        return 0;
      } finally {
        store.close();
      }
    }
    throw new UsageError(sub ? `unknown tailnet subcommand "${sub}" (create or list)` : 'missing subcommand: create or list');
  },
};
